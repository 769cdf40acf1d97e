//! End to end: real backends on loopback, the daemon probing them, the API reporting what a
//! client would see as they open, close and stall.

mod common;

use std::time::Duration;

use common::{Backend, Mode, TestDaemon, eventually, stays};

/// Room for a loaded CI machine on top of the bound the check settings promise.
const SLACK: Duration = Duration::from_millis(1500);

const FAST_CHECK: &str = r#"interval = "100ms", fast_interval = "50ms", down_interval = "100ms", timeout = "300ms", rise = 2, fall = 2, jitter = 0.0"#;

/// The promised bound for a change of `service`'s primary to be seen.
fn detection_bound(d: &TestDaemon, service: usize) -> Duration {
    let check = &d.settings.services[service].pair.primary.check;
    check
        .schedule
        .worst_case_detection(check.timeout, check.fall)
        + SLACK
}

async fn wait_for(d: &TestDaemon, id: &str, state: &str, serving: Option<&str>, within: Duration) {
    let what = format!("{id} to be {state} on {serving:?}");
    eventually(within, &what, || async {
        let (s, on) = d.state_of(id).await;
        (s == state && on.as_deref() == serving).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_pair_switches_over_then_goes_inactive() {
    let mut primary = Backend::start(Mode::Accept).await;
    let mut backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"sips1\"\nname = \"SIPS1\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ kind = \"tcp\", {FAST_CHECK} }}\n",
        primary.toml(),
        backup.toml()
    ));
    let bound = detection_bound(&d, 0);

    wait_for(&d, "sips1", "Active", Some("primary"), bound).await;

    primary.close().await;
    // The switchover must never pass through Inactive: the backup is healthy throughout.
    eventually(bound, "switchover to the backup", || async {
        let (state, on) = d.state_of("sips1").await;
        assert_eq!(state, "Active", "a healthy backup keeps the service Active");
        (on.as_deref() == Some("backup")).then_some(())
    })
    .await;
    assert_eq!(
        d.service("sips1").await["name"],
        "SIPS1",
        "the name stays the primary's"
    );

    // No failback: the recovered primary becomes the standby.
    primary.reopen().await;
    stays(
        bound,
        "serving on the backup after the primary recovered",
        || async {
            d.state_of("sips1").await == ("Active".to_string(), Some("backup".to_string()))
        },
    )
    .await;

    backup.close().await;
    wait_for(&d, "sips1", "Active", Some("primary"), bound).await;

    primary.close().await;
    wait_for(&d, "sips1", "Inactive", None, bound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_when_configured() {
    let mut primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"v\"\ntype = \"Voice\"\nfailback = true\nprimary = {}\nbackup = {}\ncheck = {{ {FAST_CHECK} }}\n",
        primary.toml(),
        backup.toml()
    ));
    let bound = detection_bound(&d, 0);
    wait_for(&d, "v", "Active", Some("primary"), bound).await;
    primary.close().await;
    wait_for(&d, "v", "Active", Some("backup"), bound).await;
    primary.reopen().await;
    wait_for(&d, "v", "Active", Some("primary"), bound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_active_read_only_inactive() {
    let mut cs_primary = Backend::start(Mode::Accept).await;
    let mut cs_backup = Backend::start(Mode::Accept).await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Backend::start(Mode::Cql).await);
    }
    let node_list: Vec<String> = nodes
        .iter()
        .map(|n| format!("\"127.0.0.1:{}\"", n.port()))
        .collect();
    let d = TestDaemon::start(&format!(
        "[checks]\n{}\n[[service]]\nid = \"provisioning\"\ntype = \"Provisioning\"\nconfig_server = {{ primary = {}, backup = {} }}\ncassandra = {{ nodes = [{}], quorum = 2 }}\n",
        FAST_CHECK.replace(", ", "\n"),
        cs_primary.toml(),
        cs_backup.toml(),
        node_list.join(", ")
    ));
    let bound = detection_bound(&d, 0);
    wait_for(&d, "provisioning", "Active", Some("primary"), bound).await;
    assert_eq!(d.service("provisioning").await["name"], "Provisioning");

    cs_primary.close().await;
    wait_for(&d, "provisioning", "Active", Some("backup"), bound).await;
    cs_backup.close().await;
    wait_for(&d, "provisioning", "ReadOnly", None, bound).await;

    // One node down keeps the quorum of two; a second loses it.
    nodes[0].close().await;
    stays(bound, "ReadOnly with two of three nodes", || async {
        d.state_of("provisioning").await.0 == "ReadOnly"
    })
    .await;
    nodes[1].close().await;
    wait_for(&d, "provisioning", "Inactive", None, bound).await;

    // Quorum back, Configuration Server still gone: readable again.
    nodes[1].reopen().await;
    wait_for(&d, "provisioning", "ReadOnly", None, bound).await;
    cs_backup.reopen().await;
    wait_for(&d, "provisioning", "Active", Some("backup"), bound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_judges_timeout_status_and_body() {
    let stalling = Backend::start(Mode::Stall).await;
    let healthy = Backend::start(Mode::Http(200, r#"{"status":"UP"}"#)).await;
    let says_down = Backend::start(Mode::Http(200, r#"{"status":"DOWN"}"#)).await;
    let unavailable = Backend::start(Mode::Http(503, "busy")).await;
    let check = r#"check = { kind = "http", path = "/health", expect_body = "\"UP\"", timeout = "300ms", interval = "5s", jitter = 0.0 }"#;
    let service = |id: &str, primary: &Backend| {
        format!(
            "[[service]]\nid = \"{id}\"\ntype = \"Reporting\"\nprimary = {}\nbackup = {}\n{check}\n",
            primary.toml(),
            healthy.toml()
        )
    };
    let d = TestDaemon::start(
        &[
            service("stalled", &stalling),
            service("wrong-body", &says_down),
            service("unavailable", &unavailable),
            service("fine", &healthy),
        ]
        .concat(),
    );
    // The first outcome decides at once, so each primary is judged by one probe, bounded by
    // its timeout; a primary judged down leaves the service on its backup.
    let bound = Duration::from_millis(300) + SLACK;
    wait_for(&d, "fine", "Active", Some("primary"), bound).await;
    wait_for(&d, "stalled", "Active", Some("backup"), bound).await;
    wait_for(&d, "wrong-body", "Active", Some("backup"), bound).await;
    wait_for(&d, "unavailable", "Active", Some("backup"), bound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_check_that_hangs_is_killed_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let hang = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let d = TestDaemon::start(&format!(
        r#"[[service]]
id = "media"
type = "Media"
primary = {{ host = "127.0.0.1", port = 1, check = {{ command = ["sh", "-c", "{hang}"] }} }}
backup = {{ host = "127.0.0.1", port = 2, check = {{ command = ["sh", "-c", "exit 1"] }} }}
check = {{ kind = "exec", timeout = "300ms", interval = "30s", jitter = 0.0 }}
"#
    ));
    // The hanging primary is judged down at its timeout; the degraded backup still serves.
    wait_for(
        &d,
        "media",
        "Active",
        Some("backup"),
        Duration::from_millis(300) + SLACK,
    )
    .await;
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed and waited for: no process and no zombie is left under that pid.
    eventually(SLACK, "the hung command to be gone", || async {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_probe_limit_serializes_probes() {
    // Three stalled primaries, each probe held for its whole timeout. With one probe in
    // flight at a time, judging all three takes at least three timeouts; without the limit
    // it would take one.
    let stalled = Backend::start(Mode::Stall).await;
    let healthy = Backend::start(Mode::Accept).await;
    let service = |id: &str| {
        format!(
            "[[service]]\nid = \"{id}\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ kind = \"http\", timeout = \"300ms\", interval = \"10s\", jitter = 0.0 }}\n",
            stalled.toml(),
            healthy.toml()
        )
        .replace("backup = { host", "backup = { check = { kind = \"tcp\" }, host")
    };
    let started = std::time::Instant::now();
    let d = TestDaemon::start(&format!(
        "[limits]\nprobes_in_flight = 1\n{}{}{}",
        service("a"),
        service("b"),
        service("c")
    ));
    for id in ["a", "b", "c"] {
        wait_for(&d, id, "Active", Some("backup"), Duration::from_secs(5)).await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(850),
        "three 300 ms probes ran together: {elapsed:?}"
    );
}

/// Until every server of a service has been probed once, its state is not known: the API
/// must not show it `Inactive` (a wallboard would flash red on every restart). It is held
/// back from the list and from a subscriber's snapshot, asked for alone it answers 503 with
/// `Retry-After`, and its first assessment is announced even when it is Inactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_not_reported_before_its_first_probe_round() {
    let fast = Backend::start(Mode::Accept).await;
    // Accepts and never answers: the slow service's first probe lasts its whole timeout.
    let stalled = Backend::start(Mode::Stall).await;
    let d = TestDaemon::start_unprobed(&format!(
        "[[service]]\nid = \"fast\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ kind = \"tcp\", {FAST_CHECK} }}\n\
         [[service]]\nid = \"slow\"\ntype = \"Voice\"\nprimary = {}\n\
         check = {{ kind = \"http\", path = \"/\", interval = \"1s\", timeout = \"4s\", jitter = 0.0 }}\n",
        fast.toml(),
        stalled.toml()
    ));
    let mut lp = common::bayeux::LpClient::new(&d);
    lp.handshake().await;
    lp.subscribe(true).await;

    wait_for(
        &d,
        "fast",
        "Active",
        Some("primary"),
        Duration::from_secs(3),
    )
    .await;
    let list = d.json("/api/v2/services?fields=*").await;
    assert_eq!(d.ids_of(&list), ["fast"], "slow is not listed yet: {list}");
    let response = reqwest::Client::new()
        .get(d.url("/api/v2/services/slow"))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "4");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["statusCode"], 4);
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("not known yet"),
        "{body}"
    );
    assert_eq!(
        d.metric(r#"servicewatch_service_state{service="slow",state="Inactive"}"#)
            .await,
        Some(0.0),
        "no Inactive alert for a service not looked at"
    );
    let (status, _) = d.get("/api/v2/services/nosuch").await;
    assert_eq!(status, 404, "an unknown id is still not found");

    // The subscriber's snapshot held fast alone (if its probe was done); then slow's first
    // assessment comes, Inactive as the service was taken to be, but now known.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut heard = Vec::new();
    while !heard.iter().any(|s: &serde_json::Value| s["id"] == "slow") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow's first assessment was not announced: {heard:?}"
        );
        heard.extend(common::bayeux::changes(&lp.connect().await));
    }
    let slow: Vec<_> = heard.iter().filter(|s| s["id"] == "slow").collect();
    assert_eq!(slow.len(), 1, "{heard:?}");
    assert_eq!(slow[0]["state"], "Inactive");
    assert_eq!(d.state_of("slow").await, ("Inactive".to_string(), None));
    assert_eq!(d.ids().await, ["fast", "slow"]);
    assert_eq!(
        d.metric(r#"servicewatch_service_state{service="slow",state="Inactive"}"#)
            .await,
        Some(1.0)
    );
}
