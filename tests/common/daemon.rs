//! The real daemon, started in-process on port 0 with its own actix System on a thread of
//! its own, the way the binary runs it.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use servicewatch::daemon::ReloadSummary;
use servicewatch::{Daemon, Settings, config};

/// The user every test daemon knows, with every feature: an agent.
pub const USER: &str = "tester";
pub const PASSWORD: &str = "tester-password";
/// A supervisor of the same contact center, with the same password: sees the instance
/// detail.
pub const SUPERVISOR: &str = "boss";
/// An admin of the same contact center, with the same password: sets maintenance.
pub const ADMIN: &str = "chief";

/// `[[contact_center]]` "all" with every default feature, and `[[user]]`s [`USER`],
/// [`SUPERVISOR`] and [`ADMIN`].
pub fn users_toml() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| servicewatch::password::hash(PASSWORD).unwrap());
    format!(
        "[[contact_center]]\nid = \"all\"\nfeatures = [\"api-voice\", \"api-provisioning-read\", \"api-multimedia\", \"ui-supervisor-reporting\"]\n\n[[user]]\nname = \"{USER}\"\npassword = \"{hash}\"\nroles = [\"agent\"]\ncontact_center = \"all\"\n\n[[user]]\nname = \"{SUPERVISOR}\"\npassword = \"{hash}\"\nroles = [\"supervisor\"]\ncontact_center = \"all\"\n\n[[user]]\nname = \"{ADMIN}\"\npassword = \"{hash}\"\nroles = [\"admin\"]\ncontact_center = \"all\"\n"
    )
}

/// `Authorization: Basic ...` of [`USER`].
pub fn basic_header() -> String {
    basic_of(USER, PASSWORD)
}

/// `Authorization: Basic ...` of `user` and `password`.
pub fn basic_of(user: &str, password: &str) -> String {
    use base64ct::Encoding;
    format!(
        "Basic {}",
        base64ct::Base64::encode_string(format!("{user}:{password}").as_bytes())
    )
}

/// A reload request for the daemon's thread, answered with the reload's outcome.
type Reload = tokio::sync::oneshot::Sender<Result<ReloadSummary, String>>;

/// The file a test daemon reads: `toml`, with one worker, the admin listener on port 0 and
/// the test user.
fn wrap(toml: &str) -> String {
    format!(
        "[server]\nworkers = 1\n{toml}\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
        users_toml()
    )
}

/// A daemon running for one test; stopped when dropped.
pub struct TestDaemon {
    pub addr: SocketAddr,
    /// The admin listener (metrics, health), when this process started the daemon.
    pub admin: Option<SocketAddr>,
    /// The HTTPS listener, when `[tls]` is configured.
    pub tls: Option<SocketAddr>,
    /// Empty for a daemon this process did not start (see [`TestDaemon::attach`]).
    pub settings: Settings,
    pub config_path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    reloads: Option<tokio::sync::mpsc::UnboundedSender<Reload>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestDaemon {
    /// Writes `toml` to a file, loads it the way the binary does, and starts the daemon;
    /// returns once every server has been probed once (as `READY=1` waits), so that every
    /// service is listed with a known state.
    pub fn start(toml: &str) -> TestDaemon {
        TestDaemon::launch(toml, true, "127.0.0.1:0")
    }

    /// [`TestDaemon::start`] on `addr`: a daemon started again where the one before it
    /// listened, as a restart does (its clients come back to the same address).
    pub fn start_at(toml: &str, addr: SocketAddr) -> TestDaemon {
        TestDaemon::launch(toml, true, &addr.to_string())
    }

    /// [`TestDaemon::start`], returning as soon as the daemon serves, while services may
    /// still be pending their first probe round.
    pub fn start_unprobed(toml: &str) -> TestDaemon {
        TestDaemon::launch(toml, false, "127.0.0.1:0")
    }

    fn launch(toml: &str, probed: bool, listen: &str) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("servicewatch.toml");
        std::fs::write(&config_path, wrap(toml)).unwrap();
        let settings = config::load(&config_path).unwrap_or_else(|e| panic!("config refused: {e}"));
        let listener = TcpListener::bind(listen).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (reload_tx, mut reload_rx) = tokio::sync::mpsc::unbounded_channel::<Reload>();
        let mut running = settings.clone();
        let path = config_path.clone();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let daemon = Daemon::start_on(running.clone(), listener).expect("daemon starts");
                if probed {
                    tokio::time::timeout(Duration::from_secs(10), daemon.when_ready())
                        .await
                        .expect("every server probed within 10 s");
                }
                let handle = daemon.handle();
                ready_tx
                    .send((daemon.admin_addr(), daemon.tls_addr()))
                    .unwrap();
                let reloads = async {
                    while let Some(answer) = reload_rx.recv().await {
                        let result = daemon.reload(&path, &mut running).await;
                        let _ = answer.send(result.map_err(|e| e.to_string()));
                    }
                    std::future::pending::<()>().await
                };
                tokio::select! {
                    _ = reloads => {}
                    _ = stop_rx => {}
                }
                handle.stop(false).await;
            })
        });
        let (admin, tls) = ready_rx.recv().expect("daemon thread started");
        TestDaemon {
            addr,
            admin,
            tls,
            settings,
            config_path,
            stop: Some(stop_tx),
            reloads: Some(reload_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Helpers for a daemon running elsewhere (the binary started by a test) at `addr`.
    pub fn attach(addr: &str) -> TestDaemon {
        let settings = servicewatch::config::validate(Default::default(), "none").unwrap();
        TestDaemon {
            addr: addr.parse().unwrap(),
            admin: None,
            tls: None,
            settings,
            config_path: PathBuf::new(),
            stop: None,
            reloads: None,
            thread: None,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Rewrites the configuration with `toml` (wrapped as by [`TestDaemon::start`]) and
    /// reloads it, as SIGHUP does.
    pub async fn reload(&self, toml: &str) -> Result<ReloadSummary, String> {
        std::fs::write(&self.config_path, wrap(toml)).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.reloads
            .as_ref()
            .expect("a daemon this process started")
            .send(tx)
            .expect("the daemon thread runs");
        rx.await.expect("the daemon answers")
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path` on the admin listener; returns status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let admin = self.admin.expect("an admin listener");
        let response = reqwest::get(format!("http://{admin}{path}"))
            .await
            .expect("admin request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// The value of one sample in `/metrics`, such as
    /// `servicewatch_probes_total{service="a",instance="primary",check="tcp",outcome="up"}`.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines().find_map(|line| {
            line.strip_prefix(sample)?
                .strip_prefix(' ')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// GET `path`; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.request(reqwest::Method::GET, path).await
    }

    pub async fn request(&self, method: reqwest::Method, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .request(method, self.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// GET `path` as JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let (_, body) = self.get(path).await;
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON {body:?}: {e}"))
    }

    /// The resource of service `id`.
    pub async fn service(&self, id: &str) -> serde_json::Value {
        let body = self.json(&format!("/api/v2/services/{id}")).await;
        body["service"][0].clone()
    }

    /// The ids of the services the API lists, in order.
    pub async fn ids(&self) -> Vec<String> {
        self.ids_of(&self.json("/api/v2/services?fields=id").await)
    }

    /// The ids in a `services` list answer.
    pub fn ids_of(&self, body: &serde_json::Value) -> Vec<String> {
        body["services"]
            .as_array()
            .expect("a services list")
            .iter()
            .map(|s| s["id"].as_str().expect("an id").to_string())
            .collect()
    }

    /// `method` on `path` as `user` (password [`PASSWORD`]), with a JSON `body` if given;
    /// returns the status and the JSON answer.
    pub async fn call_as(
        &self,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.url(path))
            .basic_auth(user, Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON {text:?}: {e}"));
        (status, json)
    }

    /// The history of service `id` (`query` appended), read as the test user.
    pub async fn history(&self, id: &str, query: &str) -> serde_json::Value {
        let (status, body) = self
            .call_as(
                USER,
                reqwest::Method::GET,
                &format!("/api/v2/services/{id}/history{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The instance detail of service `id`, read as [`SUPERVISOR`].
    pub async fn instances(&self, id: &str) -> serde_json::Value {
        let path = format!("/api/v2/services/{id}/instances");
        let response = reqwest::Client::new()
            .get(self.url(&path))
            .basic_auth(SUPERVISOR, Some(PASSWORD))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.json().await.expect("JSON")
    }

    /// The `state` and `servingInstance` of service `id`.
    pub async fn state_of(&self, id: &str) -> (String, Option<String>) {
        let s = self.service(id).await;
        (
            s["state"].as_str().unwrap_or_default().to_string(),
            s["servingInstance"].as_str().map(str::to_string),
        )
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
