//! The `Registry` actor: the only writer of service state, and the source of notifications.
//!
//! It starts one [`ServerMonitor`] per backend server of each configured service, takes
//! their health reports, assesses each service from its servers' health with the pure rules
//! of [`crate::domain::state`], and publishes a new immutable [`Snapshot`] after each change.
//! Readers load the snapshot from the shared [`ArcSwap`]; they never send the registry a
//! message, so a burst of API requests cannot delay a state change and a burst of changes
//! cannot delay a request.
//!
//! Each change's notification is rendered once, with the published service, and offered to
//! every subscribed session whose contact center sees the service, always after the snapshot
//! that shows the change, so a client that reads REST on a notification never sees the state
//! before it. The registry sends each publish once per HTTP worker, to the worker's [`Hub`],
//! which offers it to the sessions of that worker ([`subscribers::Subscribers`]).
//!
//! Publishing is coalesced: a snapshot costs work in proportion to every service (its list
//! body is rendered whole), so a change right after another waits for a publish shared by
//! all changes in a short window ([`Publisher`]) instead of rebuilding the snapshot once per
//! change. A mass outage of N services then costs a few rebuilds, not N. A change after a
//! quiet spell is published at once.
//!
//! On a cluster node (`replica.rs`) the registry publishes what etcd holds instead of its
//! own decisions: the leader's decisions become fenced writes, and every node publishes the
//! changes its watch brings, in the same order, tagged with their revisions.
//!
//! It also supervises the monitors, one for one: a monitor whose actor died (a panic) is
//! noticed on the next supervision tick and started again, resuming from its server's last
//! reported health; the other servers of the service are not touched.

mod apply;
mod changelog;
mod etcd_events;
mod hub;
mod ledger;
mod maintenance;
mod publisher;
mod reconfigure;
mod redundancy;
mod reload;
mod rounds;
mod subscribe;
mod subscribers;
mod tracked;
mod transition;
mod views;
mod windows;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, oneshot};
use tracing::{error, info};

use crate::alerts::dispatcher::Dispatcher;
use crate::cluster::Cluster;
use crate::config::services::ServiceSpec;
use crate::domain::maintenance::Windows;
use crate::history::{Change, History, Opened};
use crate::metrics::Metrics;
use crate::monitor::{ServerChanged, ServerIdentity, ServerMonitor, StopMonitor};
use crate::snapshot::{Pending, Snapshot};

pub(crate) use hub::Hub;
use ledger::Ledger;
pub(crate) use maintenance::{EndMaintenance, MaintenanceError, PutMaintenance};
use publisher::Publisher;
pub(crate) use redundancy::{Standing, Standings};
pub(crate) use subscribe::{SubscribeServices, UnsubscribeServices};
pub(crate) use subscribers::Delivery;
use tracked::{Tracked, metric_servers};
use transition::log_transition;

/// How often the registry checks that every monitor is alive.
const SUPERVISION_INTERVAL: Duration = Duration::from_secs(1);

/// Where the registry publishes; cloned into every HTTP worker.
pub(crate) type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// Resolves once every service's servers have all been probed.
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
pub(crate) struct WhenReady;

/// Answers at once; the watchdog uses it to prove the actor system still runs.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Ping;

/// Replaces the configured services (a reload): unchanged ones keep their monitors and
/// state, changed ones get new monitors, removed ones end with a last Inactive message to
/// their subscribers, added ones start.
#[derive(Message)]
#[rtype(result = "ReloadSummary")]
pub(crate) struct ApplyServices(pub Vec<ServiceSpec>);

/// What a reload changed, by service id.
#[derive(Debug, Default, Clone, PartialEq, Eq, MessageResponse)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

/// The registry actor.
pub(crate) struct Registry {
    services: Vec<Tracked>,
    /// Position in `services` by id.
    positions: HashMap<Arc<str>, usize>,
    published: SharedSnapshot,
    probe_slots: Arc<Semaphore>,
    /// The hubs of the threads whose sessions subscribed, each sent every publish.
    hubs: Vec<Addr<Hub>>,
    ready_waiters: Vec<oneshot::Sender<()>>,
    /// Numbers monitors, so that a report from a replaced one is recognised.
    generations: u64,
    metrics: Arc<Metrics>,
    /// When the next snapshot goes out, and the notifications waiting for it.
    publisher: Publisher,
    /// The publish scheduled for later, if any.
    scheduled: Option<SpawnHandle>,
    /// The tag of the last snapshot published: random high bits, so that a restarted
    /// daemon does not reuse the tags (and so the `ETag`s) of the last one.
    snapshot_tag: u64,
    /// Where each change is recorded.
    history: History,
    /// The maintenance windows of services that are not configured now (removed by a
    /// reload, or configured only on another node): a service's own windows live in its
    /// `Tracked`, their one owner; these wait for the service to come back, or end.
    unconfigured_windows: Windows,
    /// Where decisions are committed (alone: here; on a cluster node: etcd), and the log
    /// of what was applied.
    ledger: Ledger,
    /// Told of every committed change, when alerting runs.
    alerts: Option<Addr<Dispatcher>>,
    /// The nodes' first rounds, and this node's (see `views.rs`).
    rounds: rounds::Rounds,
}

impl Registry {
    /// A registry for `specs` that will publish into `published` and record into `past`'s
    /// history, resuming from what it held; monitors start with it.
    pub fn new(
        specs: Vec<ServiceSpec>,
        probes_in_flight: usize,
        published: SharedSnapshot,
        metrics: Arc<Metrics>,
        mut past: Opened,
        cluster: Option<Cluster>,
    ) -> Self {
        let now = SystemTime::now();
        if cluster.is_some() {
            // A cluster keeps its maintenance windows in etcd, not in each node's history.
            past.windows = Windows::default();
        } else {
            maintenance::end_windows_passed_while_stopped(&mut past, now);
        }
        let stored: HashMap<&str, &Change> = past
            .latest
            .iter()
            .map(|c| (c.service.as_str(), c))
            .collect();
        let services: Vec<Tracked> = specs
            .into_iter()
            .map(|spec| {
                let windows = past.windows.of(&spec.id, now);
                past.windows.set_service(&spec.id, Vec::new());
                let last = stored.get(spec.id.as_str()).copied();
                Tracked::pending(spec, now, last, windows)
            })
            .collect();
        for t in &services {
            metrics.services.set_pending(&t.spec.id);
            metrics.configure_service(
                &t.spec.id,
                &metric_servers(&t.spec),
                t.spec.pair.backup.is_some(),
            );
        }
        let mut registry = Registry {
            services,
            positions: HashMap::new(),
            published,
            probe_slots: Arc::new(Semaphore::new(probes_in_flight)),
            hubs: Vec::new(),
            ready_waiters: Vec::new(),
            generations: 0,
            metrics,
            publisher: Publisher::default(),
            scheduled: None,
            snapshot_tag: fastrand::u64(..) << 24,
            history: past.history.clone(),
            unconfigured_windows: past.windows,
            ledger: match cluster {
                Some(cluster) => Ledger::etcd(cluster),
                None => Ledger::local(now, past.history),
            },
            alerts: None,
            rounds: Default::default(),
        };
        for t in &registry.services {
            registry
                .metrics
                .services
                .set_maintenance(&t.spec.id, !t.windows.is_empty());
        }
        registry.index();
        registry.publish();
        registry
    }

    /// Tells `alerts` of every committed change from now on.
    pub fn alerting(mut self, alerts: Addr<Dispatcher>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Rebuilds the positions by id.
    fn index(&mut self) {
        self.positions = self
            .services
            .iter()
            .enumerate()
            .map(|(i, t)| (Arc::from(t.spec.id.as_str()), i))
            .collect();
    }

    /// Builds and swaps in a new snapshot, then offers the notifications waiting for it.
    fn publish(&mut self) {
        let started = publisher::thread_cpu();
        let services = self
            .services
            .iter()
            .filter_map(Tracked::shown)
            .cloned()
            .collect();
        let pending = self
            .services
            .iter()
            .filter(|t| t.shown().is_none())
            .map(|t| Pending {
                service: t.published.clone(),
                retry_after_secs: t.retry_after_secs(),
            })
            .collect();
        self.snapshot_tag = self.snapshot_tag.wrapping_add(1);
        let mut snapshot = Snapshot::new(services)
            .with_pending(pending)
            .tagged(self.snapshot_tag);
        if !self.ledger.synced() {
            snapshot = snapshot.unavailable_because(
                "this cluster node has not read the services' states from etcd since it started (etcd is out of reach); it serves them once it has".into(),
            );
        }
        self.published.store(Arc::new(snapshot));
        self.metrics.services.publishes.inc();
        self.ledger.log.published();
        let cost = publisher::thread_cpu().saturating_sub(started);
        let waiting = self.publisher.published(cost, Instant::now());
        if waiting.is_empty() {
            return;
        }
        let messages: hub::Notifications = waiting.into();
        // A hub whose worker has stopped has no sessions left to tell.
        self.hubs.retain(Addr::connected);
        for hub in &self.hubs {
            hub.do_send(hub::Publish {
                messages: messages.clone(),
                metrics: self.metrics.clone(),
            });
        }
    }

    /// Publishes now, or schedules the publish for when the window since the last one ends.
    fn publish_soon(&mut self, ctx: &mut Context<Self>) {
        if self.scheduled.is_some() {
            return;
        }
        match self.publisher.delay(Instant::now()) {
            None => self.publish(),
            Some(delay) => {
                self.scheduled = Some(ctx.run_later(delay, |act, _ctx| {
                    act.scheduled = None;
                    act.publish();
                }));
            }
        }
    }

    /// Publishes now, taking any change waiting for a scheduled publish: what an answer
    /// about to be sent promises must be what every later read on this node shows.
    fn publish_now(&mut self, ctx: &mut Context<Self>) {
        if let Some(scheduled) = self.scheduled.take() {
            ctx.cancel_future(scheduled);
        }
        self.publish();
    }

    /// Starts a new monitor for server `server` of the service at `index`, resuming from the
    /// server's last reported health; from now on the registry listens to that monitor
    /// alone.
    fn start_monitor(&mut self, index: usize, server: usize, ctx: &Context<Self>) {
        self.generations += 1;
        let tracked = &mut self.services[index];
        let spec = tracked.spec.clone();
        let (part, instance) = spec
            .servers()
            .nth(server)
            .expect("one server slot per server of the spec");
        let slot = &mut tracked.servers[server];
        slot.generation = self.generations;
        let monitor = ServerMonitor::new(
            ServerIdentity {
                service: spec.id.as_str().into(),
                part,
                spec: Arc::new(instance.clone()),
                generation: slot.generation,
                record: tracked.instances.records[server].clone(),
            },
            slot.health,
            ctx.address().recipient(),
            self.probe_slots.clone(),
            &self.metrics,
        );
        slot.monitor = Some(monitor.start());
    }

    /// Starts a monitor for every server of the service at `index`.
    fn start_monitors(&mut self, index: usize, ctx: &Context<Self>) {
        for server in 0..self.services[index].servers.len() {
            self.start_monitor(index, server, ctx);
        }
    }

    /// Whether the node serves what it promises: alone, every server has been probed;
    /// on a cluster, etcd has been read, and its history before the read replayed (a
    /// client resuming from a revision gets exactly what it missed).
    fn all_ready(&self) -> bool {
        self.ledger
            .ready(self.services.iter().all(|t| t.is_ready()))
    }

    /// Wakes those waiting for readiness, once every server has been probed, after
    /// publishing what the first probes found (readiness promises it is served).
    fn wake_ready_waiters(&mut self, ctx: &mut Context<Self>) {
        if self.all_ready() && !self.ready_waiters.is_empty() {
            if self.scheduled.is_some() {
                self.publish_now(ctx);
            }
            for waiter in self.ready_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Publishes a change of the service at `index`: its gauges at once, then (soon) a new
    /// snapshot and its notification to subscribers.
    fn announce(&mut self, index: usize, ctx: &mut Context<Self>) {
        self.changed(index);
        self.publish_soon(ctx);
    }

    /// Sets the gauges of the service at `index` and queues its notification for the next
    /// publish.
    fn changed(&mut self, index: usize) {
        let tracked = &self.services[index];
        let (Some(published), Some(replica)) = (tracked.shown(), &tracked.replica) else {
            return;
        };
        let spec = &tracked.spec;
        let assessment = &replica.record.assessment;
        self.metrics.services.set_state(&spec.id, assessment.state);
        self.metrics.services.set_serving(
            &spec.id,
            assessment.serving,
            spec.pair.backup.is_some(),
            spec.pair.asks_roles().then_some(assessment.source),
        );
        self.metrics.services.changes.inc();
        self.publisher
            .wait(published.notification.clone(), spec.feature.clone());
    }

    /// Restarts every monitor whose actor has died.
    fn supervise(&mut self, ctx: &mut Context<Self>) {
        if !self.ledger.probes() {
            return;
        }
        for i in 0..self.services.len() {
            for server in 0..self.services[i].servers.len() {
                let slot = &self.services[i].servers[server];
                if slot.monitor.as_ref().is_some_and(Addr::connected) {
                    continue;
                }
                if slot.monitor.is_some() {
                    error!(service = %self.services[i].spec.id, server = %slot.part, "monitor stopped unexpectedly; restarting it");
                }
                self.start_monitor(i, server, ctx);
            }
        }
    }
}

/// Stops the monitors of a service that a reload replaced or removed.
fn stop_monitors(tracked: &Tracked) {
    for monitor in tracked.servers.iter().filter_map(|s| s.monitor.as_ref()) {
        monitor.do_send(StopMonitor);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.runs_monitors() {
            info!(services = self.services.len(), "starting monitors");
        } else {
            info!(
                services = self.services.len(),
                "waiting for etcd: the elected leader runs the monitors, and this node serves what it writes"
            );
        }
        self.supervise(ctx);
        ctx.run_interval(SUPERVISION_INTERVAL, |act, ctx| {
            act.supervise(ctx);
            act.end_passed_windows(ctx);
        });
    }
}

impl Handler<ServerChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ServerChanged, ctx: &mut Self::Context) {
        let Some(&index) = self.positions.get(&msg.service) else {
            return;
        };
        if !self.saw(index, &msg) || !self.runs_monitors() {
            // A replaced monitor's report; or this node follows: its view is published,
            // and the leader decides.
            return;
        }
        let (health, _) = self.voted(index, msg.part, msg.health);
        self.observe_server(
            index,
            msg.part,
            msg.generation,
            health,
            msg.said,
            &msg.reason,
            ctx,
        );
    }
}

impl Registry {
    /// Takes a server's health (as the votes make it) and said role, decides the service
    /// again, and commits what changed.
    #[allow(clippy::too_many_arguments)]
    fn observe_server(
        &mut self,
        index: usize,
        part: crate::domain::service::Part,
        generation: u64,
        health: crate::domain::health::Health,
        said: crate::domain::roles::SaidRole,
        reason: &str,
        ctx: &mut Context<Self>,
    ) {
        let tracked = &mut self.services[index];
        let was_ready = tracked.is_ready();
        let now = SystemTime::now();
        let before = tracked.server(part, generation);
        let transition = tracked.observe(part, generation, health, said, now);
        let became_ready = !was_ready && tracked.is_ready();
        self.show_redundancy(index);
        let tracked = &self.services[index];
        if let Some(transition) = transition {
            log_transition(&tracked.spec.id, transition, reason, &self.metrics);
            self.commit(index, reason, now, ctx);
        } else if before.is_some_and(|b| b != (health, said)) {
            self.commit_health(index, now, ctx);
        }
        if became_ready {
            self.wake_ready_waiters(ctx);
        }
    }
}

impl Handler<WhenReady> for Registry {
    type Result = MessageResult<WhenReady>;

    fn handle(&mut self, _msg: WhenReady, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.ready_waiters.push(tx);
        self.wake_ready_waiters(ctx);
        MessageResult(rx)
    }
}

impl Handler<Ping> for Registry {
    type Result = ();

    fn handle(&mut self, _msg: Ping, _ctx: &mut Self::Context) {}
}

#[cfg(test)]
mod tests;
