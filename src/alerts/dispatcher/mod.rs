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

mod certificates;
mod delivery;
mod node;
mod reconfigure;
mod test_notification;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use super::derive::{Observed, View, events, firing};
use super::event::{Alert, AlertStatus, Event};
use super::flapping::{percent_state_change, prune};
use super::grouping::Group;
use super::node::NodeWatch;
use super::outbox::{Outbox, Pending};
use super::receivers::Receiver;
use crate::cluster::{Cluster, ClusterStatus};
use crate::config::alerts::AlertSettings;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

pub use reconfigure::Reconfigure;
pub use test_notification::{TestError, TestReceiver};

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
    /// What the monitors last saw of each instance's certificate (and what the API shows).
    snapshot: Option<Arc<ArcSwap<Snapshot>>>,
    /// The certificates told as expiring, by service and instance, with since when.
    certificates: HashMap<(String, String), SystemTime>,
    /// On a cluster node: whether it is stale, which it tells itself.
    status: Option<Arc<ClusterStatus>>,
    node_watch: NodeWatch,
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
        snapshot: Option<Arc<ArcSwap<Snapshot>>>,
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
            status: cluster.as_ref().map(|c| c.status.clone()),
            cluster,
            delivered: vec![0; n],
            snapshot,
            certificates: HashMap::new(),
            node_watch: NodeWatch::default(),
        }
    }

    fn receiver_index(&self, name: &str) -> Option<usize> {
        self.receivers.iter().position(|r| r.spec().name == name)
    }

    /// Reads back what the outbox kept: the views, the events waiting for their group, the
    /// notifications not yet delivered.
    fn restore(&mut self, ctx: &mut Context<Self>) {
        match self.outbox.certificates() {
            Ok(told) => {
                self.certificates = told
                    .into_iter()
                    .map(|(service, instance, since)| ((service, instance), since))
                    .collect()
            }
            Err(e) => error!(error = %e, "cannot read the certificates told as expiring"),
        }
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
        let changed = (before.as_ref() != Some(&observed.view)).then_some(&observed.view);
        self.refresh_alerts(&observed);
        // Every node groups and keeps the events; only the one that decides sends them,
        // and the others forget them once it says they are delivered.
        self.route(
            (&observed.service, &observed.attributes),
            told,
            changed,
            ctx,
        );
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
            // An instance's alert (`name/instance`) is the certificates' to resolve.
            .filter(|(s, n)| s == id && !n.contains('/') && !names.contains(n.as_str()))
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
        self.look_at_the_node(ctx);
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
            // What waited while another node led is this one's to send now.
            self.resume_lanes(ctx);
        }
    }

    /// Every receiver's group is flushed when due, and its lane started: after a change of
    /// leadership, or of the receivers.
    fn resume_lanes(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for r in 0..self.receivers.len() {
            if let Some(due) = self.groups[r].due() {
                let wait = due.saturating_duration_since(now);
                self.later(r, wait, Dispatcher::flush, ctx);
            }
            self.count_queue(r);
            self.kick(r, ctx);
        }
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.restore(ctx);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
        ctx.run_interval(certificates::LOOK_EVERY, |act, ctx| {
            act.look_at_certificates(ctx)
        });
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

impl Handler<ActiveAlerts> for Dispatcher {
    type Result = MessageResult<ActiveAlerts>;

    fn handle(&mut self, _msg: ActiveAlerts, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.firing.values().cloned().collect())
    }
}
