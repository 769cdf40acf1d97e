//! The instance detail (`GET /services/{id}/instances`) and the per-instance gauges, against
//! a Provisioning service whose Configuration Server pair and Cassandra nodes are real
//! loopback listeners that the test closes.

mod common;

use std::time::Duration;

use common::{Backend, Mode, PASSWORD, SUPERVISOR, TestDaemon, eventually};
use serde_json::Value;

const CHECK: &str = r#"check = { interval = "50ms", timeout = "500ms", rise = 1, fall = 1 }"#;

async fn get_as(d: &TestDaemon, user: &str, password: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(d.url(path))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{path} answered non-JSON {body:?}: {e}"));
    (status, json)
}

async fn detail(d: &TestDaemon) -> Value {
    d.instances("provisioning").await
}

fn gauge(name: &str, instance: &str) -> String {
    format!(r#"servicewatch_{name}{{service="provisioning",instance="{instance}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shows_every_server_behind_a_service_and_the_cassandra_quorum() {
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let mut nodes = [
        Backend::start(Mode::Cql).await,
        Backend::start(Mode::Cql).await,
        Backend::start(Mode::Cql).await,
    ];
    let node_list: Vec<String> = nodes
        .iter()
        .map(|n| format!("\"127.0.0.1:{}\"", n.port()))
        .collect();
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"provisioning\"\ntype = \"Provisioning\"\nconfig_server = {{ primary = {{ host = \"127.0.0.1\", port = {}, name = \"confserv\" }}, backup = {}, {CHECK} }}\ncassandra = {{ nodes = [{}], quorum = 2, {CHECK} }}\n",
        primary.port(),
        backup.toml(),
        node_list.join(", "),
    ));

    let body = detail(&d).await;
    assert_eq!(body["statusCode"], 0);
    let instances = body["instances"].as_array().unwrap();
    let names: Vec<&str> = instances
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "primary",
            "backup",
            "cassandra-0",
            "cassandra-1",
            "cassandra-2"
        ]
    );
    let first = &instances[0];
    assert_eq!(first["name"], "confserv");
    assert_eq!(first["address"], format!("127.0.0.1:{}", primary.port()));
    assert_eq!(
        (&first["serving"], &first["health"], &first["check"]),
        (&Value::from(true), &Value::from("up"), &Value::from("tcp"))
    );
    assert!(first["healthSince"].is_string(), "{first}");
    assert_eq!(first["lastCheck"]["outcome"], "up");
    assert!(
        first["lastCheck"]["detail"]
            .as_str()
            .unwrap()
            .contains("connected to 127.0.0.1"),
        "the probe's sentence: {first}"
    );
    assert_eq!(instances[1]["serving"], false);
    assert_eq!(instances[2]["check"], "cql");
    assert_eq!(
        body["cassandra"],
        serde_json::json!({"nodes": 3, "up": 3, "quorum": 2, "hasQuorum": true})
    );
    assert_eq!(
        d.metric(&gauge("instance_serving", "primary")).await,
        Some(1.0)
    );
    assert_eq!(
        d.metric(&gauge("instance_up", "cassandra-1")).await,
        Some(1.0)
    );
    assert!(
        d.metric(
            r#"servicewatch_probe_duration_seconds_count{service="provisioning",instance="cassandra-1"}"#
        )
        .await
        .is_some_and(|n| n >= 1.0)
    );

    // Two nodes die: the quorum is lost, and the detail says which and why.
    nodes[1].close().await;
    nodes[2].close().await;
    let lost = eventually(Duration::from_secs(5), "the quorum lost", || async {
        let body = detail(&d).await;
        (body["cassandra"]["hasQuorum"] == false).then_some(body)
    })
    .await;
    assert_eq!(lost["cassandra"]["up"], 1);
    let node = &lost["instances"][3];
    assert_eq!(node["health"], "down", "{node}");
    assert_eq!(node["lastCheck"]["outcome"], "down");
    assert!(
        node["lastCheck"]["detail"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{node}"
    );
    eventually(Duration::from_secs(5), "provisioning Inactive", || async {
        (d.state_of("provisioning").await.0 == "Inactive").then_some(())
    })
    .await;
    assert_eq!(
        d.metric(&gauge("instance_up", "cassandra-1")).await,
        Some(0.0)
    );

    // The primary dies: the backup serves, and the detail and the gauges say so.
    drop(primary);
    eventually(Duration::from_secs(5), "the backup serving", || async {
        let body = detail(&d).await;
        (body["instances"][1]["serving"] == true && body["instances"][0]["serving"] == false)
            .then_some(())
    })
    .await;
    assert_eq!(
        d.metric(&gauge("instance_serving", "backup")).await,
        Some(1.0)
    );
    assert_eq!(
        d.metric(&gauge("instance_serving", "primary")).await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_shown_to_supervisors_and_admins_of_a_contact_center_that_sees_the_service() {
    let primary = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n",
        primary.toml(),
    ));
    // The test daemon's own user is an agent.
    let (status, body) = d.get("/api/v2/services/sips1/instances").await;
    assert_eq!(status, 403, "{body}");
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refusal["statusCode"], 5);
    let (status, body) = get_as(&d, SUPERVISOR, PASSWORD, "/api/v2/services/nope/instances").await;
    assert_eq!((status, &body["statusCode"]), (404, &Value::from(6)));
    let (status, _) = get_as(&d, SUPERVISOR, "wrong", "/api/v2/services/sips1/instances").await;
    assert_eq!(status, 401);
    let (status, body) = get_as(&d, SUPERVISOR, PASSWORD, "/api/v2/services/sips1/instances").await;
    assert_eq!(status, 200);
    assert_eq!(body["instances"].as_array().unwrap().len(), 1);
    assert!(
        body.get("cassandra").is_none(),
        "not a Provisioning service"
    );
    // The service resource keeps its shape: the detail is asked for, never included.
    let resource = d.service("sips1").await;
    assert!(resource.get("instances").is_none(), "{resource}");
    let response = reqwest::Client::new()
        .post(d.url("/api/v2/services/sips1/instances"))
        .basic_auth(SUPERVISOR, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
}
