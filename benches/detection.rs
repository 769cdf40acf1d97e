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
//! `cargo bench --bench detection [-- KILLS [UNWATCHED_KILLS]]` (defaults: 100 and 20;
//! unwatched, each kill waits up to an interval for the next probe).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[path = "common/subscriber.rs"]
mod subscriber;

/// The bench user's password (made up for this run).
const PASSWORD: &str = "detection-bench-password";
/// The check's interval: probes every 2 s, the figure the detection target is stated for.
const INTERVAL: Duration = Duration::from_secs(2);

/// A backend that keeps every connection it accepts until it is killed.
struct Backend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl Backend {
    async fn start(addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind the backend");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        Backend {
            addr,
            accepted,
            task: Some(task),
        }
    }

    /// Closes the listener and every connection it holds, as a dying process's kernel does.
    async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

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

    /// Reads until a message says the service is `state`; when it arrived.
    async fn until(&mut self, state: &str) -> Instant {
        let wanted = format!("\"state\":\"{state}\"");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {state} within 30 s"));
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
            if text.contains("/notifications/services") && text.contains(&wanted) {
                return at;
            }
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Kills the backend `kills` times; the times to the subscriber's receipt of `Inactive`,
/// sorted.
async fn measure(watch: bool, kills: usize) -> Vec<Duration> {
    let mut backend = Backend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let daemon = process::DaemonProcess::spawn(&format!(
        "[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[user]]\nname = \"bench\"\npassword = \"{hash}\"\nroles = [\"supervisor\"]\ncontact_center = \"cc\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ interval = \"{interval}s\", down_interval = \"100ms\", timeout = \"1s\", rise = 1, fall = 1, watch = {watch} }}\n",
        port = backend.addr.port(),
        interval = INTERVAL.as_secs(),
        hash = servicewatch::password::hash(PASSWORD).unwrap(),
    ));

    let mut subscriber = Subscriber::open(&daemon.addr).await;
    let mut took = Vec::with_capacity(kills);
    for _ in 0..kills {
        if watch {
            // The watch connection open, and old enough to be reopened at once next time.
            let deadline = Instant::now() + Duration::from_secs(30);
            while backend.accepted.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "no watch connection within 30 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
        } else {
            // Anywhere in the probe cycle, as a real death is.
            tokio::time::sleep(INTERVAL.mul_f64(fastrand::f64())).await;
        }
        let killed = Instant::now();
        backend.kill().await;
        let heard = subscriber.until("Inactive").await;
        took.push(heard - killed);
        backend = Backend::start(backend.addr).await;
        subscriber.until("Active").await;
    }
    took.sort();
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let kills = args.first().copied().unwrap_or(100);
    let unwatched_kills = args.get(1).copied().unwrap_or(20);
    let watched = measure(true, kills).await;
    let unwatched = measure(false, unwatched_kills).await;
    for (name, took) in [("watched", &watched), ("unwatched", &unwatched)] {
        println!(
            "{name}: {} kills, a dead backend heard of by a WebSocket subscriber after p50 {:?}, p99 {:?}, max {:?} (probes every {INTERVAL:?})",
            took.len(),
            pct(took, 0.5),
            pct(took, 0.99),
            pct(took, 1.0),
        );
    }
    println!(
        "watched / unwatched, same run: p50 {:.4}, p99 {:.4}",
        pct(&watched, 0.5).as_secs_f64() / pct(&unwatched, 0.5).as_secs_f64(),
        pct(&watched, 0.99).as_secs_f64() / pct(&unwatched, 0.99).as_secs_f64(),
    );
}
