//! A reload that changes `[alerts]`: the new timing, routes and thresholds apply at once;
//! a receiver kept (same name) keeps what waits for it, delivered with its new settings if
//! they changed; a receiver removed drops what waited for it (said in the log); a new one
//! starts empty.

use std::collections::HashMap;
use std::rc::Rc;

use actix::prelude::*;
use tracing::{error, info, warn};

use super::{Dispatcher, Lane};
use crate::alerts::event::Event;
use crate::alerts::grouping::Group;
use crate::alerts::receivers::Receiver;
use crate::config::alerts::AlertSettings;

/// What a reload changed of the receivers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// Applies a reloaded `[alerts]`.
#[derive(Message)]
#[rtype(result = "Reconfigured")]
pub struct Reconfigure(pub AlertSettings);

/// One receiver with what waits for it.
struct Kept {
    receiver: Rc<Receiver>,
    lane: Lane,
    group: Group<(i64, Event)>,
    delivered: i64,
}

impl Dispatcher {
    fn reconfigure(&mut self, settings: AlertSettings, ctx: &mut Context<Self>) -> Reconfigured {
        let mut old: HashMap<String, Kept> = std::mem::take(&mut self.receivers)
            .into_iter()
            .zip(std::mem::take(&mut self.lanes))
            .zip(std::mem::take(&mut self.groups))
            .zip(std::mem::take(&mut self.delivered))
            .map(|(((receiver, lane), group), delivered)| {
                let name = receiver.spec().name.clone();
                let kept = Kept {
                    receiver,
                    lane,
                    group,
                    delivered,
                };
                (name, kept)
            })
            .collect();
        let mut summary = Reconfigured::default();
        for spec in &settings.receivers {
            let before = old.remove(&spec.name);
            let receiver = match &before {
                Some(kept) if kept.receiver.spec() == spec => kept.receiver.clone(),
                _ => match Receiver::new(spec.clone()) {
                    Ok(receiver) => Rc::new(receiver),
                    Err(e) => {
                        error!("{e}; this receiver is left out until fixed and reloaded");
                        continue;
                    }
                },
            };
            let kept = match before {
                Some(kept) => {
                    if !Rc::ptr_eq(&kept.receiver, &receiver) {
                        summary.changed.push(spec.name.clone());
                    }
                    kept
                }
                None => {
                    summary.added.push(spec.name.clone());
                    self.metrics.alerts.receiver(&spec.name);
                    Kept {
                        receiver: receiver.clone(),
                        lane: Lane::default(),
                        group: Group::default(),
                        delivered: 0,
                    }
                }
            };
            self.receivers.push(receiver);
            self.lanes.push(kept.lane);
            self.groups.push(kept.group);
            self.delivered.push(kept.delivered);
        }
        self.drop_removed(old, &mut summary);
        self.settings = settings;
        self.resume_lanes(ctx);
        info!(added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed, "alerts reconfigured");
        summary
    }
}

impl Dispatcher {
    /// What waited for the receivers a reload removed is dropped, and said.
    fn drop_removed(&mut self, old: HashMap<String, Kept>, summary: &mut Reconfigured) {
        for (name, mut kept) in old {
            let waiting: Vec<i64> = kept
                .group
                .retain(|_| false)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let queued = kept.lane.queue.len();
            warn!(receiver = %name, events = waiting.len(), notifications = queued, "receiver removed by a reload: what waited for it is dropped");
            let _ = self.outbox.forget_waiting(&waiting);
            for pending in kept.lane.queue {
                let _ = self.outbox.done(pending.id);
            }
            self.metrics.alerts.forget_receiver(&name);
            summary.removed.push(name);
        }
    }
}

impl Handler<Reconfigure> for Dispatcher {
    type Result = MessageResult<Reconfigure>;

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.reconfigure(msg.0, ctx))
    }
}
