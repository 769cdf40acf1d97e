//! Sessions join and leave the registry's subscribers: a join is answered with what the
//! session asked to catch up on (every service, or on a cluster node the changes after a
//! revision), and is placed between publishes so that each change reaches the session once.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix::prelude::*;

use super::subscribers::Delivery;
use super::{Hub, Registry, hub};

/// A session subscribes to service changes. With `snapshot`, it first receives every
/// service as last published (what REST shows), then the changes, each once and in order,
/// with nothing missed in between.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeServices {
    pub client_id: Arc<str>,
    pub recipient: Recipient<Delivery>,
    /// The hub of the session's thread ([`Hub::current`]), which will offer it changes.
    pub hub: Addr<Hub>,
    /// The features of the session's contact center: it hears of the services needing one
    /// of them, and of no other.
    pub features: Arc<BTreeSet<String>>,
    pub snapshot: bool,
    /// With `snapshot`, on a cluster node: the revision of the last change the client
    /// received (from any node); it first receives the changes after it instead of every
    /// service, when this node still holds them all.
    pub resume: Option<i64>,
}

/// A session no longer wants service changes (unsubscribed, or ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnsubscribeServices {
    pub client_id: Arc<str>,
}

/// The most joins a node that is not caught up yet holds back; beyond that, a join is served
/// at once with the current states (marked as after a gap).
const HELD_JOINS_LIMIT: usize = 10_000;

impl Handler<SubscribeServices> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SubscribeServices, _ctx: &mut Self::Context) {
        // A resume waits until this node holds every change it can give: served now, it
        // would get the current states instead of what it missed.
        let ledger = &mut self.ledger;
        if msg.snapshot
            && msg.resume.is_some()
            && !ledger.log.is_whole()
            && ledger.held_joins.len() < HELD_JOINS_LIMIT
        {
            ledger.held_joins.push(msg);
            return;
        }
        self.join(msg);
    }
}

impl Registry {
    /// Serves the joins held back while this node was catching up, once it has.
    pub(super) fn release_joins(&mut self) {
        if !self.ledger.log.is_whole() {
            return;
        }
        for msg in std::mem::take(&mut self.ledger.held_joins) {
            self.join(msg);
        }
    }

    /// Adds a subscriber, first sending it what it asked to catch up on.
    fn join(&mut self, msg: SubscribeServices) {
        // The snapshot is the one last published, not the services' current states: changes
        // decided since are waiting for the next publish, which offers them to this
        // subscriber too, so that each reaches it once, after the state it replaces.
        let missed = match msg.resume {
            Some(revision) if msg.snapshot => Some(self.catch_up(revision, &msg.features)),
            _ => None,
        };
        let snapshot = missed.or_else(|| {
            msg.snapshot.then(|| {
                self.published
                    .load()
                    .services()
                    .iter()
                    .filter(|s| msg.features.contains(&s.feature))
                    .map(|s| s.notification.clone())
                    .collect()
            })
        });
        if !self.hubs.contains(&msg.hub) {
            self.hubs.push(msg.hub.clone());
        }
        // Sent after every publish the session must not hear of twice, and before every
        // publish it must hear of: the hub receives both from here, in this order.
        msg.hub.do_send(hub::Join {
            client_id: msg.client_id,
            recipient: msg.recipient,
            features: msg.features,
            snapshot,
            metrics: self.metrics.clone(),
        });
    }
}

impl Handler<UnsubscribeServices> for Registry {
    type Result = ();

    fn handle(&mut self, msg: UnsubscribeServices, _ctx: &mut Self::Context) {
        // The session's hub is among them; the others know no such client.
        for hub in &self.hubs {
            hub.do_send(hub::Leave {
                client_id: msg.client_id.clone(),
            });
        }
    }
}
