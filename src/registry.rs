//! The `Registry` actor: the only writer of service state, and the source of notifications.
//!
//! It starts one [`ServerMonitor`] per configured service, takes their reports, and publishes
//! a new immutable [`Snapshot`] after each change. Readers load the snapshot from the shared
//! [`ArcSwap`]; they never send the registry a message, so a burst of API requests cannot
//! delay a state change and a burst of changes cannot delay a request.
//!
//! Each change is also serialized once, as a Bayeux message, and offered to every subscribed
//! client session with `try_send`: a session whose mailbox is full is a slow consumer. It is
//! dropped from the subscribers and told so, and never allowed to stall the registry or to
//! make it buffer without bound.
//!
//! It also supervises the monitors, one for one: a monitor whose actor died (a panic) is
//! noticed on the next supervision tick and started again, keeping the service's last
//! published state until the new monitor has probed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use actix_web::web::Bytes;
use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

use crate::bayeux;
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

/// What the registry sends a subscribed session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Delivery {
    /// One Bayeux message as a batch of one (see [`bayeux::frame`]), serialized once and
    /// shared by every session.
    Message(Bytes),
    /// The current state of every service, on subscribing with a snapshot: one delivery, so
    /// that a snapshot of a large site takes one place in the session's bounded mailbox.
    Snapshot(Vec<Bytes>),
    /// The session's mailbox was full: it no longer receives changes and should end.
    SlowConsumer,
}

/// A session subscribes to service changes. With `snapshot`, it first receives the current
/// state of every service, then the changes, with nothing missed in between.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeServices {
    pub client_id: Arc<str>,
    pub recipient: Recipient<Delivery>,
    pub snapshot: bool,
}

/// A session no longer wants service changes (unsubscribed, or ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnsubscribeServices {
    pub client_id: Arc<str>,
}

/// One supervised service.
struct Tracked {
    spec: Arc<ServiceSpec>,
    status: ServiceStatus,
    since: SystemTime,
    published: Arc<PublishedService>,
    monitor: Option<Addr<ServerMonitor>>,
}

impl Tracked {
    fn render(&mut self) {
        self.published = Arc::new(PublishedService::new(
            self.spec.service_type,
            self.status.state,
            resource::render(&self.spec, &self.status, self.since),
        ));
    }
}

/// The registry actor.
pub struct Registry {
    services: Vec<Tracked>,
    published: SharedSnapshot,
    probe_slots: Arc<Semaphore>,
    subscribers: HashMap<Arc<str>, Recipient<Delivery>>,
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
            .map(|spec| {
                let status = ServiceStatus::INITIAL;
                let spec = Arc::new(spec);
                let published = Arc::new(PublishedService::new(
                    spec.service_type,
                    status.state,
                    resource::render(&spec, &status, now),
                ));
                Tracked {
                    spec,
                    status,
                    since: now,
                    published,
                    monitor: None,
                }
            })
            .collect();
        let registry = Registry {
            services,
            published,
            probe_slots: Arc::new(Semaphore::new(probes_in_flight)),
            subscribers: HashMap::new(),
        };
        registry.publish();
        registry
    }

    /// Builds and swaps in a new snapshot.
    fn publish(&self) {
        let services = self.services.iter().map(|t| t.published.clone()).collect();
        self.published.store(Arc::new(Snapshot::new(services)));
    }

    /// Offers one message to every subscriber, dropping those that cannot take it.
    fn fan_out(&mut self, message: &Bytes) {
        self.subscribers.retain(|client_id, recipient| {
            offer(client_id, recipient, Delivery::Message(message.clone()))
        });
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

/// Offers `delivery` without waiting; whether the subscriber stays subscribed.
fn offer(client_id: &str, recipient: &Recipient<Delivery>, delivery: Delivery) -> bool {
    match recipient.try_send(delivery) {
        Ok(()) => true,
        Err(SendError::Full(_)) => {
            warn!(client = %client_id, "slow consumer: its queue is full; dropping it");
            // `do_send` ignores the mailbox bound on purpose: this one message tells the
            // session to end, and it is the last the registry ever sends it.
            recipient.do_send(Delivery::SlowConsumer);
            false
        }
        Err(SendError::Closed(_)) => {
            debug!(client = %client_id, "subscriber gone");
            false
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
        tracked.render();
        let message = bayeux::frame(&resource::state_change_message(&tracked.published.json));
        self.publish();
        self.fan_out(&message);
    }
}

impl Handler<SubscribeServices> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SubscribeServices, _ctx: &mut Self::Context) {
        if msg.snapshot {
            let messages = self
                .services
                .iter()
                .map(|t| bayeux::frame(&resource::state_change_message(&t.published.json)))
                .collect();
            if !offer(&msg.client_id, &msg.recipient, Delivery::Snapshot(messages)) {
                return;
            }
        }
        self.subscribers.insert(msg.client_id, msg.recipient);
    }
}

impl Handler<UnsubscribeServices> for Registry {
    type Result = ();

    fn handle(&mut self, msg: UnsubscribeServices, _ctx: &mut Self::Context) {
        self.subscribers.remove(&msg.client_id);
    }
}
