//! Pushed state changes end to end: Bayeux over WebSocket and long-polling against the real
//! daemon, with backends that the test closes and reopens.

mod common;

use std::time::Duration;

use common::bayeux::{LpClient, Received, SERVICES, WsClient, changes, ws_request};
use common::{Backend, Mode, TestDaemon, basic_header, eventually};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A change must reach subscribers within the detection bound of these checks plus room
/// for a loaded machine.
const WITHIN: Duration = Duration::from_secs(3);

const CHECK: &str = r#"check = { interval = "50ms", fast_interval = "50ms", timeout = "300ms", rise = 1, fall = 1, jitter = 0.0 }"#;

fn voice(backend: &Backend, extra: &str) -> String {
    format!(
        "[[service]]\nid = \"sips1\"\nname = \"SIPS1\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n{extra}\n",
        backend.toml()
    )
}

/// A daemon with one Voice service on `backend`, Active before it returns.
async fn daemon(backend: &Backend, notifications: &str) -> TestDaemon {
    let d = TestDaemon::start(&format!(
        "[notifications]\n{notifications}\n{}",
        voice(backend, "")
    ));
    eventually(WITHIN, "sips1 Active", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_handshake_subscribe_connect_and_receive() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "").await;
    let mut c = WsClient::open(&d).await;

    let handshake = c.handshake().await;
    assert_eq!(handshake["channel"], "/meta/handshake");
    assert_eq!(handshake["id"], "1", "the request id is echoed");
    assert_eq!(handshake["version"], "1.0");
    assert_eq!(
        handshake["supportedConnectionTypes"],
        json!(["websocket", "long-polling"])
    );
    assert_eq!(
        handshake["advice"],
        json!({"reconnect":"retry","interval":0,"timeout":30000})
    );
    assert_eq!(c.client_id.len(), 40, "160 random bits in hex");

    let reply = c
        .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    assert_eq!(
        reply,
        vec![
            json!({"channel":"/meta/subscribe","id":"2","clientId":c.client_id,"successful":true,"subscription":SERVICES})
        ]
    );
    let reply = c.connect().await;
    assert_eq!(reply[0]["channel"], "/meta/connect");
    assert_eq!(
        reply[0]["successful"], true,
        "the first connect is answered at once"
    );

    backend.close().await;
    let service = c.next_change(WITHIN).await;
    assert_eq!(service["id"], "sips1");
    assert_eq!(service["name"], "SIPS1");
    assert_eq!(service["type"], "Voice");
    assert_eq!(service["state"], "Inactive");

    backend.reopen().await;
    let service = c.next_change(WITHIN).await;
    assert_eq!(
        (&service["state"], &service["servingInstance"]),
        (&json!("Active"), &json!("primary"))
    );
    // The pushed resource is the one the REST API serves.
    assert_eq!(service, d.service("sips1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_change_in_order() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(WsClient::subscribed(&d).await);
    }
    let mut lp = LpClient::new(&d);
    lp.handshake().await;
    lp.subscribe(false).await;
    lp.connect().await;

    for _ in 0..2 {
        backend.close().await;
        eventually(WITHIN, "Inactive", || async {
            (d.state_of("sips1").await.0 == "Inactive").then_some(())
        })
        .await;
        backend.reopen().await;
        eventually(WITHIN, "Active", || async {
            (d.state_of("sips1").await.0 == "Active").then_some(())
        })
        .await;
    }
    let expected = ["Inactive", "Active", "Inactive", "Active"];
    for socket in &mut sockets {
        let mut states = Vec::new();
        for _ in expected {
            states.push(
                socket.next_change(WITHIN).await["state"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(states, expected);
    }
    let mut lp_states = Vec::new();
    while lp_states.len() < expected.len() {
        let batch = lp.connect().await;
        lp_states.extend(
            changes(&batch)
                .iter()
                .map(|s| s["state"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(lp_states, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_connect_never_delays_the_rest_of_its_batch() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "connect_timeout = \"20s\"").await;
    let mut c = WsClient::open(&d).await;
    c.handshake().await;
    c.connect().await;
    let batch = json!([
        {"channel":"/meta/subscribe","id":"s","clientId":c.client_id,"subscription":SERVICES},
        {"channel":"/meta/connect","id":"c","clientId":c.client_id,"connectionType":"websocket"}
    ]);
    c.send(batch).await;
    let reply = c.recv().await;
    assert_eq!(
        reply.len(),
        1,
        "only the subscribe reply: the connect is held {reply:?}"
    );
    assert_eq!(reply[0]["id"], "s");
    assert_eq!(reply[0]["successful"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connect_is_answered_at_the_timeout() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "connect_timeout = \"300ms\"").await;
    let mut lp = LpClient::new(&d);
    lp.handshake().await;
    lp.subscribe(false).await;
    lp.connect().await;
    let started = std::time::Instant::now();
    let reply = lp.connect().await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "held for the connect timeout"
    );
    assert_eq!(reply[0]["channel"], "/meta/connect");
    assert_eq!(reply[0]["successful"], true);
    assert_eq!(reply[0]["advice"]["timeout"], 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_on_subscribe_then_live_changes() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "").await;
    let mut lp = LpClient::new(&d);
    lp.handshake().await;
    lp.subscribe(true).await;
    let first = lp.connect().await;
    let snapshot = changes(&first);
    assert_eq!(snapshot.len(), 1);
    assert_eq!(
        snapshot[0],
        d.service("sips1").await,
        "the current state, before any change"
    );

    backend.close().await;
    let batch = lp.connect().await;
    assert_eq!(changes(&batch)[0]["state"], "Inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_polling_client_moves_to_websocket() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "").await;
    // As Faye and aiocometd do: handshake over long-polling, then the same clientId on a
    // WebSocket.
    let mut lp = LpClient::new(&d);
    lp.handshake().await;
    let mut ws = WsClient::open(&d).await;
    ws.client_id = lp.client_id.clone();
    let reply = ws
        .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    assert_eq!(reply[0]["successful"], true);
    ws.connect().await;
    backend.close().await;
    assert_eq!(ws.next_change(WITHIN).await["state"], "Inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_the_changes_and_disconnect_ends_the_session() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "").await;
    let mut witness = WsClient::subscribed(&d).await;
    let mut quitter = WsClient::subscribed(&d).await;
    let reply = quitter
        .call(json!({"channel":"/meta/unsubscribe","subscription":SERVICES}))
        .await;
    assert_eq!(reply[0]["successful"], true);
    assert_eq!(reply[0]["subscription"], SERVICES);

    backend.close().await;
    assert_eq!(witness.next_change(WITHIN).await["state"], "Inactive");
    // The witness has it; the unsubscribed client gets nothing (its connect is held).
    match quitter.recv_within(Duration::from_millis(300)).await {
        None => {}
        Some(Received::Batch(b)) => assert!(changes(&b).is_empty(), "{b:?}"),
        Some(other) => panic!("{other:?}"),
    }

    let reply = quitter.call(json!({"channel":"/meta/disconnect"})).await;
    let disconnect = reply
        .iter()
        .find(|m| m["channel"] == "/meta/disconnect")
        .unwrap();
    assert_eq!(disconnect["successful"], true);
    let client_id = quitter.client_id.clone();
    eventually(WITHIN, "the session to be gone", || {
        let mut lp = LpClient::new(&d);
        lp.client_id = client_id.clone();
        let expected = format!("402:{client_id}:Unknown client");
        async move {
            let reply = lp.connect().await;
            (reply[0]["error"] == expected).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_whose_session_expires_is_closed_with_the_reason() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "session_timeout = \"300ms\"").await;
    let mut ws = WsClient::open(&d).await;
    ws.handshake().await;
    // The first connect (answered at once) attaches the WebSocket; no other follows, so the
    // session expires, and its WebSocket is told so and closed.
    ws.connect().await;
    match ws.recv_within(WITHIN).await {
        Some(Received::Closed(Some((code, reason)))) => {
            assert_eq!(code, CloseCode::Policy);
            assert!(reason.starts_with("session expired"), "{reason}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_connects_is_forgotten() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "session_timeout = \"200ms\"").await;
    let mut lp = LpClient::new(&d);
    lp.handshake().await;
    lp.subscribe(false).await;
    // Probe with an unsubscribe, which (unlike a connect) does not keep a session alive.
    let reply = eventually(WITHIN, "the idle session to expire", || {
        let mut probe = LpClient::new(&d);
        probe.client_id = lp.client_id.clone();
        async move {
            let reply = probe
                .call(
                    "",
                    json!({"channel":"/meta/unsubscribe","subscription":"/x"}),
                )
                .await;
            (reply[0]["error"] != "400:/x:not subscribed").then_some(reply)
        }
    })
    .await;
    assert_eq!(reply[0]["advice"]["reconnect"], "handshake");
    assert_eq!(
        reply[0]["error"],
        format!("402:{}:Unknown client", lp.client_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_bayeux_errors_and_hurts_nobody_else() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "max_subscriptions = 2\nmax_message_size = 2048").await;
    let mut bystander = WsClient::subscribed(&d).await;
    let mut c = WsClient::open(&d).await;

    c.send_text("{not json").await;
    let reply = c.recv().await;
    assert_eq!(reply[0]["channel"], "/meta/unsuccessful");
    assert_eq!(reply[0]["successful"], false);
    assert!(
        reply[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("400::malformed JSON"),
        "{reply:?}"
    );

    c.send_text("42").await;
    assert!(
        c.recv().await[0]["error"]
            .as_str()
            .unwrap()
            .contains("JSON array")
    );
    c.send(json!([{"id":"x"}])).await;
    assert_eq!(c.recv().await[0]["error"], "400::a message needs a channel");

    c.handshake().await;
    let reply = c.call(json!({"channel":"/meta/bogus"})).await;
    assert_eq!(reply[0]["error"], "400:/meta/bogus:unknown meta channel");
    let reply = c
        .call(json!({"channel":"/meta/connect","clientId":"nobody"}))
        .await;
    assert_eq!(reply[0]["error"], "402:nobody:Unknown client");
    assert_eq!(reply[0]["advice"]["reconnect"], "handshake");
    c.send(json!([{"channel":"/meta/subscribe","subscription":SERVICES}]))
        .await;
    assert_eq!(
        c.recv().await[0]["error"],
        "402::Unknown client",
        "a missing clientId"
    );

    let reply = c
        .call(json!({"channel":SERVICES,"data":{"forged":true}}))
        .await;
    assert_eq!(
        reply[0]["error"],
        "403:/notifications/services:Permission denied"
    );
    let reply = c
        .call(json!({"channel":"/meta/subscribe","subscription":["/a","/b","/c"]}))
        .await;
    let ok: Vec<_> = reply
        .iter()
        .map(|r| r["successful"].as_bool().unwrap())
        .collect();
    assert_eq!(ok, [true, true, false]);
    assert_eq!(
        reply[2]["error"],
        "403:/c:too many subscriptions (at most 2 per client)"
    );
    let reply = c
        .call(json!({"channel":"/meta/subscribe","subscription":"/meta/connect"}))
        .await;
    assert_eq!(
        reply[0]["error"],
        "403:/meta/connect:meta channels cannot be subscribed to"
    );

    // Over the frame limit: closed with 1009, this client alone.
    c.send_text(&format!(
        "[{{\"channel\":\"/meta/connect\",\"pad\":\"{}\"}}]",
        "x".repeat(4096)
    ))
    .await;
    match c.recv_within(Duration::from_secs(5)).await {
        Some(Received::Closed(Some((code, reason)))) => {
            assert_eq!(code, CloseCode::Size);
            assert_eq!(reason, "message larger than 2048 bytes");
        }
        other => panic!("expected a 1009 close, got {other:?}"),
    }

    // Long-polling refusals.
    let lp = LpClient::new(&d);
    let (status, body) = lp.post_raw("", "[{oops").await;
    assert_eq!(status, 400);
    assert!(
        body[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("400::malformed JSON")
    );
    let (status, body) = lp.post_raw("/connect", "[]").await;
    assert_eq!(
        (status, body[0]["error"].as_str().unwrap()),
        (400, "400::an empty batch")
    );
    let (status, body) = lp.post_raw("", "x".repeat(4096)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["statusCode"], 2, "in the GWS envelope: {body}");

    // The bystander saw none of it and still gets changes.
    backend.close().await;
    assert_eq!(bystander.next_change(WITHIN).await["state"], "Inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_sessions_are_refused_at_handshake() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "max_sessions = 2").await;
    let mut a = LpClient::new(&d);
    a.handshake().await;
    let mut b = LpClient::new(&d);
    b.handshake().await;
    let mut c = LpClient::new(&d);
    let reply = c
        .call("/handshake", json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}))
        .await;
    assert_eq!(reply[0]["successful"], false);
    assert_eq!(reply[0]["error"], "503::too many sessions (at most 2)");
    assert_eq!(reply[0]["advice"]["reconnect"], "handshake");
    // The sessions that exist are unaffected.
    assert_eq!(a.connect().await[0]["successful"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_while_others_keep_receiving() {
    let mut backend = Backend::start(Mode::Accept).await;
    // Large resources fill socket buffers in a few messages.
    let padding = "p".repeat(60_000);
    let d = TestDaemon::start(&format!(
        "[notifications]\nsession_queue = 4\n{}",
        voice(
            &backend,
            &format!("attributes = {{ padding = \"{padding}\" }}")
        )
    ));
    eventually(WITHIN, "Active", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;

    // The stuck client: a small receive buffer, and it stops reading after subscribing.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&d.addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let stream = tokio::net::TcpStream::from_std(socket.into()).unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        ws_request(&d, &[("authorization", &basic_header())]),
        Box::new(stream) as Box<dyn common::bayeux::Io>,
    )
    .await
    .unwrap();
    let mut stuck = WsClient::from_stream(ws);
    stuck.handshake().await;
    stuck
        .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    stuck.connect().await;

    let mut healthy = WsClient::subscribed(&d).await;
    // Flip the backend many times; the healthy client must see every flip promptly.
    for round in 0..30 {
        backend.close().await;
        assert_eq!(
            healthy.next_change(WITHIN).await["state"],
            "Inactive",
            "round {round}"
        );
        backend.reopen().await;
        assert_eq!(
            healthy.next_change(WITHIN).await["state"],
            "Active",
            "round {round}"
        );
    }

    // Reading again, the stuck client finds the backlog, then the close that ended it.
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stuck.recv_within(Duration::from_secs(5)).await {
                Some(Received::Batch(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stuck client is closed");
    match outcome {
        Some(Received::Closed(Some((code, reason)))) => {
            assert_eq!(code, CloseCode::Policy);
            assert_eq!(reason, "slow consumer: messages were not read in time");
        }
        other => panic!("expected a policy close, got {other:?}"),
    }
    // Counted once, whoever noticed (the registry or the session), and only that one.
    assert_eq!(
        d.metric("servicewatch_slow_consumers_total").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_websocket_peer_is_dropped() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "ping_interval = \"100ms\"").await;
    let connections = "servicewatch_websocket_connections";
    // A peer that handshakes, then neither reads nor answers pings.
    let mut silent = WsClient::open(&d).await;
    silent.handshake().await;
    eventually(WITHIN, "the connection to be counted", || async {
        (d.metric(connections).await == Some(1.0)).then_some(())
    })
    .await;
    eventually(
        WITHIN,
        "the silent peer to be dropped after three ping intervals",
        || async { (d.metric(connections).await == Some(0.0)).then_some(()) },
    )
    .await;
    drop(silent);
}

/// The option `TCP_NODELAY` of the daemon's end of the connection from `client` to
/// `daemon`: the daemon runs in this process, so its sockets are among this process's.
fn daemon_side_nodelay(daemon: std::net::SocketAddr, client: std::net::SocketAddr) -> Option<bool> {
    use std::os::fd::BorrowedFd;
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor is this process's and is only looked at, not closed; one
        // closed meanwhile makes the calls below fail, which skips it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let (Ok(local), Ok(peer)) = (socket.local_addr(), socket.peer_addr()) else {
            continue;
        };
        if local.as_socket() == Some(daemon) && peer.as_socket() == Some(client) {
            return socket.tcp_nodelay().ok();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_goes_out_without_waiting_for_the_last_ones_acknowledgement() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "").await;
    // A WebSocket client, then a plain connection (long-polling and REST use those).
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let client = tcp.local_addr().unwrap();
    let request = ws_request(&d, &[("authorization", &basic_header())]);
    let (_ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    let nodelay = eventually(WITHIN, "the daemon's end of the WebSocket", || async {
        daemon_side_nodelay(d.addr, client)
    })
    .await;
    assert!(
        nodelay,
        "TCP_NODELAY on the daemon's end: no Nagle wait between two changes"
    );
    let plain = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let client = plain.local_addr().unwrap();
    let nodelay = eventually(WITHIN, "the daemon's end of a plain connection", || async {
        daemon_side_nodelay(d.addr, client)
    })
    .await;
    assert!(nodelay, "long-polling and REST connections too");
}

/// Sends `chunks` as one chunked long-polling request, a pause between them (each reaches
/// the daemon as a piece of its own), and returns the answer's status line and body.
async fn post_in_pieces(d: &TestDaemon, chunks: &[&str]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let head = format!(
        "POST /api/v2/notifications/handshake HTTP/1.1\r\nHost: sw\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        basic_header()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        let piece = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        stream.write_all(piece.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WITHIN, stream.read_to_string(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_polling_batch_that_arrives_in_pieces_is_read_whole() {
    let backend = Backend::start(Mode::Accept).await;
    let d = daemon(&backend, "max_message_size = 2048").await;
    let (status, body) = post_in_pieces(
        &d,
        &[
            r#"[{"channel":"/meta/hand"#,
            r#"shake","version":"1.0","#,
            r#""supportedConnectionTypes":["long-polling"]}]"#,
        ],
    )
    .await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains(r#""successful":true"#), "{body}");
    assert!(body.contains(r#""clientId":"#), "{body}");
    // Each suffix CometD appends is a route of its own in the metrics.
    assert_eq!(
        d.metric(r#"servicewatch_http_requests_total{route="/api/v2/notifications/handshake",status="200"}"#)
            .await,
        Some(1.0)
    );

    // Pieces that add up to more than the limit: 413, in the GWS envelope.
    let piece = "x".repeat(1500);
    let (status, body) = post_in_pieces(&d, &[&piece, &piece]).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(body.contains("larger than 2048 bytes"), "{body}");
}
