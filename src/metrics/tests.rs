//! What `/metrics` exports: every family under its name, type and labels, a configured
//! service's counters at 0 from the start, and a removed service gone from all of them.

use super::*;
use crate::domain::roles::Source;
use crate::domain::service::{Role, ServiceState};
use crate::domain::switchover::Cause;

/// Every family's `# TYPE` line and its samples' label names, as exported before the metrics
/// were split by subsystem: dashboards and alerts are written against these, so any change
/// here breaks them.
const FAMILIES: &[(&str, &str)] = &[
    (
        "servicewatch_alert_notifications counter",
        "receiver,outcome",
    ),
    ("servicewatch_alert_queue gauge", "receiver"),
    ("servicewatch_alerts_firing gauge", ""),
    ("servicewatch_audit_entries counter", ""),
    ("servicewatch_audit_lost counter", ""),
    ("servicewatch_bayeux_sessions gauge", ""),
    ("servicewatch_build info", "version"),
    (
        "servicewatch_certificate_days_left gauge",
        "service,instance",
    ),
    ("servicewatch_cluster_config_mismatch gauge", ""),
    ("servicewatch_cluster_elections_won counter", ""),
    ("servicewatch_cluster_leader gauge", ""),
    ("servicewatch_cluster_lease_renewals counter", ""),
    ("servicewatch_cluster_revision gauge", ""),
    ("servicewatch_cluster_stale gauge", ""),
    ("servicewatch_cluster_watch_lag_seconds gauge", ""),
    ("servicewatch_cluster_writes counter", ""),
    ("servicewatch_cluster_writes_refused counter", ""),
    ("servicewatch_config_reloads counter", "result"),
    ("servicewatch_connections_refused counter", ""),
    ("servicewatch_display_login_failures counter", ""),
    ("servicewatch_display_logins counter", ""),
    ("servicewatch_history_changes counter", ""),
    ("servicewatch_history_lost counter", ""),
    ("servicewatch_history_writing gauge", ""),
    ("servicewatch_http_client_errors counter", ""),
    ("servicewatch_http_connections gauge", ""),
    ("servicewatch_http_requests counter", "route,status"),
    ("servicewatch_instance_role gauge", "service,instance,role"),
    ("servicewatch_instance_serving gauge", "service,instance"),
    ("servicewatch_instance_up gauge", "service,instance"),
    ("servicewatch_ldap_requests counter", "outcome"),
    ("servicewatch_ldap_up gauge", ""),
    ("servicewatch_login_failures counter", ""),
    ("servicewatch_login_lockouts counter", ""),
    ("servicewatch_long_polls_held gauge", ""),
    ("servicewatch_messages_delivered counter", ""),
    ("servicewatch_password_check_memory_bytes gauge", ""),
    ("servicewatch_password_verifications counter", ""),
    (
        "servicewatch_probe_duration_seconds histogram",
        "service,instance",
    ),
    (
        "servicewatch_probes counter",
        "service,instance,check,outcome",
    ),
    ("servicewatch_publishes counter", ""),
    ("servicewatch_role_conflict gauge", "service"),
    ("servicewatch_role_fallback gauge", "service"),
    ("servicewatch_service_changes counter", ""),
    ("servicewatch_service_flapping gauge", "service"),
    ("servicewatch_service_maintenance gauge", "service"),
    ("servicewatch_service_redundant gauge", "service"),
    ("servicewatch_service_state gauge", "service,state"),
    ("servicewatch_slow_consumers counter", ""),
    ("servicewatch_switchovers counter", "service,cause"),
    ("servicewatch_watch_open gauge", "service,instance"),
    ("servicewatch_websocket_connections gauge", ""),
];

/// Each `# TYPE` line of `text` with the label names of the family's first sample
/// (the bucket bound `le` left out), sorted.
fn families(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(family) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let sample = lines.peek().copied().unwrap_or_default();
        let labels = sample
            .split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(labels, _)| labels)
            .unwrap_or_default();
        let keys: Vec<&str> = labels
            .split(',')
            .filter_map(|pair| pair.split_once('=').map(|(k, _)| k))
            .filter(|k| *k != "le")
            .collect();
        found.push((family.to_string(), keys.join(",")));
    }
    found.sort();
    found
}

/// One sample in every family, of service "s" where a family is per service, so that each
/// is written.
fn count_everywhere(m: &Metrics) {
    let instance = InstanceLabels {
        service: "s".into(),
        instance: "primary".into(),
    };
    m.probes
        .runs
        .get_or_create(&ProbeLabels {
            service: "s".into(),
            instance: "primary".into(),
            check: "tcp".into(),
            outcome: "up".into(),
        })
        .inc();
    m.probes.duration.get_or_create(&instance).observe(0.1);
    m.auth.ldap_outcome("accepted");
    m.probes.watch_open.get_or_create(&instance).set(1);
    m.probes.instance_up.get_or_create(&instance).set(1);
    m.probes.certificate("s", "primary").set(9.0);
    m.probes
        .instance_role
        .get_or_create(&RoleLabels {
            service: "s".into(),
            instance: "primary".into(),
            role: "primary".into(),
        })
        .set(1);
    m.services
        .set_serving("s", Some(Role::Primary), true, Some(Source::Role));
    m.services.set_state("s", ServiceState::Active);
    m.services.set_maintenance("s", true);
    m.alerts.receiver("hook");
    m.alerts.set_flapping("s", true);
    m.services.count_switchover("s", Cause::Failure);
    m.services.set_redundant("s", true);
    m.http
        .requests
        .get_or_create(&HttpLabels {
            route: "/".into(),
            status: 200,
        })
        .inc();
    m.reloads.count(true);
}

#[test]
fn every_family_keeps_its_name_type_and_labels() {
    let m = Metrics::new();
    count_everywhere(&m);
    let expected: Vec<(String, String)> = FAMILIES
        .iter()
        .map(|(family, labels)| (family.to_string(), labels.to_string()))
        .collect();
    assert_eq!(families(&m.encode()), expected);
}

#[test]
fn encodes_what_was_counted() {
    let m = Metrics::new();
    m.services.set_state("sips1", ServiceState::Active);
    m.probes
        .runs
        .get_or_create(&ProbeLabels {
            service: "sips1".into(),
            instance: "primary".into(),
            check: "tcp".into(),
            outcome: "up".into(),
        })
        .inc();
    m.reloads.count(false);
    let text = m.encode();
    assert!(
        text.contains("servicewatch_build_info{version=\""),
        "{text}"
    );
    assert!(
        text.contains(r#"servicewatch_service_state{service="sips1",state="Active"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"servicewatch_service_state{service="sips1",state="Inactive"} 0"#));
    assert!(text.contains(r#"servicewatch_probes_total{service="sips1",instance="primary",check="tcp",outcome="up"} 1"#));
    assert!(text.contains(r#"servicewatch_config_reloads_total{result="refused"} 1"#));
}

#[test]
fn a_removed_service_leaves_every_family() {
    let m = Metrics::new();
    count_everywhere(&m);
    assert!(m.encode().contains(r#"service="s""#));
    m.forget_service("s", &[("primary".into(), "tcp"), ("backup".into(), "tcp")]);
    let text = m.encode();
    assert!(!text.contains(r#"service="s""#), "{text}");
}

/// The pair "s" of two TCP-checked instances, as [`Metrics::configure_service`] takes it.
fn pair_servers() -> Vec<(String, &'static str)> {
    vec![("primary".into(), "tcp"), ("backup".into(), "tcp")]
}

#[test]
fn a_configured_pair_counts_from_zero_before_anything_happened() {
    let m = Metrics::new();
    m.configure_service("s", &pair_servers(), true);
    m.configure_service("single", &[("primary".into(), "http")], false);
    let text = m.encode();
    for cause in ["failure", "maintenance"] {
        let sample = format!(r#"servicewatch_switchovers_total{{service="s",cause="{cause}"}} 0"#);
        assert!(text.contains(&sample), "{sample} in\n{text}");
    }
    for instance in ["primary", "backup"] {
        for outcome in ["up", "degraded", "down"] {
            let sample = format!(
                r#"servicewatch_probes_total{{service="s",instance="{instance}",check="tcp",outcome="{outcome}"}} 0"#
            );
            assert!(text.contains(&sample), "{sample} in\n{text}");
        }
    }
    assert!(
        !text.contains(r#"servicewatch_switchovers_total{service="single""#),
        "a single instance cannot switch over: {text}"
    );
    assert!(text.contains(
        r#"servicewatch_probes_total{service="single",instance="primary",check="http",outcome="down"} 0"#
    ));
    m.services.count_switchover("s", Cause::Maintenance);
    let text = m.encode();
    assert!(text.contains(r#"servicewatch_switchovers_total{service="s",cause="maintenance"} 1"#));
    assert!(text.contains(r#"servicewatch_switchovers_total{service="s",cause="failure"} 0"#));
}

#[test]
fn a_reload_forgets_what_a_service_no_longer_has() {
    let m = Metrics::new();
    m.configure_service("s", &pair_servers(), true);
    m.services.set_serving("s", Some(Role::Backup), true, None);
    let now: Vec<(String, &str)> = vec![("primary".into(), "https")];
    m.reconfigure_service("s", &pair_servers(), &now, false);
    let text = m.encode();
    assert!(!text.contains(r#"instance="backup""#), "{text}");
    assert!(!text.contains(r#"check="tcp""#), "{text}");
    assert!(!text.contains("servicewatch_switchovers_total{"), "{text}");
    assert!(text.contains(
        r#"servicewatch_probes_total{service="s",instance="primary",check="https",outcome="up"} 0"#
    ));
}

#[test]
fn a_certificate_is_shown_only_while_its_handshake_succeeds() {
    let m = Metrics::new();
    let gauge = m.probes.certificate("s", "primary");
    let sample = r#"servicewatch_certificate_days_left{service="s",instance="primary"}"#;
    assert!(!m.encode().contains(sample), "no certificate seen yet");
    gauge.set(30.5);
    assert!(m.encode().contains(&format!("{sample} 30.5")));
    gauge.clear();
    assert!(!m.encode().contains(sample), "no longer verified");
}
