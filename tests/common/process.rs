//! The `servicewatch` binary run as a child process, for what only a process of its own
//! shows: its resident memory, its exit, its signals.

use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reads a daemon's log up to the line that names its listener (it carries the port the
/// kernel chose); returns that address, the lines read, and the rest of the log.
pub fn read_until_listening(
    stderr: ChildStderr,
) -> (String, Vec<String>, Lines<BufReader<ChildStderr>>) {
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no listen line: {seen:?}");
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the daemon exited before listening: {seen:?}"))
            .unwrap();
        seen.push(line.clone());
        if let Some(at) = line.find("listen=") {
            let addr = line[at + "listen=".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            return (addr, seen, lines);
        }
    }
}

/// A daemon process, killed when dropped.
pub struct DaemonProcess {
    pub child: Child,
    /// Where the Services API listens.
    pub addr: String,
    /// Where the admin listener (metrics) listens, when enabled.
    pub admin: Option<String>,
    pub config_path: PathBuf,
    /// Every line the daemon has logged so far, with when this process read it.
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: tempfile::TempDir,
}

impl DaemonProcess {
    /// Starts the binary on `toml` (with `[server] listen` on port 0 and the admin listener
    /// off, both added here) and waits for the line that names its listener.
    pub fn spawn(toml: &str) -> DaemonProcess {
        DaemonProcess::spawn_config(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n{toml}"
        ))
    }

    /// Starts the binary on `toml` as it is (it must choose its listeners; port 0 is
    /// found in the log).
    pub fn spawn_config(toml: &str) -> DaemonProcess {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("servicewatch.toml");
        std::fs::write(&path, toml).unwrap();
        // `BENCH_DAEMON`: another build (or a profiler's wrapper) measured the same way.
        let binary = std::env::var("BENCH_DAEMON")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_servicewatch").to_string());
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&path)
            .env_remove("BENCH_DAEMON")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (addr, seen, lines) = read_until_listening(child.stderr.take().unwrap());
        let admin = seen.iter().find_map(|line| {
            let at = line.find("admin=")?;
            Some(
                line[at + "admin=".len()..]
                    .split_whitespace()
                    .next()?
                    .to_string(),
            )
        });
        let started = Instant::now();
        let log = Arc::new(Mutex::new(
            seen.into_iter()
                .map(|line| (started, line))
                .collect::<Vec<_>>(),
        ));
        // Keep reading the log so the daemon never blocks on a full pipe.
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push((Instant::now(), line));
            }
        });
        DaemonProcess {
            child,
            addr,
            admin,
            config_path: path,
            log,
            _dir: dir,
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The lines logged so far that contain `text`.
    pub fn log_lines(&self, text: &str) -> Vec<String> {
        self.log_lines_before(text, Instant::now() + Duration::from_secs(3600))
    }

    /// The lines containing `text` that this process had read before `before`.
    pub fn log_lines_before(&self, text: &str, before: Instant) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(at, l)| *at < before && l.contains(text))
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Rewrites the configuration file and sends SIGHUP; returns once the log says the
    /// reload was applied.
    pub fn reload(&self, toml: &str) {
        let before = self.log_lines("services reloaded").len();
        std::fs::write(&self.config_path, toml).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log_lines("services reloaded").len() == before {
            assert!(
                self.log_lines("reload refused").is_empty(),
                "{:?}",
                self.log_lines("reload")
            );
            assert!(Instant::now() < deadline, "the reload was not applied");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A line of `/proc/PID/status`, such as `Threads`, as a number.
    pub fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the daemon runs");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} line"))
    }

    /// Open file descriptors of the process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("the daemon runs")
            .count()
    }

    /// Resident memory of the process, in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS")
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed and reaped when dropped, so that a run that panics leaves no
/// process behind to skew the next measurement.
pub struct Reaped(pub Child);

impl Reaped {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
