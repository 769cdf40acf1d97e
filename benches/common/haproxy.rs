//! HAProxy checking the benches' loopback listeners: the reference the probes' CPU is
//! measured against (Debian's `haproxy`).

use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::Reaped;

/// HAProxy with a plain TCP check every second of each of `ports` (rise = fall = 1, timeout
/// 500 ms) and no traffic; `threads`: its `nbthread` (`None`: its default, one per CPU).
/// `None` if it cannot be started.
pub fn start(dir: &std::path::Path, ports: &[u16], threads: Option<u32>) -> Option<Reaped> {
    // HAProxy refuses a configuration without a listener: a free port for one.
    let front = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(18999, |a| a.port());
    let nbthread = threads.map_or(String::new(), |n| format!("  nbthread {n}\n"));
    let mut config = format!(
        "global\n{nbthread}  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n  timeout check 500ms\nfrontend front\n  bind 127.0.0.1:{front}\n  default_backend backends\nbackend backends\n",
    );
    for (i, port) in ports.iter().enumerate() {
        config.push_str(&format!(
            "  server s{i} 127.0.0.1:{port} check inter 1s rise 1 fall 1\n"
        ));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let mut haproxy = Command::new("haproxy")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(500));
    match haproxy.try_wait() {
        Ok(None) => Some(Reaped(haproxy)),
        _ => None,
    }
}
