//! Scale: N services, each a `tcp` check every second (timeout 0.5 s, rise = fall = 1) on a
//! loopback listener of its own, and one Bayeux WebSocket subscriber. For each N it measures
//! how long the daemon takes to show every service Active after start, Inactive after every
//! listener closes at once (a mass outage) and Active again after they reopen, in REST and
//! at the subscriber; and the CPU it uses at rest. When `haproxy` is installed, HAProxy
//! checks the same listeners (`check inter 1s`) in the same run, and the CPU ratio is shown.
//!
//! `cargo bench --bench scale [-- N... [subscribers=M]]` (default: 500 1000 2000 5000
//! services, one subscriber). With M subscribers, the mass outage is also the burst test:
//! every subscriber must hear each of the N services go down exactly once, none dropped.
//! Set `BENCH_DAEMON` to the path of another build of the daemon to measure it the same way
//! (the name is outside the daemon's `SERVICEWATCH_` prefix, which its configuration reads).
//!
//! Every service must be shown within interval + timeout + 1 s (2.5 s) of a change.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/backends.rs"]
mod backends;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/haproxy.rs"]
mod haproxy;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[path = "common/subscriber.rs"]
mod subscriber;

use backends::Backends;
use cpu::cpu_time;
use process::Reaped;

const PASSWORD: &str = "scale-bench-password";
/// Interval + timeout + 1 s: the promise for every change.
const PROMISE: Duration = Duration::from_millis(2500);
/// How long any one phase may take before the bench gives up on it.
const GIVE_UP: Duration = Duration::from_secs(120);

/// How long the CPU at rest is measured.
const REST_WINDOW: Duration = Duration::from_secs(8);

/// The share of one core `pid` and `reference` use over the same `window`.
async fn cpu_shares(pid: u32, reference: Option<u32>, window: Duration) -> (f64, Option<f64>) {
    let before = (cpu_time(pid), reference.map(cpu_time));
    tokio::time::sleep(window).await;
    let share = |after: Duration, before: Duration| {
        (after.saturating_sub(before)).as_secs_f64() / window.as_secs_f64()
    };
    (
        share(cpu_time(pid), before.0),
        reference.zip(before.1).map(|(r, b)| share(cpu_time(r), b)),
    )
}

fn start_daemon(config: &std::path::Path) -> (Reaped, String) {
    let binary = std::env::var("BENCH_DAEMON")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_servicewatch").to_string());
    let mut daemon = Command::new(binary)
        .arg("--config")
        .arg(config)
        .env_remove("BENCH_DAEMON")
        .env("RUST_LOG", "warn,servicewatch::daemon=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let (addr, _, log) = process::read_until_listening(daemon.stderr.take().unwrap());
    std::thread::spawn(move || for _ in log {});
    (Reaped(daemon), addr)
}

/// What one subscriber heard.
#[derive(Default)]
struct Listener {
    /// The last state of each service.
    last: HashMap<String, String>,
    /// Service messages received, snapshot included.
    messages: usize,
    /// A message that repeated the state its service already had: a change out of order.
    repeats: usize,
    /// The daemon closed the WebSocket (a slow consumer is dropped so).
    closed: bool,
}

/// What every subscriber heard.
type Heard = Arc<Mutex<Vec<Listener>>>;

/// Opens subscriber number `index` of `heard`.
async fn subscribe(addr: &str, heard: Heard, index: usize) {
    let (mut ws, client_id) = subscriber::open(addr, "bench", PASSWORD, true).await;
    let connect = subscriber::connect(&client_id);
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let batch: Value = serde_json::from_str(&text).unwrap();
            let mut reconnect = false;
            {
                let mut heard = heard.lock().unwrap();
                let me = &mut heard[index];
                for m in batch.as_array().into_iter().flatten() {
                    if m["channel"] == "/notifications/services" {
                        let service = &m["data"]["service"];
                        let state = service["state"].as_str().unwrap().to_string();
                        let before = me
                            .last
                            .insert(service["id"].as_str().unwrap().to_string(), state.clone());
                        me.messages += 1;
                        if before.as_ref() == Some(&state) {
                            me.repeats += 1;
                        }
                    } else if m["channel"] == "/meta/connect" {
                        reconnect = true;
                    }
                }
            }
            if reconnect {
                let _ = ws.send(connect.clone()).await;
            }
        }
        heard.lock().unwrap()[index].closed = true;
    });
}

/// How many services REST shows in `state`.
async fn rest_count(client: &reqwest::Client, addr: &str, state: &str) -> usize {
    let url = format!("http://{addr}/api/v2/services?fields=state&state={state}");
    let Ok(response) = client
        .get(&url)
        .basic_auth("bench", Some(PASSWORD))
        .send()
        .await
    else {
        return 0;
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["services"].as_array().map_or(0, Vec::len)
}

/// Waits until REST and the subscriber both show every service in `state`; returns when
/// each got there, measured from `from`.
async fn until_all(
    client: &reqwest::Client,
    addr: &str,
    heard: &Heard,
    n: usize,
    state: &str,
    from: Instant,
) -> (Duration, Duration) {
    let (mut rest, mut push) = (None, None);
    while rest.is_none() || push.is_none() {
        {
            let heard = heard.lock().unwrap();
            let closed = heard.iter().filter(|l| l.closed).count();
            assert_eq!(closed, 0, "{closed} subscribers were dropped");
        }
        if from.elapsed() > GIVE_UP {
            let shown = heard
                .lock()
                .unwrap()
                .iter()
                .map(|l| l.last.values().filter(|s| *s == state).count())
                .min();
            panic!(
                "not all {state} within {GIVE_UP:?}: REST {}, the furthest-behind subscriber {shown:?} of {n}",
                rest_count(client, addr, state).await
            );
        }
        if rest.is_none() && rest_count(client, addr, state).await == n {
            rest = Some(from.elapsed());
        }
        if push.is_none() {
            let heard = heard.lock().unwrap();
            if heard
                .iter()
                .all(|l| l.last.len() == n && l.last.values().all(|s| s == state))
            {
                push = Some(from.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (rest.unwrap(), push.unwrap())
}

/// The messages each subscriber has received so far.
fn messages(heard: &Heard) -> Vec<usize> {
    heard.lock().unwrap().iter().map(|l| l.messages).collect()
}

async fn run(n: usize, subscribers: usize) {
    let mut backends = Backends::open_new(n).await;
    let ports = backends.ports.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scale.toml");
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n[notifications]\nmax_sessions_per_user = {sessions}\nmax_sessions = {sessions}\n[checks]\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\n[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[user]]\nname = \"bench\"\npassword = \"{}\"\nroles = [\"supervisor\"]\ncontact_center = \"cc\"\n",
        servicewatch::password::hash(PASSWORD).unwrap(),
        sessions = subscribers.max(256) + 16,
    );
    for (i, port) in ports.iter().enumerate() {
        text.push_str(&format!(
            "[[service]]\nid = \"s{i}\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\n"
        ));
    }
    std::fs::write(&config, text).unwrap();

    let client = reqwest::Client::new();
    let started = Instant::now();
    let (daemon, addr) = start_daemon(&config);
    let pid = daemon.id();
    let heard: Heard = Arc::new(Mutex::new(
        (0..subscribers).map(|_| Listener::default()).collect(),
    ));
    for index in 0..subscribers {
        subscribe(&addr, heard.clone(), index).await;
    }
    let (start_rest, start_push) = until_all(&client, &addr, &heard, n, "Active", started).await;
    eprintln!("{n}: all Active after {start_rest:?}; measuring the CPU at rest");

    // At rest: nothing changes; probes go on. HAProxy, when installed, checks the same
    // listeners at the same time, and both are measured over the same window, so that the
    // noise of a shared machine falls on both alike.
    let haproxy = haproxy::start(dir.path(), &ports, None).or_else(|| {
        eprintln!("haproxy did not start; no reference this run");
        None
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rest_cpu, haproxy_cpu) =
        cpu_shares(pid, haproxy.as_ref().map(Reaped::id), REST_WINDOW).await;
    drop(haproxy);

    eprintln!("{n}: closing every listener");
    let before_outage = messages(&heard);
    let outage = Instant::now();
    backends.close();
    let (down_rest, down_push) = until_all(&client, &addr, &heard, n, "Inactive", outage).await;
    // Every subscriber got one message per service, none twice, none in an order that
    // repeats a state.
    let heard_outage: Vec<usize> = messages(&heard)
        .iter()
        .zip(&before_outage)
        .map(|(after, before)| after - before)
        .collect();
    let repeats: usize = heard.lock().unwrap().iter().map(|l| l.repeats).sum();
    assert!(
        heard_outage.iter().all(|m| *m == n) && repeats == 0,
        "every subscriber hears each service go down once: heard {:?}..{:?} of {n}, {repeats} repeated",
        heard_outage.iter().min(),
        heard_outage.iter().max()
    );

    let recovery = Instant::now();
    let mut backends = Backends::open(&ports).await;
    let (up_rest, up_push) = until_all(&client, &addr, &heard, n, "Active", recovery).await;
    backends.close();
    drop(daemon);

    let ms = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let worst = down_rest.max(down_push).max(up_rest).max(up_push);
    // One check per service per second: CPU seconds per second / checks per second.
    let per_check_us = rest_cpu / n as f64 * 1e6;
    println!(
        "{n:>6} services, {subscribers} subscribers | start {} (push {}) | outage {} (push {}) | recovery {} (push {}) | CPU at rest {:.1}% of a core, {per_check_us:.1} µs per check{} | {}",
        ms(start_rest),
        ms(start_push),
        ms(down_rest),
        ms(down_push),
        ms(up_rest),
        ms(up_push),
        rest_cpu * 100.0,
        haproxy_cpu.map_or(String::new(), |h| format!(
            "; HAProxy {:.1}%, {:.1} µs (ratio {:.2})",
            h * 100.0,
            h / n as f64 * 1e6,
            rest_cpu / h.max(1e-9)
        )),
        if worst <= PROMISE {
            "within the promise"
        } else {
            "LATE"
        },
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let subscribers = args
        .iter()
        .find_map(|a| a.strip_prefix("subscribers=")?.parse().ok())
        .unwrap_or(1);
    let sizes = if sizes.is_empty() {
        vec![500, 1000, 2000, 5000]
    } else {
        sizes
    };
    for n in sizes {
        run(n, subscribers).await;
    }
}
