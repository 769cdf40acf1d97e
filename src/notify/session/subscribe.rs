//! `/meta/subscribe`: adds channels to the session's subscriptions (at most
//! `max_subscriptions`), one reply per channel, and registers the session with the registry
//! when it now wants service changes ([`policy::registration`] decides). `ext.snapshot` and
//! `ext.revision` ask for a catch-up first.

use actix::prelude::*;
use serde_json::Value;
use tracing::debug;

use super::{Batch, ClientSession};
use crate::bayeux::refusal::Refusal;
use crate::bayeux::{SERVICES_CHANNEL, channel, reply};
use crate::notify::policy::{self, Registration};
use crate::registry::{Hub, SubscribeServices, UnsubscribeServices};

impl ClientSession {
    /// Handles a subscribe to `channels`; `snapshot` and `resume` as in
    /// [`Self::update_registration`].
    pub(super) fn subscribe(
        &mut self,
        id: Option<&Value>,
        channels: &[String],
        snapshot: bool,
        resume: Option<i64>,
        batch: &mut Batch,
        ctx: &mut Context<Self>,
    ) {
        let max = self.shared.settings.max_subscriptions;
        for channel in channels {
            batch
                .replies
                .push(match self.subscriptions.add(channel, max) {
                    Ok(()) => reply::subscription(channel::SUBSCRIBE, id, &self.id, channel),
                    Err(e) => {
                        debug!(client = %self.id, channel, error = %e, "subscription refused");
                        let refusal = Refusal::forbidden(channel, e);
                        reply::subscription_error(
                            channel::SUBSCRIBE,
                            id,
                            &self.id,
                            channel,
                            &refusal,
                        )
                    }
                });
        }
        self.update_registration(snapshot, resume, ctx);
    }

    /// Registers with the registry, or unregisters, as the subscriptions now require.
    /// `snapshot`: the client asked for every service's state first; `resume`: the revision
    /// after which the client wants the changes it missed (it then asks for a catch-up, as
    /// `snapshot` does).
    pub(super) fn update_registration(
        &mut self,
        snapshot: bool,
        resume: Option<i64>,
        ctx: &mut Context<Self>,
    ) {
        let wants = self.subscriptions.matches(SERVICES_CHANNEL);
        let snapshot = snapshot || resume.is_some();
        match policy::registration(wants, self.registered, snapshot) {
            Registration::Subscribe { snapshot } => {
                self.snapshot_pending |= snapshot;
                self.shared.registry.do_send(SubscribeServices {
                    client_id: self.id.clone(),
                    recipient: ctx.address().recipient(),
                    hub: Hub::current(),
                    features: self.caller.features.clone(),
                    snapshot,
                    resume,
                });
            }
            Registration::Unsubscribe => self.shared.registry.do_send(UnsubscribeServices {
                client_id: self.id.clone(),
            }),
            Registration::Unchanged => {}
        }
        self.registered = wants;
    }
}
