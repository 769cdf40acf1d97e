//! A real etcd member for cluster tests: Debian's `etcd-server`, on loopback ports of its
//! own (never 2379, where a packaged etcd may already run), with its data in a temporary
//! directory; killed and started again on the same ports and data by the test.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::Reaped;

/// One etcd member.
pub struct Etcd {
    pub client_port: u16,
    peer_port: u16,
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

impl Etcd {
    /// Starts a single-member etcd and waits until it answers.
    pub fn start() -> Etcd {
        let mut etcd = Etcd {
            client_port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            process: None,
        };
        etcd.resume();
        etcd
    }

    /// `http://127.0.0.1:PORT`, as `[cluster] endpoints` lists it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills the member (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts the member again on the same ports and data, and waits until it answers.
    pub fn resume(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let binary = std::env::var("ETCD_BINARY").unwrap_or_else(|_| "etcd".into());
        let child = Command::new(&binary)
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {binary} ({e}): install etcd (Debian: apt-get install etcd-server), as .ci/run does")
            });
        self.process = Some(Reaped(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = format!("{client}/health");
        loop {
            let healthy = Command::new("curl")
                .args(["-sf", "--max-time", "1", &health])
                .output()
                .is_ok_and(|o| o.status.success());
            if healthy {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not start at {client}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
