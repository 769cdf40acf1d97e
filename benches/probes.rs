//! Probe cost, measured apart from everything else the daemon does: N loopback listeners
//! that accept each connection and close it, HAProxy checking them (`nbthread 2`,
//! `check inter 1s`, as an operator configures it for this job), then servicewatch checking
//! the same listeners (a `tcp` check every second, its log at its default level), each
//! process alone on the machine while its CPU is read from `/proc/PID/stat` over the same
//! length of window. The two alternate (HAProxy, servicewatch, servicewatch, HAProxy...) so
//! that a shared machine's drift falls on both alike; the checks each made are counted from
//! the kernel's `ActiveOpens` over its window, so that a prober doing fewer checks cannot
//! look cheaper.
//!
//! `cargo bench --bench probes [-- N... [window=S] [rounds=R] [listeners=close|never]
//! [log=FILTER] [together]]` (default: 2000 5000 10000, 30 s windows, 2 rounds, listeners
//! that accept and close, the daemon's default log level). `listeners=never` listens without
//! ever accepting (the backlog fills only if a prober completes its handshakes); `together`
//! runs both at once over one window, as `scale` does. Set `BENCH_DAEMON` to measure
//! another build.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "common/backends.rs"]
mod backends;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/haproxy.rs"]
mod haproxy;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;

use backends::Backends;
use cpu::cpu_time;
use process::Reaped;

const PASSWORD: &str = "probes-bench-password";
/// How long each prober runs before its window opens: every first check made.
const SETTLE: Duration = Duration::from_secs(3);

/// The kernel's count of connections this host opened (`Tcp: ActiveOpens`), every process.
fn active_opens() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ActiveOpens")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// The listeners the probers check, held open while they do.
#[allow(dead_code)]
enum Listeners {
    /// Accept each connection and close it.
    Close(Backends),
    /// Listen, never accept.
    Never(Vec<std::net::TcpListener>),
}

async fn open_listeners(n: usize, accept: bool) -> (Listeners, Vec<u16>) {
    let mut backends = Backends::open_new(n).await;
    let ports = backends.ports.clone();
    if accept {
        return (Listeners::Close(backends), ports);
    }
    backends.close();
    let mut idle = Vec::with_capacity(n);
    for &port in &ports {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => break idle.push(listener),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("bind {port}: {e}"),
            }
        }
    }
    (Listeners::Never(idle), ports)
}

/// The daemon checking `ports`: a `tcp` check every second (timeout 0.5 s, rise = fall = 1),
/// nothing else. Returns once REST shows every service Active.
async fn start_daemon(dir: &std::path::Path, ports: &[u16], log: Option<&str>) -> Reaped {
    let config = dir.join("probes.toml");
    if !config.exists() {
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n[checks]\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\n[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[user]]\nname = \"bench\"\npassword = \"{}\"\nroles = [\"supervisor\"]\ncontact_center = \"cc\"\n",
            servicewatch::password::hash(PASSWORD).unwrap(),
        );
        for (i, port) in ports.iter().enumerate() {
            text.push_str(&format!(
                "[[service]]\nid = \"s{i}\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\n"
            ));
        }
        std::fs::write(&config, text).unwrap();
    }
    let binary = std::env::var("BENCH_DAEMON")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_servicewatch").to_string());
    let mut command = Command::new(binary);
    command
        .arg("--config")
        .arg(&config)
        .env_remove("BENCH_DAEMON")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(filter) = log {
        // The listen line is the daemon's, at info: keep it whatever the filter.
        command.env("RUST_LOG", format!("{filter},servicewatch::daemon=info"));
    }
    let mut daemon = command.spawn().expect("start the daemon");
    let (addr, _, lines) = process::read_until_listening(daemon.stderr.take().unwrap());
    std::thread::spawn(move || for _ in lines {});
    let daemon = Reaped(daemon);
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/v2/services?fields=state&state=Active");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active = match client
            .get(&url)
            .basic_auth("bench", Some(PASSWORD))
            .send()
            .await
        {
            Ok(r) => r.json::<Value>().await.unwrap_or_default()["services"]
                .as_array()
                .map_or(0, Vec::len),
            Err(_) => 0,
        };
        if active == ports.len() {
            return daemon;
        }
        assert!(
            Instant::now() < deadline,
            "{active} of {} Active after 60 s",
            ports.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One prober's window: its share of a core, and the checks a second the host made.
#[derive(Clone, Copy)]
struct Window {
    cpu: f64,
    checks: f64,
}

/// The CPU of each of `pids` and the host's connections opened, over `window`.
async fn measure(pids: &[u32], window: Duration) -> (Vec<f64>, f64) {
    let before: Vec<Duration> = pids.iter().map(|&p| cpu_time(p)).collect();
    let opens = active_opens();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let shares = pids
        .iter()
        .zip(before)
        .map(|(&p, b)| cpu_time(p).saturating_sub(b).as_secs_f64() / elapsed)
        .collect();
    (shares, (active_opens() - opens) as f64 / elapsed)
}

struct Options {
    window: Duration,
    rounds: usize,
    accept: bool,
    log: Option<String>,
    together: bool,
}

async fn haproxy_alone(dir: &std::path::Path, ports: &[u16], o: &Options) -> Window {
    let haproxy =
        haproxy::start(dir, ports, Some(2)).expect("start haproxy (apt-get install haproxy)");
    tokio::time::sleep(SETTLE).await;
    eprintln!("  HAProxy (pid {}): {:?} window", haproxy.id(), o.window);
    let (cpu, checks) = measure(&[haproxy.id()], o.window).await;
    Window {
        cpu: cpu[0],
        checks,
    }
}

async fn daemon_alone(dir: &std::path::Path, ports: &[u16], o: &Options) -> Window {
    let daemon = start_daemon(dir, ports, o.log.as_deref()).await;
    tokio::time::sleep(SETTLE).await;
    eprintln!(
        "  servicewatch (pid {}): {:?} window",
        daemon.id(),
        o.window
    );
    let (cpu, checks) = measure(&[daemon.id()], o.window).await;
    Window {
        cpu: cpu[0],
        checks,
    }
}

fn row(n: usize, label: &str, sw: Window, hap: Window) {
    println!(
        "{n:>6} {label:<10} | servicewatch {:>5.1}% ({:>6.0} checks/s, {:>5.1} µs each) | HAProxy {:>5.1}% ({:>6.0} checks/s, {:>5.1} µs each) | ratio {:.2} (per check {:.2})",
        sw.cpu * 100.0,
        sw.checks,
        sw.cpu / sw.checks.max(1.0) * 1e6,
        hap.cpu * 100.0,
        hap.checks,
        hap.cpu / hap.checks.max(1.0) * 1e6,
        sw.cpu / hap.cpu.max(1e-9),
        (sw.cpu / sw.checks.max(1.0)) / (hap.cpu / hap.checks.max(1.0)).max(1e-12),
    );
}

async fn run(n: usize, o: &Options) {
    let (_listeners, ports) = open_listeners(n, o.accept).await;
    let dir = tempfile::tempdir().unwrap();
    if o.together {
        for round in 0..o.rounds {
            let daemon = start_daemon(dir.path(), &ports, o.log.as_deref()).await;
            let haproxy = haproxy::start(dir.path(), &ports, Some(2))
                .expect("start haproxy (apt-get install haproxy)");
            tokio::time::sleep(SETTLE).await;
            eprintln!("  both at once: {:?} window", o.window);
            let (cpu, checks) = measure(&[daemon.id(), haproxy.id()], o.window).await;
            // Together, the host's connections are both probers': half each.
            let (sw, hap) = (
                Window {
                    cpu: cpu[0],
                    checks: checks / 2.0,
                },
                Window {
                    cpu: cpu[1],
                    checks: checks / 2.0,
                },
            );
            row(n, &format!("together {}", round + 1), sw, hap);
        }
        return;
    }
    for round in 0..o.rounds {
        // HAProxy first in even rounds, servicewatch first in odd ones.
        let (sw, hap) = if round % 2 == 0 {
            let hap = haproxy_alone(dir.path(), &ports, o).await;
            (daemon_alone(dir.path(), &ports, o).await, hap)
        } else {
            let sw = daemon_alone(dir.path(), &ports, o).await;
            (sw, haproxy_alone(dir.path(), &ports, o).await)
        };
        row(n, &format!("alone {}", round + 1), sw, hap);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |key: &str| args.iter().find_map(|a| a.strip_prefix(key));
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![2000, 5000, 10000]
    } else {
        sizes
    };
    let options = Options {
        window: Duration::from_secs_f64(
            value("window=").map_or(30.0, |w| w.parse().expect("window=SECONDS")),
        ),
        rounds: value("rounds=").map_or(2, |r| r.parse().expect("rounds=R")),
        accept: value("listeners=") != Some("never"),
        log: value("log=").map(str::to_string),
        together: args.iter().any(|a| a == "together"),
    };
    for n in sizes {
        eprintln!(
            "{n} listeners ({}), {:?} windows",
            if options.accept {
                "accept and close"
            } else {
                "never accept"
            },
            options.window
        );
        run(n, &options).await;
    }
}
