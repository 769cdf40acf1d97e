//! Limits hold: connections up to `[limits] max_connections` and beyond, and a flood of
//! malformed input with slow-header and half-open connections beside it. The extra and the
//! malformed are refused cleanly (never a 5xx), and the clients that behave keep being served
//! and keep receiving.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::bayeux::{Io, SERVICES, WsClient, ws_request};
use common::daemon::basic_of;
use common::{Backend, Mode, TestDaemon, basic_header, eventually};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const WITHIN: Duration = Duration::from_secs(3);

const CHECK: &str = r#"check = { interval = "50ms", fast_interval = "50ms", timeout = "300ms", rise = 1, fall = 1, jitter = 0.0 }"#;

/// The clients that behave connect from here; the flood from [`FLOOD`]: failed logins are
/// throttled by address, and the well-behaved must not pay for the flood's.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const FLOOD: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

async fn daemon(backend: &Backend, limits: &str) -> TestDaemon {
    let d = TestDaemon::start(&format!(
        "[limits]\n{limits}\n[[service]]\nid = \"sips1\"\nname = \"SIPS1\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n",
        backend.toml()
    ));
    assert_eq!(d.state_of("sips1").await.0, "Active");
    d
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// A WebSocket subscriber to the services topic, connected from `from`.
async fn subscriber(d: &TestDaemon, from: IpAddr) -> WsClient {
    let tcp = connect_from(from, d.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        ws_request(d, &[("authorization", &basic_header())]),
        Box::new(tcp) as Box<dyn Io>,
    )
    .await
    .expect("WebSocket upgrade");
    let mut client = WsClient::from_stream(ws);
    client.handshake().await;
    let reply = client
        .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    assert_eq!(reply[0]["successful"], true, "{reply:?}");
    client.connect().await;
    client
}

/// Sends `request` on a new connection from `from` (then closes its side, with
/// `half_close`) and reads until the server closes it (or 10 s pass); returns what came back.
async fn exchange(from: IpAddr, to: SocketAddr, request: &[u8], half_close: bool) -> Vec<u8> {
    let mut tcp = connect_from(from, to).await.expect("connect");
    // The server may answer and close before the whole request is written.
    let _ = tcp.write_all(request).await;
    if half_close {
        let _ = tcp.shutdown().await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    answer
}

/// The status of an HTTP answer, if `answer` starts with one.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn get_services(auth: &str) -> Vec<u8> {
    format!(
        "GET /api/v2/services HTTP/1.1\r\nHost: sw\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_answered_503_and_one_closing_lets_the_next_in() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "max_connections = 4").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(subscriber(&d, CLIENT).await);
    }

    // A fifth connection is told why, at once, and closed.
    let answer = exchange(CLIENT, d.addr, &get_services(&basic_header()), false).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    assert_eq!(status_of(&answer), Some(503), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{text}"
    );
    assert!(
        text.contains(
            r#""statusMessage":"too many connections are open (at most 4); retry in 1 s""#
        ),
        "{text}"
    );
    // A WebSocket upgrade over the limit is refused the same way.
    let refused = WsClient::try_open(&d, &[("authorization", &basic_header())]).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        Err(other) => panic!("expected a 503 answer, got {other}"),
        Ok(_) => panic!("an upgrade over the limit was accepted"),
    }

    // The connections that were in keep receiving.
    backend.close().await;
    for client in &mut held {
        assert_eq!(client.next_change(WITHIN).await["state"], "Inactive");
    }

    // One closing is enough for the next connection to be served.
    drop(held.pop());
    eventually(WITHIN, "a connection served once one closed", || async {
        let answer = exchange(CLIENT, d.addr, &get_services(&basic_header()), false).await;
        (status_of(&answer) == Some(200)).then_some(())
    })
    .await;
    let refused = d
        .metric("servicewatch_connections_refused_total")
        .await
        .unwrap_or(0.0);
    assert!(refused >= 2.0, "refusals counted: {refused}");
    // Each refusal is an answer like any other in the request counts, by route.
    for route in ["/api/v2/services", "/api/v2/notifications"] {
        let sample = format!(r#"servicewatch_http_requests_total{{route="{route}",status="503"}}"#);
        let counted = d.metric(&sample).await.unwrap_or(0.0);
        assert!(counted >= 1.0, "{sample}: {counted}");
    }
    backend.reopen().await;
    for client in &mut held {
        assert_eq!(client.next_change(WITHIN).await["state"], "Active");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_stalls_is_answered_408_and_closed() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, r#"request_timeout = "1s""#).await;
    let auth = basic_header();
    let head_only = "GET /api/v2/services HTTP/1.1\r\nHost: sw\r\nX-Slow: ".to_string();
    let body_cut = format!(
        "POST /api/v2/notifications/handshake HTTP/1.1\r\nHost: sw\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n[{{\"channel\""
    );
    for (what, request) in [("head", head_only), ("body", body_cut)] {
        let started = Instant::now();
        let answer = exchange(CLIENT, d.addr, request.as_bytes(), false).await;
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), Some(408), "a stalled {what}: {text}");
        assert!(
            took < Duration::from_secs(5),
            "a stalled {what} is let go after request_timeout, not {took:?}"
        );
        if what == "body" {
            assert!(
                text.contains(r#""statusMessage":"the request body did not arrive within 1s""#),
                "{text}"
            );
        }
    }
    let (status, _) = d.get("/api/v2/services").await;
    assert_eq!(status, 200);
}

/// One malformed input: bytes sent on a connection of its own.
struct Bad {
    what: &'static str,
    bytes: Vec<u8>,
    /// Whether the server must answer (it may just close on a request cut short).
    answered: bool,
    /// The client closes its side once the bytes are sent.
    half_close: bool,
}

fn bad(what: &'static str, bytes: impl Into<Vec<u8>>) -> Bad {
    Bad {
        what,
        bytes: bytes.into(),
        answered: true,
        half_close: false,
    }
}

fn post(path: &str, auth: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: sw\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Malformed heads, bodies, paths, credentials and Bayeux messages.
fn malformed() -> Vec<Bad> {
    let auth = basic_header();
    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: sw\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        )
    };
    let with_auth = |value: &str| {
        format!(
            "GET /api/v2/services HTTP/1.1\r\nHost: sw\r\nAuthorization: {value}\r\nConnection: close\r\n\r\n"
        )
    };
    let handshake = "/api/v2/notifications/handshake";
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge = format!(
        "[{{\"channel\":\"/meta/handshake\",\"ext\":\"{}\"}}]",
        "x".repeat(2_000_000)
    );
    let mut inputs = vec![
        bad("header without colon", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec()),
        bad("control bytes in a header", b"GET / HTTP/1.1\r\nX: \x01\x02\r\n\r\n".to_vec()),
        bad("not HTTP", b"\x16\x03\x01 not http at all\r\n\r\n".to_vec()),
        bad("unknown version", b"GET / HTTP/9.9\r\nHost: sw\r\n\r\n".to_vec()),
        bad("bad method token", b"G(E)T / HTTP/1.1\r\nHost: sw\r\n\r\n".to_vec()),
        bad(
            "a head over the limit",
            format!("GET /api/v2/services HTTP/1.1\r\nHost: sw\r\nX-Pad: {}\r\nConnection: close\r\n\r\n", "p".repeat(40_000)),
        ),
        bad(
            "two content lengths",
            b"POST /api/v2/notifications HTTP/1.1\r\nHost: sw\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n[]]".to_vec(),
        ),
        bad(
            "bad chunked body",
            b"POST /api/v2/notifications HTTP/1.1\r\nHost: sw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n".to_vec(),
        ),
        bad("NUL in the path", get("/api/v2/services/%00")),
        bad("climbing path", get("/api/v2/services/..%2f..%2fetc%2fpasswd")),
        bad("long path", get(&format!("/api/v2/services/{}", "a".repeat(6000)))),
        bad("bad percent escape", get("/api/v2/services?fields=%ZZ")),
        bad("empty field names", get("/api/v2/services?fields=,,id,,")),
        bad("unknown field", get("/api/v2/services?fields=nonsense")),
        bad("repeated parameter", get("/api/v2/services?fields=id&fields=name&state=Active&state=x")),
        bad("unicode id", get("/api/v2/services/%E2%98%83%F0%9F%92%A9")),
        bad("not Basic", with_auth("Bearer abc.def.ghi")),
        bad("Basic, not base64", with_auth("Basic !!!!")),
        bad("Basic without a colon", with_auth("Basic dXNlcg==")),
        bad("Basic, invalid UTF-8", with_auth("Basic //79")),
        bad("Basic, empty", with_auth("Basic ")),
        bad("wrong password", with_auth(&basic_of(common::USER, "wrong"))),
        bad("unknown user", with_auth(&basic_of("nobody", "x"))),
        bad("POST on a read-only resource", post("/api/v2/services", &auth, "{}")),
        bad("Bayeux: not JSON", post(handshake, &auth, "{not json")),
        bad("Bayeux: empty batch", post(handshake, &auth, "[]")),
        bad("Bayeux: not an object", post(handshake, &auth, "[1,\"a\",null]")),
        bad("Bayeux: channel not a string", post(handshake, &auth, r#"[{"channel":5}]"#)),
        bad("Bayeux: deep nesting", post(handshake, &auth, &nested)),
        bad("Bayeux: over the size limit", post(handshake, &auth, &huge)),
        bad(
            "Bayeux: connect with an unknown client",
            post("/api/v2/notifications/connect", &auth, r#"[{"channel":"/meta/connect","clientId":"nope","connectionType":"long-polling"}]"#),
        ),
        bad(
            "Bayeux: subscribe to a wildcard",
            post("/api/v2/notifications", &auth, r#"[{"channel":"/meta/subscribe","clientId":"nope","subscription":"/**"}]"#),
        ),
        bad(
            "Bayeux: publish to a service channel",
            post("/api/v2/notifications", &auth, r#"[{"channel":"/notifications/services","data":{}}]"#),
        ),
        bad(
            "Bayeux: no credentials",
            format!("POST {handshake} HTTP/1.1\r\nHost: sw\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]"),
        ),
    ];
    inputs.push(Bad {
        what: "a body cut short",
        bytes: format!("POST {handshake} HTTP/1.1\r\nHost: sw\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n[{{\"chan").into_bytes(),
        answered: false,
        half_close: true,
    });
    inputs
}

/// A WebSocket that sends what a Bayeux server must refuse: garbage text, a binary frame,
/// a message over the size limit. Returns whether the daemon refused it by closing or by
/// a Bayeux error, never by answering 5xx.
async fn hostile_websocket(d: &TestDaemon, round: usize) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let tcp = connect_from(FLOOD, d.addr).await.unwrap();
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(
        ws_request(d, &[("authorization", &basic_header())]),
        Box::new(tcp) as Box<dyn Io>,
    )
    .await
    else {
        panic!("the upgrade of hostile WebSocket {round} was refused")
    };
    let frame = match round % 4 {
        0 => Message::text("{{{{ not json"),
        1 => Message::binary(vec![0u8, 1, 2, 3]),
        2 => Message::text("x".repeat(2_000_000)),
        _ => Message::text(r#"[{"channel":"/meta/connect","clientId":"forged"}]"#),
    };
    let _ = ws.send(frame).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        futures_util::StreamExt::next(&mut ws),
    )
    .await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_inputs_get_no_5xx_and_others_are_served_throughout() {
    const TOTAL: usize = 10_000;
    const WEBSOCKETS: usize = 200;
    const LINGERING: usize = 64;
    let mut backend = Backend::start(Mode::Accept).await;
    let d = Arc::new(daemon(&backend, "").await);
    let mut watcher = subscriber(&d, CLIENT).await;
    let fds_before = open_fds();

    // Connections that send half a head and stall, and ones that never send a byte.
    let mut lingering = Vec::new();
    for i in 0..LINGERING {
        let mut tcp = connect_from(FLOOD, d.addr).await.unwrap();
        if i % 2 == 0 {
            tcp.write_all(b"GET /api/v2/services HTTP/1.1\r\nHost: sw\r\nX-Slow: ")
                .await
                .unwrap();
        }
        lingering.push(tcp);
    }

    let inputs = Arc::new(malformed());
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for _ in 0..16 {
        let (d, inputs, next, answered) =
            (d.clone(), inputs.clone(), next.clone(), answered.clone());
        flood.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= TOTAL {
                    return;
                }
                if n % (TOTAL / WEBSOCKETS) == 0 {
                    hostile_websocket(&d, n / (TOTAL / WEBSOCKETS)).await;
                    continue;
                }
                let input = &inputs[n % inputs.len()];
                let answer = exchange(FLOOD, d.addr, &input.bytes, input.half_close).await;
                let status = status_of(&answer);
                assert!(
                    status.is_some() || !input.answered,
                    "{}: no answer: {:?}",
                    input.what,
                    String::from_utf8_lossy(&answer)
                );
                if let Some(status) = status {
                    assert!(
                        (400..500).contains(&status) || status == 200 || status == 101,
                        "{}: answered {status}: {}",
                        input.what,
                        String::from_utf8_lossy(&answer[..answer.len().min(400)])
                    );
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Meanwhile a client that behaves is served, and the subscriber sees every flip.
    let client = reqwest::Client::builder()
        .local_address(CLIENT)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut latencies = Vec::new();
    let mut flips = 0;
    let started = Instant::now();
    while flood.iter().any(|t| !t.is_finished()) {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the flood did not end"
        );
        let sent = Instant::now();
        let response = client
            .get(d.url("/api/v2/services?fields=id,state"))
            .basic_auth(common::USER, Some(common::PASSWORD))
            .send()
            .await
            .expect("a well-behaved request is answered during the flood");
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        latencies.push(sent.elapsed());
        if latencies.len() % 10 == 0 && flips < 10 {
            flips += 1;
            let expected = if flips % 2 == 1 {
                backend.close().await;
                "Inactive"
            } else {
                backend.reopen().await;
                "Active"
            };
            assert_eq!(
                watcher.next_change(WITHIN).await["state"],
                expected,
                "flip {flips}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in flood {
        task.await.expect("no assertion failed in the flood");
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "{TOTAL} bad inputs ({} answered, {WEBSOCKETS} hostile WebSockets, {LINGERING} lingering connections) in {:?}; {} requests of a well-behaved client beside them: p50 {:?}, p99 {:?}, max {:?}; {flips} flips seen",
        answered.load(Ordering::Relaxed),
        started.elapsed(),
        latencies.len(),
        latencies[latencies.len() / 2],
        p99,
        latencies.last().unwrap(),
    );
    assert!(flips >= 2, "the subscriber saw flips during the flood");
    assert!(
        p99 < Duration::from_secs(1),
        "p99 of the well-behaved client: {p99:?}"
    );

    // The stalled ones are let go by the server; descriptors come back.
    drop(lingering);
    eventually(Duration::from_secs(10), "descriptors back", || async {
        (open_fds() <= fds_before + 8).then_some(())
    })
    .await;
    if flips % 2 == 1 {
        backend.reopen().await;
        assert_eq!(watcher.next_change(WITHIN).await["state"], "Active");
    }
    let (status, _) = d.get("/api/v2/services").await;
    assert_eq!(status, 200, "still serving");
}
