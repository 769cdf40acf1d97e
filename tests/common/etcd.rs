//! A real etcd member for cluster tests: Debian's `etcd-server`, on loopback ports of its
//! own (never 2379, where a packaged etcd may already run), with its data in a temporary
//! directory; killed and started again on the same ports and data by the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::process::Reaped;

/// One etcd member.
pub struct Etcd {
    name: String,
    pub client_port: u16,
    peer_port: u16,
    /// Every member of its cluster, as `--initial-cluster` lists them.
    initial_cluster: String,
    /// With TLS: the directory of `ca.pem`, `server.pem` and `server.key`; clients must
    /// present a certificate the CA signed.
    tls: Option<std::path::PathBuf>,
    dir: tempfile::TempDir,
    process: Option<Reaped>,
}

/// A free loopback port (closed again: etcd binds it an instant later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the cluster tests run: etcd is there, installed here if it can be (as root with
/// apt-get, as tests/interop/setup.sh installs Chromium), or they are skipped on purpose
/// with `SKIP_CLUSTER_TESTS` (never under CI: a skipped check is not a passed one).
pub fn available() -> bool {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    if std::env::var_os("SKIP_CLUSTER_TESTS").is_some() {
        assert!(
            std::env::var_os("CI").is_none(),
            "SKIP_CLUSTER_TESTS is set under CI; the cluster tests must run there"
        );
        eprintln!("cluster tests skipped: SKIP_CLUSTER_TESTS is set");
        return false;
    }
    let installed = INSTALLED.get_or_init(|| {
        let found = |binary: &str| {
            Command::new(binary)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if found(&binary()) {
            return Ok(());
        }
        // SAFETY: getuid(2) has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        if root && found("apt-get") {
            let install = Command::new("sh")
                .args(["-c", "apt-get update -qq >/dev/null && apt-get install -y -qq etcd-server >/dev/null"])
                .status()
                .map_err(|e| e.to_string())?;
            if install.success() && found(&binary()) {
                return Ok(());
            }
        }
        Err(format!(
            "the cluster tests need etcd ({} not found): apt-get install etcd-server, set ETCD_BINARY, or SKIP_CLUSTER_TESTS=1 to skip",
            binary()
        ))
    });
    if let Err(e) = installed {
        panic!("{e}");
    }
    true
}

fn binary() -> String {
    std::env::var("ETCD_BINARY").unwrap_or_else(|_| "etcd".into())
}

/// Whether etcd at `port` answers `GET /health` with its health.
fn healthy(port: u16) -> bool {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut answer = String::new();
    tcp.write_all(request.as_bytes()).is_ok()
        && tcp.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.0 200")
        && answer.contains(r#""health":"true""#)
}

impl Etcd {
    /// Starts a single-member etcd and waits until it answers.
    pub fn start() -> Etcd {
        Etcd::members(1).pop().unwrap()
    }

    /// Starts a single member serving clients over TLS with the files in `dir` (see
    /// [`Etcd::tls`]), and waits until it listens.
    pub fn start_tls(dir: &std::path::Path) -> Etcd {
        let peer_port = free_port();
        let mut etcd = Etcd {
            name: "m0".into(),
            client_port: free_port(),
            peer_port,
            initial_cluster: format!("m0=http://127.0.0.1:{peer_port}"),
            tls: Some(dir.to_path_buf()),
            dir: tempfile::tempdir().unwrap(),
            process: None,
        };
        etcd.resume();
        etcd
    }

    /// Starts a cluster of `n` members and waits until every one answers.
    pub fn members(n: usize) -> Vec<Etcd> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Etcd> = ports
            .into_iter()
            .enumerate()
            .map(|(i, (client_port, peer_port))| Etcd {
                name: format!("m{i}"),
                client_port,
                peer_port,
                initial_cluster: initial_cluster.clone(),
                tls: None,
                dir: tempfile::tempdir().unwrap(),
                process: None,
            })
            .collect();
        // All at once: a member of several waits for the others before it serves.
        for member in &mut members {
            member.spawn();
        }
        for member in &members {
            member.wait_healthy();
        }
        members
    }

    /// `http://127.0.0.1:PORT`, as `[cluster] endpoints` lists it.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Kills the member (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts the member again on the same ports and data, and waits until it answers.
    pub fn resume(&mut self) {
        self.spawn();
        self.wait_healthy();
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let binary = binary();
        let mut command = Command::new(&binary);
        if let Some(dir) = &self.tls {
            command
                .arg("--cert-file")
                .arg(dir.join("server.pem"))
                .arg("--key-file")
                .arg(dir.join("server.key"))
                .arg("--trusted-ca-file")
                .arg(dir.join("ca.pem"))
                .arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {binary} ({e}): install etcd (Debian: apt-get install etcd-server), as .ci/run does")
            });
        self.process = Some(Reaped(child));
    }

    fn wait_healthy(&self) {
        let client = self.endpoint();
        // Generous: a member replaying its log on a loaded machine (fsyncs behind builds)
        // has taken over 20 s; a healthy start takes well under one.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Over TLS, listening is enough: a node retries until the member answers.
            let up = match self.tls {
                Some(_) => TcpStream::connect(("127.0.0.1", self.client_port)).is_ok(),
                None => healthy(self.client_port),
            };
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not start at {client}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Etcd {
    /// Whether the member runs (it was not killed, or was started again).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }
}

/// Which of `members` is the etcd leader (raft's), as the running members say: the one whose
/// own id (in its answer's header) is the leader its status names. `None` while they elect.
#[cfg(feature = "cluster")]
pub async fn raft_leader(members: &[Etcd]) -> Option<usize> {
    for (i, member) in members.iter().enumerate() {
        if !member.is_running() {
            continue;
        }
        let status = tokio::time::timeout(Duration::from_secs(1), async {
            let mut client = etcd_client::Client::connect([member.endpoint()], None).await?;
            client.status().await
        })
        .await;
        let Ok(Ok(status)) = status else { continue };
        if status.header().map(|h| h.member_id()) == Some(status.leader()) {
            return Some(i);
        }
    }
    None
}
