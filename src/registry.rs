//! The `Registry` actor: the only writer of service state.
//!
//! It starts one [`ServerMonitor`] per configured service, takes their reports, and publishes
//! a new immutable [`Snapshot`] after each change. Readers load the snapshot from the shared
//! [`ArcSwap`]; they never send the registry a message, so a burst of API requests cannot
//! delay a state change and a burst of changes cannot delay a request.
//!
//! It also supervises the monitors, one for one: a monitor whose actor died (a panic) is
//! noticed on the next supervision tick and started again, keeping the service's last
//! published state until the new monitor has probed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tracing::{error, info};

use crate::config::settings::ServiceSpec;
use crate::monitor::ServerMonitor;
use crate::resource::{self, ServiceStatus};
use crate::snapshot::{PublishedService, Snapshot};

/// How often the registry checks that every monitor is alive.
const SUPERVISION_INTERVAL: Duration = Duration::from_secs(1);

/// Where the registry publishes; cloned into every HTTP worker.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// A monitor's report: the service's resource changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ServiceStatusChanged {
    pub id: String,
    pub status: ServiceStatus,
    /// Since when the state (not the serving instance) holds.
    pub since: SystemTime,
}

/// One supervised service.
struct Tracked {
    spec: Arc<ServiceSpec>,
    status: ServiceStatus,
    since: SystemTime,
    monitor: Option<Addr<ServerMonitor>>,
}

/// The registry actor.
pub struct Registry {
    services: Vec<Tracked>,
    published: SharedSnapshot,
    probe_slots: Arc<Semaphore>,
}

impl Registry {
    /// A registry for `specs` that will publish into `published`; monitors start with it.
    pub fn new(
        specs: Vec<ServiceSpec>,
        probes_in_flight: usize,
        published: SharedSnapshot,
    ) -> Self {
        let now = SystemTime::now();
        let services = specs
            .into_iter()
            .map(|spec| Tracked {
                spec: Arc::new(spec),
                status: ServiceStatus::INITIAL,
                since: now,
                monitor: None,
            })
            .collect();
        let registry = Registry {
            services,
            published,
            probe_slots: Arc::new(Semaphore::new(probes_in_flight)),
        };
        registry.publish();
        registry
    }

    /// Builds and swaps in a new snapshot.
    fn publish(&self) {
        let services = self
            .services
            .iter()
            .map(|t| {
                PublishedService::new(
                    t.spec.service_type,
                    t.status.state,
                    resource::render(&t.spec, &t.status, t.since),
                )
            })
            .collect();
        self.published.store(Arc::new(Snapshot::new(services)));
    }

    fn start_monitor(&self, tracked: &Tracked, ctx: &Context<Self>) -> Addr<ServerMonitor> {
        ServerMonitor::new(
            tracked.spec.clone(),
            tracked.status,
            tracked.since,
            ctx.address().recipient(),
            self.probe_slots.clone(),
        )
        .start()
    }

    /// Restarts every monitor whose actor has died.
    fn supervise(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.services.len() {
            let alive = self.services[i]
                .monitor
                .as_ref()
                .is_some_and(Addr::connected);
            if !alive {
                if self.services[i].monitor.is_some() {
                    error!(service = %self.services[i].spec.id, "monitor stopped unexpectedly; restarting it");
                }
                let addr = self.start_monitor(&self.services[i], ctx);
                self.services[i].monitor = Some(addr);
            }
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(services = self.services.len(), "starting monitors");
        self.supervise(ctx);
        ctx.run_interval(SUPERVISION_INTERVAL, |act, ctx| act.supervise(ctx));
    }
}

impl Handler<ServiceStatusChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ServiceStatusChanged, _ctx: &mut Self::Context) {
        let Some(tracked) = self.services.iter_mut().find(|t| t.spec.id == msg.id) else {
            return;
        };
        if tracked.status == msg.status && tracked.since == msg.since {
            return;
        }
        tracked.status = msg.status;
        tracked.since = msg.since;
        self.publish();
    }
}
