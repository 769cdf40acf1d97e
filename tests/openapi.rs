//! The OpenAPI description (`docs/openapi.json`) holds against real answers: every answer
//! the daemon gives to a set of real requests, good and bad, has a status the description
//! lists for that operation and a body its schema accepts; the daemon serves the
//! description; and schemathesis, run against the live daemon, finds nothing.

mod common;

use std::path::Path;

use common::bayeux::LpClient;
use common::{Backend, Mode, TestDaemon, eventually};
use serde_json::{Value, json};

const CHECK: &str =
    r#"check = { interval = "50ms", timeout = "300ms", rise = 1, fall = 1, jitter = 0.0 }"#;

fn description() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the description is JSON")
}

/// Checks an answer against the description of `method` on `path` (as the description
/// spells the path): its status is listed, and its body fits the schema listed with it.
fn conforms(doc: &Value, path: &str, method: &str, status: u16, body: &str) {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not described");
    let mut response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the description does not list: {body}"
    );
    if let Some(reference) = response["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/responses/");
        response = &doc["components"]["responses"][name];
    }
    let Some(schema) = response["content"]["application/json"]["schema"].as_object() else {
        return;
    };
    // The schema, resolving its references within the description.
    let mut root = Value::Object(schema.clone());
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    let value: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {body}"));
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not fit its schema: {errors:?}\n{body}"
    );
}

async fn daemon() -> (TestDaemon, Backend) {
    let backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[notifications]\nmax_message_size = 4096\n[[service]]\nid = \"sips1\"\nname = \"SIPS1\"\ntype = \"Voice\"\nattributes = {{ sipPort = 5060 }}\nprimary = {}\n{CHECK}\n[[service]]\nid = \"stat\"\nname = \"Stat\"\ntype = \"Reporting\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n{CHECK}\n",
        backend.toml()
    ));
    eventually(
        std::time::Duration::from_secs(3),
        "sips1 Active",
        || async { (d.state_of("sips1").await.0 == "Active").then_some(()) },
    )
    .await;
    (d, backend)
}

async fn get_as(url: &str, login: Option<(&str, &str)>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some((user, password)) = login {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_fit_the_description() {
    let doc = description();
    let (d, _backend) = daemon().await;
    let login = Some((common::USER, common::PASSWORD));

    let gets = [
        ("/services", "/api/v2/services", 200),
        ("/services", "/api/v2/services?fields=*", 200),
        (
            "/services",
            "/api/v2/services?fields=id,%20state&state=Active,Inactive",
            200,
        ),
        (
            "/services",
            "/api/v2/services?fields=*&type=Voice&_=123",
            200,
        ),
        ("/services", "/api/v2/services?fields=nonsense", 400),
        ("/services", "/api/v2/services?state=Sleeping", 400),
        ("/services", "/api/v2/services?fields=", 400),
        ("/services/{id}", "/api/v2/services/sips1", 200),
        (
            "/services/{id}",
            "/api/v2/services/stat?fields=sipPort,state",
            200,
        ),
        ("/services/{id}", "/api/v2/services/nope", 404),
        ("/services/{id}", "/api/v2/services/sips1?fields=bogus", 400),
        // The test user is an agent: the instance detail is for supervisors and admins.
        (
            "/services/{id}/instances",
            "/api/v2/services/sips1/instances",
            403,
        ),
        (
            "/services/{id}/instances",
            "/api/v2/services/nope/instances",
            404,
        ),
        ("/redundancy", "/api/v2/redundancy", 200),
        // No [history] path and no StateDirectory: no history kept.
        (
            "/services/{id}/history",
            "/api/v2/services/sips1/history",
            404,
        ),
        (
            "/services/{id}/history",
            "/api/v2/services/sips1/history?limit=0",
            400,
        ),
        (
            "/services/{id}/availability",
            "/api/v2/services/sips1/availability",
            404,
        ),
        (
            "/services/{id}/availability",
            "/api/v2/services/sips1/availability?maintenance=no",
            400,
        ),
        ("/availability", "/api/v2/availability?_=1", 404),
        ("/availability", "/api/v2/availability?since=x", 400),
        // Tokens and the audit trail are for admins.
        ("/tokens", "/api/v2/tokens", 403),
        ("/audit", "/api/v2/audit", 403),
        ("/notifications", "/api/v2/notifications", 400),
        ("/openapi.json", "/api/v2/openapi.json", 200),
    ];
    for (path, url, expected) in gets {
        let (status, body) = get_as(&d.url(url), login).await;
        assert_eq!(status, expected, "GET {url}: {body}");
        conforms(&doc, path, "get", status, &body);
        let (status, body) = get_as(&d.url(url), None).await;
        assert_eq!(status, 401, "GET {url} without credentials");
        conforms(&doc, path, "get", status, &body);
    }

    for url in ["sips1", "stat"].map(|id| format!("/api/v2/services/{id}/instances")) {
        let (status, body) =
            get_as(&d.url(&url), Some((common::SUPERVISOR, common::PASSWORD))).await;
        assert_eq!(status, 200, "GET {url} as a supervisor: {body}");
        conforms(&doc, "/services/{id}/instances", "get", status, &body);
    }

    // The alerts firing (stat has no server that answers: ServiceInactive).
    let (status, body) = get_as(
        &d.url("/api/v2/alerts"),
        Some((common::SUPERVISOR, common::PASSWORD)),
    )
    .await;
    assert_eq!(status, 200, "GET /alerts as a supervisor: {body}");
    assert!(body.contains("ServiceInactive"), "{body}");
    conforms(&doc, "/alerts", "get", status, &body);

    // A field another service has is accepted on one that lacks it, and left out.
    let (_, body) = get_as(&d.url("/api/v2/services/stat?fields=sipPort,state"), login).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["service"][0], json!({"state": "Inactive"}));

    // The served description is this one, fitted to the daemon.
    let (_, served) = get_as(&d.url("/api/v2/openapi.json"), login).await;
    let served: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(served["paths"], doc["paths"]);
    assert_eq!(served["servers"][0]["url"], "/api/v2");
    let fields = served["components"]["parameters"]["fields"]["schema"]["pattern"]
        .as_str()
        .unwrap();
    assert!(fields.contains("sipPort"), "{fields}");

    // Long-polling: replies, Bayeux refusals, and bodies the HTTP layer refuses.
    let mut lp = LpClient::new(&d);
    let posts: [(&str, String, u16); 6] = [
        ("/handshake", json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]).to_string(), 200),
        ("", json!({"channel":"/meta/connect","clientId":"unknown","connectionType":"long-polling"}).to_string(), 200),
        ("/connect", "[{oops".to_string(), 400),
        ("", "[]".to_string(), 400),
        ("/subscribe", json!([{"channel": 5, "ext": [1]}]).to_string(), 200),
        ("", "x".repeat(5000), 413),
    ];
    for (suffix, body, expected) in posts {
        let (status, answer) = lp.post_raw(suffix, body.clone()).await;
        assert_eq!(status, expected, "POST {suffix} {body:.60}: {answer}");
        let path = if suffix.is_empty() {
            "/notifications"
        } else {
            "/notifications/{transport}"
        };
        conforms(&doc, path, "post", status, &answer.to_string());
    }
    lp.handshake().await;
    let reply = lp.subscribe(true).await;
    conforms(
        &doc,
        "/notifications/{transport}",
        "post",
        200,
        &Value::from(reply).to_string(),
    );
}

/// `method` on `path` as the admin, with a JSON `body` if given: the status and text.
async fn as_admin(
    d: &TestDaemon,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .request(method, d.url(path))
        .basic_auth(common::ADMIN, Some(common::PASSWORD));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_audit_answers_fit_the_description() {
    let doc = description();
    let (status, body) = as_admin(
        &daemon().await.0,
        reqwest::Method::GET,
        "/api/v2/tokens",
        None,
    )
    .await;
    assert_eq!(status, 404, "no history kept: {body}");
    conforms(&doc, "/tokens", "get", status, &body);
    let db = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(&format!(
        "[history]\npath = \"{}\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n",
        db.path().join("history.sqlite").display()
    ));
    let expires = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    let request = json!({"name": "ci", "scope": "read", "expires": expires.to_string()});
    let answers = [
        (
            "/tokens",
            "post",
            reqwest::Method::POST,
            "/api/v2/tokens",
            Some(request.clone()),
            201,
        ),
        (
            "/tokens",
            "post",
            reqwest::Method::POST,
            "/api/v2/tokens",
            Some(request),
            400,
        ),
        (
            "/tokens",
            "get",
            reqwest::Method::GET,
            "/api/v2/tokens",
            None,
            200,
        ),
        (
            "/tokens/{name}",
            "delete",
            reqwest::Method::DELETE,
            "/api/v2/tokens/ci",
            None,
            200,
        ),
        (
            "/tokens/{name}",
            "delete",
            reqwest::Method::DELETE,
            "/api/v2/tokens/ci",
            None,
            404,
        ),
        (
            "/audit",
            "get",
            reqwest::Method::GET,
            "/api/v2/audit?limit=0",
            None,
            400,
        ),
    ];
    for (path, method, verb, url, body, expected) in answers {
        let (status, answer) = as_admin(&d, verb, url, body).await;
        assert_eq!(status, expected, "{method} {url}: {answer}");
        conforms(&doc, path, method, status, &answer);
    }
    let trail = eventually(
        std::time::Duration::from_secs(5),
        "the trail written",
        || async {
            let (status, body) = as_admin(&d, reqwest::Method::GET, "/api/v2/audit", None).await;
            (status == 200 && body.contains("token.revoke")).then_some(body)
        },
    )
    .await;
    conforms(&doc, "/audit", "get", 200, &trail);
}

#[test]
fn every_described_operation_names_its_errors_in_the_envelope() {
    let doc = description();
    let methods = ["get", "head", "post", "put", "delete"];
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in methods {
            let Some(operation) = item.get(method) else {
                continue;
            };
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("401"),
                "{method} {path}: 401 not listed"
            );
            if method != "head" {
                assert!(
                    responses.contains_key("503"),
                    "{method} {path}: 503 (max_connections) not listed"
                );
            }
        }
    }
    assert_eq!(operations, 29, "every route of src/api/mod.rs is described");
}

#[test]
fn schemathesis_finds_nothing_against_the_live_daemon() {
    if std::env::var_os("SKIP_INTEROP_TESTS").is_some() {
        assert!(
            std::env::var_os("CI").is_none(),
            "SKIP_INTEROP_TESTS is set under CI; schemathesis must run there"
        );
        eprintln!("schemathesis skipped: SKIP_INTEROP_TESTS is set");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/schemathesis.sh");
    let output = std::process::Command::new("bash")
        .arg(script)
        .arg("--short")
        .env("SW_BIN", env!("CARGO_BIN_EXE_servicewatch"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("generated") || l.contains("failures") || l.contains("passed"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
