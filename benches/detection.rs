//! Detection: how long after a backend's process dies a WebSocket subscriber hears that its
//! service is `Inactive`, with the backend watched (`watch = true`) and without.
//!
//! The release daemon runs as a process of its own, checking one backend every 2 s (timeout
//! 1 s, rise = fall = 1; `down_interval` 100 ms so that each recovery is quick). The backend
//! is a loopback listener of this bench that keeps every connection it accepts; "killing"
//! it closes the listener and every connection at once, as the kernel does when a process
//! dies. Each kill is timed from just before the close to the subscriber's receipt of the
//! `Inactive` message; then the backend listens again and the bench waits for `Active`
//! (and, watched, for the watch connection to have lived a whole interval, so that it is
//! reopened at once after the next recovery instead of backing off).
//!
//! Then, in the same run and with the same check, two bursts, every backend watched:
//!
//! - "right after another change": two services; A's backend is killed, and B's 0 to 1 ms
//!   later (while the daemon is deciding and publishing A's change); timed from B's kill to
//!   the receipt of B `Inactive`.
//! - "mass death": five services whose backends are all killed at once; each timed from
//!   just before the first close to the receipt of its own `Inactive`.
//!
//! `cargo bench --bench detection [-- KILLS [UNWATCHED_KILLS]] [bursts=N] [mass=N]`
//! (defaults: 100, 20, 80 bursts and 10 rounds of mass death; 0 skips one; unwatched, each
//! kill waits up to an interval for the next probe).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use held::HeldBackend;

#[path = "../tests/common/held.rs"]
mod held;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[path = "common/subscriber.rs"]
mod subscriber;

/// The bench user's password (made up for this run).
const PASSWORD: &str = "detection-bench-password";
/// The check's interval: probes every 2 s, the figure the detection target is stated for.
const INTERVAL: Duration = Duration::from_secs(2);
/// The target for a watched backend's death to reach a subscriber.
const TARGET: Duration = Duration::from_millis(5);

/// One Bayeux WebSocket subscriber to `/notifications/services`.
struct Subscriber {
    ws: subscriber::Ws,
    client_id: String,
}

impl Subscriber {
    async fn open(addr: &str) -> Subscriber {
        let (ws, client_id) = subscriber::open(addr, "bench", PASSWORD, false).await;
        Subscriber { ws, client_id }
    }

    /// Reads until a message has said, for each service of `ids`, that it is `state`; when
    /// each such message arrived, in the order of `ids`.
    async fn until(&mut self, state: &str, ids: &[String]) -> Vec<Instant> {
        let mut heard: HashMap<&str, Instant> = HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while heard.len() < ids.len() {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("not every service {state} within 30 s"));
            let Some(Ok(Message::Text(text))) = frame else {
                continue;
            };
            let at = Instant::now();
            if text.contains("/meta/connect") {
                self.ws
                    .send(subscriber::connect(&self.client_id))
                    .await
                    .unwrap();
            }
            if !text.contains("/notifications/services") {
                continue;
            }
            let messages: Vec<Value> = serde_json::from_str(&text).unwrap();
            for service in messages.iter().map(|m| &m["data"]["service"]) {
                if service["state"] != state {
                    continue;
                }
                if let Some(id) = ids.iter().find(|id| service["id"] == id.as_str()) {
                    heard.entry(id.as_str()).or_insert(at);
                }
            }
        }
        ids.iter().map(|id| heard[id.as_str()]).collect()
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// The daemon checking one service for each backend of `backends` (ids `s0`, `s1`, ...).
fn daemon(backends: &[HeldBackend], watch: bool) -> process::DaemonProcess {
    let services: String = backends
        .iter()
        .enumerate()
        .map(|(i, backend)| {
            format!(
                "[[service]]\nid = \"s{i}\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ interval = \"{interval}s\", down_interval = \"100ms\", timeout = \"1s\", rise = 1, fall = 1, watch = {watch} }}\n",
                port = backend.addr.port(),
                interval = INTERVAL.as_secs(),
            )
        })
        .collect();
    process::DaemonProcess::spawn(&format!(
        "[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[user]]\nname = \"bench\"\npassword = \"{hash}\"\nroles = [\"supervisor\"]\ncontact_center = \"cc\"\n{services}",
        hash = servicewatch::password::hash(PASSWORD).unwrap(),
    ))
}

/// Waits until every backend has accepted a connection (the watch, or the probe just before
/// it), then an interval more: each watch connection old enough to be reopened at once
/// after the next recovery.
async fn watches_settled(backends: &[HeldBackend]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while backends.iter().any(|b| b.accepted() == 0) {
        assert!(Instant::now() < deadline, "no watch connection within 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
}

/// Kills the backend `kills` times (none: no daemon started); the times to the
/// subscriber's receipt of `Inactive`, sorted.
async fn measure(watch: bool, kills: usize) -> Vec<Duration> {
    if kills == 0 {
        return Vec::new();
    }
    let mut backend = HeldBackend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let daemon = daemon(std::slice::from_ref(&backend), watch);
    let ids = ["s0".to_string()];
    let mut subscriber = Subscriber::open(&daemon.addr).await;
    let mut took = Vec::with_capacity(kills);
    for _ in 0..kills {
        if watch {
            watches_settled(std::slice::from_ref(&backend)).await;
        } else {
            // Anywhere in the probe cycle, as a real death is.
            tokio::time::sleep(INTERVAL.mul_f64(fastrand::f64())).await;
        }
        let killed = Instant::now();
        backend.kill().await;
        let heard = subscriber.until("Inactive", &ids).await;
        took.push(heard[0] - killed);
        backend = HeldBackend::start(backend.addr).await;
        subscriber.until("Active", &ids).await;
    }
    took.sort();
    took
}

/// The bursts, every backend watched.
enum Burst {
    /// Two services: A's backend killed, then B's after 0 to 1 ms.
    AfterAnother,
    /// Five services, every backend killed at once.
    MassDeath,
}

/// `rounds` bursts; for `AfterAnother`, the times from B's kill (and, apart, from A's) to
/// their receipt; for `MassDeath`, every service's time from the start of the kills to its
/// receipt. Sorted.
async fn measure_burst(burst: Burst, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let services = match burst {
        Burst::AfterAnother => 2,
        Burst::MassDeath => 5,
    };
    let mut backends = Vec::with_capacity(services);
    for _ in 0..services {
        backends.push(HeldBackend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await);
    }
    let daemon = daemon(&backends, true);
    let ids: Vec<String> = (0..services).map(|i| format!("s{i}")).collect();
    let mut subscriber = Subscriber::open(&daemon.addr).await;
    let mut measured = Vec::new();
    let mut first = Vec::new();
    for _ in 0..rounds {
        watches_settled(&backends).await;
        match burst {
            Burst::AfterAnother => {
                let gap = Duration::from_micros(fastrand::u64(0..=1000));
                let killed_a = Instant::now();
                backends[0].kill().await;
                // Blocking, so that the gap is not rounded up to tokio's millisecond timer.
                std::thread::sleep(gap.saturating_sub(killed_a.elapsed()));
                let killed_b = Instant::now();
                backends[1].kill().await;
                let heard = subscriber.until("Inactive", &ids).await;
                first.push(heard[0] - killed_a);
                measured.push(heard[1] - killed_b);
            }
            Burst::MassDeath => {
                let killed = Instant::now();
                HeldBackend::kill_together(&mut backends).await;
                let heard = subscriber.until("Inactive", &ids).await;
                measured.extend(heard.iter().map(|at| *at - killed));
            }
        }
        for backend in &mut backends {
            *backend = HeldBackend::start(backend.addr).await;
        }
        subscriber.until("Active", &ids).await;
    }
    measured.sort();
    first.sort();
    (measured, first)
}

fn summary(took: &[Duration]) -> String {
    format!(
        "p50 {:?}, p99 {:?}, max {:?}",
        pct(took, 0.5),
        pct(took, 0.99),
        pct(took, 1.0)
    )
}

fn over_target(took: &[Duration]) -> usize {
    took.iter().filter(|t| **t > TARGET).count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut counts = Vec::new();
    let mut bursts = 80;
    let mut mass = 10;
    for arg in std::env::args().skip(1) {
        if let Some(n) = arg.strip_prefix("bursts=") {
            bursts = n.parse().expect("bursts=N");
        } else if let Some(n) = arg.strip_prefix("mass=") {
            mass = n.parse().expect("mass=N");
        } else if let Ok(n) = arg.parse::<usize>() {
            counts.push(n);
        }
    }
    let kills = counts.first().copied().unwrap_or(100);
    let unwatched_kills = counts.get(1).copied().unwrap_or(20);
    let watched = measure(true, kills).await;
    let unwatched = measure(false, unwatched_kills).await;
    let after_another = if bursts > 0 {
        Some(measure_burst(Burst::AfterAnother, bursts).await)
    } else {
        None
    };
    let mass_death = if mass > 0 {
        Some(measure_burst(Burst::MassDeath, mass).await.0)
    } else {
        None
    };
    for (name, took) in [("watched", &watched), ("unwatched", &unwatched)] {
        if took.is_empty() {
            continue;
        }
        println!(
            "{name}: {} kills, a dead backend heard of by a WebSocket subscriber after {} ({} over {TARGET:?}; probes every {INTERVAL:?})",
            took.len(),
            summary(took),
            over_target(took),
        );
    }
    if !watched.is_empty() && !unwatched.is_empty() {
        println!(
            "watched / unwatched, same run: p50 {:.4}, p99 {:.4}",
            pct(&watched, 0.5).as_secs_f64() / pct(&unwatched, 0.5).as_secs_f64(),
            pct(&watched, 0.99).as_secs_f64() / pct(&unwatched, 0.99).as_secs_f64(),
        );
    }
    if let Some((b, a)) = &after_another {
        println!(
            "watched, killed 0-1 ms after another service's backend: {} tries, B's death heard after {} ({} over {TARGET:?}); A's (the change before) {}",
            b.len(),
            summary(b),
            over_target(b),
            summary(a),
        );
    }
    if let Some(took) = &mass_death {
        println!(
            "watched, five backends killed at once: {} rounds, each service's death heard after {} ({} of {} over {TARGET:?})",
            mass,
            summary(took),
            over_target(took),
            took.len(),
        );
    }
    if watched.is_empty() {
        return;
    }
    for (name, took) in [
        (
            "right after another",
            after_another.as_ref().map(|(b, _)| b),
        ),
        ("mass death", mass_death.as_ref()),
    ] {
        if let Some(took) = took {
            println!(
                "{name} / single change (watched), same run: p50 {:.2}, p99 {:.2}",
                pct(took, 0.5).as_secs_f64() / pct(&watched, 0.5).as_secs_f64(),
                pct(took, 0.99).as_secs_f64() / pct(&watched, 0.99).as_secs_f64(),
            );
        }
    }
}
