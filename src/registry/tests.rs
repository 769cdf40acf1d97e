//! The registry as an actor: supervision of its monitors, and what a subscriber hears.

use super::*;
use crate::config::settings::validate;
use crate::domain::service::{Part, Role};
use std::collections::BTreeSet;
use std::time::Instant;

/// The current monitor of one server (tests only).
#[derive(Message)]
#[rtype(result = "Option<(u64, Addr<ServerMonitor>)>")]
struct GetMonitor(&'static str, Part);

impl Handler<GetMonitor> for Registry {
    type Result = Option<(u64, Addr<ServerMonitor>)>;

    fn handle(&mut self, msg: GetMonitor, _ctx: &mut Self::Context) -> Self::Result {
        let t = self.services.iter().find(|t| t.spec.id == msg.0)?;
        let s = t.servers.iter().find(|s| s.part == msg.1)?;
        Some((s.generation, s.monitor.clone()?))
    }
}

/// A registry of the services in `toml`, its monitors started.
fn start(toml: &str) -> Addr<Registry> {
    let settings = validate(toml::from_str(toml).unwrap(), "test").unwrap();
    let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    Registry::new(
        settings.services,
        4,
        snapshot,
        Arc::new(Metrics::new()),
        crate::history::Opened::nothing(),
        None,
    )
    .start()
}

#[actix_rt::test]
async fn a_monitor_that_panics_is_restarted_alone() {
    let registry = start(
        "[[service]]\nid = \"v\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\nbackup = { host = \"127.0.0.1\", port = 2 }\ncheck = { interval = \"1h\" }\n",
    );
    let primary = Part::Pair(Role::Primary);
    let backup = Part::Pair(Role::Backup);
    let (generation, monitor) = registry
        .send(GetMonitor("v", primary))
        .await
        .unwrap()
        .unwrap();
    let (partner_generation, partner) = registry
        .send(GetMonitor("v", backup))
        .await
        .unwrap()
        .unwrap();

    // A panic ends the actor's task and closes its mailbox.
    monitor.do_send(crate::monitor::Crash);
    let deadline = Instant::now() + SUPERVISION_INTERVAL * 5;
    loop {
        let (now, replacement) = registry
            .send(GetMonitor("v", primary))
            .await
            .unwrap()
            .unwrap();
        if now != generation && replacement.connected() {
            break;
        }
        assert!(Instant::now() < deadline, "the monitor was not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (after, same) = registry
        .send(GetMonitor("v", backup))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after, partner_generation,
        "the partner's monitor was not replaced"
    );
    assert!(same.connected() && partner.connected());
}

/// A subscribed session stand-in that passes on what it is sent (the hub's tests use it too).
pub(super) struct Heard(pub(super) tokio::sync::mpsc::UnboundedSender<Delivery>);

impl Actor for Heard {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Heard {
    type Result = ();

    fn handle(&mut self, msg: Delivery, _ctx: &mut Self::Context) {
        let _ = self.0.send(msg);
    }
}

/// The states in the frames of one delivery, marked as snapshot or change.
fn states(delivery: Delivery) -> Vec<String> {
    let (kind, frames) = match delivery {
        Delivery::Message(m) => ("change", vec![m]),
        Delivery::Messages(all) => ("change", all),
        Delivery::Snapshot(all) => ("snapshot", all),
        Delivery::SlowConsumer => return vec!["slow".into()],
    };
    frames
        .iter()
        .map(|f| {
            let text = String::from_utf8(f.to_vec()).unwrap();
            let state = text.split("\"state\":\"").nth(1).unwrap().split('"').next();
            format!("{kind} {}", state.unwrap())
        })
        .collect()
}

/// A subscriber that arrives while changes wait for their publish gets the states last
/// published in its snapshot, then the changes: each state once, in order.
#[actix_rt::test]
async fn a_snapshot_then_the_change_waiting_each_once() {
    // A probe that never ends: the test alone reports the server's health.
    let registry = start(
        "[[service]]\nid = \"v\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\ncheck = { kind = \"exec\", command = [\"/bin/sleep\", \"600\"], timeout = \"15m\", jitter = 0.0 }\n",
    );
    let primary = Part::Pair(Role::Primary);
    let (generation, _) = registry
        .send(GetMonitor("v", primary))
        .await
        .unwrap()
        .unwrap();
    let report = |health| ServerChanged {
        service: "v".into(),
        part: primary,
        generation,
        health,
        said: crate::domain::roles::SaidRole::Unknown,
        reason: "test".into(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Queued together: Active is published at once, Inactive right after waits for the
    // publish window, and the subscriber comes in between.
    registry.do_send(report(crate::domain::health::Health::Up));
    registry.do_send(report(crate::domain::health::Health::Down));
    registry.do_send(SubscribeServices {
        client_id: "c".into(),
        recipient: Heard(tx).start().recipient(),
        hub: Hub::current(),
        features: Arc::new(BTreeSet::from(["api-voice".to_string()])),
        snapshot: true,
        resume: None,
    });
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let delivery = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the change reaches the subscriber")
            .unwrap();
        heard.extend(states(delivery));
    }
    // Whether Active went out before the subscriber came (then in its snapshot) or with
    // Inactive, each state comes once, in the order decided; a snapshot of the current
    // states would have said Inactive first, then Active, then Inactive.
    let order: Vec<&str> = heard.iter().map(|h| h.split(' ').nth(1).unwrap()).collect();
    assert_eq!(order, ["Active", "Inactive"], "{heard:?}");
    // And nothing more: the change is not sent twice.
    let more = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
    assert!(more.is_err(), "{:?}", more.map(|d| d.map(states)));
}
