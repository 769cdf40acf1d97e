//! Who may see what, over REST and over notifications: credentials, roles, contact-center
//! features, the session cookie a Basic login sets, and what a reload of the users ends.

mod common;

use std::time::Duration;

use common::bayeux::{LpClient, Received, SERVICES, WsClient, changes};
use common::daemon::basic_of;
use common::{Backend, Mode, TestDaemon, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WITHIN: Duration = Duration::from_secs(5);
const CHECK: &str = r#"check = { interval = "50ms", fast_interval = "50ms", timeout = "300ms", rise = 1, fall = 1, jitter = 0.0 }"#;
/// Where nothing listens: a service there is Inactive.
const NOWHERE: &str = r#"{ host = "127.0.0.1", port = 1 }"#;

/// Two contact centers: one with Voice only, one with Media only; a user in each, and a
/// user without a role. All services on nothing.
fn daemon() -> TestDaemon {
    TestDaemon::start(&config(NOWHERE, NOWHERE, ""))
}

/// The configuration of [`daemon`] with the Voice service `sips1` on `sips`, the Media
/// service `ixn` on `ixn`, and `extra` at the top (a `[notifications]` table, say).
fn config(sips: &str, ixn: &str, extra: &str) -> String {
    config_with_users(sips, ixn, extra, &["vera", "mike", "nobody"])
}

/// [`config`] with only the `users` named (of vera, mike and nobody).
fn config_with_users(sips: &str, ixn: &str, extra: &str, users: &[&str]) -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| servicewatch::password::hash("pw").unwrap());
    let all = [
        ("vera", r#"["agent"]"#, "voice-only"),
        ("mike", r#"["supervisor"]"#, "media-only"),
        ("nobody", "[]", "voice-only"),
    ];
    let users: String = all
        .iter()
        .filter(|(name, ..)| users.contains(name))
        .map(|(name, roles, cc)| {
            format!("[[user]]\nname = \"{name}\"\npassword = \"{hash}\"\nroles = {roles}\ncontact_center = \"{cc}\"\n\n")
        })
        .collect();
    format!(
        r#"{extra}

[[service]]
id = "sips1"
type = "Voice"
attributes = {{ sipPort = 5060 }}
primary = {sips}
{CHECK}

[[service]]
id = "ixn"
type = "Media"
attributes = {{ mediaSecret = "x" }}
primary = {ixn}
{CHECK}

[[contact_center]]
id = "voice-only"
features = ["api-voice"]

[[contact_center]]
id = "media-only"
features = ["api-multimedia"]

{users}"#
    )
}

async fn get(d: &TestDaemon, path: &str, user: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(d.url(path));
    if let Some((name, password)) = user {
        request = request.basic_auth(name, Some(password));
    }
    request.send().await.unwrap()
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_or_wrong_credentials_get_401_and_no_role_gets_403() {
    let d = daemon();
    for path in [
        "/api/v2/services",
        "/api/v2/services?fields=*",
        "/api/v2/services/sips1",
        "/api/v2/no-such-resource",
    ] {
        let response = get(&d, path, None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="servicewatch", charset="UTF-8""#
        );
        let json = body(response).await;
        assert_eq!(json["statusCode"], 20);
        assert_eq!(json.as_object().unwrap().len(), 2);

        let wrong = get(&d, path, Some(("vera", "not-pw"))).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            body(wrong).await["statusMessage"],
            "the user name or password is wrong"
        );
        let unknown = get(&d, path, Some(("eve", "pw"))).await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

        let roleless = get(&d, path, Some(("nobody", "pw"))).await;
        assert_eq!(roleless.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body(roleless).await["statusCode"], 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_contact_center_sees_only_its_features() {
    let d = daemon();
    let vera = Some(("vera", "pw"));
    let mike = Some(("mike", "pw"));
    assert_eq!(
        d.ids_of(&body(get(&d, "/api/v2/services?fields=*", vera).await).await),
        ["sips1"]
    );
    assert_eq!(
        d.ids_of(&body(get(&d, "/api/v2/services?fields=id", mike).await).await),
        ["ixn"]
    );
    let uris = body(get(&d, "/api/v2/services", vera).await).await;
    assert_eq!(
        uris["uris"],
        serde_json::json!([d.url("/api/v2/services/sips1")])
    );

    // A hidden service answers exactly like one that does not exist.
    let hidden = get(&d, "/api/v2/services/ixn", vera).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        hidden.text().await.unwrap(),
        r#"{"statusCode":6,"statusMessage":"no service with id \"ixn\""}"#
    );
    assert_eq!(
        get(&d, "/api/v2/services/sips1", mike).await.status(),
        StatusCode::NOT_FOUND
    );

    // Filters and fields reveal nothing either.
    let filtered = body(get(&d, "/api/v2/services?fields=*&type=Media", vera).await).await;
    assert_eq!(d.ids_of(&filtered), Vec::<String>::new());
    let field = get(&d, "/api/v2/services?fields=mediaSecret", vera).await;
    assert_eq!(
        field.status(),
        StatusCode::BAD_REQUEST,
        "an attribute of hidden services only is unknown"
    );
    let message = body(field).await["statusMessage"]
        .as_str()
        .unwrap()
        .to_string();
    let known = message.split("known fields:").nth(1).unwrap();
    assert!(
        !known.contains("mediaSecret"),
        "the list of known fields names no hidden attribute: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_login_sets_a_session_cookie_that_authenticates() {
    let d = daemon();
    let login = get(&d, "/api/v2/services", Some(("vera", "pw"))).await;
    assert_eq!(login.status(), StatusCode::OK);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.starts_with("SWSESSION="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "no Secure flag over plain HTTP: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let with_cookie = reqwest::Client::new()
        .get(d.url("/api/v2/services?fields=id"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), StatusCode::OK);
    assert!(
        with_cookie.headers().get("set-cookie").is_none(),
        "no new session per request"
    );
    assert_eq!(
        d.ids_of(&body(with_cookie).await),
        ["sips1"],
        "the cookie carries the user's visibility"
    );

    let forged = reqwest::Client::new()
        .get(d.url("/api/v2/services"))
        .header("cookie", "SWSESSION=00112233")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(forged).await["statusMessage"],
        "the session has expired; log in again"
    );
}

/// A daemon whose two services run on backends the test controls, both Active.
async fn live_daemon(extra: &str) -> (TestDaemon, Backend, Backend) {
    let sips = Backend::start(Mode::Accept).await;
    let ixn = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&sips.toml(), &ixn.toml(), extra));
    eventually(WITHIN, "both services Active", || async {
        let both = d.state_of("sips1").await.0 == "Active" && d.state_of("ixn").await.0 == "Active";
        both.then_some(())
    })
    .await;
    (d, sips, ixn)
}

/// The status of a refused WebSocket upgrade.
async fn refused_upgrade(d: &TestDaemon, headers: &[(&str, &str)]) -> u16 {
    match WsClient::try_open(d, headers).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => panic!("the upgrade with {headers:?} was accepted"),
        Err(other) => panic!("the upgrade failed otherwise: {other}"),
    }
}

fn handshake_batch() -> String {
    json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notification_path_needs_credentials() {
    let d = daemon();
    let wrong = basic_of("vera", "not-pw");
    let roleless = basic_of("nobody", "pw");
    assert_eq!(refused_upgrade(&d, &[]).await, 401);
    assert_eq!(
        refused_upgrade(&d, &[("authorization", wrong.as_str())]).await,
        401
    );
    assert_eq!(
        refused_upgrade(&d, &[("cookie", "SWSESSION=forged")]).await,
        401
    );
    assert_eq!(
        refused_upgrade(&d, &[("authorization", roleless.as_str())]).await,
        403
    );

    for suffix in ["", "/handshake", "/connect", "/subscribe"] {
        for (login, status, code) in [
            (None, 401, 20),
            (Some(("vera", "not-pw")), 401, 20),
            (Some(("eve", "pw")), 401, 20),
            (Some(("nobody", "pw")), 403, 5),
        ] {
            let client = LpClient::as_user(&d, login);
            let (got, body) = client.post_raw(suffix, handshake_batch()).await;
            assert_eq!(got, status, "{suffix} as {login:?}: {body}");
            assert_eq!(body["statusCode"], code, "{suffix} as {login:?}");
        }
    }
    // The right credentials pass on both transports.
    let mut lp = LpClient::as_user(&d, Some(("vera", "pw")));
    lp.handshake().await;
    let mut ws = WsClient::open_as(&d, "vera", "pw").await;
    ws.handshake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_carry_only_what_the_contact_center_sees() {
    let (d, mut sips, mut ixn) = live_daemon("").await;
    let mut vera = LpClient::as_user(&d, Some(("vera", "pw")));
    let mut mike = LpClient::as_user(&d, Some(("mike", "pw")));
    let ids = |batch: &[Value]| -> Vec<String> {
        changes(batch)
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    for (client, expected) in [(&mut vera, "sips1"), (&mut mike, "ixn")] {
        client.handshake().await;
        client.subscribe(true).await;
        let snapshot = client.connect().await;
        assert_eq!(ids(&snapshot), [expected], "the snapshot: {snapshot:?}");
    }

    // ixn changes first: had vera been sent it, it would wait in her queue ahead of sips1's.
    ixn.close().await;
    let batch = mike.connect().await;
    assert_eq!(ids(&batch), ["ixn"]);
    sips.close().await;
    let batch = vera.connect().await;
    assert_eq!(
        ids(&batch),
        ["sips1"],
        "vera hears of sips1 alone: {batch:?}"
    );
    assert_eq!(changes(&batch)[0]["state"], "Inactive");

    // The same over WebSocket.
    let mut vera_ws = WsClient::subscribed_as(&d, "vera", "pw").await;
    ixn.reopen().await;
    let batch = mike.connect().await;
    assert_eq!(ids(&batch), ["ixn"]);
    sips.reopen().await;
    let change = vera_ws.next_change(WITHIN).await;
    assert_eq!(change["id"], "sips1", "the first change vera's socket gets");
    assert_eq!(change["state"], "Active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_is_useless_to_another_user() {
    let d = daemon();
    let mut vera = LpClient::as_user(&d, Some(("vera", "pw")));
    vera.handshake().await;
    let mut mike = LpClient::as_user(&d, Some(("mike", "pw")));
    mike.client_id = vera.client_id.clone();
    let reply = mike
        .call(
            "/subscribe",
            json!({"channel":"/meta/subscribe","subscription":SERVICES}),
        )
        .await;
    assert_eq!(reply[0]["successful"], false);
    assert_eq!(
        reply[0]["error"],
        format!("402:{}:Unknown client", vera.client_id)
    );
    // Vera's session is untouched.
    let reply = vera.subscribe(false).await;
    assert_eq!(reply[0]["successful"], true, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_login_carries_to_the_websocket_and_long_polling() {
    let (d, mut sips, _ixn) = live_daemon("").await;
    // A browser page: one request with Basic, then the cookie alone.
    let login = reqwest::Client::new()
        .get(d.url("/api/v2/services?fields=id"))
        .basic_auth("vera", Some("pw"))
        .send()
        .await
        .unwrap();
    let cookie = common::session_cookie(&login);

    let mut ws = WsClient::try_open(&d, &[("cookie", cookie.as_str())])
        .await
        .expect("the cookie authenticates the upgrade");
    ws.handshake().await;
    let reply = ws
        .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    assert_eq!(reply[0]["successful"], true);
    ws.connect().await;

    let lp = LpClient::as_user(&d, None);
    let (status, body) = reqwest::Client::new()
        .post(d.url("/api/v2/notifications/handshake"))
        .header("cookie", &cookie)
        .body(handshake_batch())
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200);
    let body: Value = body.json().await.unwrap();
    assert_eq!(body[0]["successful"], true, "{body}");
    drop(lp);

    sips.close().await;
    let change = ws.next_change(WITHIN).await;
    assert_eq!(
        (change["id"].as_str(), change["state"].as_str()),
        (Some("sips1"), Some("Inactive"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_a_user_ends_their_notifications() {
    let (d, mut sips, mut ixn) = live_daemon("").await;
    let mut vera_ws = WsClient::subscribed_as(&d, "vera", "pw").await;
    let mut vera_lp = LpClient::as_user(&d, Some(("vera", "pw")));
    vera_lp.handshake().await;
    vera_lp.subscribe(false).await;
    vera_lp.connect().await;
    let mut mike = WsClient::subscribed_as(&d, "mike", "pw").await;

    // Vera's long-polling connect is held while the reload removes her.
    let held = tokio::spawn(async move { vera_lp.connect().await });
    eventually(WITHIN, "vera's connect to be held", || async {
        (d.metric("servicewatch_long_polls_held").await == Some(1.0)).then_some(())
    })
    .await;
    let summary = d
        .reload(&config_with_users(
            &sips.toml(),
            &ixn.toml(),
            "",
            &["mike", "nobody"],
        ))
        .await
        .expect("the reload applies");
    assert_eq!(summary.unchanged, 2, "{summary:?}");

    match vera_ws.recv_within(WITHIN).await {
        Some(Received::Closed(Some((code, reason)))) => {
            assert_eq!(code, CloseCode::Policy);
            assert_eq!(reason, "credentials revoked; log in again");
        }
        other => panic!("expected vera's socket closed, got {other:?}"),
    }
    let answer = tokio::time::timeout(WITHIN, held)
        .await
        .expect("the held connect is answered")
        .unwrap();
    assert_eq!(answer[0]["successful"], false);
    assert_eq!(answer[0]["advice"]["reconnect"], "handshake");
    // Handshaking again asks for credentials vera no longer has.
    let again = LpClient::as_user(&d, Some(("vera", "pw")));
    assert_eq!(again.post_raw("/handshake", handshake_batch()).await.0, 401);

    // Mike noticed nothing.
    ixn.close().await;
    let change = mike.next_change(WITHIN).await;
    assert_eq!(
        (change["id"].as_str(), change["state"].as_str()),
        (Some("ixn"), Some("Inactive"))
    );
    sips.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_take_every_session() {
    let d = TestDaemon::start(&config(
        NOWHERE,
        NOWHERE,
        "[notifications]\nmax_sessions_per_user = 2",
    ));
    let mut vera = LpClient::as_user(&d, Some(("vera", "pw")));
    vera.handshake().await;
    vera.handshake().await;
    let reply = vera
        .call("/handshake", json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}))
        .await;
    assert_eq!(reply[0]["successful"], false);
    assert_eq!(
        reply[0]["error"],
        "503::too many sessions for this user (at most 2)"
    );
    let mut mike = LpClient::as_user(&d, Some(("mike", "pw")));
    mike.handshake().await;
}

/// A handshake over a new WebSocket as vera: `Ok` with the client, or the refusal.
async fn try_session(d: &TestDaemon) -> Result<WsClient, String> {
    let mut c = WsClient::open_as(d, "vera", "pw").await;
    let reply = c
        .call(json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}))
        .await;
    if reply[0]["successful"] != true {
        return Err(reply[0]["error"].as_str().unwrap_or_default().to_string());
    }
    c.client_id = reply[0]["clientId"].as_str().unwrap().to_string();
    c.connect().await;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_websockets_do_not_hold_a_users_sessions() {
    // The session timeout (10 s) is far longer than any wait below.
    let d = TestDaemon::start(&config(
        NOWHERE,
        NOWHERE,
        "[notifications]\nmax_sessions_per_user = 3",
    ));
    // Quick connect, handshake, close cycles, three times the limit: each new handshake
    // gets a session within a second, taking the place of a closed one.
    for cycle in 0..9 {
        let started = std::time::Instant::now();
        let mut c = eventually(
            Duration::from_secs(1),
            "a session after closed ones",
            || async { try_session(&d).await.ok() },
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(1), "cycle {cycle}");
        c.ws.close(None).await.unwrap();
    }
    // Live sessions keep their place: with three open, a fourth is refused.
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(
            eventually(WITHIN, "a live session", || async {
                try_session(&d).await.ok()
            })
            .await,
        );
    }
    assert_eq!(
        try_session(&d).await.err().as_deref(),
        Some("503::too many sessions for this user (at most 3)")
    );
    // And they still work.
    for c in &mut live {
        let reply = c
            .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
            .await;
        assert_eq!(reply[0]["successful"], true, "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_out_their_address_only() {
    let d = TestDaemon::start(&config(
        NOWHERE,
        NOWHERE,
        "[auth]\nmax_failures = 3\nlockout = \"1s\"",
    ));
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let guesser = from("127.0.0.1");
    let login = |client: &reqwest::Client, user: &str, password: &str| {
        client
            .get(d.url("/api/v2/services"))
            .basic_auth(user, Some(password))
            .send()
    };
    for _ in 0..3 {
        let wrong = login(&guesser, "vera", "guess").await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused from that address now, over REST and Bayeux.
    let locked = login(&guesser, "vera", "pw").await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    let json = body(locked).await;
    assert_eq!(json["statusCode"], 20);
    assert!(
        json["statusMessage"]
            .as_str()
            .unwrap()
            .starts_with("too many failed logins from this address"),
        "{json}"
    );
    let lp = LpClient::as_user(&d, Some(("mike", "pw")));
    assert_eq!(lp.post_raw("/handshake", handshake_batch()).await.0, 429);

    // Another address is not affected, nor is the locked-out user there.
    let neighbour = from("127.0.0.2");
    assert_eq!(
        login(&neighbour, "vera", "pw").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        login(&neighbour, "mike", "pw").await.unwrap().status(),
        StatusCode::OK
    );

    // A login verified elsewhere passes even from the locked address (whoever sends it
    // knows the password); one never verified does not.
    assert_eq!(
        login(&guesser, "mike", "pw").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        login(&guesser, "nobody", "pw").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        d.metric("servicewatch_login_failures_total").await,
        Some(3.0)
    );
    assert_eq!(
        d.metric("servicewatch_login_lockouts_total").await,
        Some(1.0)
    );

    // The lockout ends: the never-verified login is checked again (and is role-less: 403).
    eventually(WITHIN, "the lockout to end", || async {
        let status = login(&guesser, "nobody", "pw").await.unwrap().status();
        (status == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
}
