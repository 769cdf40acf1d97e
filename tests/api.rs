//! The Services API as a client sees it: shapes byte for byte, fields, filters, and every
//! error in the GWS envelope.

mod common;

use std::time::Duration;

use common::{Backend, Mode, TestDaemon, eventually};
use reqwest::Method;

/// A daemon with an Active Voice pair (on its primary) and an Inactive Stat Server.
async fn fixture() -> (TestDaemon, Backend) {
    let voice = Backend::start(Mode::Accept).await;
    // Port 1 on loopback: nothing listens, connections are refused.
    let d = TestDaemon::start(&format!(
        r#"[[service]]
id = "sips1"
name = "SIPS1"
type = "Voice"
attributes = {{ sipPort = 5060, publicHost = "sip.example.com" }}
primary = {}
check = {{ interval = "100ms", timeout = "300ms", jitter = 0.0 }}

[[service]]
id = "statserver"
name = "StatServer"
type = "Reporting"
primary = {{ host = "127.0.0.1", port = 1 }}
check = {{ interval = "100ms", timeout = "300ms", jitter = 0.0 }}
"#,
        voice.toml()
    ));
    eventually(Duration::from_secs(3), "sips1 Active", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;
    (d, voice)
}

/// Replaces the `stateSince` timestamps, the one part of an answer that varies by run.
fn stable(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(at) = rest.find(r#""stateSince":""#) {
        let start = at + r#""stateSince":""#.len();
        out.push_str(&rest[..start]);
        out.push('T');
        let end = start + rest[start..].find('"').unwrap();
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

const SIPS1: &str = r#"{"id":"sips1","name":"SIPS1","type":"Voice","state":"Active","servingInstance":"primary","stateSince":"T","sipPort":5060,"publicHost":"sip.example.com"}"#;
const STATSERVER: &str = r#"{"id":"statserver","name":"StatServer","type":"Reporting","state":"Inactive","stateSince":"T"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_shapes_byte_for_byte() {
    let (d, _voice) = fixture().await;
    let base = d.url("/api/v2/services");

    let (status, body) = d.get("/api/v2/services").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(r#"{{"statusCode":0,"uris":["{base}/sips1","{base}/statserver"]}}"#)
    );

    let (status, body) = d.get("/api/v2/services?fields=*").await;
    assert_eq!(status, 200);
    assert_eq!(
        stable(&body),
        format!(r#"{{"statusCode":0,"services":[{SIPS1},{STATSERVER}]}}"#)
    );

    let (status, body) = d.get("/api/v2/services/sips1").await;
    assert_eq!(status, 200);
    assert_eq!(
        stable(&body),
        format!(r#"{{"statusCode":0,"service":[{SIPS1}]}}"#)
    );
    assert_eq!(
        stable(&d.get("/api/v2/services/sips1?fields=*").await.1),
        stable(&body)
    );

    let (_, body) = d.get("/api/v2/services/sips1?fields=name,state").await;
    assert_eq!(
        body,
        r#"{"statusCode":0,"service":[{"name":"SIPS1","state":"Active"}]}"#
    );

    let (_, body) = d.get("/api/v2/services?fields=id,state,sipPort").await;
    assert_eq!(
        body,
        r#"{"statusCode":0,"services":[{"id":"sips1","state":"Active","sipPort":5060},{"id":"statserver","state":"Inactive"}]}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_json_with_no_caching() {
    let (d, _voice) = fixture().await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(d.url(path))
            .basic_auth(common::USER, Some(common::PASSWORD))
            .send()
    };
    let response = get("/api/v2/services?fields=*").await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let response = get("/api/v2/services/nope").await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_with_and() {
    let (d, _voice) = fixture().await;
    let ids = |body: serde_json::Value| d.ids_of(&body);
    assert_eq!(
        ids(d.json("/api/v2/services?fields=*&type=Voice").await),
        ["sips1"]
    );
    assert_eq!(
        ids(d.json("/api/v2/services?fields=id&state=Inactive").await),
        ["statserver"]
    );
    assert_eq!(
        ids(d
            .json("/api/v2/services?fields=*&type=Voice,Reporting")
            .await),
        ["sips1", "statserver"]
    );
    assert_eq!(
        ids(d
            .json("/api/v2/services?fields=*&type=Voice&state=Inactive")
            .await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(d.json("/api/v2/services?fields=*&sipPort=5060").await),
        ["sips1"]
    );
    assert_eq!(
        ids(d
            .json("/api/v2/services?fields=*&servingInstance=primary")
            .await),
        ["sips1"]
    );
    // Without fields, a filtered list is a list of URIs.
    let uris = d.json("/api/v2/services?state=Inactive").await;
    assert_eq!(
        uris["uris"],
        serde_json::json!([d.url("/api/v2/services/statserver")])
    );
}

/// Asserts an error answer: HTTP status, and a body of exactly statusCode and statusMessage.
async fn assert_error(d: &TestDaemon, method: Method, path: &str, http: u16, code: u64) -> String {
    let (status, body) = d.request(method.clone(), path).await;
    assert_eq!(status, http, "{method} {path}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let object = json.as_object().unwrap();
    assert_eq!(
        object.len(),
        2,
        "{method} {path}: only statusCode and statusMessage: {body}"
    );
    assert_eq!(json["statusCode"], code, "{method} {path}: {body}");
    json["statusMessage"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_in_the_gws_envelope() {
    let (d, _voice) = fixture().await;
    let get = Method::GET;

    let (_, body) = d.get("/api/v2/services/nope").await;
    assert_eq!(
        body,
        r#"{"statusCode":6,"statusMessage":"no service with id \"nope\""}"#
    );

    let message = assert_error(&d, get.clone(), "/api/v2/services?fields=id,bogus", 400, 2).await;
    assert!(
        message.starts_with("unknown field \"bogus\"; known fields: "),
        "{message}"
    );
    assert!(
        message.contains("sipPort"),
        "operator attributes are fields too: {message}"
    );
    assert_error(
        &d,
        get.clone(),
        "/api/v2/services/sips1?fields=bogus",
        400,
        2,
    )
    .await;
    assert_error(&d, get.clone(), "/api/v2/services?fields=", 400, 2).await;
    let message = assert_error(
        &d,
        get.clone(),
        "/api/v2/services?fields=*&type=Fax",
        400,
        2,
    )
    .await;
    assert_eq!(
        message,
        "\"Fax\" is not a valid type; expected one of Provisioning, Voice, Reporting, Media"
    );
    assert_error(&d, get.clone(), "/api/v2/services?state=active", 400, 2).await;
    assert_error(&d, get.clone(), "/api/v2/services?color=red", 400, 2).await;
    assert_error(&d, get.clone(), "/api/v2/services/sips1?type=Voice", 400, 2).await;

    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        assert_error(&d, method.clone(), "/api/v2/services", 405, 3).await;
        assert_error(&d, method.clone(), "/api/v2/services/sips1", 405, 3).await;
    }
    let response = reqwest::Client::new()
        .post(d.url("/api/v2/services"))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, HEAD");

    // HEAD is served wherever GET is: the same head, no body.
    let client = reqwest::Client::new();
    for path in ["/api/v2/services?fields=*", "/api/v2/services/sips1"] {
        let get = client
            .get(d.url(path))
            .basic_auth(common::USER, Some(common::PASSWORD))
            .send()
            .await
            .unwrap();
        let get_length = get.headers()["content-length"].clone();
        let get_body = get.bytes().await.unwrap();
        let head = client
            .head(d.url(path))
            .basic_auth(common::USER, Some(common::PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()["content-length"], get_length, "{path}");
        assert_eq!(get_length, get_body.len().to_string().as_str());
        assert!(head.bytes().await.unwrap().is_empty(), "{path}: no body");
    }
    // What clients append is accepted: jQuery's cache buster, GWS's subresources.
    assert_eq!(
        d.get("/api/v2/services?fields=*&_=1700000000&subresources=*")
            .await,
        d.get("/api/v2/services?fields=*").await
    );
    assert_eq!(d.get("/api/v2/services/sips1?_=1").await.0, 200);
    let anonymous = client.head(d.url("/api/v2/services")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "HEAD needs credentials too");

    assert_error(&d, get.clone(), "/api/v2/nothing", 404, 6).await;
    assert_error(&d, get.clone(), "/index.html", 404, 6).await;
    assert_error(&d, get.clone(), "/api/v2/services/sips1/extra", 404, 6).await;
    assert_error(&d, Method::POST, "/elsewhere", 404, 6).await;

    // After all that, the daemon still serves.
    assert_eq!(d.get("/api/v2/services").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_url_and_base_path_shape_the_uris() {
    let d = TestDaemon::start(
        "public_url = \"https://gws.example.com:8443/\"\nbase_path = \"/gws/api/v2\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\n",
    );
    let body = d.json("/gws/api/v2/services").await;
    assert_eq!(
        body["uris"],
        serde_json::json!(["https://gws.example.com:8443/gws/api/v2/services/sips1"])
    );
    assert_eq!(
        d.get("/api/v2/services").await.0,
        404,
        "the default prefix is not served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused_alone() {
    let d = TestDaemon::start(
        "[limits]\nmax_header_size = 4096\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\n",
    );
    let client = reqwest::Client::new();
    for padding in [6_000, 200_000] {
        let response = client
            .get(d.url("/api/v2/services"))
            .basic_auth(common::USER, Some(common::PASSWORD))
            .header("x-padding", "p".repeat(padding))
            .send()
            .await;
        // Past the transport's own bound the server may close before the client has sent
        // everything; either way nothing is served.
        let Ok(response) = response else { continue };
        assert_eq!(response.status(), 431, "{padding}-byte header");
        // The transport's own refusal (past 128 KiB) comes before any handler: no body.
        if padding == 6_000 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["statusCode"], 2, "{body}");
            assert!(
                body["statusMessage"]
                    .as_str()
                    .unwrap()
                    .ends_with("at most 4096 are accepted"),
                "{body}"
            );
        }
    }
    // Everyone else is served.
    assert_eq!(d.ids().await, ["sips1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_zero_closes_each_connection_after_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = TestDaemon::start(
        "keep_alive = \"0s\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\n",
    );
    let mut tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let request = format!(
        "GET /api/v2/services HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        common::basic_header()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection after the answer")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_list_is_not_sent_again() {
    let (d, mut voice) = fixture().await;
    eventually(Duration::from_secs(5), "sips1 Active", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;
    let client = reqwest::Client::new();
    let get = |etag: Option<String>| {
        let mut request = client
            .get(d.url("/api/v2/services?fields=*"))
            .basic_auth(common::USER, Some(common::PASSWORD));
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    let first = get(None).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    // Polling with the tag: nothing changed, nothing sent.
    let again = get(Some(etag.clone())).await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    // The same for one service, and for a list of tags that names it.
    let one = client
        .get(d.url("/api/v2/services/sips1"))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .header("if-none-match", format!("\"other\", {etag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 304);
    // A change: the old tag no longer matches, and the new answer shows it.
    voice.close().await;
    let changed = eventually(Duration::from_secs(5), "a new answer", || async {
        let answer = get(Some(etag.clone())).await.unwrap();
        (answer.status() == 200).then_some(answer)
    })
    .await;
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    let body: serde_json::Value = changed.json().await.unwrap();
    assert_eq!(body["services"][0]["state"], "Inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_list_is_gzipped_for_who_accepts_it() {
    use std::io::Read;
    let (d, _voice) = fixture().await;
    let client = reqwest::Client::new();
    let get = |path: &str, encoding: Option<&str>| {
        let mut request = client
            .get(d.url(path))
            .basic_auth(common::USER, Some(common::PASSWORD));
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        request.send()
    };
    let plain = get("/api/v2/services?fields=*", None).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_tag = plain.headers()["etag"].clone();
    let plain = plain.bytes().await.unwrap();
    let gzipped = get("/api/v2/services?fields=*", Some("br, gzip;q=0.8"))
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert!(
        gzipped
            .headers()
            .get_all("vary")
            .iter()
            .any(|v| v == "accept-encoding"),
        "{:?}",
        gzipped.headers()
    );
    assert_ne!(
        gzipped.headers()["etag"],
        plain_tag,
        "each encoding its own tag"
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gzipped.bytes().await.unwrap()[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain, "the same answer");
    // Refused with q=0, or a filtered or projected answer: sent as it is.
    for (path, encoding) in [
        ("/api/v2/services?fields=*", "gzip;q=0"),
        ("/api/v2/services?fields=id", "gzip"),
        ("/api/v2/services?fields=*&type=Voice", "gzip"),
        ("/api/v2/services/sips1", "gzip"),
    ] {
        let answer = get(path, Some(encoding)).await.unwrap();
        assert!(
            answer.headers().get("content-encoding").is_none(),
            "{path} {encoding}"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["statusCode"], 0, "{path}");
    }
}
