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

/// The metric families a daemon watching one server by TCP exports, by the `# TYPE` line that
/// names each (a family nobody has counted in yet is not written; the unit test of
/// `metrics` lists every family). Dashboards and alerts are written against these names.
const FAMILIES: &[&str] = &[
    "servicewatch_alerts_firing gauge",
    "servicewatch_audit_entries counter",
    "servicewatch_audit_lost counter",
    "servicewatch_bayeux_sessions gauge",
    "servicewatch_build info",
    "servicewatch_cluster_config_mismatch gauge",
    "servicewatch_cluster_elections_won counter",
    "servicewatch_cluster_leader gauge",
    "servicewatch_cluster_lease_renewals counter",
    "servicewatch_cluster_revision gauge",
    "servicewatch_cluster_stale gauge",
    "servicewatch_cluster_watch_lag_seconds gauge",
    "servicewatch_cluster_writes counter",
    "servicewatch_cluster_writes_refused counter",
    "servicewatch_connections_refused counter",
    "servicewatch_display_login_failures counter",
    "servicewatch_display_logins counter",
    "servicewatch_history_changes counter",
    "servicewatch_history_lost counter",
    "servicewatch_history_writing gauge",
    "servicewatch_http_client_errors counter",
    "servicewatch_http_connections gauge",
    "servicewatch_http_requests counter",
    "servicewatch_instance_serving gauge",
    "servicewatch_instance_up gauge",
    "servicewatch_ldap_up gauge",
    "servicewatch_login_failures counter",
    "servicewatch_login_lockouts counter",
    "servicewatch_long_polls_held gauge",
    "servicewatch_messages_delivered counter",
    "servicewatch_password_check_memory_bytes gauge",
    "servicewatch_password_verifications counter",
    "servicewatch_probe_duration_seconds histogram",
    "servicewatch_probes counter",
    "servicewatch_publishes counter",
    "servicewatch_service_changes counter",
    "servicewatch_service_flapping gauge",
    "servicewatch_service_maintenance gauge",
    "servicewatch_service_state gauge",
    "servicewatch_slow_consumers counter",
    "servicewatch_websocket_connections gauge",
];

/// The label names of each labelled sample of that daemon, in the order exported.
const LABELS: &[(&str, &str)] = &[
    ("servicewatch_build_info", "version"),
    ("servicewatch_http_requests_total", "route,status"),
    ("servicewatch_instance_serving", "service,instance"),
    ("servicewatch_instance_up", "service,instance"),
    (
        "servicewatch_probe_duration_seconds_bucket",
        "service,instance",
    ),
    (
        "servicewatch_probe_duration_seconds_count",
        "service,instance",
    ),
    (
        "servicewatch_probe_duration_seconds_sum",
        "service,instance",
    ),
    (
        "servicewatch_probes_total",
        "service,instance,check,outcome",
    ),
    ("servicewatch_service_flapping", "service"),
    ("servicewatch_service_maintenance", "service"),
    ("servicewatch_service_state", "service,state"),
];

/// The `# TYPE` lines of `text`, sorted.
fn families(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(str::to_string)
        .collect();
    found.sort();
    found
}

/// Each sample's family and its label names (`probes_total` -> `service,instance,...`),
/// the bucket bound `le` left out.
fn label_names(text: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, rest) = line.split_once('{')?;
            let labels = rest.split_once('}')?.0;
            let keys: Vec<&str> = labels
                .split(',')
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k))
                .filter(|k| *k != "le")
                .collect();
            Some((name.to_string(), keys.join(",")))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_metric_families_and_labels_stay_the_same() {
    let backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ interval = \"50ms\" }}\n",
        backend.toml()
    ));
    d.get("/api/v2/services").await;
    let (_, text) = d.admin_get("/metrics").await;
    assert_eq!(families(&text), FAMILIES, "{text}");
    let labels: Vec<(String, String)> = LABELS
        .iter()
        .map(|(name, keys)| (name.to_string(), keys.to_string()))
        .collect();
    assert_eq!(label_names(&text), labels, "{text}");
}
