//! The registry as an actor: supervision of its monitors.

use super::*;
use crate::config::settings::validate;
use crate::domain::service::{Part, Role};
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

#[actix_rt::test]
async fn a_monitor_that_panics_is_restarted_alone() {
    let file = toml::from_str(
        "[[service]]\nid = \"v\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\nbackup = { host = \"127.0.0.1\", port = 2 }\ncheck = { interval = \"1h\" }\n",
    )
    .unwrap();
    let settings = validate(file, "test").unwrap();
    let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let registry = Registry::new(settings.services, 4, snapshot, Arc::new(Metrics::new())).start();
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
