//! The dispatcher: the actor that hears every committed change of every service (from the
//! registry, on every node), keeps what each service was last seen as, derives the events
//! and the alerts firing, and, where this node decides (alone, or leading a cluster),
//! groups the events per receiver, keeps them in the outbox and delivers them.
//!
//! It runs on an arbiter (a thread) of its own: the outbox's writes are synchronous, and a
//! slow receiver is a future among others there, never in the registry's way. Each
//! receiver has a lane: one delivery at a time, in order, retried with backoff
//! ([`super::grouping::backoff`]) up to the receiver's `attempts`, its queue bounded (the
//! oldest dropped past `queue`, counted and logged), so that one receiver down or slow
//! delays nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use blake2::{Blake2s256, Digest};
use tracing::{error, info, warn};

use super::derive::{Observed, View, events, firing};
use super::event::{Alert, AlertStatus, Event, EventKind};
use super::flapping::{percent_state_change, prune};
use super::grouping::{Group, backoff};
use super::notification::{Notification, VERSION};
use super::outbox::{Outbox, Pending};
use super::receivers::Receiver;
use super::routing::receivers_for;
use crate::cluster::Cluster;
use crate::config::alerts::AlertSettings;
use crate::config::receivers::ReceiverKind;
use crate::metrics::Metrics;

/// How often flapping services are looked at again (flapping stops with time) and alerts
/// still firing are considered for a repeat.
const TICK: Duration = Duration::from_secs(1);
/// Alertmanager forgets an alert not posted again within its `resolve_timeout` (5 minutes
/// by default): firing alerts are posted to it again this often, as Prometheus does.
const ALERTMANAGER_REPEAT: Duration = Duration::from_secs(60);
/// Resolved alerts are kept this long, for the notifications that tell of them.
const RESOLVED_KEPT: Duration = Duration::from_secs(3600);

/// A committed change of a service, from the registry.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observe {
    pub observed: Observed,
    /// The service's check interval: flap detection's "check".
    pub interval: Duration,
    /// Whether this node decides (and so sends): alone, or the cluster's leader.
    pub leading: bool,
}

/// The leader delivered the events routed to `receiver` up to `revision` (read from etcd,
/// on every node of a cluster).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delivered {
    pub receiver: String,
    pub revision: i64,
}

/// This node now decides (and sends), or no longer does.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leading(pub bool);

/// A test notification to one receiver, asked for by an administrator: delivered at once
/// (not through the outbox), the outcome answered.
#[derive(Message)]
#[rtype(result = "Result<String, TestError>")]
pub struct TestReceiver {
    pub receiver: String,
    /// Who asked, said in the notification.
    pub by: String,
}

/// Why a test notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("no receiver named \"{0}\"")]
    NoReceiver(String),
    #[error("receiver \"{receiver}\" did not take the test notification: {error}")]
    Failed { receiver: String, error: String },
}

/// The alerts firing now.
#[derive(Message)]
#[rtype(result = "Vec<Alert>")]
pub struct ActiveAlerts;

/// What the dispatcher knows of a service.
struct Known {
    observed: Observed,
    /// When its state changed lately, for flap detection.
    changes: Vec<SystemTime>,
    interval: Duration,
}

/// One receiver's deliveries.
#[derive(Default)]
struct Lane {
    queue: VecDeque<Pending>,
    busy: bool,
    /// A retry is scheduled: nothing starts before it.
    waiting: bool,
    /// When it was last told anything, for `repeat_interval`.
    told: Option<Instant>,
}

/// The alerts dispatcher actor.
pub struct Dispatcher {
    settings: AlertSettings,
    node: String,
    receivers: Vec<Rc<Receiver>>,
    lanes: Vec<Lane>,
    groups: Vec<Group<(i64, Event)>>,
    known: HashMap<String, Known>,
    /// Views kept by the outbox from before the start, until each service is seen again.
    stored: HashMap<String, View>,
    firing: BTreeMap<(String, String), Alert>,
    resolved: Vec<Alert>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    leading: bool,
    /// On a cluster node: where the leader says what it delivered.
    cluster: Option<Cluster>,
    /// Per receiver: the revision up to which its events were delivered (by this node or,
    /// in a cluster, by whichever led).
    delivered: Vec<i64>,
}

impl Dispatcher {
    /// A dispatcher for `settings`' receivers, keeping its memory in `outbox`.
    pub fn new(
        settings: AlertSettings,
        receivers: Vec<Receiver>,
        node: String,
        outbox: Outbox,
        metrics: Arc<Metrics>,
        cluster: Option<Cluster>,
    ) -> Dispatcher {
        for r in &receivers {
            metrics.alerts.receiver(&r.spec().name);
        }
        let n = receivers.len();
        Dispatcher {
            settings,
            node,
            receivers: receivers.into_iter().map(Rc::new).collect(),
            lanes: (0..n).map(|_| Lane::default()).collect(),
            groups: (0..n).map(|_| Group::default()).collect(),
            known: HashMap::new(),
            stored: HashMap::new(),
            firing: BTreeMap::new(),
            resolved: Vec::new(),
            outbox,
            metrics,
            leading: false,
            cluster,
            delivered: vec![0; n],
        }
    }

    fn receiver_index(&self, name: &str) -> Option<usize> {
        self.receivers.iter().position(|r| r.spec().name == name)
    }

    /// Reads back what the outbox kept: the views, the events waiting for their group, the
    /// notifications not yet delivered.
    fn restore(&mut self, ctx: &mut Context<Self>) {
        match self.outbox.views() {
            Ok(views) => self.stored = views.into_iter().collect(),
            Err(e) => {
                error!(error = %e, "cannot read the alerts' views; every service is seen afresh")
            }
        }
        let now = Instant::now();
        match self.outbox.waiting() {
            Ok(waiting) => {
                for (id, receiver, event) in waiting {
                    match self.receiver_index(&receiver) {
                        Some(r) => self.wait(r, id, event, now, ctx),
                        None => {
                            warn!(receiver, key = %event.key, "an event waited for a receiver no longer configured; dropped")
                        }
                    }
                }
            }
            Err(e) => error!(error = %e, "cannot read the alerts' waiting events"),
        }
        match self.outbox.pending() {
            Ok(pending) => {
                for p in pending {
                    match self.receiver_index(&p.receiver) {
                        Some(r) => self.lanes[r].queue.push_back(p),
                        None => {
                            warn!(receiver = %p.receiver, key = %p.notification.key, "a notification waited for a receiver no longer configured; dropped");
                            let _ = self.outbox.done(p.id);
                        }
                    }
                }
            }
            Err(e) => error!(error = %e, "cannot read the alerts' outbox"),
        }
        for r in 0..self.lanes.len() {
            self.count_queue(r);
        }
    }

    /// Takes one observation: flap detection, events, alerts; routes the events where this
    /// node sends.
    fn observe(&mut self, mut observed: Observed, interval: Duration, ctx: &mut Context<Self>) {
        let id = observed.service.id.clone();
        let (before, mut changes) = match self.known.remove(&id) {
            Some(k) => (Some(k.observed.view), k.changes),
            None => (self.stored.remove(&id), Vec::new()),
        };
        let view = &mut observed.view;
        if let Some(b) = &before {
            if b.state != view.state {
                changes.push(observed.at);
            }
            if b.redundant == view.redundant {
                view.redundant_since = b.redundant_since;
            }
        }
        prune(&mut changes, observed.at, interval);
        let percent = percent_state_change(&changes, observed.at, interval);
        let was = before.as_ref().is_some_and(|b| b.flapping);
        view.flapping = super::flapping::flapping(was, percent, self.settings.flapping);
        self.metrics.alerts.set_flapping(&id, view.flapping);
        self.take(before, observed, changes, interval, ctx);
    }

    /// Keeps `observed` as the service's view and tells what changed since `before`.
    fn take(
        &mut self,
        before: Option<View>,
        observed: Observed,
        changes: Vec<SystemTime>,
        interval: Duration,
        ctx: &mut Context<Self>,
    ) {
        let id = observed.service.id.clone();
        let mute = self.settings.mute_in_maintenance;
        let told = events(before.as_ref(), &observed, mute);
        if before.as_ref() != Some(&observed.view) {
            if let Err(e) = self.outbox.put_view(&id, &observed.view) {
                error!(service = %id, error = %e, "cannot keep the service's view for alerts");
            }
        }
        self.refresh_alerts(&observed);
        // Every node groups and keeps the events; only the one that decides sends them,
        // and the others forget them once it says they are delivered.
        self.route(&observed, told, ctx);
        self.known.insert(
            id,
            Known {
                observed,
                changes,
                interval,
            },
        );
    }

    /// Updates the alerts firing for `observed`'s service: those that stop are resolved.
    fn refresh_alerts(&mut self, observed: &Observed) {
        let id = &observed.service.id;
        let now_firing = firing(observed, self.settings.mute_in_maintenance);
        let names: BTreeSet<&str> = now_firing.iter().map(|a| a.name.as_str()).collect();
        let ended: Vec<(String, String)> = self
            .firing
            .keys()
            .filter(|(s, n)| s == id && !names.contains(n.as_str()))
            .cloned()
            .collect();
        for key in ended {
            if let Some(mut alert) = self.firing.remove(&key) {
                alert.status = AlertStatus::Resolved;
                alert.ends_at = Some(observed.at);
                self.resolved.push(alert);
            }
        }
        for alert in now_firing {
            let key = (id.clone(), alert.name.clone());
            // An alert that goes on firing keeps when it started.
            self.firing.entry(key).or_insert(alert);
        }
        let horizon = SystemTime::now() - RESOLVED_KEPT;
        self.resolved
            .retain(|a| a.ends_at.is_some_and(|e| e > horizon));
        self.metrics.alerts.firing.set(self.firing.len() as i64);
    }

    /// Sends each event to the receivers its routes name, through their groups.
    fn route(&mut self, observed: &Observed, told: Vec<Event>, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut per_receiver: BTreeMap<usize, Vec<Event>> = BTreeMap::new();
        for event in told {
            if self.leading {
                info!(service = %observed.service.id, kind = event.kind.as_str(), key = %event.key, summary = %event.summary, "alert event");
            }
            let targets = receivers_for(
                &self.settings.routes,
                self.receivers.len(),
                Some(&observed.service),
                &observed.attributes,
                event.kind,
            );
            for r in targets {
                per_receiver.entry(r).or_default().push(event.clone());
            }
        }
        for (r, events) in per_receiver {
            let name = self.receivers[r].spec().name.clone();
            match self.outbox.wait(&name, &events) {
                Ok(ids) => {
                    for (id, event) in ids.into_iter().zip(events) {
                        self.wait(r, id, event, now, ctx);
                    }
                }
                Err(e) => {
                    error!(receiver = %name, error = %e, "cannot keep events in the alerts' outbox; they are told from memory")
                }
            }
        }
    }

    /// Adds an event to receiver `r`'s group, and schedules the group.
    fn wait(&mut self, r: usize, id: i64, event: Event, now: Instant, ctx: &mut Context<Self>) {
        let timing = self.settings.timing;
        let first = self.groups[r].due().is_none();
        let due = self.groups[r].add((id, event), now, &timing);
        if first {
            ctx.run_later(due.saturating_duration_since(now), move |act, ctx| {
                act.flush(r, ctx)
            });
        }
    }

    /// Receiver `r`'s group is due: one notification of its events.
    fn flush(&mut self, r: usize, ctx: &mut Context<Self>) {
        if !self.leading {
            return;
        }
        let Some(items) = self.groups[r].take_due(Instant::now()) else {
            return;
        };
        let (ids, events): (Vec<i64>, Vec<Event>) = items.into_iter().unzip();
        let alerts = self.alerts_of(&events);
        let key = key_of(
            &self.receivers[r].spec().name,
            events.iter().map(|e| e.key.as_str()),
        );
        self.enqueue(r, &ids, key, events, alerts, false, ctx);
    }

    /// The alerts `events` touched: firing, or resolved since the first of them.
    fn alerts_of(&self, events: &[Event]) -> Vec<Alert> {
        let services: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.service.as_ref().map(|s| s.id.as_str()))
            .collect();
        let since = events.iter().map(|e| e.at).min();
        let firing = self
            .firing
            .values()
            .filter(|a| services.contains(a.service.as_str()));
        let resolved = self.resolved.iter().filter(|a| {
            services.contains(a.service.as_str())
                && since.is_some_and(|s| a.ends_at.is_some_and(|e| e >= s))
        });
        firing.chain(resolved).cloned().collect()
    }

    /// Keeps a notification in the outbox and queues it on receiver `r`'s lane.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        r: usize,
        grouped: &[i64],
        key: String,
        events: Vec<Event>,
        alerts: Vec<Alert>,
        repeat: bool,
        ctx: &mut Context<Self>,
    ) {
        let receiver = self.receivers[r].spec().name.clone();
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        let notification = Notification {
            version: VERSION,
            key,
            receiver: receiver.clone(),
            status,
            node: self.node.clone(),
            created_at: SystemTime::now(),
            events,
            alerts,
            repeat,
        };
        let id = match self.outbox.enqueue(grouped, &notification) {
            Ok(id) => id,
            Err(e) => {
                error!(receiver, error = %e, "cannot keep a notification in the alerts' outbox; it is sent from memory");
                -1
            }
        };
        let lane = &mut self.lanes[r];
        lane.told = Some(Instant::now());
        lane.queue.push_back(Pending {
            id,
            receiver: receiver.clone(),
            notification,
            attempts: 0,
        });
        let bound = self.receivers[r].spec().queue;
        while lane.queue.len() > bound {
            // The oldest not being delivered goes.
            let at = usize::from(lane.busy);
            let Some(dropped) = lane.queue.remove(at) else {
                break;
            };
            warn!(receiver, key = %dropped.notification.key, queue = bound, "the receiver's queue is full; its oldest notification is dropped");
            self.metrics.alerts.outcome(&receiver, "dropped");
            let _ = self.outbox.done(dropped.id);
        }
        self.count_queue(r);
        self.kick(r, ctx);
    }

    fn count_queue(&self, r: usize) {
        let name = &self.receivers[r].spec().name;
        self.metrics
            .alerts
            .set_queue(name, self.lanes[r].queue.len());
    }

    /// Starts receiver `r`'s next delivery, unless one runs or waits to retry.
    fn kick(&mut self, r: usize, ctx: &mut Context<Self>) {
        let lane = &mut self.lanes[r];
        if !self.leading || lane.busy || lane.waiting {
            return;
        }
        let Some(next) = lane.queue.front() else {
            return;
        };
        lane.busy = true;
        let (id, notification) = (next.id, next.notification.clone());
        let receiver = self.receivers[r].clone();
        let attempt = async move { receiver.deliver(&notification).await };
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(attempt)
                .map(move |result, act, ctx| act.delivered(r, id, result, ctx)),
        );
    }

    /// An attempt at receiver `r`'s first notification ended.
    fn delivered(
        &mut self,
        r: usize,
        id: i64,
        result: Result<(), super::receivers::DeliveryError>,
        ctx: &mut Context<Self>,
    ) {
        let spec = self.receivers[r].spec().clone();
        let lane = &mut self.lanes[r];
        lane.busy = false;
        let Some(front) = lane.queue.front_mut().filter(|p| p.id == id) else {
            self.kick(r, ctx);
            return;
        };
        let key = front.notification.key.clone();
        let reached = front.notification.events.iter().map(|e| e.revision).max();
        match result {
            Ok(()) => {
                info!(receiver = %spec.name, kind = self.receivers[r].kind_name(), key, summary = %front.notification.summary(), "notification delivered");
                lane.queue.pop_front();
                self.reached(r, reached);
                self.metrics.alerts.outcome(&spec.name, "delivered");
                let _ = self.outbox.done(id);
            }
            Err(e) => {
                front.attempts += 1;
                let attempts = front.attempts;
                if attempts >= spec.attempts {
                    error!(receiver = %spec.name, key, attempts, error = %e, "notification given up");
                    lane.queue.pop_front();
                    self.reached(r, reached);
                    self.metrics.alerts.outcome(&spec.name, "failed");
                    let _ = self.outbox.done(id);
                } else {
                    let wait = backoff(attempts);
                    warn!(receiver = %spec.name, key, attempts, retry_in = ?wait, error = %e, "notification not delivered; will retry");
                    let _ = self.outbox.attempted(id, attempts);
                    lane.waiting = true;
                    ctx.run_later(wait, move |act, ctx| {
                        act.lanes[r].waiting = false;
                        act.kick(r, ctx);
                    });
                }
            }
        }
        self.count_queue(r);
        self.kick(r, ctx);
    }

    /// Receiver `r` is done with the events up to `revision` (delivered, or given up): on
    /// a cluster node, etcd is told, for a successor and the followers.
    fn reached(&mut self, r: usize, revision: Option<i64>) {
        let Some(revision) = revision.filter(|&rev| rev > self.delivered[r]) else {
            return;
        };
        self.delivered[r] = revision;
        if let Some(cluster) = &self.cluster {
            cluster.write_delivered(&self.receivers[r].spec().name, revision);
        }
    }

    /// The leader delivered receiver `r`'s events up to `revision`: what waits here up to
    /// it is forgotten, so that this node, leading next, sends only what came after.
    fn forget_delivered(&mut self, r: usize, revision: i64) {
        self.delivered[r] = self.delivered[r].max(revision);
        let dropped: Vec<i64> = self.groups[r]
            .retain(|(_, e)| e.revision > revision)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if let Err(e) = self.outbox.forget_waiting(&dropped) {
            error!(error = %e, "cannot forget delivered events in the alerts' outbox");
        }
        let lane = &mut self.lanes[r];
        let busy = usize::from(lane.busy);
        let mut index = busy;
        while index < lane.queue.len() {
            let events = &lane.queue[index].notification.events;
            if !events.is_empty() && events.iter().all(|e| e.revision <= revision) {
                if let Some(done) = lane.queue.remove(index) {
                    let _ = self.outbox.done(done.id);
                }
            } else {
                index += 1;
            }
        }
        self.count_queue(r);
    }

    /// Every second: flapping services that settled stop flapping; alerts still firing
    /// are told again after their receiver's repeat interval.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = SystemTime::now();
        let settled: Vec<String> = self
            .known
            .iter()
            .filter(|(_, k)| k.observed.view.flapping)
            .filter(|(_, k)| {
                let percent = percent_state_change(&k.changes, now, k.interval);
                !super::flapping::flapping(true, percent, self.settings.flapping)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in settled {
            let Some(known) = self.known.remove(&id) else {
                continue;
            };
            let before = known.observed.view.clone();
            let mut observed = known.observed;
            observed.at = now;
            observed.view.flapping = false;
            observed.reason = "the state has settled".into();
            self.metrics.alerts.set_flapping(&id, false);
            self.take(Some(before), observed, known.changes, known.interval, ctx);
        }
        if self.leading {
            self.repeat(ctx);
        }
    }

    /// Tells each receiver again of the alerts still firing for it, once its repeat
    /// interval has passed since it was last told anything.
    fn repeat(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for r in 0..self.receivers.len() {
            let every = match self.receivers[r].spec().kind {
                ReceiverKind::Alertmanager { .. } => ALERTMANAGER_REPEAT,
                _ => self.settings.timing.repeat_interval,
            };
            let lane = &mut self.lanes[r];
            let told = *lane.told.get_or_insert(now);
            if now.duration_since(told) < every || !lane.queue.is_empty() {
                continue;
            }
            let alerts: Vec<Alert> = self
                .firing
                .values()
                .filter(|a| self.routed(a, r))
                .cloned()
                .collect();
            self.lanes[r].told = Some(now);
            if alerts.is_empty() {
                continue;
            }
            let name = self.receivers[r].spec().name.clone();
            let key = format!(
                "{name}/repeat/{}",
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            );
            self.enqueue(r, &[], key, Vec::new(), alerts, true, ctx);
        }
    }

    /// Whether alert `a` is for receiver `r`, by the routes of the event that fires it.
    fn routed(&self, a: &Alert, r: usize) -> bool {
        let kind = match a.name.as_str() {
            "RedundancyLost" => EventKind::RedundancyLost,
            "Flapping" => EventKind::FlappingStarted,
            _ => EventKind::StateChanged,
        };
        let Some(known) = self.known.get(&a.service) else {
            return false;
        };
        receivers_for(
            &self.settings.routes,
            self.receivers.len(),
            Some(&known.observed.service),
            &known.observed.attributes,
            kind,
        )
        .contains(&r)
    }

    fn set_leading(&mut self, leading: bool, ctx: &mut Context<Self>) {
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        if leading {
            info!(
                receivers = self.receivers.len(),
                "this node sends the alerts"
            );
            let now = Instant::now();
            for r in 0..self.receivers.len() {
                // What waited while another node led is this one's to send now.
                if let Some(due) = self.groups[r].due() {
                    ctx.run_later(due.saturating_duration_since(now), move |act, ctx| {
                        act.flush(r, ctx)
                    });
                }
                self.kick(r, ctx);
            }
        }
    }
}

/// A notification's key: the same for the same events to the same receiver.
fn key_of<'a>(receiver: &str, events: impl Iterator<Item = &'a str>) -> String {
    let mut hash = Blake2s256::new();
    hash.update(receiver.as_bytes());
    for key in events {
        hash.update([0]);
        hash.update(key.as_bytes());
    }
    let digest = hash.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.restore(ctx);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Observe> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Observe, ctx: &mut Self::Context) {
        self.set_leading(msg.leading, ctx);
        self.observe(msg.observed, msg.interval, ctx);
    }
}

impl Handler<Delivered> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Delivered, _ctx: &mut Self::Context) {
        if let Some(r) = self.receiver_index(&msg.receiver) {
            self.forget_delivered(r, msg.revision);
        }
    }
}

impl Handler<Leading> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Leading, ctx: &mut Self::Context) {
        self.set_leading(msg.0, ctx);
    }
}

impl Handler<TestReceiver> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<String, TestError>>;

    fn handle(&mut self, msg: TestReceiver, _ctx: &mut Self::Context) -> Self::Result {
        let Some(r) = self.receiver_index(&msg.receiver) else {
            return Box::pin(actix::fut::ready(Err(TestError::NoReceiver(msg.receiver))));
        };
        let now = SystemTime::now();
        let millis = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let event = Event {
            key: format!("test/{millis}/test"),
            kind: EventKind::Test,
            at: now,
            revision: 0,
            service: None,
            state: None,
            previous_state: None,
            serving_instance: None,
            previous_serving_instance: None,
            planned: None,
            severity: super::event::Severity::Info,
            summary: format!(
                "test notification from servicewatch on {}, asked by {}",
                self.node, msg.by
            ),
            reason: "asked for through the API".into(),
        };
        let notification = Notification {
            version: VERSION,
            key: key_of(&msg.receiver, std::iter::once(event.key.as_str())),
            receiver: msg.receiver.clone(),
            status: AlertStatus::Resolved,
            node: self.node.clone(),
            created_at: now,
            events: vec![event],
            alerts: Vec::new(),
            repeat: false,
        };
        let receiver = self.receivers[r].clone();
        let name = msg.receiver;
        Box::pin(actix::fut::wrap_future::<_, Self>(async move {
            let key = notification.key.clone();
            match receiver.deliver(&notification).await {
                Ok(()) => {
                    info!(receiver = %name, key, by = %msg.by, "test notification delivered");
                    Ok(key)
                }
                Err(e) => {
                    warn!(receiver = %name, key, by = %msg.by, error = %e, "test notification not delivered");
                    Err(TestError::Failed {
                        receiver: name,
                        error: e.to_string(),
                    })
                }
            }
        }))
    }
}

impl Handler<ActiveAlerts> for Dispatcher {
    type Result = MessageResult<ActiveAlerts>;

    fn handle(&mut self, _msg: ActiveAlerts, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.firing.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_key_names_its_receiver_and_events() {
        let a = key_of(
            "ops",
            ["sip/1/stateChanged", "stat/2/stateChanged"].into_iter(),
        );
        assert_eq!(a.len(), 32);
        assert_eq!(
            a,
            key_of(
                "ops",
                ["sip/1/stateChanged", "stat/2/stateChanged"].into_iter()
            )
        );
        assert_ne!(
            a,
            key_of(
                "mail",
                ["sip/1/stateChanged", "stat/2/stateChanged"].into_iter()
            )
        );
        assert_ne!(a, key_of("ops", ["sip/1/stateChanged"].into_iter()));
    }
}
