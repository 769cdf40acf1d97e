//! The dispatcher tells of its own node's staleness ([`crate::alerts::node`]), every tick:
//! local notifications, sent whether or not this node leads.

use std::collections::BTreeMap;
use std::time::SystemTime;

use actix::prelude::*;
use tracing::warn;

use super::Dispatcher;
use super::delivery::key_of;
use crate::alerts::node::event;
use crate::alerts::routing::receivers_for;

impl Dispatcher {
    pub(super) fn look_at_the_node(&mut self, ctx: &mut Context<Self>) {
        let Some(status) = &self.status else {
            return;
        };
        let now = SystemTime::now();
        let Some((kind, since)) = self.node_watch.observe(status.is_stale(), now) else {
            return;
        };
        let told = event(&self.node, kind, since, now);
        warn!(kind = kind.as_str(), key = %told.key, summary = %told.summary, "alert event of this node");
        let targets = receivers_for(
            &self.settings.routes,
            self.receivers.len(),
            None,
            &BTreeMap::new(),
            kind,
        );
        for r in targets {
            let key = key_of(
                &self.receivers[r].spec().name,
                std::iter::once(told.key.as_str()),
            );
            let notification = self.notification(r, key, (vec![told.clone()], Vec::new()), false);
            self.enqueue(r, &[], notification, true, ctx);
        }
    }
}
