//! Convergence under chaos: 200 backends in pairs and Provisioning groups fail and recover
//! on a seeded random schedule (listeners closed, connections reset, answers stalled or
//! garbled) while 500 Bayeux subscribers listen over both transports, some reconnecting
//! (with and without `ext.snapshot`), some never reading, and reloads add and remove
//! services. Once it is quiet, every subscriber that kept up must hold exactly what REST
//! says, all of them must have seen the same changes in the same order, the ones that never
//! read must have been dropped and counted (and no other), and the daemon must be back
//! within bounds of the memory, descriptors and threads it started with.
//!
//! The daemon is the binary, in a process of its own, so that its resources and its log
//! are its own. `CHAOS_SEED=N` replays a schedule; `CHAOS_FLIPS=100000` is the soak mode
//! (`cargo test --release --test chaos -- --nocapture`); the default is a short storm
//! for CI.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bayeux::{Io, LpClient, Received, SERVICES, WsClient, changes, ws_request};
use common::process::DaemonProcess;
use common::{TestDaemon, basic_header, users_toml};
use serde_json::{Value, json};
use servicewatch::probe::cql::supported_frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const PAIRS: usize = 80;
const PROVISIONING: usize = 10;
/// Pair services held back at start, added by the first reload.
const ADDED_LATER: usize = 5;
/// Pair services removed by the first reload and added back by the second.
const REMOVED: usize = 5;
/// Pair services removed by the second reload, after them.
const REMOVED_LAST: usize = 3;
const WS_STEADY: usize = 220;
const LP_STEADY: usize = 220;
const WS_RECONNECTING: usize = 20;
const LP_RECONNECTING: usize = 20;
const WS_SLOW: usize = 20;
const CHECK: &str = r#"check = { kind = "http", path = "/health", interval = "200ms", fast_interval = "200ms", timeout = "200ms", rise = 1, fall = 1 }"#;

/// What a backend does with the next connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Healthy,
    /// The listener is closed: connections are refused.
    Closed,
    /// Accepted and reset at once.
    Reset,
    /// Accepted, then nothing is said until the fault changes.
    Stall,
    /// Something that is not the protocol.
    Garbage,
}

impl Fault {
    fn pick(rng: &mut fastrand::Rng) -> Fault {
        match rng.u8(0..20) {
            0..=9 => Fault::Healthy,
            10..=12 => Fault::Closed,
            13..=15 => Fault::Reset,
            16..=17 => Fault::Stall,
            _ => Fault::Garbage,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Http,
    Cql,
}

/// A backend whose fault the schedule sets.
struct Backend {
    port: u16,
    fault: watch::Sender<Fault>,
}

/// A runtime of their own for the backends, on a thread of its own: the 500 subscribers
/// keep the test's runtime busy, and a backend answering late would look like a fault the
/// schedule did not set.
fn backend_runtime() -> tokio::runtime::Handle {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tx.send(runtime.handle().clone()).unwrap();
        runtime.block_on(std::future::pending::<()>());
    });
    rx.recv().unwrap()
}

impl Backend {
    fn start(runtime: &tokio::runtime::Handle, speaks: Speaks) -> Backend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (fault, faults) = watch::channel(Fault::Healthy);
        let _entered = runtime.enter();
        let listener = TcpListener::from_std(listener).unwrap();
        runtime.spawn(serve(listener, port, speaks, faults));
        Backend { port, fault }
    }

    fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    fn healthy(&self) -> bool {
        *self.fault.borrow() == Fault::Healthy
    }
}

async fn serve(
    listener: TcpListener,
    port: u16,
    speaks: Speaks,
    mut faults: watch::Receiver<Fault>,
) {
    let mut listener = Some(listener);
    loop {
        let fault = *faults.borrow_and_update();
        if fault == Fault::Closed {
            listener = None;
        } else if listener.is_none() {
            // Rebinding can fail for a moment while a probe's connection holds the port.
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(open) = &listener else {
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(answer(stream, speaks, fault, faults.clone()));
                }
            }
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    speaks: Speaks,
    fault: Fault,
    mut faults: watch::Receiver<Fault>,
) {
    match fault {
        Fault::Healthy => {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
            let reply = match speaks {
                Speaks::Http => {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK".to_vec()
                }
                // A Cassandra node's answer to OPTIONS.
                Speaks::Cql => supported_frame(0, &[("CQL_VERSION", &["3.4.5"])]),
            };
            let _ = stream.write_all(&reply).await;
        }
        Fault::Reset => {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        Fault::Stall => {
            let _ = tokio::time::timeout(Duration::from_secs(10), faults.changed()).await;
        }
        Fault::Garbage => {
            let _ = stream
                .write_all(b"\x15\x03\x01\x00\x02\x02\x50garbage\r\n")
                .await;
        }
        Fault::Closed => {}
    }
}

/// One service of the configuration, with its backends.
struct Service {
    id: String,
    /// Pair: primary, backup. Provisioning: Configuration Server primary, backup, then the
    /// Cassandra nodes.
    backends: Vec<usize>,
    provisioning: bool,
}

impl Service {
    fn toml(&self, backends: &[Backend]) -> String {
        let addr = |i: usize| {
            format!(
                "{{ host = \"127.0.0.1\", port = {} }}",
                backends[self.backends[i]].port
            )
        };
        if self.provisioning {
            let nodes: Vec<String> = self.backends[2..]
                .iter()
                .map(|&b| format!("\"127.0.0.1:{}\"", backends[b].port))
                .collect();
            format!(
                "[[service]]\nid = \"{}\"\ntype = \"Provisioning\"\nconfig_server = {{ primary = {}, backup = {}, {CHECK} }}\ncassandra = {{ nodes = [{}], quorum = 1, check = {{ interval = \"200ms\", fast_interval = \"200ms\", timeout = \"200ms\", rise = 1, fall = 1 }} }}\n",
                self.id,
                addr(0),
                addr(1),
                nodes.join(", ")
            )
        } else {
            format!(
                "[[service]]\nid = \"{}\"\nname = \"{}\"\ntype = \"Voice\"\nattributes = {{ note = \"{}\" }}\nprimary = {}\nbackup = {}\n{CHECK}\n",
                self.id,
                self.id.to_uppercase(),
                // Room in each message, so that the ones that never read fill their
                // buffers within a short storm.
                "n".repeat(400),
                addr(0),
                addr(1)
            )
        }
    }

    /// The serving instance the backends' faults call for, when only one can serve.
    fn expected_serving(&self, backends: &[Backend]) -> Option<&'static str> {
        let up = |i: usize| backends[self.backends[i]].healthy();
        match (up(0), up(1)) {
            (true, false) => Some("primary"),
            (false, true) => Some("backup"),
            _ => None,
        }
    }

    /// The state the backends' faults call for, once probes have seen them.
    fn expected_state(&self, backends: &[Backend]) -> &'static str {
        let up = |i: usize| backends[self.backends[i]].healthy();
        if self.provisioning {
            let cassandra = self.backends[2..].iter().any(|&b| backends[b].healthy());
            match (cassandra, up(0) || up(1)) {
                (false, _) => "Inactive",
                (true, true) => "Active",
                (true, false) => "ReadOnly",
            }
        } else if up(0) || up(1) {
            "Active"
        } else {
            "Inactive"
        }
    }
}

fn config(services: &[&Service], backends: &[Backend]) -> String {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\nsend_buffer = 16384\n[admin]\nlisten = \"127.0.0.1:0\"\n[notifications]\nmax_sessions_per_user = 2000\nsession_queue = 100\n{}\n",
        users_toml()
    );
    for s in services {
        toml.push_str(&s.toml(backends));
    }
    toml
}

/// What one subscriber heard: the services of its messages in arrival order, one list per
/// session (a reconnect begins a new one).
#[derive(Default)]
struct Heard {
    sessions: Vec<Session>,
    /// Closed by the server or told to handshake again.
    dropped: Option<String>,
}

/// One session's messages, kept small enough for the soak's millions: per service, a digest
/// of each resource heard in order, and the last resource itself.
#[derive(Default)]
struct Session {
    snapshot: bool,
    heard: BTreeMap<String, Vec<u64>>,
    last: BTreeMap<String, Value>,
    messages: usize,
}

type Log = Arc<Mutex<Heard>>;

fn digest(resource: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    resource.to_string().hash(&mut hasher);
    hasher.finish()
}

fn record(log: &Log, services: Vec<Value>) {
    let mut heard = log.lock().unwrap();
    let session = heard.sessions.last_mut().expect("a session");
    for service in services {
        let id = service["id"].as_str().expect("an id").to_string();
        session
            .heard
            .entry(id.clone())
            .or_default()
            .push(digest(&service));
        session.last.insert(id, service);
        session.messages += 1;
    }
}

fn begin_session(log: &Log, snapshot: bool) {
    log.lock().unwrap().sessions.push(Session {
        snapshot,
        ..Session::default()
    });
}

/// A WebSocket subscriber that reads everything; reconnects when `reconnect` says so.
async fn websocket_subscriber(
    d: Arc<TestDaemon>,
    log: Log,
    snapshot: bool,
    mut reconnect: watch::Receiver<u32>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let mut client = WsClient::open(&d).await;
        client.handshake().await;
        begin_session(&log, snapshot);
        // The subscribe reply, the snapshot and the first connect's reply may come in any
        // frames: everything from here on is recorded.
        let client_id = client.client_id.clone();
        client
            .send(json!([
                {"channel":"/meta/subscribe","clientId":client_id,"subscription":SERVICES,"ext":{"snapshot":snapshot}},
                {"channel":"/meta/connect","clientId":client_id,"connectionType":"websocket"}
            ]))
            .await;
        loop {
            tokio::select! {
                received = client.recv_within(Duration::from_secs(3600)) => match received {
                    Some(Received::Batch(batch)) => {
                        record(&log, changes(&batch));
                        // As CometD clients do: each connect answered, the next one sent.
                        if batch.iter().any(|m| m["channel"] == "/meta/connect") {
                            client.send(json!([{"channel":"/meta/connect","clientId":client_id,"connectionType":"websocket"}])).await;
                        }
                    }
                    other => {
                        if !*stop.borrow() {
                            log.lock().unwrap().dropped = Some(format!("{other:?}"));
                        }
                        return;
                    }
                },
                changed = reconnect.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
        // A deliberate reconnect, as CometD clients make one: disconnect, then close.
        let client_id = client.client_id.clone();
        client
            .send(json!([{"channel":"/meta/disconnect","clientId":client_id}]))
            .await;
        let _ = client.ws.close(None).await;
    }
}

/// A long-polling subscriber that connects again at once; reconnects (a new handshake)
/// when `reconnect` says so.
async fn long_polling_subscriber(
    d: Arc<TestDaemon>,
    log: Log,
    snapshot: bool,
    mut reconnect: watch::Receiver<u32>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let mut client = LpClient::new(&d);
        client.handshake().await;
        begin_session(&log, snapshot);
        let reply = client.subscribe(snapshot).await;
        assert_eq!(reply[0]["successful"], true, "{reply:?}");
        record(&log, changes(&reply));
        loop {
            tokio::select! {
                batch = client.connect() => {
                    if let Some(refused) = batch.iter().find(|m| m["channel"] == "/meta/connect" && m["successful"] == false) {
                        if !*stop.borrow() {
                            log.lock().unwrap().dropped = Some(refused.to_string());
                        }
                        return;
                    }
                    record(&log, changes(&batch));
                }
                changed = reconnect.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let _ = client.call("/disconnect", json!({"channel":"/meta/disconnect"})).await;
                    break;
                }
            }
        }
    }
}

/// A WebSocket subscriber that stops reading once subscribed, on a small receive buffer.
///
/// Its segments are an Ethernet path's (MSS 1460), not loopback's 64 KiB: with a receive
/// buffer smaller than the MSS, a reader that drains it after a long zero window never
/// reopens the window (the kernel withholds an update smaller than one segment, avoiding
/// silly windows), so the daemon would never learn it reads again.
async fn slow_subscriber(d: &TestDaemon) -> WsClient {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_tcp_mss(1460).unwrap();
    socket.connect(&d.addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let stream = TcpStream::from_std(socket.into()).unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        ws_request(d, &[("authorization", &basic_header())]),
        Box::new(stream) as Box<dyn Io>,
    )
    .await
    .unwrap();
    let mut client = WsClient::from_stream(ws);
    client.handshake().await;
    client
        .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    client.connect().await;
    client
}

/// `GET /api/v2/services?fields=*` as a map from id to resource.
async fn rest(http: &reqwest::Client, d: &TestDaemon) -> BTreeMap<String, Value> {
    let body: Value = http
        .get(d.url("/api/v2/services?fields=*"))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .expect("REST answers")
        .json()
        .await
        .expect("REST answers JSON");
    body["services"]
        .as_array()
        .expect("a services list")
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// State, serving instance and since when, of a resource.
fn brief(resource: Option<&Value>) -> String {
    match resource {
        Some(r) => format!(
            "{} {} {}",
            r["state"], r["servingInstance"], r["stateSince"]
        ),
        None => "nothing".into(),
    }
}

/// What one subscriber's view lacks to equal REST; empty when it equals it.
fn differences(heard: &Heard, truth: &BTreeMap<String, Value>, removed: &[String]) -> Vec<String> {
    let Some(session) = heard.sessions.last() else {
        return vec!["never subscribed".into()];
    };
    let last = &session.last;
    let complete = session.snapshot;
    let mut missing = Vec::new();
    for (id, resource) in truth {
        match last.get(id) {
            Some(heard) if heard == resource => {}
            // A session begun without a snapshot knows only what changed since.
            None if !complete => {}
            other => missing.push(format!(
                "{id}: heard {}, REST says {}",
                brief(other),
                brief(Some(resource))
            )),
        }
    }
    for id in removed {
        if let Some(heard) = last.get(id)
            && heard["state"] != "Inactive"
        {
            missing.push(format!("{id} was removed, last heard {}", heard["state"]));
        }
    }
    missing
}

/// Whether `part` is a contiguous run of `whole`.
fn is_run_of(part: &[u64], whole: &[u64]) -> bool {
    part.is_empty() || whole.windows(part.len()).any(|w| w == part)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_converge_on_rest_after_a_storm_of_faults_and_reloads() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let flips_wanted: Option<usize> = std::env::var("CHAOS_FLIPS")
        .ok()
        .and_then(|s| s.parse().ok());
    println!("chaos seed {seed} (replay with CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    // Backends and services.
    let runtime = backend_runtime();
    let mut backends = Vec::new();
    let mut services = Vec::new();
    for i in 0..PAIRS {
        backends.push(Backend::start(&runtime, Speaks::Http));
        backends.push(Backend::start(&runtime, Speaks::Http));
        services.push(Service {
            id: format!("voice{i:02}"),
            backends: vec![backends.len() - 2, backends.len() - 1],
            provisioning: false,
        });
    }
    for i in 0..PROVISIONING {
        let first = backends.len();
        backends.push(Backend::start(&runtime, Speaks::Http));
        backends.push(Backend::start(&runtime, Speaks::Http));
        backends.push(Backend::start(&runtime, Speaks::Cql));
        backends.push(Backend::start(&runtime, Speaks::Cql));
        services.push(Service {
            id: format!("provisioning{i:02}"),
            backends: (first..first + 4).collect(),
            provisioning: true,
        });
    }
    let initial: Vec<&Service> = services[..PAIRS - ADDED_LATER]
        .iter()
        .chain(&services[PAIRS..])
        .collect();
    let after_first: Vec<&Service> = services[REMOVED..].iter().collect();
    let last = REMOVED..REMOVED + REMOVED_LAST;
    let after_second: Vec<&Service> = services
        .iter()
        .enumerate()
        .filter(|(i, _)| !last.contains(i))
        .map(|(_, s)| s)
        .collect();
    let removed_ids: Vec<String> = services[last].iter().map(|s| s.id.clone()).collect();

    let daemon = DaemonProcess::spawn_config(&config(&initial, &backends));
    let d = Arc::new(TestDaemon::attach(&daemon.addr));
    let admin = daemon.admin.clone().expect("an admin listener");
    let http = reqwest::Client::new();
    common::eventually(Duration::from_secs(20), "every service probed", || async {
        (rest(&http, &d).await.len() == initial.len()).then_some(())
    })
    .await;
    let fds_before = daemon.fds();
    let threads_before = daemon.status_field("Threads");
    let rss_before = daemon.rss_kib();

    // Subscribers.
    let (stop_tx, stop) = watch::channel(false);
    let mut steady = Vec::new();
    let mut reconnecting = Vec::new();
    let mut reconnects = Vec::new();
    // A steady subscriber's reconnect signal never fires, but must stay open.
    let mut never = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..WS_STEADY + LP_STEADY + WS_RECONNECTING + LP_RECONNECTING {
        let log = Log::default();
        let (tx, rx) = watch::channel(0u32);
        let snapshot = i % 2 == 0;
        let task = if i < WS_STEADY {
            steady.push(log.clone());
            never.push(tx);
            tokio::spawn(websocket_subscriber(d.clone(), log, true, rx, stop.clone()))
        } else if i < WS_STEADY + LP_STEADY {
            steady.push(log.clone());
            never.push(tx);
            tokio::spawn(long_polling_subscriber(
                d.clone(),
                log,
                true,
                rx,
                stop.clone(),
            ))
        } else if i < WS_STEADY + LP_STEADY + WS_RECONNECTING {
            reconnecting.push(log.clone());
            reconnects.push(tx);
            tokio::spawn(websocket_subscriber(
                d.clone(),
                log,
                snapshot,
                rx,
                stop.clone(),
            ))
        } else {
            reconnecting.push(log.clone());
            reconnects.push(tx);
            tokio::spawn(long_polling_subscriber(
                d.clone(),
                log,
                snapshot,
                rx,
                stop.clone(),
            ))
        };
        tasks.push(task);
    }
    let mut slow = Vec::new();
    for _ in 0..WS_SLOW {
        let mut client = slow_subscriber(&d).await;
        let mut stop = stop.clone();
        // Alive but never reading: it keeps sending connects, as a client whose page is
        // frozen still has a socket that writes.
        slow.push(tokio::spawn(async move {
            while tokio::time::timeout(Duration::from_secs(2), stop.changed())
                .await
                .is_err()
            {
                let client_id = client.client_id.clone();
                let connect = json!([{"channel":"/meta/connect","clientId":client_id,"connectionType":"websocket"}]);
                let sent = tokio::time::timeout(
                    Duration::from_secs(1),
                    futures_util::SinkExt::send(&mut client.ws, Message::text(connect.to_string())),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            client
        }));
    }
    common::eventually(
        Duration::from_secs(30),
        "every subscriber subscribed",
        || async {
            steady
                .iter()
                .chain(&reconnecting)
                .all(|l| !l.lock().unwrap().sessions.is_empty())
                .then_some(())
        },
    )
    .await;

    // The storm.
    let storm = Duration::from_secs(20);
    let started = Instant::now();
    let mut flips = 0usize;
    let mut reloads = 0;
    loop {
        let done = match flips_wanted {
            Some(n) => flips >= n,
            None => started.elapsed() >= storm,
        };
        if done {
            break;
        }
        let progress = match flips_wanted {
            Some(n) => flips as f64 / n as f64,
            None => started.elapsed().as_secs_f64() / storm.as_secs_f64(),
        };
        if reloads == 0 && progress > 0.33 {
            daemon.reload(&config(&after_first, &backends));
            reloads += 1;
        } else if reloads == 1 && progress > 0.66 {
            daemon.reload(&config(&after_second, &backends));
            reloads += 1;
        }
        let backend = &backends[rng.usize(..backends.len())];
        backend.set(Fault::pick(&mut rng));
        flips += 1;
        if rng.u8(..100) == 0 {
            let who = rng.usize(..reconnects.len());
            reconnects[who].send_modify(|n| *n += 1);
        }
        // The soak mode, on a release build, flips faster.
        let pause = if flips_wanted.is_some() { 1..5 } else { 5..20 };
        tokio::time::sleep(Duration::from_millis(rng.u64(pause))).await;
    }
    // The last word: each backend's final fault, then quiet.
    for backend in &backends {
        backend.set(Fault::pick(&mut rng));
    }
    let storm_took = started.elapsed();

    // Quiescence: REST agrees with the backends, and stays so for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let truth = loop {
        let now = rest(&http, &d).await;
        let wrong: Vec<String> = after_second
            .iter()
            .filter_map(|s| {
                let expected = s.expected_state(&backends);
                let resource = now.get(&s.id);
                let state = resource.map(|r| r["state"].clone());
                let serving = resource.and_then(|r| r["servingInstance"].as_str());
                let wrong_serving = expected != "Inactive"
                    && s.expected_serving(&backends).is_some_and(|e| serving != Some(e));
                (state.as_ref().and_then(Value::as_str) != Some(expected) || wrong_serving).then(|| {
                    let faults: Vec<Fault> = s
                        .backends
                        .iter()
                        .map(|&b| *backends[b].fault.borrow())
                        .collect();
                    format!(
                        "{}: REST says {state:?}, the backends ({faults:?}) call for {expected}",
                        s.id
                    )
                })
            })
            .collect();
        if wrong.is_empty() {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: REST does not match the backends: {wrong:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = rest(&http, &d).await;
    let moved: Vec<String> = truth
        .iter()
        .filter(|(id, r)| later.get(*id) != Some(*r))
        .map(|(id, r)| format!("{id}: {} -> {}", brief(Some(r)), brief(later.get(id))))
        .collect();
    assert!(
        moved.is_empty(),
        "seed {seed}: REST still changes once quiet: {moved:?}"
    );

    // Every subscriber that kept up holds what REST says.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lagging: Vec<(usize, Vec<String>)> = steady
            .iter()
            .chain(&reconnecting)
            .enumerate()
            .map(|(i, l)| (i, differences(&l.lock().unwrap(), &truth, &removed_ids)))
            .filter(|(_, d)| !d.is_empty())
            .collect();
        if lagging.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let dropped: Vec<String> = steady
                .iter()
                .chain(&reconnecting)
                .filter_map(|l| l.lock().unwrap().dropped.clone())
                .collect();
            for line in daemon
                .log_lines("panic")
                .iter()
                .chain(&daemon.log_lines("ERROR"))
                .chain(&daemon.log_lines("reload applied"))
                .take(5)
            {
                eprintln!("daemon: {line}");
            }
            panic!(
                "seed {seed}: {} subscribers disagree with REST, the first ({}): {:?}; {} were dropped, the first: {:?}",
                lagging.len(),
                lagging[0].0,
                &lagging[0].1[..lagging[0].1.len().min(5)],
                dropped.len(),
                dropped.first()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // None of them was dropped; every steady one heard the same changes in the same order,
    // and every reconnecting session heard a run of them, after its snapshot if any.
    let reference = steady[0].lock().unwrap().sessions[0].heard.clone();
    let mut messages = 0usize;
    for (i, log) in steady.iter().chain(&reconnecting).enumerate() {
        let heard = log.lock().unwrap();
        assert_eq!(
            heard.dropped, None,
            "seed {seed}: subscriber {i} was dropped"
        );
        for session in &heard.sessions {
            messages += session.messages;
            for (id, sequence) in &session.heard {
                let whole = reference.get(id).map(Vec::as_slice).unwrap_or_default();
                let live = if session.snapshot && heard.sessions.len() > 1 {
                    &sequence[1..]
                } else {
                    &sequence[..]
                };
                if i < steady.len() {
                    assert_eq!(
                        sequence.as_slice(),
                        whole,
                        "seed {seed}: subscriber {i} heard another sequence for {id}"
                    );
                } else {
                    assert!(
                        is_run_of(live, whole),
                        "seed {seed}: reconnecting subscriber {i} heard changes of {id} out of order or with a gap"
                    );
                }
            }
        }
    }

    stop_tx.send_replace(true);
    // Reading now, each either finds its socket closed after what was buffered, or (when
    // all it was sent fit in its buffers and queues, so the daemon had no reason to end
    // it) catches up: then it holds what REST says, like any subscriber.
    let outcomes = futures_util::future::join_all(slow.into_iter().map(|task| async {
        let mut client = task.await.expect("a slow subscriber's task");
        let log: Log = Arc::default();
        begin_session(&log, false);
        for _ in 0..100_000 {
            match client.recv_within(Duration::from_secs(3)).await {
                Some(Received::Batch(batch)) => record(&log, changes(&batch)),
                // Quiet: everything sent to it has been read.
                None => return (None, log),
                Some(closed) => return (Some(format!("{closed:?}")), log),
            }
        }
        panic!("a slow subscriber never stops receiving");
    }))
    .await;
    let (mut closed_slow, mut closed_unexplained, mut kept) = (0.0, 0.0, 0);
    for (closed, log) in outcomes {
        match closed {
            // Closed with 1008 as a slow consumer once its queue filled; or, when too
            // little came to fill it, because its connects stayed unread (the server reads
            // a WebSocket's input with its output) and its session expired. Left unread
            // past `send_timeout` (the soak), its connection was ended by the kernel before
            // the close frame could reach it.
            Some(closed) if closed.contains("slow consumer") => closed_slow += 1.0,
            Some(closed) if closed.contains("session expired") => {}
            Some(closed) if closed == "Closed(None)" => closed_unexplained += 1.0,
            Some(closed) => panic!("seed {seed}: a slow subscriber: {closed}"),
            None => {
                kept += 1;
                let missing = differences(&log.lock().unwrap(), &truth, &removed_ids);
                assert!(
                    missing.is_empty(),
                    "seed {seed}: a slow subscriber that was kept, once it read, disagrees with REST: {missing:?}"
                );
            }
        }
    }
    // The ones closed as slow consumers were counted: they and no other.
    let metrics = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let slow_dropped = counter("servicewatch_slow_consumers_total");
    // Besides those, only a session a reconnecting subscriber left behind may be counted:
    // one whose disconnect was lost keeps queueing changes for nobody until its queue fills.
    let left_behind: usize = reconnecting
        .iter()
        .map(|l| l.lock().unwrap().sessions.len().saturating_sub(1))
        .sum();
    assert!(
        (closed_slow..=closed_slow + closed_unexplained + left_behind as f64)
            .contains(&slow_dropped),
        "seed {seed}: slow consumers counted: {slow_dropped}, closed as such: {closed_slow} (and {closed_unexplained} by the kernel, {left_behind} sessions left behind by reconnects); no other may be"
    );

    // Everyone leaves; the daemon is back near where it started.
    for task in &tasks {
        task.abort();
    }
    let sessions_total = counter("servicewatch_bayeux_sessions");
    common::eventually(
        Duration::from_secs(30),
        "descriptors and threads back",
        || async {
            (daemon.fds() <= fds_before + 16
                && daemon.status_field("Threads") <= threads_before + 2)
                .then_some(())
        },
    )
    .await;
    let rss_after = daemon.rss_kib();
    let errors = daemon.log_lines("ERROR");
    println!(
        "seed {seed}: {flips} flips in {storm_took:?}, {reloads} reloads, {} subscribers ({WS_SLOW} never reading: {} closed, {kept} kept and caught up), {messages} messages checked, {} sessions open before they left; fds {fds_before} -> {}, threads {threads_before} -> {}, RSS {rss_before} -> {rss_after} KiB",
        steady.len() + reconnecting.len() + WS_SLOW,
        WS_SLOW - kept,
        sessions_total,
        daemon.fds(),
        daemon.status_field("Threads"),
    );
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "seed {seed}: memory {rss_before} -> {rss_after} KiB"
    );
    assert!(errors.is_empty(), "seed {seed}: errors logged: {errors:?}");
}
