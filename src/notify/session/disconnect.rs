//! `/meta/disconnect`: the client leaves. Answered with the rest of its batch, then the
//! session ends (a held connect is answered first).

use serde_json::Value;

use super::{Batch, ClientSession};
use crate::bayeux::reply;

impl ClientSession {
    /// Handles a disconnect: answered, and the session ends once its batch is.
    pub(super) fn disconnect(&mut self, id: Option<&Value>, batch: &mut Batch) {
        batch.replies.push(reply::disconnect(id, &self.id));
        batch.disconnect = true;
    }
}
