//! Who may see what on the REST API: credentials, roles, contact-center features, and the
//! session cookie a Basic login sets.

mod common;

use common::TestDaemon;
use reqwest::StatusCode;
use serde_json::Value;

/// Two contact centers: one with Voice only, one with Media only; a user in each, and a
/// user without a role.
fn daemon() -> TestDaemon {
    let hash = servicewatch::password::hash("pw").unwrap();
    TestDaemon::start(&format!(
        r#"[[service]]
id = "sips1"
type = "Voice"
attributes = {{ sipPort = 5060 }}
primary = {{ host = "127.0.0.1", port = 1 }}

[[service]]
id = "ixn"
type = "Media"
attributes = {{ mediaSecret = "x" }}
primary = {{ host = "127.0.0.1", port = 1 }}

[[contact_center]]
id = "voice-only"
features = ["api-voice"]

[[contact_center]]
id = "media-only"
features = ["api-multimedia"]

[[user]]
name = "vera"
password = "{hash}"
roles = ["agent"]
contact_center = "voice-only"

[[user]]
name = "mike"
password = "{hash}"
roles = ["supervisor"]
contact_center = "media-only"

[[user]]
name = "nobody"
password = "{hash}"
roles = []
contact_center = "voice-only"
"#
    ))
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
