//! Fan-out: how long one state change takes to reach 1,000 WebSocket subscribers, and what
//! an idle session costs in memory.
//!
//! Runs the release daemon as a process of its own (so that its RSS is its own), opens the
//! subscribers from this process, and flips a loopback backend. Latency is measured from the
//! change's `stateSince` (stamped by the monitor when it decided the change) to the moment a
//! subscriber has parsed the message; both clocks are this machine's.
//!
//! It ends by timing SIGTERM to exit with every session open.
//!
//! `cargo bench --bench fanout [-- SUBSCRIBERS [FLIPS [SERVICES]]]` (defaults: 1000
//! subscribers, 5 flips, no services besides the one that flips).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[path = "common/subscriber.rs"]
mod subscriber;

/// The bench user's password (made up for this run).
const PASSWORD: &str = "fanout-bench-password";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One subscriber's receipt of one change.
struct Receipt {
    state: String,
    /// When the frame was read.
    at: Instant,
    /// From the change's `stateSince` (when the monitor decided it) to `at`.
    latency: Duration,
}

/// Every string value that follows `key` in `text`.
fn values<'a>(text: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
    text.match_indices(key).filter_map(move |(i, _)| {
        let rest = &text[i + key.len()..];
        rest.find('"').map(|end| &rest[..end])
    })
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

/// The `p` quantile of sorted `v` (1.0: the largest).
fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// Receipts of the service messages in one answer, read by substring.
fn receipts(text: &str, tx: &mpsc::UnboundedSender<Receipt>) {
    let received = (Instant::now(), SystemTime::now());
    if !text.contains("/notifications/services") {
        return;
    }
    for state in values(text, "\"state\":\"") {
        let _ = tx.send(Receipt {
            state: state.to_string(),
            at: received.0,
            latency: values(text, "\"stateSince\":\"")
                .next()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .and_then(|since| received.1.duration_since(since).ok())
                .unwrap_or_default(),
        });
    }
}

/// One long-polling subscriber, as a CometD client over HTTP: handshake, subscribe, then a
/// connect after each answer, each held by the server until there is something to send.
/// It has its own HTTP client, so one keep-alive connection of its own (reqwest's pool has
/// no cap on connections per host; this keeps one subscriber's connects on one connection,
/// as a browser's long poll is).
async fn long_poll(
    addr: String,
    tx: mpsc::UnboundedSender<Receipt>,
    connected: Arc<tokio::sync::Semaphore>,
    opening: Arc<tokio::sync::Semaphore>,
) {
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("http://{addr}/api/v2/notifications/{path}"))
            .basic_auth("bench", Some(PASSWORD))
            .json(&body)
            .send()
    };
    let permit = opening.acquire_owned().await.unwrap();
    let reply: Value = post("handshake", json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]))
        .await
        .expect("handshake")
        .json()
        .await
        .unwrap();
    let client_id = reply[0]["clientId"].as_str().unwrap().to_string();
    post("subscribe", json!([{"channel":"/meta/subscribe","clientId":client_id,"subscription":"/notifications/services"}]))
        .await
        .expect("subscribe");
    // The first connect asks not to be held (`advice.timeout` 0), as CometD's JavaScript
    // client sends it until it is connected (Client.js, `#connect`): servicewatch answers a
    // first connect at once anyway; Faye holds one without that advice for its whole
    // timeout (30 s).
    let first = json!([{"channel":"/meta/connect","clientId":client_id,"connectionType":"long-polling","advice":{"timeout":0}}]);
    let answer = post("connect", first).await.expect("connect");
    assert!(
        answer.status().is_success(),
        "first connect: {}",
        answer.status()
    );
    let text = answer.text().await.expect("first connect's answer");
    assert!(
        text.contains("\"successful\":true"),
        "first connect: {text}"
    );
    let connect =
        json!([{"channel":"/meta/connect","clientId":client_id,"connectionType":"long-polling"}]);
    drop(permit);
    connected.add_permits(1);
    loop {
        let Ok(answer) = post("connect", connect.clone()).await else {
            return;
        };
        // 402 (the session ended, as at a stop) and the like: this client is done.
        if !answer.status().is_success() {
            return;
        }
        let Ok(text) = answer.text().await else {
            return;
        };
        receipts(&text, &tx);
        // A stop answers the held connect with advice to retry later: done too.
        if text.contains("\"interval\":") && !text.contains("\"interval\":0") {
            return;
        }
    }
}

async fn accept_forever(listener: TcpListener) {
    loop {
        let _ = listener.accept().await;
    }
}

/// What one server's run measured.
struct Measured {
    connected_in: Duration,
    /// For each change, from its first receipt to each subscriber's.
    spreads: Vec<Duration>,
    /// From each change's `stateSince` to each receipt.
    latencies: Vec<Duration>,
    rss_before: u64,
    rss_after: u64,
    /// The server's CPU time (user and system) from the first change to the last receipt:
    /// every delivery and, over long-polling, every next connect.
    cpu_during: Duration,
    /// The RSS once every change has been received: what the sessions hold after changes
    /// have flowed through them.
    rss_end: u64,
}

impl Measured {
    fn report(&self, server: &str, subscribers: usize, flips: usize, transport: &str) {
        println!(
            "{server}: {subscribers} {transport} subscribers connected in {:?}",
            self.connected_in
        );
        println!(
            "{server}: fan-out to {subscribers} {transport} subscribers, {flips} changes: spread (first to each receipt of a change) p50 {:?}, p99 {:?}, max {:?}; change decided to received p50 {:?}, p99 {:?}, max {:?}",
            pct(&self.spreads, 0.50),
            pct(&self.spreads, 0.99),
            pct(&self.spreads, 1.0),
            pct(&self.latencies, 0.50),
            pct(&self.latencies, 0.99),
            pct(&self.latencies, 1.0),
        );
        println!(
            "{server}: RSS {} KiB idle, {} KiB with {subscribers} sessions: {:.1} KiB per idle session",
            self.rss_before,
            self.rss_after,
            self.per_session(subscribers)
        );
        println!(
            "{server}: RSS {} KiB after the changes: {:.1} KiB per session",
            self.rss_end,
            self.rss_end.saturating_sub(self.rss_before) as f64 / subscribers as f64
        );
        println!(
            "{server}: CPU during the {flips} changes {:?}: {:.1} µs per delivery",
            self.cpu_during,
            self.per_delivery(subscribers, flips)
        );
    }

    /// The server's CPU time per delivery, in µs (the kernel counts it in 10 ms ticks).
    fn per_delivery(&self, subscribers: usize, flips: usize) -> f64 {
        self.cpu_during.as_secs_f64() * 1e6 / (subscribers * flips) as f64
    }

    fn per_session(&self, subscribers: usize) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / subscribers as f64
    }
}

/// Opens `subscribers` subscribers to the server at `addr` (whose process is `pid`), then
/// makes `flips` changes with `flip` (given the change's number; even: to Inactive) and
/// waits, each time, until every subscriber has heard of it.
async fn measure(
    addr: &str,
    pid: u32,
    subscribers: usize,
    flips: usize,
    long_polling: bool,
    mut flip: impl FnMut(usize),
) -> Measured {
    let rss_before = rss_kib(pid);
    let (tx, mut rx) = mpsc::unbounded_channel::<Receipt>();
    // Every subscriber logs in with Basic on its upgrade, as a script would.
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    // At most this many subscribers opening at once: a load client that opens ten thousand
    // connections in one go sends their heads later than the daemon's request timeout.
    let opening = Arc::new(tokio::sync::Semaphore::new(500));
    for _ in 0..subscribers {
        if long_polling {
            tokio::spawn(long_poll(
                addr.to_string(),
                tx.clone(),
                connected.clone(),
                opening.clone(),
            ));
            continue;
        }
        let addr = addr.to_string();
        let tx = tx.clone();
        let connected = connected.clone();
        let opening = opening.clone();
        tokio::spawn(async move {
            let permit = opening.acquire_owned().await.unwrap();
            let (mut ws, client_id) = subscriber::open(&addr, "bench", PASSWORD, false).await;
            drop(permit);
            connected.add_permits(1);
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                // Only what is measured is read, by substring: a JSON parse of each of
                // thousands of frames would add the client's own cost to the spread.
                receipts(&text, &tx);
                // The held connect was answered (at its timeout): connect again, as every
                // Bayeux client does, or the session ends.
                if text.contains("/meta/connect")
                    && ws.send(subscriber::connect(&client_id)).await.is_err()
                {
                    break;
                }
            }
        });
    }
    let started = Instant::now();
    // Bounded: a subscriber that fails to open panics in its own task, and would otherwise
    // leave this waiting for ever.
    let _ = tokio::time::timeout(
        Duration::from_secs(180),
        connected.acquire_many(subscribers as u32),
    )
    .await
    .expect("every subscriber connected within 180 s")
    .unwrap();
    let connected_in = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(pid);

    let mut latencies = Vec::new();
    let mut spreads = Vec::new();
    let cpu_before = cpu::cpu_time(pid);
    for n in 0..flips {
        let want = if n % 2 == 0 { "Inactive" } else { "Active" };
        flip(n);
        let mut arrivals = Vec::with_capacity(subscribers);
        while arrivals.len() < subscribers {
            let receipt = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("every subscriber hears of the change")
                .unwrap();
            assert_eq!(receipt.state, want);
            latencies.push(receipt.latency);
            arrivals.push(receipt.at);
        }
        let first = arrivals.iter().min().copied().unwrap();
        spreads.extend(arrivals.iter().map(|at| *at - first));
    }
    let cpu_during = cpu::cpu_time(pid).saturating_sub(cpu_before);
    let rss_end = rss_kib(pid);
    Measured {
        connected_in,
        spreads: sorted(spreads),
        latencies: sorted(latencies),
        rss_before,
        rss_after,
        cpu_during,
        rss_end,
    }
}

/// Faye (Node.js) serving the same subscribers the same message, when Node.js and the
/// interop tests' Faye are installed; `resource` is the flipping service as servicewatch
/// served it.
async fn measure_faye(
    resource: &Value,
    subscribers: usize,
    flips: usize,
    long_polling: bool,
) -> Option<Measured> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("tests/interop/node_modules/faye").is_dir() {
        println!("Faye: not installed (bash tests/interop/setup.sh installs it); skipped");
        return None;
    }
    let mut node = Command::new("node")
        .arg(root.join("bench/faye-server.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| println!("Faye: node does not start ({e}); skipped"))
        .ok()?;
    let pid = node.id();
    let mut stdin = node.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(node.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("Faye said {line:?}"))
        .to_string();
    let node = process::Reaped(node);
    writeln!(stdin, "{resource}").unwrap();
    let measured = measure(
        &format!("127.0.0.1:{port}"),
        pid,
        subscribers,
        flips,
        long_polling,
        |n| writeln!(stdin, "{}", if n % 2 == 0 { "Inactive" } else { "Active" }).unwrap(),
    )
    .await;
    drop(stdin);
    drop(node);
    Some(measured)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let subscribers: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let flips: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    // Services besides the one that flips, probed every second on a port where nothing
    // listens: for the daemon's memory at size.
    let extra: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let extra_services: String = (0..extra)
        .map(|i| format!("[[service]]\nid = \"x{i}\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\ncheck = {{ interval = \"1s\" }}\n"))
        .collect();
    let long_polling = std::env::var("BENCH_TRANSPORT").as_deref() == Ok("long-polling");
    let transport = if long_polling {
        "long-polling"
    } else {
        "WebSocket"
    };
    let with_faye = std::env::var("BENCH_REFERENCE").as_deref() != Ok("none");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = listener.local_addr().unwrap();
    let mut backend = Some(tokio::spawn(accept_forever(listener)));

    let mut daemon = process::DaemonProcess::spawn(&format!(
        "[notifications]\nmax_sessions = {sessions}\nmax_sessions_per_user = {sessions}\n[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[user]]\nname = \"bench\"\npassword = \"{hash}\"\nroles = [\"supervisor\"]\ncontact_center = \"cc\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ interval = \"100ms\", fast_interval = \"50ms\", rise = 1, fall = 1, jitter = 0.0 }}\n{extra_services}",
        sessions = subscribers + 100,
        port = backend_addr.port(),
        hash = servicewatch::password::hash(PASSWORD).unwrap(),
    ));
    let pid = daemon.child.id();
    let addr = daemon.addr.clone();
    // Every service listed: probed once, its first state announced before anyone listens.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = client
            .get(format!("http://{addr}/api/v2/services"))
            .basic_auth("bench", Some(PASSWORD))
            .send()
            .await
            .ok();
        let body = match listed {
            Some(response) => response.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if body.matches("/api/v2/services/").count() == 1 + extra {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every service probed within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The resource as REST serves it: Faye publishes the same.
    let resource: Value = client
        .get(format!("http://{addr}/api/v2/services/sips1?fields=*"))
        .basic_auth("bench", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resource = resource["service"][0].clone();
    assert!(resource.is_object(), "{resource}");

    let ours = measure(
        &addr,
        pid,
        subscribers,
        flips,
        long_polling,
        |_| match backend.take() {
            Some(task) => task.abort(),
            None => {
                let listener = std::net::TcpListener::bind(backend_addr).unwrap();
                listener.set_nonblocking(true).unwrap();
                let listener = TcpListener::from_std(listener).unwrap();
                backend = Some(tokio::spawn(accept_forever(listener)));
            }
        },
    )
    .await;
    ours.report("servicewatch", subscribers, flips, transport);
    // Stop with every session open: each WebSocket gets a 1001 close, then the daemon exits.
    let stopping = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let status = daemon.child.wait().expect("the daemon exits");
    println!(
        "servicewatch: SIGTERM to exit with {subscribers} sessions open: {:?} (exit status {status})",
        stopping.elapsed()
    );

    if !with_faye {
        return;
    }
    let Some(faye) = measure_faye(&resource, subscribers, flips, long_polling).await else {
        return;
    };
    faye.report("Faye", subscribers, flips, transport);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "servicewatch / Faye, same run: spread p50 {:.2}, p99 {:.2}, max {:.2}; memory per idle session {:.2}; CPU per delivery {:.2}",
        ratio(pct(&ours.spreads, 0.5), pct(&faye.spreads, 0.5)),
        ratio(pct(&ours.spreads, 0.99), pct(&faye.spreads, 0.99)),
        ratio(pct(&ours.spreads, 1.0), pct(&faye.spreads, 1.0)),
        ours.per_session(subscribers) / faye.per_session(subscribers),
        ours.per_delivery(subscribers, flips) / faye.per_delivery(subscribers, flips),
    );
}
