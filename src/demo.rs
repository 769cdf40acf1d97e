//! `servicewatch demo`: the daemon on a generated configuration, with stand-in backends on
//! loopback that go down and come back on a schedule, so that a newcomer sees state
//! changes, a switchover and a ReadOnly Provisioning within a minute, with nothing else
//! installed.
//!
//! The stand-ins are real listeners (a T-Server pair and a Configuration Server pair that
//! accept connections, a Stat Server answering HTTP, three Cassandra nodes answering CQL),
//! probed by the real monitors exactly as production backends are.

use std::net::SocketAddr;
use std::time::Duration;

use base64ct::Encoding;
use tokio::signal::unix::{SignalKind, signal};

use crate::Daemon;
use crate::config;
use crate::standin::{Mode, StandIn};

/// The demo's user; its password is made up at each start and printed.
const DEMO_USER: &str = "demo";

/// The stand-ins, by role.
struct Backends {
    sip_primary: StandIn,
    sip_backup: StandIn,
    stat: StandIn,
    cs_primary: StandIn,
    cs_backup: StandIn,
    cassandra: Vec<StandIn>,
}

impl Backends {
    async fn start() -> std::io::Result<Backends> {
        let mut cassandra = Vec::new();
        for _ in 0..3 {
            cassandra.push(StandIn::start(Mode::Cql).await?);
        }
        Ok(Backends {
            sip_primary: StandIn::start(Mode::Accept).await?,
            sip_backup: StandIn::start(Mode::Accept).await?,
            stat: StandIn::start(Mode::Http(200, r#"{"status":"UP"}"#)).await?,
            cs_primary: StandIn::start(Mode::Accept).await?,
            cs_backup: StandIn::start(Mode::Accept).await?,
            cassandra,
        })
    }

    /// The daemon's configuration for these stand-ins, with one user whose password hash
    /// is `password_hash`, keeping its history in `history`.
    fn config(
        &self,
        listen: SocketAddr,
        admin: SocketAddr,
        password_hash: &str,
        history: &std::path::Path,
    ) -> String {
        let nodes: Vec<String> = self
            .cassandra
            .iter()
            .map(|n| format!("\"127.0.0.1:{}\"", n.port()))
            .collect();
        format!(
            r#"[server]
listen = "{listen}"
[admin]
listen = "{admin}"
[history]
path = '{}'
[checks]
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2

[[contact_center]]
id = "demo"
features = ["api-voice", "api-provisioning-read", "ui-supervisor-reporting"]

[[user]]
name = "{DEMO_USER}"
password = "{password_hash}"
roles = ["supervisor"]
contact_center = "demo"

[[service]]
id = "sips1"
name = "SIPS1"
type = "Voice"
attributes = {{ sipPort = 5060, publicHost = "sip.example.com" }}
primary = {}
backup = {}

[[service]]
id = "statserver"
name = "StatServer"
type = "Reporting"
primary = {}
check = {{ kind = "http", path = "/health", expect_body = "UP" }}

[[service]]
id = "provisioning"
type = "Provisioning"
config_server = {{ primary = {}, backup = {} }}
cassandra = {{ nodes = [{}] }}
"#,
            history.display(),
            self.sip_primary.toml(),
            self.sip_backup.toml(),
            self.stat.toml(),
            self.cs_primary.toml(),
            self.cs_backup.toml(),
            nodes.join(", "),
        )
    }
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A listener or a stand-in backend could not be opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The demo's own configuration was refused (a bug).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

/// Runs the demo until SIGINT or SIGTERM.
pub async fn run(
    listen: SocketAddr,
    admin: SocketAddr,
    step_every: Duration,
) -> Result<(), DemoError> {
    let mut backends = Backends::start().await?;
    // A fresh password each run, so that no demo credential ever works on a real daemon.
    let mut secret = [0u8; 9];
    getrandom::fill(&mut secret)
        .map_err(|e| std::io::Error::other(format!("no random source: {e}")))?;
    let password = base64ct::Base64UrlUnpadded::encode_string(&secret);
    let hash =
        crate::password::hash(&password).map_err(|e| std::io::Error::other(e.to_string()))?;
    // The history of this run, in a directory of its own, removed when the demo ends.
    let history_dir =
        std::env::temp_dir().join(format!("servicewatch-demo-{}", std::process::id()));
    std::fs::create_dir_all(&history_dir)?;
    let settings = config::parse(
        &backends.config(listen, admin, &hash, &history_dir.join("history.sqlite")),
        "demo configuration",
        None,
    )?;
    let daemon = Daemon::start(settings)?;
    let base = format!("http://{}", daemon.local_addr());
    println!(
        "\nservicewatch demo: three services on stand-in backends that fail and recover every {} s.\n\n\
         \x20 Status page:    {base}/\n\
         \x20 Services API:   {base}/api/v2/services?fields=*\n\
         \x20 Notifications:  {base}/api/v2/notifications   (Bayeux: WebSocket and long-polling)\n\
         \x20 Metrics:        http://{}/metrics\n\
         \x20 Login:          user {DEMO_USER}, password {password}\n\n\
         Try:\n\
         \x20 curl -s -u {DEMO_USER}:{password} '{base}/api/v2/services?fields=id,state,servingInstance'\n\
         \x20 curl -s -u {DEMO_USER}:{password} '{base}/api/v2/services/sips1/history?limit=5'\n\
         \x20 curl -s -u {DEMO_USER}:{password} -X POST {base}/api/v2/notifications/handshake -d '[{{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"supportedConnectionTypes\":[\"long-polling\"]}}]'\n\n\
         Ctrl-C stops the demo.\n",
        step_every.as_secs_f64(),
        daemon
            .admin_addr()
            .map_or_else(|| "disabled".to_string(), |a| a.to_string()),
    );
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut step = 0usize;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = tokio::time::sleep(step_every) => {
                let said = play(&mut backends, step).await?;
                println!("demo: {said}");
                step += 1;
            }
        }
    }
    daemon.stop().await;
    daemon.wait().await?;
    let _ = std::fs::remove_dir_all(&history_dir);
    Ok(())
}

/// Plays step `n` of the scenario; says what it did and what to expect.
async fn play(b: &mut Backends, n: usize) -> std::io::Result<&'static str> {
    Ok(match n % 6 {
        0 => {
            b.sip_primary.close().await;
            "SIPS1's primary stopped: SIPS1 switches over to its backup and stays Active"
        }
        1 => {
            b.stat.close().await;
            "the Stat Server stopped: statserver goes Inactive"
        }
        2 => {
            b.sip_primary.reopen().await?;
            b.stat.reopen().await?;
            "SIPS1's primary is back (SIPS1 stays on the backup: no failback); the Stat Server is back"
        }
        3 => {
            b.cs_primary.close().await;
            b.cs_backup.close().await;
            "both Configuration Servers stopped: provisioning goes ReadOnly (Cassandra still answers)"
        }
        4 => {
            b.cassandra[0].close().await;
            b.cassandra[1].close().await;
            "two of three Cassandra nodes stopped: provisioning goes Inactive (no quorum)"
        }
        _ => {
            for node in &mut b.cassandra {
                if !node.is_open() {
                    node.reopen().await?;
                }
            }
            b.cs_primary.reopen().await?;
            b.cs_backup.reopen().await?;
            "Cassandra and the Configuration Servers are back: provisioning is Active again"
        }
    })
}
