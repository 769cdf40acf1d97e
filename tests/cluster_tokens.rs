#![cfg(feature = "cluster")]
//! API tokens on a cluster: one set for every node. A token created on one node works on
//! every node, and on a node started after it; revoked on one node, it is refused on every
//! other as soon as the watch brings the deletion, with its cookie logins and notification
//! sessions there; a node that cannot reach etcd refuses to create one (503) and still lets
//! known tokens in.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::bayeux::{Io, SERVICES, WsClient};
use common::cluster::*;
use common::etcd::Etcd;
use common::{ADMIN, Backend, Mode, PASSWORD, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How soon every node must refuse a revoked token: the watch brings the deletion in
/// milliseconds; this leaves room for a loaded machine.
const EVERYWHERE: Duration = Duration::from_secs(2);

/// Who calls a node.
#[derive(Clone, Copy)]
enum As<'a> {
    Admin,
    Token(&'a str),
    Cookie(&'a str),
}

/// `method` on `path` of `node` as `who`: the status, the JSON answer, the cookie set.
async fn call(
    node: &Node,
    who: As<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let url = format!("http://{}{path}", node.process.addr);
    let mut request = reqwest::Client::new()
        .request(method, url)
        .timeout(Duration::from_secs(10));
    request = match who {
        As::Admin => request.basic_auth(ADMIN, Some(PASSWORD)),
        As::Token(token) => request.bearer_auth(token),
        As::Cookie(cookie) => request.header("cookie", cookie),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let cookie = response
        .headers()
        .contains_key("set-cookie")
        .then(|| common::session_cookie(&response));
    (status, response.json().await.unwrap_or(Value::Null), cookie)
}

/// The body that creates token `name`, readable for a day.
fn token_body(name: &str) -> Value {
    let expires = SystemTime::now() + Duration::from_secs(86_400);
    json!({
        "name": name,
        "scope": "read",
        "expires": humantime::format_rfc3339_seconds(expires).to_string(),
    })
}

/// Creates token `name` on `node`; the token.
async fn create(node: &Node, name: &str) -> String {
    let body = Some(token_body(name));
    let (status, answer, _) = call(node, As::Admin, Method::POST, "/api/v2/tokens", body).await;
    assert_eq!(status, StatusCode::CREATED, "{}: {answer}", node.name);
    answer["token"].as_str().expect("the token").to_string()
}

/// The status of reading the services on `node` as `who`.
async fn reads(node: &Node, who: As<'_>) -> StatusCode {
    call(node, who, Method::GET, "/api/v2/services", None)
        .await
        .0
}

/// A subscribed WebSocket session on `node`, logged in with `token`.
async fn subscribed(node: &Node, token: &str) -> WsClient {
    let mut request = format!("ws://{}/api/v2/notifications", node.process.addr)
        .into_client_request()
        .unwrap();
    let bearer = format!("Bearer {token}");
    request
        .headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(&node.process.addr)
        .await
        .unwrap();
    let (ws, _) = tokio_tungstenite::client_async(request, Box::new(tcp) as Box<dyn Io>)
        .await
        .expect("the token opens a WebSocket");
    let mut ws = WsClient::from_stream(ws);
    ws.handshake().await;
    ws.call(json!({"channel": "/meta/subscribe", "subscription": SERVICES}))
        .await;
    ws
}

#[test]
fn a_token_is_one_for_every_node_and_its_revocation_is_refused_everywhere_at_once() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut etcd = Etcd::start();
    let backend = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&backend);
    let mut nodes = start_nodes(&etcd.endpoint(), &["sw1", "sw2", "sw3"], &services);
    let kept = runtime.block_on(async {
        leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

        // Created on A: it reads on every node.
        let token = create(a, "ci").await;
        let kept = create(a, "dash").await;
        for node in [a, b, c] {
            eventually(
                EVERYWHERE,
                &format!("the token on {}", node.name),
                || async { (reads(node, As::Token(&token)).await == StatusCode::OK).then_some(()) },
            )
            .await;
        }
        let (_, listed, _) = call(c, As::Admin, Method::GET, "/api/v2/tokens", None).await;
        assert_eq!(listed["apiTokens"][0]["name"], "ci", "{listed}");
        assert_eq!(listed["apiTokens"][0]["createdBy"], ADMIN, "{listed}");
        let (status, refused, _) = call(
            b,
            As::Admin,
            Method::POST,
            "/api/v2/tokens",
            Some(token_body("ci")),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "one name cluster-wide: {refused}"
        );

        // Held on A by a cookie, on C by a WebSocket session.
        let (status, _, cookie) =
            call(a, As::Token(&token), Method::GET, "/api/v2/services", None).await;
        assert_eq!(status, StatusCode::OK);
        let cookie = cookie.expect("a Bearer login sets a cookie");
        assert_eq!(reads(a, As::Cookie(&cookie)).await, StatusCode::OK);
        let mut ws = subscribed(c, &token).await;
        ws.connect().await;

        // Revoked on B: refused on A and C within milliseconds.
        let revoked_at = Instant::now();
        let (status, revoked, _) =
            call(b, As::Admin, Method::DELETE, "/api/v2/tokens/ci", None).await;
        assert_eq!(status, StatusCode::OK, "{revoked}");
        assert_eq!(revoked["apiToken"]["name"], "ci");
        let answered = revoked_at.elapsed();
        for node in [a, c] {
            eventually(
                EVERYWHERE,
                &format!("the revocation on {}", node.name),
                || async {
                    (reads(node, As::Token(&token)).await == StatusCode::UNAUTHORIZED).then_some(())
                },
            )
            .await;
            eprintln!(
                "revoked on {} (answered in {answered:?}): refused on {} after {:?}",
                b.name,
                node.name,
                revoked_at.elapsed()
            );
        }
        assert_eq!(reads(b, As::Token(&token)).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reads(a, As::Cookie(&cookie)).await,
            StatusCode::UNAUTHORIZED
        );
        ws.closed_for_revocation(EVERYWHERE).await;
        eprintln!(
            "its WebSocket on {} closed after {:?}",
            c.name,
            revoked_at.elapsed()
        );
        assert_eq!(
            reads(c, As::Token(&kept)).await,
            StatusCode::OK,
            "the other stays"
        );
        kept
    });

    // A node started after the tokens were made and revoked knows them from its read.
    let late = Node::start("sw4", node_toml(&etcd.endpoint(), "sw4", &services));
    runtime.block_on(async {
        eventually(
            Duration::from_secs(15),
            "the late node to know the tokens",
            || async { (reads(&late, As::Token(&kept)).await == StatusCode::OK).then_some(()) },
        )
        .await;
        let (_, listed, _) = call(&late, As::Admin, Method::GET, "/api/v2/tokens", None).await;
        let names: Vec<&Value> = listed["apiTokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["name"])
            .collect();
        assert_eq!(names, [&json!("dash")], "{listed}");
    });
    nodes.push(late);

    // etcd stops: no token is created, and known tokens keep working.
    etcd.kill();
    runtime.block_on(async {
        let a = &nodes[0];
        let started = Instant::now();
        let (status, refused, _) = call(
            a,
            As::Admin,
            Method::POST,
            "/api/v2/tokens",
            Some(token_body("offline")),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
        let message = refused["statusMessage"].as_str().unwrap_or_default();
        assert!(message.contains("cannot reach"), "{message}");
        eprintln!(
            "creation without etcd refused in {:?}: {message}",
            started.elapsed()
        );
        let (status, _, _) = call(a, As::Admin, Method::DELETE, "/api/v2/tokens/dash", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reads(a, As::Token(&kept)).await, StatusCode::OK);
    });
}
