//! Signals honest enough to alert on, read from `/metrics` of the real daemon watching real
//! loopback backends: a switchover counted only when the serving instance moves, under its
//! cause; every counter at 0 from the moment its service is configured; a service's
//! redundancy; and no certificate days for a certificate never verified.

mod common;

use std::time::Duration;

use common::certs::{Ca, serve};
use common::{ADMIN, Backend, Mode, TestDaemon, eventually, stays};
use reqwest::Method;
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(5);

/// Probed every 50 ms, each probe decisive, so that a change shows within a fraction of a
/// second.
const FAST: &str = r#"interval = "50ms", timeout = "500ms", rise = 1, fall = 1, jitter = 0.0"#;

/// A Voice pair `id` of `primary` and `backup`, checked by TCP.
fn pair(id: &str, primary: &Backend, backup: &Backend) -> String {
    format!(
        "[[service]]\nid = \"{id}\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\n",
        primary.toml(),
        backup.toml()
    )
}

/// A Media service `id` with a single instance, checked by TCP.
fn single(id: &str, primary: &Backend) -> String {
    format!(
        "[[service]]\nid = \"{id}\"\ntype = \"Media\"\nprimary = {}\ncheck = {{ {FAST} }}\n",
        primary.toml()
    )
}

fn switchovers(service: &str, cause: &str) -> String {
    format!(r#"servicewatch_switchovers_total{{service="{service}",cause="{cause}"}}"#)
}

fn redundant(service: &str) -> String {
    format!(r#"servicewatch_service_redundant{{service="{service}"}}"#)
}

/// Waits until `sample` reads `value`.
async fn reads(d: &TestDaemon, sample: &str, value: f64) {
    eventually(WITHIN, &format!("{sample} {value}"), || async {
        (d.metric(sample).await == Some(value)).then_some(())
    })
    .await;
}

/// Whether any sample of `/metrics` starts with `prefix`.
async fn any_sample(d: &TestDaemon, prefix: &str) -> bool {
    let (_, text) = d.admin_get("/metrics").await;
    text.lines().any(|line| line.starts_with(prefix))
}

/// Waits until sips1's serving instance is `instance`, chosen by `source` (`role`, or
/// `health` when nobody healthy says primary).
async fn served_by(d: &TestDaemon, instance: &str, source: &str) {
    eventually(
        WITHIN,
        &format!("{instance} serving by {source}"),
        || async {
            let s = d.service("sips1").await;
            (s["servingInstance"] == instance && s["servingInstanceSource"] == source).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_move_of_the_serving_instance_counts_as_a_switchover() {
    let mut primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let role_file = |port: u16| dir.path().join(format!("role-{port}"));
    let say = |backend: &Backend, role: &str| std::fs::write(role_file(backend.port()), role);
    // Nobody says primary yet: the serving instance is inferred from health.
    say(&primary, "SCS_BACKUP\n").unwrap();
    say(&backup, "SCS_BACKUP\n").unwrap();
    let command = format!(
        r#"["/bin/sh", "-c", "cat {}/role-$SERVICEWATCH_PORT", "{{port}}"]"#,
        dir.path().display()
    );
    let d = TestDaemon::start(&format!(
        "{}role = {{ kind = \"exec\", command = {command}, primary = \"SCS_PRIMARY\", backup = \"SCS_BACKUP\" }}\n",
        pair("sips1", &primary, &backup)
    ));
    served_by(&d, "primary", "health").await;
    reads(&d, r#"servicewatch_role_fallback{service="sips1"}"#, 1.0).await;

    // The fallback ends: the primary says it is primary. Nothing moved.
    say(&primary, "SCS_PRIMARY\n").unwrap();
    served_by(&d, "primary", "role").await;
    // Both say primary: a conflict, shown on the configured primary. Nothing moved.
    say(&backup, "SCS_PRIMARY\n").unwrap();
    reads(&d, r#"servicewatch_role_conflict{service="sips1"}"#, 1.0).await;
    // A switchover is counted (and logged) when the decision is taken, before it is shown.
    assert_eq!(d.metric(&switchovers("sips1", "failure")).await, Some(0.0));
    assert_eq!(
        d.metric(&switchovers("sips1", "maintenance")).await,
        Some(0.0)
    );

    // A real failover: the primary's process goes; the backup, saying primary, takes over.
    primary.close().await;
    served_by(&d, "backup", "role").await;
    assert_eq!(d.metric(&switchovers("sips1", "failure")).await, Some(1.0));
    stays(
        Duration::from_millis(300),
        "one switchover, once",
        || async {
            d.metric(&switchovers("sips1", "failure")).await == Some(1.0)
                && d.metric(&switchovers("sips1", "maintenance")).await == Some(0.0)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_counter_exists_at_zero_from_the_moment_its_service_is_configured() {
    let a = Backend::start(Mode::Accept).await;
    let b = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start_unprobed(
        &(pair("sips1", &a, &b) + &pair("sips2", &b, &a) + &single("media1", &a)),
    );
    // Read before anything could have switched over: nothing did, and `increase()` needs
    // the 0 to see the first one.
    for service in ["sips1", "sips2"] {
        for cause in ["failure", "maintenance"] {
            assert_eq!(
                d.metric(&switchovers(service, cause)).await,
                Some(0.0),
                "{service} {cause}"
            );
        }
        for instance in ["primary", "backup"] {
            let down = format!(
                r#"servicewatch_probes_total{{service="{service}",instance="{instance}",check="tcp",outcome="down"}}"#
            );
            assert_eq!(d.metric(&down).await, Some(0.0), "{down}");
        }
    }
    assert!(
        !any_sample(&d, r#"servicewatch_switchovers_total{service="media1""#).await,
        "a single instance cannot switch over"
    );

    // A reload adds a pair and removes another: the new one's counters exist at once, the
    // old one's are gone.
    d.reload(&(pair("sips1", &a, &b) + &pair("sips3", &a, &b) + &single("media1", &a)))
        .await
        .expect("the reload applies");
    for cause in ["failure", "maintenance"] {
        assert_eq!(d.metric(&switchovers("sips3", cause)).await, Some(0.0));
    }
    assert!(!any_sample(&d, r#"servicewatch_switchovers_total{service="sips2""#).await);
    assert!(!any_sample(&d, r#"servicewatch_probes_total{service="sips2""#).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_an_admin_asked_for_counts_as_maintenance() {
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&pair("sips1", &primary, &backup));
    reads(&d, &redundant("sips1"), 1.0).await;
    let path = "/api/v2/services/sips1/instances/primary/maintenance";
    let (status, body) = d
        .call_as(ADMIN, Method::PUT, path, Some(json!({"reason": "upgrade"})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.state_of("sips1").await.1.as_deref(), Some("backup"));
    assert_eq!(
        d.metric(&switchovers("sips1", "maintenance")).await,
        Some(1.0)
    );
    assert_eq!(d.metric(&switchovers("sips1", "failure")).await, Some(0.0));
    // The backup serves with no spare behind it: the primary is being worked on.
    assert_eq!(d.metric(&redundant("sips1")).await, Some(0.0));

    let (status, _) = d.call_as(ADMIN, Method::DELETE, path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        d.state_of("sips1").await.1.as_deref(),
        Some("backup"),
        "no failback"
    );
    assert_eq!(d.metric(&redundant("sips1")).await, Some(1.0));
    assert_eq!(
        d.metric(&switchovers("sips1", "maintenance")).await,
        Some(1.0)
    );
    assert_eq!(d.metric(&switchovers("sips1", "failure")).await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_loses_its_redundancy_with_its_backup_and_gets_it_back() {
    let primary = Backend::start(Mode::Accept).await;
    let mut backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&(pair("sips1", &primary, &backup) + &single("media1", &primary)));
    reads(&d, &redundant("sips1"), 1.0).await;
    assert!(
        !any_sample(&d, &redundant("media1")).await,
        "a single instance has no redundancy to lose"
    );

    backup.close().await;
    reads(&d, &redundant("sips1"), 0.0).await;
    assert_eq!(
        d.state_of("sips1").await,
        ("Active".to_string(), Some("primary".to_string())),
        "still served: only the spare is gone"
    );
    backup.reopen().await;
    reads(&d, &redundant("sips1"), 1.0).await;
    assert!(!any_sample(&d, &redundant("media1")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_never_verified_has_no_days_left() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (certificate, key) = ca.issue(&["127.0.0.1"], 90);
    let port = serve(certificate, key, None).await;
    let https = |id: &str, tls: &str| {
        format!(
            "[[service]]\nid = \"{id}\"\ntype = \"Media\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ kind = \"https\", path = \"/health\", {FAST}{tls} }}\n"
        )
    };
    let ca_file = format!(", ca_file = \"{}\"", dir.path().join("ca.pem").display());
    // The same server, its certificate trusted by one check and not by the other (the
    // system's CAs do not know the test CA).
    let d = TestDaemon::start(&(https("trusted", &ca_file) + &https("untrusted", "")));
    let days = |id: &str| {
        format!(r#"servicewatch_certificate_days_left{{service="{id}",instance="primary"}}"#)
    };
    let trusted = eventually(WITHIN, "the trusted certificate's days", || async {
        d.metric(&days("trusted")).await
    })
    .await;
    assert!((88.0..=90.0).contains(&trusted), "{trusted}");
    assert_eq!(d.state_of("untrusted").await.0, "Inactive");
    assert!(
        !any_sample(&d, &days("untrusted")).await,
        "no value, rather than a 0 that pages"
    );

    // The trusted check stops trusting it: its days go with the verification.
    d.reload(&(https("trusted", "") + &https("untrusted", "")))
        .await
        .expect("the reload applies");
    eventually(WITHIN, "the days left gone", || async {
        (!any_sample(&d, &days("trusted")).await).then_some(())
    })
    .await;
    assert_eq!(d.state_of("trusted").await.0, "Inactive");
}

/// On a cluster, a follower sets its service metrics from the leader's records: the
/// redundancy from every server's health they carry, the switchover's cause from the
/// record of the decision (a follower learns of a window before the move it causes, and
/// could not tell by itself).
#[cfg(feature = "cluster")]
#[test]
fn every_cluster_node_shows_the_same_signals() {
    use common::cluster::{Node, agreed, leader, start_nodes};
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = common::etcd::Etcd::start();
    let primary = runtime.block_on(Backend::start(Mode::Accept));
    let mut backup = runtime.block_on(Backend::start(Mode::Accept));
    let nodes = start_nodes(
        &etcd.endpoint(),
        &["a", "b"],
        &pair("sips1", &primary, &backup),
    );
    let within = Duration::from_secs(20);
    let on_every_node = |sample: String, value: f64| {
        let nodes: &[Node] = &nodes;
        async move {
            eventually(
                within,
                &format!("{sample} {value} on every node"),
                || async {
                    for node in nodes {
                        if node.metric(&sample).await != Some(value) {
                            return None;
                        }
                    }
                    Some(())
                },
            )
            .await
        }
    };
    runtime.block_on(async {
        let leading = leader(&nodes, within).await;
        agreed(&nodes, within).await;
        on_every_node(redundant("sips1"), 1.0).await;
        on_every_node(switchovers("sips1", "maintenance"), 0.0).await;

        // Asked of the follower; decided by the leader.
        let follower = TestDaemon::attach(&nodes[1 - leading].process.addr);
        let path = "/api/v2/services/sips1/instances/primary/maintenance";
        let reason = Some(json!({"reason": "upgrade"}));
        let (status, body) = follower.call_as(ADMIN, Method::PUT, path, reason).await;
        assert_eq!(status, 200, "{body}");
        on_every_node(switchovers("sips1", "maintenance"), 1.0).await;
        on_every_node(redundant("sips1"), 0.0).await;
        let (status, _) = follower.call_as(ADMIN, Method::DELETE, path, None).await;
        assert_eq!(status, 200);
        on_every_node(redundant("sips1"), 1.0).await;

        // The backup, serving since, fails: the primary takes over, unplanned.
        backup.close().await;
        on_every_node(switchovers("sips1", "failure"), 1.0).await;
        on_every_node(redundant("sips1"), 0.0).await;
        on_every_node(switchovers("sips1", "maintenance"), 1.0).await;
    });
}
