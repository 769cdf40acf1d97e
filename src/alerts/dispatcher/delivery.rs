//! The dispatcher's deliveries: events routed to receivers and grouped, notifications kept
//! in the outbox and delivered on each receiver's lane, retried with backoff, bounded, and
//! (on a cluster node) the delivered revision told to etcd; repeats of alerts still firing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use blake2::{Blake2s256, Digest};
use tracing::{error, info, warn};

use super::{ALERTMANAGER_REPEAT, Dispatcher};
use crate::alerts::derive::View;
use crate::alerts::event::{Alert, AlertStatus, Event, EventKind, ServiceRef};
use crate::alerts::grouping::backoff;
use crate::alerts::notification::{Notification, VERSION};
use crate::alerts::outbox::Pending;
use crate::alerts::receivers::DeliveryError;
use crate::alerts::routing::receivers_for;
use crate::cluster::record::millis;
use crate::config::receivers::ReceiverKind;

/// The row id of an event or notification the outbox could not keep: told from memory.
pub(super) const NOT_KEPT: i64 = -1;

impl Dispatcher {
    /// Sends each event to the receivers its routes name, through their groups, keeping
    /// them (and `view`, a service's new view) in the outbox in one transaction.
    pub(super) fn route(
        &mut self,
        (service, attributes): (&ServiceRef, &BTreeMap<String, String>),
        told: Vec<Event>,
        view: Option<&View>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let mut per_receiver: BTreeMap<usize, Vec<Event>> = BTreeMap::new();
        for event in told {
            if self.leading {
                info!(service = %service.id, kind = event.kind.as_str(), key = %event.key, summary = %event.summary, "alert event");
            }
            let targets = receivers_for(
                &self.settings.routes,
                self.receivers.len(),
                Some(service),
                attributes,
                event.kind,
            );
            for r in targets {
                per_receiver.entry(r).or_default().push(event.clone());
            }
        }
        if view.is_none() && per_receiver.is_empty() {
            return;
        }
        let names: Vec<String> = per_receiver
            .keys()
            .map(|&r| self.receivers[r].spec().name.clone())
            .collect();
        let waiting: Vec<(&str, &[Event])> = names
            .iter()
            .zip(per_receiver.values())
            .map(|(name, events)| (name.as_str(), events.as_slice()))
            .collect();
        let ids = self
            .outbox
            .record(view.map(|v| (service.id.as_str(), v)), &waiting)
            .unwrap_or_else(|e| {
                error!(service = %service.id, error = %e, "cannot keep a change in the alerts' outbox; its events are told from memory");
                per_receiver.values().map(|events| vec![NOT_KEPT; events.len()]).collect()
            });
        for ((r, events), ids) in per_receiver.into_iter().zip(ids) {
            for (id, event) in ids.into_iter().zip(events) {
                self.wait(r, id, event, now, ctx);
            }
        }
    }

    /// Adds an event to receiver `r`'s group, and schedules the group.
    pub(super) fn wait(
        &mut self,
        r: usize,
        id: i64,
        event: Event,
        now: Instant,
        ctx: &mut Context<Self>,
    ) {
        let timing = self.settings.timing;
        let first = self.groups[r].due().is_none();
        let due = self.groups[r].add((id, event), now, &timing);
        if first {
            self.later(
                r,
                due.saturating_duration_since(now),
                Dispatcher::flush,
                ctx,
            );
        }
    }

    /// Does `then` for receiver `r` after `after`: for the receiver of that name, whose
    /// place may have changed by then (a reload), and not at all if a reload removed it.
    pub(super) fn later(
        &self,
        r: usize,
        after: Duration,
        then: fn(&mut Dispatcher, usize, &mut Context<Dispatcher>),
        ctx: &mut Context<Self>,
    ) {
        let name = self.receivers[r].spec().name.clone();
        ctx.run_later(after, move |act, ctx| {
            if let Some(r) = act.receiver_index(&name) {
                then(act, r, ctx);
            }
        });
    }

    /// Receiver `r`'s group is due: one notification of its events.
    pub(super) fn flush(&mut self, r: usize, ctx: &mut Context<Self>) {
        if !self.leading {
            return;
        }
        let Some(items) = self.groups[r].take_due(Instant::now()) else {
            return;
        };
        let (ids, events): (Vec<i64>, Vec<Event>) = items.into_iter().unzip();
        // A group larger than `max_events` goes out in several notifications, in order.
        let most = self.settings.max_events.max(1);
        for (ids, events) in ids.chunks(most).zip(events.chunks(most)) {
            let alerts = self.alerts_of(events);
            let key = key_of(
                &self.receivers[r].spec().name,
                events.iter().map(|e| e.key.as_str()),
            );
            let notification = self.notification(r, key, (events.to_vec(), alerts), false);
            self.enqueue(r, ids, notification, false, ctx);
        }
    }

    /// The alerts `events` touched: firing, or resolved since the first of them.
    pub(super) fn alerts_of(&self, events: &[Event]) -> Vec<Alert> {
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

    /// The notification to receiver `r` of `events` and `alerts`.
    pub(super) fn notification(
        &self,
        r: usize,
        key: String,
        (events, alerts): (Vec<Event>, Vec<Alert>),
        repeat: bool,
    ) -> Notification {
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        Notification {
            version: VERSION,
            key,
            receiver: self.receivers[r].spec().name.clone(),
            status,
            node: self.node.clone(),
            created_at: SystemTime::now(),
            events,
            alerts,
            repeat,
        }
    }

    /// Queues `notification` on receiver `r`'s lane; kept in the outbox (its `grouped`
    /// waiting events forgotten there in the same transaction) unless it is `local`: this
    /// node's own news, sent whether or not it leads, and not worth resending after a
    /// restart.
    pub(super) fn enqueue(
        &mut self,
        r: usize,
        grouped: &[i64],
        notification: Notification,
        local: bool,
        ctx: &mut Context<Self>,
    ) {
        let receiver = notification.receiver.clone();
        let id = if local {
            NOT_KEPT
        } else {
            self.outbox
                .enqueue(grouped, &notification)
                .unwrap_or_else(|e| {
                    error!(receiver, error = %e, "cannot keep a notification in the alerts' outbox; it is sent from memory");
                    NOT_KEPT
                })
        };
        let lane = &mut self.lanes[r];
        lane.told = Some(Instant::now());
        lane.queue.push_back(Pending {
            id,
            receiver: receiver.clone(),
            notification,
            attempts: 0,
            local,
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

    pub(super) fn count_queue(&self, r: usize) {
        let name = &self.receivers[r].spec().name;
        self.metrics
            .alerts
            .set_queue(name, self.lanes[r].queue.len());
    }

    /// Starts receiver `r`'s next delivery, unless one runs or waits to retry.
    pub(super) fn kick(&mut self, r: usize, ctx: &mut Context<Self>) {
        let lane = &mut self.lanes[r];
        if lane.busy || lane.waiting {
            return;
        }
        let Some(next) = lane.queue.front() else {
            return;
        };
        if !self.leading && !next.local {
            return;
        }
        lane.busy = true;
        let (id, notification) = (next.id, next.notification.clone());
        let receiver = self.receivers[r].clone();
        let name = receiver.spec().name.clone();
        let attempt = async move { receiver.deliver(&notification).await };
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(attempt).map(move |result, act, ctx| {
                // Found by name: a reload may have moved the receiver, or removed it.
                if let Some(r) = act.receiver_index(&name) {
                    act.delivered(r, id, result, ctx);
                }
            }),
        );
    }

    /// An attempt at receiver `r`'s first notification ended.
    pub(super) fn delivered(
        &mut self,
        r: usize,
        id: i64,
        result: Result<(), DeliveryError>,
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
                    self.later(
                        r,
                        wait,
                        |act, r, ctx| {
                            act.lanes[r].waiting = false;
                            act.kick(r, ctx);
                        },
                        ctx,
                    );
                }
            }
        }
        self.count_queue(r);
        self.kick(r, ctx);
    }

    /// Receiver `r` is done with the events up to `revision` (delivered, or given up): on
    /// a cluster node, etcd is told, for a successor and the followers.
    pub(super) fn reached(&mut self, r: usize, revision: Option<i64>) {
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
    pub(super) fn forget_delivered(&mut self, r: usize, revision: i64) {
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

    /// Tells each receiver again of the alerts still firing for it, once its repeat
    /// interval has passed since it was last told anything.
    pub(super) fn repeat(&mut self, ctx: &mut Context<Self>) {
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
            let key = format!("{name}/repeat/{}", millis(SystemTime::now()));
            let notification = self.notification(r, key, (Vec::new(), alerts), true);
            self.enqueue(r, &[], notification, false, ctx);
        }
    }

    /// Whether alert `a` is for receiver `r`, by the routes of the event that fires it.
    pub(super) fn routed(&self, a: &Alert, r: usize) -> bool {
        let kind = match a.name.as_str() {
            "RedundancyLost" => EventKind::RedundancyLost,
            "Flapping" => EventKind::FlappingStarted,
            crate::alerts::certificates::ALERT => EventKind::CertificateExpiring,
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
}

/// A notification's key: the same for the same events to the same receiver.
pub(super) fn key_of<'a>(receiver: &str, events: impl Iterator<Item = &'a str>) -> String {
    let mut hash = Blake2s256::new();
    hash.update(receiver.as_bytes());
    for key in events {
        hash.update([0]);
        hash.update(key.as_bytes());
    }
    let digest = hash.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
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
