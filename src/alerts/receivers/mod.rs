//! Receivers: where notifications go. Each kind in a file of its own; [`Receiver`] is what
//! the dispatcher holds, one per `[[alerts.receiver]]`, and [`Receiver::deliver`] makes one
//! attempt (the dispatcher retries, with backoff, from its outbox).
//!
//! Each kind keeps to the receiver's timeout itself, since what a late attempt leaves
//! behind differs: an HTTP exchange is dropped, a program is killed with its process group,
//! and Alertmanager instances are waited for each within it (one that hangs must not cost
//! the answer of one that took the alerts). A [`DeliveryError`] is one line that names the
//! server or program and what it said; URLs are shown by their origin alone, since a
//! webhook's path often carries its token.

mod alertmanager;
mod email;
mod exec;
mod http;
mod webhook;

use std::time::Duration;

use crate::alerts::notification::Notification;
use crate::domain::text::one_line;

/// What [`Receiver::new`] takes, as the configuration checked it: nameable here by users of
/// the library (the tests) as well.
pub use crate::config::receivers::{
    AlertmanagerSpec, CaCertificates, EmailSpec, ExecSpec, Login, ReceiverKind, ReceiverSpec,
    Secret, SmtpSecurity, WebhookSpec,
};

/// Longest excerpt of what a server or program said, kept in an error.
const EXCERPT_CHARS: usize = 200;

/// Why a receiver cannot be set up (no CA certificates to verify its server with, say).
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

/// Why one attempt failed; the dispatcher logs it and tries again later. A `target` is the
/// server as `https://host:port` (never the path, which may hold a token) or `host:port`;
/// a `program` the path of the program run.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// An HTTP server answered, but not with success (2xx).
    #[error("{target} answered {}: {body}", status_line(*status))]
    Status {
        /// The server.
        target: String,
        /// The answer's status code.
        status: u16,
        /// The start of the answer's body, on one line.
        body: String,
    },
    /// Nothing came back within the receiver's timeout.
    #[error("{target} did not answer within {}", humantime::format_duration(*timeout))]
    TimedOut {
        /// The server.
        target: String,
        /// The receiver's timeout.
        timeout: Duration,
    },
    /// Nothing listens there.
    #[error("{target} refused the connection")]
    Refused {
        /// The server.
        target: String,
    },
    /// No exchange took place: the name does not resolve, TLS failed, the connection broke.
    #[error("{target}: {reason}")]
    Unreachable {
        /// The server.
        target: String,
        /// What went wrong, as the client library says it.
        reason: String,
    },
    /// The program ended in failure.
    #[error("{program} {how}: {output}")]
    Exited {
        /// The program.
        program: String,
        /// `exited 3`, `was killed by signal 9`.
        how: String,
        /// The start of what it wrote (stderr, else stdout), on one line.
        output: String,
    },
    /// The program ran past the timeout and was killed with its process group.
    #[error("{program} did not finish within {} and was killed", humantime::format_duration(*timeout))]
    Killed {
        /// The program.
        program: String,
        /// The receiver's timeout.
        timeout: Duration,
    },
    /// The program could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// What the system said.
        reason: String,
    },
    /// The SMTP relay refused the message (or the login), with its reply.
    #[error("{target} replied {reply}")]
    Smtp {
        /// The relay.
        target: String,
        /// Its reply: whether permanent, the code and the text.
        reply: String,
    },
    /// No instance of the Alertmanager cluster took the alerts; each one's failure.
    #[error("no Alertmanager took the alerts: {}", join(.0))]
    NoneAccepted(Vec<DeliveryError>),
    /// The notification cannot be put in the receiver's form.
    #[error("cannot encode the notification: {0}")]
    Encode(String),
}

/// `500 Internal Server Error`.
fn status_line(status: u16) -> String {
    let reason = actix_web::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    match reason {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

fn join(errors: &[DeliveryError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a server or program said, cut to one short line (`(nothing)` when empty).
fn excerpt(said: &[u8]) -> String {
    let text = String::from_utf8_lossy(said);
    let text = text.trim();
    if text.is_empty() {
        "(nothing)".into()
    } else {
        one_line(text, EXCERPT_CHARS)
    }
}

/// One configured receiver.
pub struct Receiver {
    spec: ReceiverSpec,
    kind: Kind,
}

/// The kind, set up.
enum Kind {
    Webhook(webhook::Webhook),
    Alertmanager(alertmanager::Alertmanager),
    Exec(exec::Exec),
    Email(email::Email),
}

impl Receiver {
    /// Sets up the receiver `spec` describes.
    pub fn new(spec: ReceiverSpec) -> Result<Receiver, ReceiverError> {
        let setup = |message: String| ReceiverError::Setup {
            receiver: spec.name.clone(),
            message,
        };
        let kind = match &spec.kind {
            ReceiverKind::Webhook(w) => Kind::Webhook(webhook::Webhook::new(w).map_err(setup)?),
            ReceiverKind::Alertmanager(a) => {
                Kind::Alertmanager(alertmanager::Alertmanager::new(a).map_err(setup)?)
            }
            ReceiverKind::Exec(e) => Kind::Exec(exec::Exec::new(e)),
            ReceiverKind::Email(e) => Kind::Email(email::Email::new(e).map_err(setup)?),
        };
        Ok(Receiver { spec, kind })
    }

    /// The receiver as configured.
    pub fn spec(&self) -> &ReceiverSpec {
        &self.spec
    }

    /// `webhook`, `alertmanager`, `exec` or `email`.
    pub fn kind_name(&self) -> &'static str {
        self.spec.kind.name()
    }

    /// One attempt to deliver `notification`, within the receiver's timeout. Runs on an
    /// actix arbiter (the HTTP client spawns its connections' upkeep there): the future
    /// need not be `Send`.
    pub async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let timeout = self.spec.timeout;
        match &self.kind {
            Kind::Webhook(w) => w.deliver(notification, timeout).await,
            Kind::Alertmanager(a) => a.deliver(&self.spec.name, notification, timeout).await,
            Kind::Exec(e) => e.deliver(notification, timeout).await,
            Kind::Email(e) => e.deliver(notification, timeout).await,
        }
    }
}

impl std::fmt::Debug for Receiver {
    /// The spec alone (its secrets redacted); what was built from it holds them in clear.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_can_be_made_on_one_thread_and_used_on_another() {
        fn shared<T: Send + Sync>() {}
        shared::<Receiver>();
    }

    #[test]
    fn errors_read_as_one_line() {
        let status = DeliveryError::Status {
            target: "https://hooks.example.com".into(),
            status: 503,
            body: excerpt(b"  busy\nretry later \n"),
        };
        assert_eq!(
            status.to_string(),
            r"https://hooks.example.com answered 503 Service Unavailable: busy\nretry later"
        );
        let none = DeliveryError::NoneAccepted(vec![
            DeliveryError::Refused {
                target: "http://am1:9093".into(),
            },
            DeliveryError::TimedOut {
                target: "http://am2:9093".into(),
                timeout: Duration::from_millis(1500),
            },
        ]);
        assert_eq!(
            none.to_string(),
            "no Alertmanager took the alerts: http://am1:9093 refused the connection; http://am2:9093 did not answer within 1s 500ms"
        );
        assert_eq!(excerpt(b""), "(nothing)");
        assert_eq!(excerpt(&[b'x'; 300]).chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(status_line(799), "799");
    }
}
