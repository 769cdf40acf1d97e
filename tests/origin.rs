//! Browser safety end to end: the `Origin` of WebSocket upgrades and Bayeux requests, and
//! CORS with credentials on the REST API and long-polling.

mod common;

use common::bayeux::WsClient;
use common::{PASSWORD, TestDaemon, USER, basic_header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

const LISTED: &str = "https://ui.example.com";
const FOREIGN: &str = "https://evil.example";

fn daemon() -> TestDaemon {
    TestDaemon::start(&format!(
        "allowed_origins = [\"{LISTED}/\"]\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n"
    ))
}

fn own(d: &TestDaemon) -> String {
    format!("http://{}", d.addr)
}

async fn upgrade(d: &TestDaemon, origin: Option<&str>) -> Result<WsClient, u16> {
    let auth = basic_header();
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(origin.map(|o| ("origin", o)));
    match WsClient::try_open(d, &headers).await {
        Ok(client) => Ok(client),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("upgrade failed otherwise: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_websocket_upgrade_is_refused() {
    let d = daemon();
    assert_eq!(upgrade(&d, Some(FOREIGN)).await.err(), Some(403));
    assert_eq!(upgrade(&d, Some("null")).await.err(), Some(403));
    // The port is part of the origin.
    let other_port = format!("http://127.0.0.1:{}", d.addr.port() + 1);
    assert_eq!(upgrade(&d, Some(&other_port)).await.err(), Some(403));

    for accepted in [Some(own(&d).as_str()), Some(LISTED), None] {
        let mut ws = upgrade(&d, accepted)
            .await
            .unwrap_or_else(|status| panic!("origin {accepted:?} refused with {status}"));
        ws.handshake().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_from_a_foreign_origin_is_refused_and_listed_ones_get_cors() {
    let d = daemon();
    let handshake = json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]).to_string();
    let post = |origin: &'static str| {
        reqwest::Client::new()
            .post(d.url("/api/v2/notifications/handshake"))
            .basic_auth(USER, Some(PASSWORD))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(handshake.clone())
            .send()
    };
    let refused = post(FOREIGN).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["statusCode"], 5);
    assert_eq!(
        body["statusMessage"],
        "origin https://evil.example is not allowed; add it to [server] allowed_origins"
    );

    let listed = post(LISTED).await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(listed.headers()["access-control-allow-origin"], LISTED);
    assert_eq!(listed.headers()["access-control-allow-credentials"], "true");
    let body: Value = listed.json().await.unwrap();
    assert_eq!(body[0]["successful"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_answer_listed_origins_only() {
    let d = daemon();
    let preflight = |origin: &'static str, path: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, d.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    for path in ["/api/v2/services", "/api/v2/notifications"] {
        let ok = preflight(LISTED, path).await.unwrap();
        assert_eq!(ok.status(), StatusCode::NO_CONTENT, "{path}");
        let h = ok.headers();
        assert_eq!(h["access-control-allow-origin"], LISTED);
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("authorization")
        );
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("GET")
        );

        let refused = preflight(FOREIGN, path).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_answers_carry_cors_for_listed_origins_only() {
    let d = daemon();
    let get = |origin: &'static str| {
        reqwest::Client::new()
            .get(d.url("/api/v2/services"))
            .basic_auth(USER, Some(PASSWORD))
            .header("origin", origin)
            .send()
    };
    let listed = get(LISTED).await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(listed.headers()["access-control-allow-origin"], LISTED);
    assert_eq!(listed.headers()["access-control-allow-credentials"], "true");
    assert_eq!(listed.headers()["vary"], "origin");

    // A foreign page's browser gets no CORS headers, so it cannot read the answer.
    let foreign = get(FOREIGN).await.unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // A 401 to a listed origin is readable by its page, which can then ask for a login.
    let unauthenticated = reqwest::Client::new()
        .get(d.url("/api/v2/services"))
        .header("origin", LISTED)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unauthenticated.headers()["access-control-allow-origin"],
        LISTED
    );
}
