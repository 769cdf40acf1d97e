//! The monitor actor against real loopback listeners, on paused time.

use super::*;
use crate::config::settings::validate;
use std::time::Instant;

/// Collects what a monitor reports.
struct Collector(tokio::sync::mpsc::UnboundedSender<ServerChanged>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<ServerChanged> for Collector {
    type Result = ();

    fn handle(&mut self, msg: ServerChanged, _ctx: &mut Self::Context) {
        let _ = self.0.send(msg);
    }
}

fn instance(port: u16) -> InstanceSpec {
    let file = toml::from_str(&format!(
        "[[service]]\nid = \"v\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port}, name = \"ts1\" }}\ncheck = {{ interval = \"50ms\", fast_interval = \"20ms\", down_interval = \"20ms\", timeout = \"500ms\", rise = 1, fall = 1 }}\n",
    ))
    .unwrap();
    let settings = validate(file, "test").unwrap();
    settings.services[0].pair.primary.clone()
}

type Reports = tokio::sync::mpsc::UnboundedReceiver<ServerChanged>;

/// A monitor of the listener on `port` as `part` of service "v", resuming from `health`
/// and counting in `metrics`; its reports arrive on the receiver.
fn watch(
    port: u16,
    part: Part,
    generation: u64,
    health: Health,
    metrics: &Metrics,
) -> (Addr<ServerMonitor>, Reports) {
    let (tx, reports) = tokio::sync::mpsc::unbounded_channel();
    let id = ServerIdentity {
        service: "v".into(),
        part,
        spec: Arc::new(instance(port)),
        generation,
        record: Arc::new(InstanceRecord::new(part, &instance(port))),
    };
    let monitor = ServerMonitor::new(
        id,
        health,
        Collector(tx).start().recipient(),
        Arc::new(Semaphore::new(4)),
        metrics,
    )
    .start();
    (monitor, reports)
}

/// How many probes of `part` of "v" found it `outcome`.
fn probes(metrics: &Metrics, part: Part, outcome: ProbeOutcome) -> u64 {
    metrics
        .probes
        .runs
        .get_or_create(&crate::metrics::ProbeLabels {
            service: "v".into(),
            instance: part.metric_label(),
            check: "tcp".into(),
            outcome: outcome.as_str().into(),
        })
        .get()
}

async fn next(reports: &mut Reports) -> ServerChanged {
    tokio::time::timeout(Duration::from_secs(5), reports.recv())
        .await
        .expect("a report within 5 s")
        .expect("the collector runs")
}

// On paused time (the probes' sockets are real, the schedule's clock is not): the
// schedule's waits take no time, and "nothing in 200 ms" is exactly 200 ms of probes.
#[actix_rt::test]
async fn reports_the_first_health_then_each_change_and_nothing_else() {
    tokio::time::pause();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let primary = Part::Pair(crate::domain::service::Role::Primary);
    let metrics = Metrics::new();
    let (monitor, mut reports) = watch(port, primary, 7, Health::Unknown, &metrics);
    let first = next(&mut reports).await;
    assert_eq!((first.health, first.generation), (Health::Up, 7));
    assert_eq!(&*first.service, "v");
    assert!(
        first.reason.starts_with("primary ts1 (127.0.0.1:"),
        "{}",
        first.reason
    );
    drop(listener);
    let down = next(&mut reports).await;
    assert_eq!(down.health, Health::Down, "{}", down.reason);
    // Probes go on every 20 ms (give or take the jitter); a steady health is not
    // reported again.
    let before = probes(&metrics, primary, ProbeOutcome::Down);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), reports.recv())
            .await
            .is_err()
    );
    let during = probes(&metrics, primary, ProbeOutcome::Down) - before;
    assert!((8..=12).contains(&during), "{during} probes in 200 ms");
    monitor.do_send(StopMonitor);
    let deadline = Instant::now() + Duration::from_secs(5);
    while monitor.connected() {
        assert!(Instant::now() < deadline, "the monitor did not stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_resumed_monitor_confirms_its_last_health_then_reports_only_a_change() {
    tokio::time::pause();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let node = Part::CassandraNode(2);
    let metrics = Metrics::new();
    let (_monitor, mut reports) = watch(port, node, 1, Health::Up, &metrics);
    // Its first probe confirms the health it resumed from (what a new leader waits for).
    let first = next(&mut reports).await;
    assert_eq!((first.health, first.generation), (Health::Up, 1));
    // Then the probes that find it up (every 50 ms) say nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), reports.recv())
            .await
            .is_err()
    );
    let up = probes(&metrics, node, ProbeOutcome::Up);
    assert!((3..=5).contains(&up), "{up} probes in 200 ms");
    drop(listener);
    let down = next(&mut reports).await;
    assert_eq!(
        (down.part, down.health),
        (Part::CassandraNode(2), Health::Down)
    );
}
