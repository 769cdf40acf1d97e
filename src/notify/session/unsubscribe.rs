//! `/meta/unsubscribe`: removes channels from the session's subscriptions, one reply per
//! channel (an error for one it was not subscribed to), and unregisters the session from the
//! registry when it no longer wants service changes.

use actix::prelude::*;
use serde_json::Value;

use super::{Batch, ClientSession};
use crate::bayeux::refusal::Refusal;
use crate::bayeux::{channel, reply};

impl ClientSession {
    /// Handles an unsubscribe from `channels`.
    pub(super) fn unsubscribe(
        &mut self,
        id: Option<&Value>,
        channels: &[String],
        batch: &mut Batch,
        ctx: &mut Context<Self>,
    ) {
        for channel in channels {
            batch.replies.push(if self.subscriptions.remove(channel) {
                reply::subscription(channel::UNSUBSCRIBE, id, &self.id, channel)
            } else {
                let refusal = Refusal::bad_request(channel, "not subscribed");
                reply::subscription_error(channel::UNSUBSCRIBE, id, &self.id, channel, &refusal)
            });
        }
        self.update_registration(false, None, ctx);
    }
}
