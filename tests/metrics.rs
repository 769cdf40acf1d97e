//! The admin listener: Prometheus text whose counters move as probes run and clients call,
//! and health and readiness endpoints.

mod common;

use std::time::Duration;

use common::{Backend, Mode, TestDaemon, eventually};

const UP: &str =
    r#"servicewatch_probes_total{service="sips1",instance="primary",check="tcp",outcome="up"}"#;
const DOWN: &str =
    r#"servicewatch_probes_total{service="sips1",instance="primary",check="tcp",outcome="down"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_probes_states_and_requests() {
    let mut backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ interval = \"50ms\", rise = 1, fall = 1, jitter = 0.0 }}\n",
        backend.toml()
    ));
    let within = Duration::from_secs(5);

    eventually(within, "readiness", || async {
        (d.admin_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(d.admin_get("/healthz").await, (200, "ok\n".to_string()));

    let first = eventually(within, "a successful probe counted", || async {
        d.metric(UP).await
    })
    .await;
    eventually(within, "the counter to move", || async {
        (d.metric(UP).await? > first).then_some(())
    })
    .await;
    let state =
        |s: &'static str| format!(r#"servicewatch_service_state{{service="sips1",state="{s}"}}"#);
    assert_eq!(d.metric(&state("Active")).await, Some(1.0));
    assert_eq!(d.metric(&state("Inactive")).await, Some(0.0));
    // One change so far, its first assessment, published after the empty start-up snapshot.
    assert_eq!(
        d.metric("servicewatch_service_changes_total").await,
        Some(1.0)
    );
    let publishes = d.metric("servicewatch_publishes_total").await.unwrap();
    assert!(publishes >= 2.0, "{publishes}");

    backend.close().await;
    eventually(within, "a failed probe counted", || async {
        d.metric(DOWN).await
    })
    .await;
    eventually(within, "the state gauge to follow", || async {
        (d.metric(&state("Inactive")).await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(
        d.metric("servicewatch_service_changes_total").await,
        Some(2.0)
    );
    assert!(d.metric("servicewatch_publishes_total").await > Some(publishes));

    d.get("/api/v2/services").await;
    d.get("/api/v2/services/nope").await;
    let ok = r#"servicewatch_http_requests_total{route="/api/v2/services",status="200"}"#;
    let missing = r#"servicewatch_http_requests_total{route="/api/v2/services/{id}",status="404"}"#;
    assert!(d.metric(ok).await >= Some(1.0));
    assert_eq!(d.metric(missing).await, Some(1.0));

    let (_, text) = d.admin_get("/metrics").await;
    assert!(
        text.contains("servicewatch_build_info{version=\""),
        "{text}"
    );
    assert!(
        text.contains("servicewatch_probe_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_removed_by_a_reload_leaves_the_metrics() {
    let backend = Backend::start(Mode::Accept).await;
    let service = |id: &str| {
        format!(
            "[[service]]\nid = \"{id}\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ interval = \"50ms\" }}\n",
            backend.toml()
        )
    };
    let d = TestDaemon::start(&(service("sips1") + &service("sips2")));
    let within = Duration::from_secs(5);
    let active =
        |id: &str| format!(r#"servicewatch_service_state{{service="{id}",state="Active"}}"#);
    eventually(within, "both Active in the metrics", || async {
        (d.metric(&active("sips1")).await == Some(1.0)
            && d.metric(&active("sips2")).await == Some(1.0))
        .then_some(())
    })
    .await;
    let summary = d
        .reload(&service("sips1"))
        .await
        .expect("the reload applies");
    assert_eq!(summary.removed, ["sips2"]);
    let (_, text) = d.admin_get("/metrics").await;
    assert!(
        !text.contains(r#"service="sips2""#),
        "a removed service still exports its last state:\n{text}"
    );
    assert_eq!(
        d.metric(&active("sips1")).await,
        Some(1.0),
        "the other stays"
    );
    assert!(d.metric(UP).await.is_some());
}
