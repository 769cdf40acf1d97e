//! The `Registry` actor: the only writer of service state, and the source of notifications.
//!
//! It starts one [`ServerMonitor`] per configured service, takes their reports, and publishes
//! a new immutable [`Snapshot`] after each change. Readers load the snapshot from the shared
//! [`ArcSwap`]; they never send the registry a message, so a burst of API requests cannot
//! delay a state change and a burst of changes cannot delay a request.
//!
//! Each change is also serialized once, as a Bayeux message, and offered to every subscribed
//! client session whose contact center sees the service (see [`Subscriber`]) with `try_send`: a session whose mailbox is full is a slow consumer. It is
//! dropped from the subscribers and told so, and never allowed to stall the registry or to
//! make it buffer without bound.
//!
//! It also supervises the monitors, one for one: a monitor whose actor died (a panic) is
//! noticed on the next supervision tick and started again, keeping the service's last
//! published state until the new monitor has probed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use actix_web::web::Bytes;
use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, oneshot};
use tracing::{debug, error, info, warn};

use crate::bayeux;
use crate::config::settings::ServiceSpec;
use crate::metrics::Metrics;
use crate::monitor::{ServerMonitor, StopMonitor};
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
    /// Which monitor of the service sent it; reports of a replaced monitor are ignored.
    pub generation: u64,
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
    /// The features of the session's contact center: it hears of the services needing one
    /// of them, and of no other.
    pub features: Arc<BTreeSet<String>>,
    pub snapshot: bool,
}

/// A subscribed session.
struct Subscriber {
    recipient: Recipient<Delivery>,
    features: Arc<BTreeSet<String>>,
}

/// A session no longer wants service changes (unsubscribed, or ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnsubscribeServices {
    pub client_id: Arc<str>,
}

/// A monitor finished its first probe round: its service's state is known.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MonitorReady {
    pub id: String,
    pub generation: u64,
}

/// Resolves once every service's monitor has finished its first probe round.
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
pub struct WhenReady;

/// Answers at once; the watchdog uses it to prove the actor system still runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Replaces the configured services (a reload): unchanged ones keep their monitor and
/// state, changed ones get a new monitor, removed ones end with a last Inactive message to
/// their subscribers, added ones start.
#[derive(Message)]
#[rtype(result = "ReloadSummary")]
pub struct ApplyServices(pub Vec<ServiceSpec>);

/// What a reload changed, by service id.
#[derive(Debug, Default, Clone, PartialEq, Eq, MessageResponse)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

/// One supervised service.
struct Tracked {
    spec: Arc<ServiceSpec>,
    status: ServiceStatus,
    since: SystemTime,
    published: Arc<PublishedService>,
    monitor: Option<Addr<ServerMonitor>>,
    /// The generation of the current monitor.
    generation: u64,
    /// Whether its monitor has finished a first probe round.
    ready: bool,
}

impl Tracked {
    fn new(spec: ServiceSpec, status: ServiceStatus, since: SystemTime) -> Self {
        let spec = Arc::new(spec);
        let published = Arc::new(PublishedService::new(
            spec.service_type,
            &spec.feature,
            status.state,
            resource::render(&spec, &status, since),
        ));
        Tracked {
            spec,
            status,
            since,
            published,
            monitor: None,
            generation: 0,
            ready: false,
        }
    }

    fn render(&mut self) {
        self.published = Arc::new(PublishedService::new(
            self.spec.service_type,
            &self.spec.feature,
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
    subscribers: HashMap<Arc<str>, Subscriber>,
    ready_waiters: Vec<oneshot::Sender<()>>,
    /// Numbers monitors, so that a report from a replaced one is recognised.
    generations: u64,
    metrics: Arc<Metrics>,
}

impl Registry {
    /// A registry for `specs` that will publish into `published`; monitors start with it.
    pub fn new(
        specs: Vec<ServiceSpec>,
        probes_in_flight: usize,
        published: SharedSnapshot,
        metrics: Arc<Metrics>,
    ) -> Self {
        let now = SystemTime::now();
        let services = specs
            .into_iter()
            .map(|spec| Tracked::new(spec, ServiceStatus::INITIAL, now))
            .collect();
        let registry = Registry {
            services,
            published,
            probe_slots: Arc::new(Semaphore::new(probes_in_flight)),
            subscribers: HashMap::new(),
            ready_waiters: Vec::new(),
            generations: 0,
            metrics,
        };
        registry.publish();
        registry
    }

    /// Builds and swaps in a new snapshot.
    fn publish(&self) {
        for t in &self.services {
            self.metrics.set_state(&t.spec.id, t.status.state);
        }
        let services = self.services.iter().map(|t| t.published.clone()).collect();
        self.published.store(Arc::new(Snapshot::new(services)));
    }

    /// Offers one message about a service needing `feature` to every subscriber that sees
    /// it, dropping those that cannot take it.
    fn fan_out(&mut self, message: &Bytes, feature: &str) {
        let metrics = &self.metrics;
        self.subscribers.retain(|client_id, subscriber| {
            !subscriber.features.contains(feature)
                || offer(
                    client_id,
                    &subscriber.recipient,
                    Delivery::Message(message.clone()),
                    metrics,
                )
        });
    }

    /// Starts a new monitor for the service at `index`; from now on the registry listens to
    /// that monitor alone.
    fn start_monitor(&mut self, index: usize, ctx: &Context<Self>) {
        self.generations += 1;
        let slots = self.probe_slots.clone();
        let tracked = &mut self.services[index];
        tracked.generation = self.generations;
        tracked.ready = false;
        let monitor = ServerMonitor::new(
            tracked.spec.clone(),
            tracked.generation,
            tracked.status,
            tracked.since,
            ctx.address(),
            slots,
            self.metrics.clone(),
        );
        tracked.monitor = Some(monitor.start());
    }

    fn all_ready(&self) -> bool {
        self.services.iter().all(|t| t.ready)
    }

    /// Wakes those waiting for readiness, once every monitor has probed.
    fn wake_ready_waiters(&mut self) {
        if self.all_ready() {
            for waiter in self.ready_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Publishes a change of one service: a new snapshot, and a message to subscribers.
    fn announce(&mut self, index: usize) {
        let message = bayeux::frame(&resource::state_change_message(
            &self.services[index].published.json,
        ));
        self.publish();
        let feature = self.services[index].spec.feature.clone();
        self.fan_out(&message, &feature);
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
                self.start_monitor(i, ctx);
            }
        }
    }
}

/// Offers `delivery` without waiting; whether the subscriber stays subscribed.
fn offer(
    client_id: &str,
    recipient: &Recipient<Delivery>,
    delivery: Delivery,
    metrics: &Metrics,
) -> bool {
    match recipient.try_send(delivery) {
        Ok(()) => {
            metrics.messages_delivered.inc();
            true
        }
        Err(SendError::Full(_)) => {
            metrics.slow_consumers.inc();
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
        let Some(tracked) = self
            .services
            .iter_mut()
            .find(|t| t.spec.id == msg.id && t.generation == msg.generation)
        else {
            return;
        };
        if tracked.status == msg.status && tracked.since == msg.since {
            return;
        }
        tracked.status = msg.status;
        tracked.since = msg.since;
        tracked.render();
        let index = self
            .services
            .iter()
            .position(|t| t.spec.id == msg.id)
            .unwrap_or_default();
        self.announce(index);
    }
}

impl Handler<MonitorReady> for Registry {
    type Result = ();

    fn handle(&mut self, msg: MonitorReady, _ctx: &mut Self::Context) {
        if let Some(tracked) = self
            .services
            .iter_mut()
            .find(|t| t.spec.id == msg.id && t.generation == msg.generation)
        {
            tracked.ready = true;
        }
        self.wake_ready_waiters();
    }
}

impl Handler<WhenReady> for Registry {
    type Result = MessageResult<WhenReady>;

    fn handle(&mut self, _msg: WhenReady, _ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.ready_waiters.push(tx);
        self.wake_ready_waiters();
        MessageResult(rx)
    }
}

impl Handler<Ping> for Registry {
    type Result = ();

    fn handle(&mut self, _msg: Ping, _ctx: &mut Self::Context) {}
}

impl Handler<ApplyServices> for Registry {
    type Result = ReloadSummary;

    fn handle(&mut self, msg: ApplyServices, ctx: &mut Self::Context) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let mut old: HashMap<String, Tracked> = self
            .services
            .drain(..)
            .map(|t| (t.spec.id.clone(), t))
            .collect();
        let now = SystemTime::now();
        let mut announce = Vec::new();
        for spec in msg.0 {
            match old.remove(&spec.id) {
                Some(tracked) if *tracked.spec == spec => {
                    summary.unchanged += 1;
                    self.services.push(tracked);
                }
                Some(previous) => {
                    // A new monitor, resuming from the state last published.
                    if let Some(monitor) = &previous.monitor {
                        monitor.do_send(StopMonitor);
                    }
                    summary.changed.push(spec.id.clone());
                    let tracked = Tracked::new(spec, previous.status, previous.since);
                    if tracked.published.json != previous.published.json {
                        announce.push(self.services.len());
                    }
                    self.services.push(tracked);
                    self.start_monitor(self.services.len() - 1, ctx);
                }
                None => {
                    summary.added.push(spec.id.clone());
                    self.services
                        .push(Tracked::new(spec, ServiceStatus::INITIAL, now));
                    self.start_monitor(self.services.len() - 1, ctx);
                }
            }
        }
        // Removed services: subscribers hear of them one last time, as Inactive.
        let mut farewells = Vec::new();
        for (id, mut tracked) in old {
            if let Some(monitor) = &tracked.monitor {
                monitor.do_send(StopMonitor);
            }
            tracked.status = ServiceStatus::INITIAL;
            tracked.since = now;
            tracked.render();
            farewells.push((
                bayeux::frame(&resource::state_change_message(&tracked.published.json)),
                tracked.spec.feature.clone(),
            ));
            summary.removed.push(id);
        }
        self.publish();
        for index in announce {
            self.announce(index);
        }
        for (message, feature) in &farewells {
            self.fan_out(message, feature);
        }
        summary.added.sort();
        summary.changed.sort();
        summary.removed.sort();
        info!(added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed, unchanged = summary.unchanged, "services reloaded");
        self.wake_ready_waiters();
        summary
    }
}

impl Handler<SubscribeServices> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SubscribeServices, _ctx: &mut Self::Context) {
        if msg.snapshot {
            let messages = self
                .services
                .iter()
                .filter(|t| msg.features.contains(&t.spec.feature))
                .map(|t| bayeux::frame(&resource::state_change_message(&t.published.json)))
                .collect();
            if !offer(
                &msg.client_id,
                &msg.recipient,
                Delivery::Snapshot(messages),
                &self.metrics,
            ) {
                return;
            }
        }
        self.subscribers.insert(
            msg.client_id,
            Subscriber {
                recipient: msg.recipient,
                features: msg.features,
            },
        );
    }
}

impl Handler<UnsubscribeServices> for Registry {
    type Result = ();

    fn handle(&mut self, msg: UnsubscribeServices, _ctx: &mut Self::Context) {
        self.subscribers.remove(&msg.client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::validate;
    use std::time::Instant;

    /// The current monitor of a service (tests only).
    #[derive(Message)]
    #[rtype(result = "Option<(u64, Addr<ServerMonitor>)>")]
    struct GetMonitor(&'static str);

    impl Handler<GetMonitor> for Registry {
        type Result = Option<(u64, Addr<ServerMonitor>)>;

        fn handle(&mut self, msg: GetMonitor, _ctx: &mut Self::Context) -> Self::Result {
            let t = self.services.iter().find(|t| t.spec.id == msg.0)?;
            Some((t.generation, t.monitor.clone()?))
        }
    }

    #[actix_rt::test]
    async fn a_monitor_that_panics_is_restarted_by_the_registry() {
        let file = toml::from_str(
            "[[service]]\nid = \"v\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\ncheck = { interval = \"1h\" }\n",
        )
        .unwrap();
        let settings = validate(file, "test").unwrap();
        let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let registry =
            Registry::new(settings.services, 4, snapshot, Arc::new(Metrics::new())).start();
        let (generation, monitor) = registry.send(GetMonitor("v")).await.unwrap().unwrap();

        // A panic ends the actor's task and closes its mailbox.
        monitor.do_send(crate::monitor::Crash);
        let deadline = Instant::now() + SUPERVISION_INTERVAL * 5;
        loop {
            let (now, replacement) = registry.send(GetMonitor("v")).await.unwrap().unwrap();
            if now != generation && replacement.connected() {
                break;
            }
            assert!(Instant::now() < deadline, "the monitor was not restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
