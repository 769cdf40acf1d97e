//! SIP peers for the `sip` check's tests: `sipp` as a real SIP server answering OPTIONS
//! (tests/sip/*.xml), and the pieces of a peer a test writes itself (the answer to a request,
//! with its transaction's headers echoed).

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `sipp` program, or `None` when it is missing and the tests say why and skip; under
/// `CI` a missing `sipp` is a failure (`.ci/run` installs Debian's `sip-tester`).
pub fn sipp() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("sipp"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "sipp is missing under CI; install sip-tester (the sip check's tests run it)"
        );
        eprintln!("sip tests with sipp skipped: sipp is missing (apt-get install sip-tester)");
    }
    found
}

/// Over which transport `sipp` listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SippTransport {
    Udp,
    Tcp,
}

/// A `sipp` server on loopback playing `scenario` (a file of tests/sip), killed on drop.
pub struct Sipp {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sipp {
    /// Starts `sipp` on a free port and waits until it listens; tries another port if one
    /// was taken between choosing it and `sipp` binding it.
    pub fn start(program: &Path, scenario: &str, transport: SippTransport) -> Sipp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sip")
            .join(scenario);
        for _ in 0..5 {
            let port = free_port();
            // sipp writes its logs where it runs: somewhere of its own.
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(program)
                .arg("-sf")
                .arg(&script)
                .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-nostdin"])
                .args([
                    "-t",
                    if transport == SippTransport::Udp {
                        "u1"
                    } else {
                        "t1"
                    },
                ])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sipp starts");
            if listening(&mut child, port, transport) {
                return Sipp {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sipp did not start on any of five ports");
    }

    /// Stops it at once, as a crashed server stops.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free on loopback for both UDP and TCP when asked.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether `sipp` came to answer on `port` within a deadline (false: it exited, the port
/// taken). It must be *this* sipp that answers: tests run side by side, and another's peer
/// may hold the port this one failed to bind. Its answers carry its process id in the `To`
/// tag (`[pid]sipp`, tests/sip/*.xml), so an OPTIONS is sent and the tag looked for.
fn listening(child: &mut Child, port: u16, transport: SippTransport) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let signature = format!("tag={}sipp", child.id());
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let answer = match transport {
            SippTransport::Tcp => answer_tcp(port),
            SippTransport::Udp => answer_udp(port),
        };
        if answer.is_some_and(|a| a.contains(&signature)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// An OPTIONS from `local` to `port`, as a readiness probe sends it.
fn readiness_options(port: u16, transport: &str, local: std::net::SocketAddr) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKready{n}\r\nMax-Forwards: 70\r\nFrom: <sip:test@127.0.0.1>;tag=r\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: ready{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        n = local.port()
    )
}

/// Sends one OPTIONS to `port` over UDP; the answer that came within 100 ms, if any.
fn answer_udp(port: u16) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", port)).ok()?;
    let request = readiness_options(port, "UDP", socket.local_addr().unwrap());
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    socket.send(request.as_bytes()).ok()?;
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Sends one OPTIONS to `port` over TCP; the answer that came within 200 ms, if any.
fn answer_tcp(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = readiness_options(port, "TCP", stream.local_addr().unwrap());
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = [0u8; 2048];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The answer a SIP server gives `request`: `status_line`, then its Via, From, To, Call-ID
/// and CSeq echoed (as RFC 3261 §8.2.6.2 has a server do), with `extra` header lines.
pub fn answer(request: &str, status_line: &str, extra: &str) -> String {
    let echoed: String = request
        .split("\r\n")
        .filter(|line| {
            ["via:", "from:", "to:", "call-id:", "cseq:"]
                .iter()
                .any(|name| line.to_ascii_lowercase().starts_with(name))
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    format!("{status_line}\r\n{echoed}{extra}Content-Length: 0\r\n\r\n")
}

/// The value of header `name` in `request` (first occurrence), for a test peer that counts
/// transactions.
pub fn header<'a>(request: &'a str, name: &str) -> Option<&'a str> {
    request.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
