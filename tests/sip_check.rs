//! `sip` checks against real SIP peers on loopback: `sipp` answering OPTIONS over UDP and
//! TCP (tests/sip/*.xml), and peers the test writes for what sipp cannot do here: TLS (the
//! Debian sipp is built without it; a tokio-rustls listener answers instead), garbage, an
//! answer to another transaction, and silence. A Voice service follows its SIP server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::certs::{Ca, serve_tls};
use common::sip::{Sipp, SippTransport, answer, header, sipp};
use common::{TestDaemon, eventually};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

const FAST: &str = r#"interval = "50ms", timeout = "1s", rise = 1, fall = 1"#;

/// A Voice service whose primary at `port` has a `sip` check with `keys`.
fn voice(port: u16, keys: &str) -> String {
    format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ kind = \"sip\", {FAST}, {keys} }}\n"
    )
}

/// The primary's instance detail.
async fn instance(d: &TestDaemon) -> Value {
    d.instances("sips1").await["instances"][0].clone()
}

/// Waits until the primary's last check says something containing `text`; returns it.
async fn detail_containing(d: &TestDaemon, text: &str) -> Value {
    eventually(Duration::from_secs(10), text, || async {
        let shown = instance(d).await;
        let detail = shown["lastCheck"]["detail"].as_str().unwrap_or_default();
        detail.contains(text).then_some(shown)
    })
    .await
}

/// Waits until the service's state is `state`.
async fn state_becomes(d: &TestDaemon, state: &str) {
    eventually(Duration::from_secs(10), state, || async {
        (d.state_of("sips1").await.0 == state).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_service_follows_sipp_over_udp_and_its_death_is_refused() {
    let Some(program) = sipp() else { return };
    let mut server = Sipp::start(&program, "options_200.xml", SippTransport::Udp);
    let d = TestDaemon::start(&voice(server.port, r#"transport = "udp""#));
    state_becomes(&d, "Active").await;
    let shown = detail_containing(&d, "SIP/2.0 200 OK").await;
    assert_eq!(shown["check"], "sip");
    assert_eq!(shown["health"], "up", "{shown}");
    server.kill();
    state_becomes(&d, "Inactive").await;
    let shown = detail_containing(&d, "refused").await;
    let detail = shown["lastCheck"]["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        format!(
            "127.0.0.1:{} refused the request (ICMP port unreachable: nothing listens on that UDP port)",
            server.port
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_over_tcp_keeps_the_service_active() {
    let Some(program) = sipp() else { return };
    let mut server = Sipp::start(&program, "options_200.xml", SippTransport::Tcp);
    let d = TestDaemon::start(&voice(server.port, r#"transport = "tcp""#));
    state_becomes(&d, "Active").await;
    detail_containing(&d, "SIP/2.0 200 OK").await;
    server.kill();
    state_becomes(&d, "Inactive").await;
    detail_containing(&d, "Connection refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_down_by_default_and_degraded_when_configured_so() {
    let Some(program) = sipp() else { return };
    let server = Sipp::start(&program, "options_503.xml", SippTransport::Udp);
    let d = TestDaemon::start(&voice(server.port, r#"transport = "udp""#));
    let shown = detail_containing(&d, "SIP/2.0 503 Service Unavailable").await;
    assert_eq!(
        shown["lastCheck"]["detail"],
        "SIP/2.0 503 Service Unavailable, not an answer counted as up (2xx, 4xx)"
    );
    assert_eq!(shown["health"], "down");
    state_becomes(&d, "Inactive").await;
    drop(d);
    let d = TestDaemon::start(&voice(server.port, r#"degraded = [503]"#));
    let shown = detail_containing(&d, "counted as degraded").await;
    assert_eq!(shown["health"], "degraded", "{shown}");
    state_becomes(&d, "Active").await;
}

/// A TLS listener answering every OPTIONS `SIP/2.0 200 OK`, with a certificate for
/// 127.0.0.1 from `ca`.
async fn tls_sip_server(ca: &Ca) -> u16 {
    let (certificate, key) = ca.issue(&["127.0.0.1"], 90);
    serve_tls(certificate, key, None, |mut tls| async move {
        let mut request = Vec::new();
        let mut chunk = [0u8; 2048];
        while !request.ends_with(b"\r\n\r\n") {
            match tls.read(&mut chunk).await {
                Ok(n) if n > 0 => request.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let request = String::from_utf8_lossy(&request).into_owned();
        let reply = answer(&request, "SIP/2.0 200 OK", "");
        let _ = tls.write_all(reply.as_bytes()).await;
        // A SIP server keeps the connection; the check closes it.
        let _ = tls.read(&mut chunk).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_certificate_is_verified_against_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let port = tls_sip_server(&ca).await;
    let ca_file = dir.path().join("ca.pem");
    let d = TestDaemon::start(&voice(
        port,
        &format!(r#"transport = "tls", ca_file = "{}""#, ca_file.display()),
    ));
    state_becomes(&d, "Active").await;
    detail_containing(&d, "SIP/2.0 200 OK").await;
    drop(d);
    // The system's CAs do not know the test CA.
    let d = TestDaemon::start(&voice(port, r#"transport = "tls""#));
    let shown = detail_containing(&d, "UnknownIssuer").await;
    assert!(
        shown["lastCheck"]["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("TLS handshake with 127.0.0.1:{port} failed: ")),
        "{shown}"
    );
    state_becomes(&d, "Inactive").await;
}

/// A UDP peer the test controls: every datagram it receives is kept, and `reply` says what
/// to answer to each (nothing, when it returns `None`).
async fn udp_peer(
    reply: impl Fn(&str) -> Option<Vec<u8>> + Send + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(bytes) = reply(&request) {
                let _ = socket.send_to(&bytes, from).await;
            }
            kept.lock().await.push(request);
        }
    });
    (port, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_a_down_instance_with_what_was_said() {
    let (port, _) = udp_peer(|_| Some(b"hello there\r\n".to_vec())).await;
    let d = TestDaemon::start(&voice(port, r#"transport = "udp""#));
    let shown = detail_containing(&d, "cannot read").await;
    assert_eq!(
        shown["lastCheck"]["detail"],
        format!(
            r#"127.0.0.1:{port} answered what the check cannot read: the answer is not SIP: "hello there""#
        )
    );
    state_becomes(&d, "Inactive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_status_line_is_told() {
    let (port, _) =
        udp_peer(|request| Some(answer(request, "SIP/2.0 2OO OK", "").into_bytes())).await;
    let d = TestDaemon::start(&voice(port, r#"transport = "udp""#));
    detail_containing(&d, r#"bad SIP status line "SIP/2.0 2OO OK""#).await;
    state_becomes(&d, "Inactive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_down_at_the_timeout_after_each_retransmission() {
    let (port, received) = udp_peer(|_| None).await;
    // T1 = 500 ms, doubling: sent at 0, 0.5 s and 1.5 s, then the timeout at 1.6 s.
    let config =
        voice(port, r#"transport = "udp""#).replace(r#"timeout = "1s""#, r#"timeout = "1600ms""#);
    let d = TestDaemon::start(&config);
    let shown = detail_containing(&d, "no answer").await;
    assert_eq!(
        shown["lastCheck"]["detail"],
        format!("no answer from 127.0.0.1:{port} after 3 transmissions over udp")
    );
    assert_eq!(d.state_of("sips1").await.0, "Inactive");
    let received = received.lock().await.clone();
    let first = header(&received[0], "Call-ID").unwrap().to_string();
    let copies: Vec<&String> = received
        .iter()
        .filter(|r| header(r, "Call-ID") == Some(first.as_str()))
        .collect();
    assert_eq!(copies.len(), 3, "{received:#?}");
    assert!(
        copies.iter().all(|c| *c == copies[0]),
        "retransmissions are the same request"
    );
    assert!(copies[0].starts_with(&format!(
        "OPTIONS sip:127.0.0.1:{port};transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:"
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_another_transaction_is_ignored_and_told() {
    let (port, _) = udp_peer(|request| {
        let via = header(request, "Via").unwrap();
        let theirs = request.replace(via, "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnotyours");
        Some(answer(&theirs, "SIP/2.0 200 OK", "").into_bytes())
    })
    .await;
    let d = TestDaemon::start(&voice(port, r#"transport = "udp""#));
    let shown = detail_containing(&d, "no answer").await;
    assert_eq!(
        shown["lastCheck"]["detail"],
        format!(
            "no answer from 127.0.0.1:{port} after 2 transmissions over udp; 2 answers to another transaction ignored (the last, SIP/2.0 200 OK: its Via branch is \"z9hG4bKnotyours\")"
        )
    );
    state_becomes(&d, "Inactive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisional_answer_is_waited_past_to_the_final_one() {
    // The first copy of each request gets 100 Trying, its retransmission 486 Busy Here.
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    let (port, _) = udp_peer(move |request| {
        let call_id = header(request, "Call-ID")?.to_string();
        let first = seen.lock().unwrap().insert(call_id);
        let status = if first {
            "SIP/2.0 100 Trying"
        } else {
            "SIP/2.0 486 Busy Here"
        };
        Some(answer(request, status, "").into_bytes())
    })
    .await;
    let d = TestDaemon::start(&voice(port, r#"transport = "udp""#));
    let shown = detail_containing(&d, "SIP/2.0 486 Busy Here").await;
    assert_eq!(shown["health"], "up", "a 4xx is up by default: {shown}");
    state_becomes(&d, "Active").await;
}
