//! A test notification to one receiver, asked for by an administrator through the API:
//! delivered at once (not through the outbox), its outcome answered.

use std::time::SystemTime;

use actix::prelude::*;
use tracing::{info, warn};

use super::Dispatcher;
use super::delivery::key_of;
use crate::alerts::event::{AlertStatus, Event, EventKind, Severity};
use crate::alerts::notification::{Notification, VERSION};
use crate::cluster::record::millis;

/// A test notification to one receiver, asked for by an administrator: delivered at once
/// (not through the outbox), the outcome answered.
#[derive(Message)]
#[rtype(result = "Result<String, TestError>")]
pub struct TestReceiver {
    pub receiver: String,
    /// Who asked, said in the notification.
    pub by: String,
}

/// Why a test notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("no receiver named \"{0}\"")]
    NoReceiver(String),
    #[error("receiver \"{receiver}\" did not take the test notification: {error}")]
    Failed { receiver: String, error: String },
}

impl Handler<TestReceiver> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<String, TestError>>;

    fn handle(&mut self, msg: TestReceiver, _ctx: &mut Self::Context) -> Self::Result {
        let Some(r) = self.receiver_index(&msg.receiver) else {
            return Box::pin(actix::fut::ready(Err(TestError::NoReceiver(msg.receiver))));
        };
        let now = SystemTime::now();
        let event = Event::of_no_service(
            format!("test/{}/test", millis(now)),
            EventKind::Test,
            now,
            Severity::Info,
            format!(
                "test notification from servicewatch on {}, asked by {}",
                self.node, msg.by
            ),
            "asked for through the API",
        );
        let notification = Notification {
            version: VERSION,
            key: key_of(&msg.receiver, std::iter::once(event.key.as_str())),
            receiver: msg.receiver.clone(),
            status: AlertStatus::Resolved,
            node: self.node.clone(),
            created_at: now,
            events: vec![event],
            alerts: Vec::new(),
            repeat: false,
        };
        let receiver = self.receivers[r].clone();
        let name = msg.receiver;
        Box::pin(actix::fut::wrap_future::<_, Self>(async move {
            let key = notification.key.clone();
            match receiver.deliver(&notification).await {
                Ok(()) => {
                    info!(receiver = %name, key, by = %msg.by, "test notification delivered");
                    Ok(key)
                }
                Err(e) => {
                    warn!(receiver = %name, key, by = %msg.by, error = %e, "test notification not delivered");
                    Err(TestError::Failed {
                        receiver: name,
                        error: e.to_string(),
                    })
                }
            }
        }))
    }
}
