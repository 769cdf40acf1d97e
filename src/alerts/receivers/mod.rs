//! Receivers: where notifications go. Each kind in a file of its own; [`Receiver`] is what
//! the dispatcher holds, one per `[[alerts.receiver]]`, and [`Receiver::deliver`] makes one
//! attempt (the dispatcher retries, with backoff, from its outbox).

use crate::alerts::notification::Notification;
use crate::config::receivers::ReceiverSpec;

/// Why a receiver cannot be set up (its secret file unreadable, say).
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// What stands in the way, for the receiver named.
    #[error("receiver \"{receiver}\": {message}")]
    Setup {
        /// The receiver's name.
        receiver: String,
        /// Why, in words.
        message: String,
    },
}

/// Why one attempt failed; the dispatcher logs it and tries again later.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Why, in words.
    #[error("{0}")]
    Failed(String),
}

/// One configured receiver.
pub struct Receiver {
    spec: ReceiverSpec,
}

impl Receiver {
    /// Sets up the receiver `spec` describes.
    pub fn new(spec: ReceiverSpec) -> Result<Receiver, ReceiverError> {
        Ok(Receiver { spec })
    }

    /// The receiver as configured.
    pub fn spec(&self) -> &ReceiverSpec {
        &self.spec
    }

    /// One attempt to deliver `notification`, within the receiver's timeout. Runs on an
    /// actix arbiter: the future need not be `Send`.
    pub async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let _ = notification;
        Err(DeliveryError::Failed(format!(
            "receiver \"{}\" cannot deliver yet",
            self.spec.name
        )))
    }
}
