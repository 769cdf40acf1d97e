//! API tokens: admins create, list and revoke them; each scope does what it allows and is
//! refused the rest; an expired token and a revoked one are refused with a message that
//! says which, a revoked one at once with its notification sessions; tokens survive a
//! restart; guessed tokens are throttled like passwords.

mod common;

use std::time::{Duration, SystemTime};

use common::bayeux::{SERVICES, WsClient};
use common::{ADMIN, PASSWORD, TestDaemon, USER, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(5);
const REVOKED: &str = "the API token is unknown or was revoked";

/// A Voice service `sips1` on nothing; the history database at `db` when given.
fn config(db: Option<&std::path::Path>, extra: &str) -> String {
    let history = db.map_or_else(String::new, |dir| {
        format!(
            "[history]\npath = \"{}\"\n",
            dir.join("history.sqlite").display()
        )
    });
    format!(
        "{history}{extra}\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n"
    )
}

/// Who calls: a user (password [`PASSWORD`]) or a Bearer token.
#[derive(Clone, Copy)]
enum As<'a> {
    User(&'a str),
    Token(&'a str),
}

/// `method` on `path` as `who`, with a JSON `body` if given: the status and JSON answer.
async fn call(
    d: &TestDaemon,
    who: As<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, d.url(path));
    request = match who {
        As::User(user) => request.basic_auth(user, Some(PASSWORD)),
        As::Token(token) => request.bearer_auth(token),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(secs)).to_string()
}

/// Creates token `name` of `scope` as `who`, expiring in `secs`; returns the token.
async fn create(d: &TestDaemon, who: As<'_>, name: &str, scope: &str, secs: u64) -> String {
    let body = json!({"name": name, "scope": scope, "expires": in_secs(secs)});
    let (status, answer) = call(d, who, Method::POST, "/api/v2/tokens", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["token"].as_str().expect("the token").to_string()
}

const MAINTENANCE: &str = "/api/v2/services/sips1/maintenance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_does_what_it_allows_and_no_more() {
    let db = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(&config(Some(db.path()), ""));
    let admin = As::User(ADMIN);
    let body = json!({"name": "reader", "scope": "read", "expires": in_secs(86_400)});
    let (status, created) = call(&d, admin, Method::POST, "/api/v2/tokens", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let read = created["token"].as_str().unwrap().to_string();
    assert!(read.starts_with("swt_") && read.len() == 47, "{read}");
    let record = &created["apiToken"];
    assert_eq!(
        (&record["name"], &record["scope"], &record["contactCenter"]),
        (&json!("reader"), &json!("read"), &json!("all"))
    );
    assert_eq!(
        (&record["createdBy"], &record["expired"]),
        (&json!(ADMIN), &json!(false))
    );
    let maintain = create(&d, admin, "ci", "maintenance", 86_400).await;
    let root = create(&d, admin, "root", "admin", 86_400).await;

    // Shown once: the list has every record and no token, nor its hash.
    let (status, list) = call(&d, admin, Method::GET, "/api/v2/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["apiTokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci", "reader", "root"]);
    let text = list.to_string();
    for token in [&read, &maintain, &root] {
        assert!(!text.contains(token.as_str()), "{text}");
    }
    assert!(list["apiTokens"][0].get("token").is_none());
    assert!(list["apiTokens"][0].get("sha256").is_none());

    // read: reads; may not set maintenance.
    let (status, _) = call(&d, As::Token(&read), Method::GET, "/api/v2/services", None).await;
    assert_eq!(status, StatusCode::OK);
    let why = json!({"reason": "upgrade"});
    let (status, _) = call(
        &d,
        As::Token(&read),
        Method::PUT,
        MAINTENANCE,
        Some(why.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // maintenance: sets and ends maintenance; no other admin action.
    let ci = As::Token(&maintain);
    let (status, set) = call(&d, ci, Method::PUT, MAINTENANCE, Some(why)).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["maintenance"]["by"], "token:ci");
    let (status, _) = call(&d, ci, Method::DELETE, MAINTENANCE, None).await;
    assert_eq!(status, StatusCode::OK);
    let another = json!({"name": "x", "scope": "read", "expires": in_secs(60)});
    let (status, _) = call(
        &d,
        ci,
        Method::POST,
        "/api/v2/tokens",
        Some(another.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&d, ci, Method::GET, "/api/v2/audit", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &d,
        ci,
        Method::GET,
        "/api/v2/services/sips1/instances",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an agent's reads only");

    // admin: creates tokens.
    let (status, made) = call(
        &d,
        As::Token(&root),
        Method::POST,
        "/api/v2/tokens",
        Some(another.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["apiToken"]["createdBy"], "token:root");

    // An agent user may not touch tokens.
    let agent = As::User(USER);
    let (status, refused) = call(&d, agent, Method::POST, "/api/v2/tokens", Some(another)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused["statusCode"], 5);
    let (status, _) = call(&d, agent, Method::GET, "/api/v2/tokens", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&d, agent, Method::DELETE, "/api/v2/tokens/ci", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_clear_messages() {
    let db = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(&config(Some(db.path()), ""));
    create(&d, As::User(ADMIN), "taken", "read", 60).await;
    let refusals = [
        (
            json!({"name": "a", "scope": "root", "expires": in_secs(60)}),
            "scope: \"root\" is not a scope; use read, maintenance or admin",
        ),
        (
            json!({"name": "a", "scope": "read", "expires": "2020-01-01T00:00:00Z"}),
            "expires: 2020-01-01T00:00:00Z has passed already",
        ),
        (
            json!({"name": "a", "scope": "read", "expires": in_secs(401 * 86_400)}),
            "expires: at most 400 days ahead",
        ),
        (
            json!({"name": "a", "scope": "read", "expires": "soon"}),
            "expires: \"soon\" is not a time",
        ),
        (
            json!({"name": "taken", "scope": "read", "expires": in_secs(60)}),
            "an API token named \"taken\" exists already",
        ),
        (
            json!({"name": "a", "scope": "read", "expires": in_secs(60), "contactCenter": "nope"}),
            "contactCenter: no [[contact_center]] has the id \"nope\"",
        ),
        (
            json!({"name": "a", "scope": "read"}),
            "missing field `expires`",
        ),
        (
            json!({"name": "a b", "scope": "read", "expires": in_secs(60)}),
            "name: 1 to 64 of",
        ),
    ];
    for (body, message) in refusals {
        let (status, answer) = call(
            &d,
            As::User(ADMIN),
            Method::POST,
            "/api/v2/tokens",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["statusCode"], 2);
        let said = answer["statusMessage"].as_str().unwrap();
        assert!(said.contains(message), "{body}: {said}");
    }
    let malformed = reqwest::Client::new()
        .post(d.url("/api/v2/tokens"))
        .basic_auth(ADMIN, Some(PASSWORD))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let answer: Value = malformed.json().await.unwrap();
    assert!(
        answer["statusMessage"]
            .as_str()
            .unwrap()
            .starts_with("the body must be JSON such as"),
        "{answer}"
    );
    let (status, answer) = call(
        &d,
        As::User(ADMIN),
        Method::DELETE,
        "/api/v2/tokens/nope",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["statusMessage"], "no API token is named \"nope\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_as_expired() {
    let db = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(&config(Some(db.path()), ""));
    let token = create(&d, As::User(ADMIN), "brief", "read", 2).await;
    let (status, _) = call(&d, As::Token(&token), Method::GET, "/api/v2/services", None).await;
    assert_eq!(status, StatusCode::OK);
    let refused = eventually(Duration::from_secs(10), "the token refused", || async {
        let (status, body) =
            call(&d, As::Token(&token), Method::GET, "/api/v2/services", None).await;
        (status == StatusCode::UNAUTHORIZED).then_some(body)
    })
    .await;
    assert_eq!(
        refused["statusMessage"],
        "the API token has expired; an admin can create another"
    );
    let (_, list) = call(&d, As::User(ADMIN), Method::GET, "/api/v2/tokens", None).await;
    assert_eq!(list["apiTokens"][0]["expired"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_once_with_its_sessions() {
    let db = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(&config(Some(db.path()), ""));
    let token = create(&d, As::User(ADMIN), "wall", "read", 3600).await;
    let login = reqwest::Client::new()
        .get(d.url("/api/v2/services"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = common::session_cookie(&login);
    let mut ws = WsClient::try_open(&d, &[("cookie", cookie.as_str())])
        .await
        .expect("the token's cookie authenticates the upgrade");
    ws.handshake().await;
    ws.call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
        .await;
    ws.connect().await;

    let (status, revoked) = call(
        &d,
        As::User(ADMIN),
        Method::DELETE,
        "/api/v2/tokens/wall",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["apiToken"]["name"], "wall");
    let (status, body) = call(&d, As::Token(&token), Method::GET, "/api/v2/services", None).await;
    assert_eq!(
        (status, body["statusMessage"].as_str()),
        (StatusCode::UNAUTHORIZED, Some(REVOKED))
    );
    let by_cookie = reqwest::Client::new()
        .get(d.url("/api/v2/services"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::UNAUTHORIZED);
    ws.closed_for_revocation(WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_a_restart_and_revoked_ones_stay_revoked() {
    let db = tempfile::tempdir().unwrap();
    let toml = config(Some(db.path()), "");
    let first = TestDaemon::start(&toml);
    let kept = create(&first, As::User(ADMIN), "kept", "read", 3600).await;
    let gone = create(&first, As::User(ADMIN), "gone", "read", 3600).await;
    let (status, _) = call(
        &first,
        As::User(ADMIN),
        Method::DELETE,
        "/api/v2/tokens/gone",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    drop(first);

    let second = TestDaemon::start(&toml);
    let (status, _) = call(
        &second,
        As::Token(&kept),
        Method::GET,
        "/api/v2/services",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &second,
        As::Token(&gone),
        Method::GET,
        "/api/v2/services",
        None,
    )
    .await;
    assert_eq!(
        (status, body["statusMessage"].as_str()),
        (StatusCode::UNAUTHORIZED, Some(REVOKED))
    );
    let (_, list) = call(
        &second,
        As::User(ADMIN),
        Method::GET,
        "/api/v2/tokens",
        None,
    )
    .await;
    assert_eq!(list["apiTokens"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_throttled_like_passwords() {
    let db = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(&config(
        Some(db.path()),
        "[auth]\nmax_failures = 3\nlockout = \"1m\"",
    ));
    let token = create(&d, As::User(ADMIN), "real", "read", 3600).await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let url = d.url("/api/v2/services");
    let guesser = from("127.0.0.1");
    let malformed = guesser
        .get(&url)
        .bearer_auth("swt_short")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
    let said: Value = malformed.json().await.unwrap();
    assert!(
        said["statusMessage"]
            .as_str()
            .unwrap()
            .contains("not a servicewatch token"),
        "{said}"
    );
    let guess = format!("swt_{}", "g".repeat(43));
    for _ in 0..3 {
        let refused = guesser.get(&url).bearer_auth(&guess).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.json::<Value>().await.unwrap()["statusMessage"],
            REVOKED
        );
    }
    let locked = guesser.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    let neighbour = from("127.0.0.2")
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(neighbour.status(), StatusCode::OK);
    assert_eq!(
        d.metric("servicewatch_login_lockouts_total").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_history_database_no_token_can_be_kept() {
    let d = TestDaemon::start(&config(None, ""));
    let body = json!({"name": "a", "scope": "read", "expires": in_secs(60)});
    let (status, answer) = call(
        &d,
        As::User(ADMIN),
        Method::POST,
        "/api/v2/tokens",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        answer["statusMessage"]
            .as_str()
            .unwrap()
            .starts_with("no tokens can be kept: set [history] path"),
        "{answer}"
    );
    let (status, _) = call(&d, As::User(ADMIN), Method::GET, "/api/v2/tokens", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
