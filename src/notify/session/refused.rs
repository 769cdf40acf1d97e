//! What a session refuses: a publish (servicewatch's clients only listen) and a handshake
//! naming a session (a handshake carries no clientId: the dispatcher answers real ones).

use serde_json::Value;

use super::{Batch, ClientSession};
use crate::bayeux::refusal::Refusal;
use crate::bayeux::{channel, reply};

impl ClientSession {
    /// Refuses a publish on `channel`.
    pub(super) fn publish(&mut self, id: Option<&Value>, channel: &str, batch: &mut Batch) {
        let refusal = Refusal::forbidden(channel, "Permission denied");
        batch
            .replies
            .push(reply::error(channel, id, Some(&self.id), &refusal));
    }

    /// Refuses a handshake sent to a session.
    pub(super) fn handshake(&mut self, id: Option<&Value>, batch: &mut Batch) {
        let refusal = Refusal::bad_request("", "a handshake carries no clientId");
        batch.replies.push(reply::error(
            channel::HANDSHAKE,
            id,
            Some(&self.id),
            &refusal,
        ));
    }
}
