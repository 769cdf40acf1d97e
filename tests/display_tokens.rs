//! Wall screens and their display tokens: a token reads its contact center's services and
//! opens notifications with the login cookie it gets, is refused what an agent may not do,
//! is throttled when guessed, logs in again by itself after a restart, and ends at once when
//! a reload (SIGHUP) removes its display. `servicewatch display-token` makes one that works.

mod common;

use std::process::Command;
use std::time::Duration;

use common::bayeux::{SERVICES, WsClient};
use common::process::DaemonProcess;
use common::{TestDaemon, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(5);
const BIN: &str = env!("CARGO_BIN_EXE_servicewatch");
/// Where nothing listens.
const NOWHERE: &str = r#"{ host = "127.0.0.1", port = 1 }"#;
/// The tokens of the displays in [`config`], and a token no display has.
const LOBBY: &str = "swd_lobbylobbylobbylobbylobbylobbylobbylobbyl";
const HALL: &str = "swd_hallhallhallhallhallhallhallhallhallhallh";
const GUESS: &str = "swd_guessguessguessguessguessguessguessguessg";
const REVOKED: &str = "the display token is unknown or was revoked";

/// The lowercase hex SHA-256 of `token`.
fn sha256_hex(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A Voice service `sips1` and a Media service `ixn` (both on nothing), a contact center
/// for each, and the displays named of "lobby" (Voice) and "hall" (Voice); `extra` on top.
fn config(extra: &str, displays: &[&str]) -> String {
    let entries: String = [("lobby", LOBBY), ("hall", HALL)]
        .iter()
        .filter(|(name, _)| displays.contains(name))
        .map(|(name, token)| {
            format!(
                "[[auth.display]]\nname = \"{name}\"\ncontact_center = \"voice-only\"\ntoken_sha256 = \"{}\"\n\n",
                sha256_hex(token)
            )
        })
        .collect();
    format!(
        r#"{extra}
{entries}
[[service]]
id = "sips1"
type = "Voice"
primary = {NOWHERE}

[[service]]
id = "ixn"
type = "Media"
primary = {NOWHERE}

[[contact_center]]
id = "voice-only"
features = ["api-voice"]

[[contact_center]]
id = "media-only"
features = ["api-multimedia"]
"#
    )
}

/// `method` on `url` with `Authorization: Bearer token` and the `cookie` given, if any.
async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = client
        .request(method, url)
        .header("x-requested-with", "XMLHttpRequest");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.expect("request")
}

/// GET `url` with the token; returns the status and JSON body.
async fn get(url: &str, token: &str) -> (StatusCode, Value) {
    let response = send(&reqwest::Client::new(), Method::GET, url, Some(token), None).await;
    (response.status(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_reads_its_centers_services_and_opens_notifications() {
    let db = tempfile::tempdir().unwrap();
    let history = format!(
        "[history]\npath = \"{}\"",
        db.path().join("history.sqlite").display()
    );
    let d = TestDaemon::start(&config(&history, &["lobby"]));
    let login = send(
        &reqwest::Client::new(),
        Method::GET,
        &d.url("/api/v2/services?fields=id"),
        Some(LOBBY),
        None,
    )
    .await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = common::session_cookie(&login);
    assert!(cookie.starts_with("SWSESSION="), "{cookie}");
    assert_eq!(d.ids_of(&login.json().await.unwrap()), ["sips1"]);
    let (status, _) = get(&d.url("/api/v2/services/sips1/history"), LOBBY).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&d.url("/api/v2/services/ixn"), LOBBY).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another center's service");

    // The cookie opens notifications, over a WebSocket and over long-polling.
    let mut ws = WsClient::try_open(&d, &[("cookie", cookie.as_str())])
        .await
        .expect("the cookie authenticates the upgrade");
    ws.handshake().await;
    let reply = ws
        .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    assert_eq!(reply[0]["successful"], true, "{reply:?}");
    let handshake = reqwest::Client::new()
        .post(d.url("/api/v2/notifications/handshake"))
        .header("cookie", &cookie)
        .body(json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), StatusCode::OK);
    let body: Value = handshake.json().await.unwrap();
    assert_eq!(body[0]["successful"], true, "{body}");

    // A second Bearer request shares the cookie login of the first.
    let again = send(
        &reqwest::Client::new(),
        Method::GET,
        &d.url("/api/v2/services"),
        Some(LOBBY),
        None,
    )
    .await;
    assert_eq!(common::session_cookie(&again), cookie);
    assert_eq!(
        d.metric("servicewatch_display_logins_total").await,
        Some(4.0),
        "every request with the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_may_do_no_more_than_an_agent() {
    let d = TestDaemon::start(&config("", &["lobby"]));
    let client = reqwest::Client::new();
    let refused = [
        (Method::GET, "/api/v2/services/sips1/instances"),
        (Method::DELETE, "/api/v2/services/sips1/maintenance"),
        (Method::POST, "/api/v2/alerts/receivers/any/test"),
    ];
    for (method, path) in refused {
        let response = send(&client, method, &d.url(path), Some(LOBBY), None).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_refused_and_lock_out_their_address_only() {
    let d = TestDaemon::start(&config(
        "[auth]\nmax_failures = 3\nlockout = \"1m\"",
        &["lobby"],
    ));
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let url = d.url("/api/v2/services");
    let guesser = from("127.0.0.1");
    let before = send(&guesser, Method::GET, &url, Some(LOBBY), None).await;
    let cookie = common::session_cookie(&before);

    // Another system's Bearer token is not one of ours; the browser is not challenged when
    // the page's script asks, and is otherwise.
    let foreign = send(&guesser, Method::GET, &url, Some("eyJhbGciOi"), None).await;
    assert_eq!(foreign.status(), StatusCode::UNAUTHORIZED);
    assert!(foreign.headers().get("www-authenticate").is_none());
    let message = foreign.json::<Value>().await.unwrap()["statusMessage"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("not a servicewatch token"),
        "{message}"
    );
    let plain = guesser.get(&url).bearer_auth(GUESS).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        plain.headers()["www-authenticate"],
        r#"Basic realm="servicewatch", charset="UTF-8""#
    );
    assert_eq!(
        plain.json::<Value>().await.unwrap()["statusMessage"],
        REVOKED
    );
    for _ in 0..2 {
        let (status, body) = get(&url, GUESS).await;
        assert_eq!(
            (status, body["statusMessage"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(REVOKED))
        );
    }

    // Locked out: even the right token is refused from that address, as a password is.
    let locked = send(&guesser, Method::GET, &url, Some(LOBBY), None).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    let neighbour = send(&from("127.0.0.2"), Method::GET, &url, Some(LOBBY), None).await;
    assert_eq!(neighbour.status(), StatusCode::OK);
    // A login made before goes on by its cookie.
    let by_cookie = send(&guesser, Method::GET, &url, None, Some(&cookie)).await;
    assert_eq!(by_cookie.status(), StatusCode::OK);
    assert_eq!(
        d.metric("servicewatch_display_login_failures_total").await,
        Some(3.0)
    );
    assert_eq!(
        d.metric("servicewatch_login_lockouts_total").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_logs_in_again_by_itself_after_a_restart() {
    let toml = config("", &["lobby"]);
    let first = DaemonProcess::spawn(&toml);
    let client = reqwest::Client::new();
    let login = send(
        &client,
        Method::GET,
        &first.url("/api/v2/services"),
        Some(LOBBY),
        None,
    )
    .await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = common::session_cookie(&login);
    drop(first);

    let second = DaemonProcess::spawn(&toml);
    let url = second.url("/api/v2/services?fields=id");
    let stale = send(&client, Method::GET, &url, None, Some(&cookie)).await;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        stale.json::<Value>().await.unwrap()["statusMessage"],
        "the session has expired; log in again"
    );
    // The page sends its token with the stale cookie: no one types anything.
    let again = send(&client, Method::GET, &url, Some(LOBBY), Some(&cookie)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let renewed = common::session_cookie(&again);
    assert_ne!(renewed, cookie);
    let by_cookie = send(&client, Method::GET, &url, None, Some(&renewed)).await;
    assert_eq!(by_cookie.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_display_and_sighup_revoke_it_at_once() {
    let p = DaemonProcess::spawn(&config("", &["lobby", "hall"]));
    let d = TestDaemon::attach(&p.addr);
    let client = reqwest::Client::new();
    let url = p.url("/api/v2/services");
    let lobby = common::session_cookie(&send(&client, Method::GET, &url, Some(LOBBY), None).await);
    let hall = common::session_cookie(&send(&client, Method::GET, &url, Some(HALL), None).await);
    let mut ws = WsClient::try_open(&d, &[("cookie", lobby.as_str())])
        .await
        .expect("the cookie authenticates the upgrade");
    ws.handshake().await;
    ws.call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    ws.connect().await;

    // The file as `spawn` wrote it, without the lobby.
    p.reload(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n{}",
        config("", &["hall"])
    ));
    // Service messages may come first (the first probes end meanwhile), then the close.
    ws.closed_for_revocation(WITHIN).await;
    let stale = send(&client, Method::GET, &url, None, Some(&lobby)).await;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = get(&url, LOBBY).await;
    assert_eq!(
        (status, body["statusMessage"].as_str()),
        (StatusCode::UNAUTHORIZED, Some(REVOKED))
    );
    // The other display noticed nothing.
    let kept = send(&client, Method::GET, &url, None, Some(&hall)).await;
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(p.log_lines("users or displays removed or changed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_token_and_entry_work_as_printed() {
    let out = Command::new(BIN)
        .args(["display-token", "kiosk-7", "--contact-center", "voice-only"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("shown once"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let token = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("swd_"))
        .expect("a token line")
        .to_string();
    assert_eq!(token.len(), 4 + 43);
    assert!(
        stdout.contains(&format!("https://HOST/#display={token}")),
        "{stdout}"
    );
    let entry = &stdout[stdout.find("[[auth.display]]").expect("an entry")..];

    let p = DaemonProcess::spawn(&format!("{entry}\n{}", config("", &[])));
    // 503 until the first probe round has assessed the service.
    let url = p.url("/api/v2/services/sips1");
    let body = eventually(WITHIN, "the service read with the token", || async {
        let (status, body) = get(&url, &token).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{body}");
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(body["service"][0]["id"], "sips1");

    let refused = Command::new(BIN)
        .args(["display-token", "no spaces"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn check_config_names_a_bad_token_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("servicewatch.toml");
    let good = config("", &["lobby"]);
    std::fs::write(&path, good.replace(&sha256_hex(LOBBY), LOBBY)).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("auth.display[0].token_sha256: must be 64 lowercase hex digits"),
        "{stderr}"
    );
    assert!(!stderr.contains(LOBBY), "the value is not echoed: {stderr}");
    std::fs::write(&path, good).unwrap();
    let ok = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
}
