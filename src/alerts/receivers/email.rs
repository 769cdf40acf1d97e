//! The `email` receiver: a plain-text message through an SMTP relay, with `lettre`.
//!
//! The subject is `[servicewatch] ` and the notification's summary; the body lists each
//! event (time, service, what happened, why) and each alert. `X-Servicewatch-Key` carries
//! the notification's key and `X-Servicewatch-Status` whether it fires, for mail filters;
//! the `Message-ID` is made from the key and the sender's domain, so that a message sent
//! twice (delivery is at least once, from any node) has one id, which mail systems use to
//! tell duplicates.
//!
//! `security = "starttls"` requires the relay to offer STARTTLS (it is never skipped);
//! `tls` speaks TLS from the first byte. The relay's certificate is verified against the
//! system's CA certificates or the receiver's `ca_file`.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::DeliveryError;
use crate::alerts::event::{Alert, AlertStatus, Event};
use crate::alerts::notification::Notification;
use crate::config::receivers::{EmailSpec, SmtpSecurity};
use crate::domain::text::one_line;
use crate::resource::timestamp;

/// The header that carries the notification's key.
pub const KEY_HEADER: &str = "X-Servicewatch-Key";
/// The header that carries `firing` or `resolved`.
pub const STATUS_HEADER: &str = "X-Servicewatch-Status";
/// What every subject begins with.
pub const SUBJECT_PREFIX: &str = "[servicewatch] ";

/// A relay and the addresses, set up.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`, as errors name the relay.
    target: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn new(spec: &EmailSpec) -> Result<Email, String> {
        let tls = match spec.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(spec)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(spec)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&spec.host)
            .port(spec.port)
            .tls(tls);
        let hostname = crate::config::cluster::hostname();
        if !hostname.is_empty() {
            builder = builder.hello_name(ClientId::Domain(hostname));
        }
        if let Some(login) = &spec.login {
            builder = builder.credentials(Credentials::new(
                login.username.clone(),
                login.password.expose().to_string(),
            ));
        }
        Ok(Email {
            transport: builder.build(),
            target: if spec.host.contains(':') {
                format!("[{}]:{}", spec.host, spec.port)
            } else {
                format!("{}:{}", spec.host, spec.port)
            },
            from: spec.from.clone(),
            to: spec.to.clone(),
        })
    }

    /// Sends the message, all within `timeout`.
    pub async fn deliver(&self, n: &Notification, timeout: Duration) -> Result<(), DeliveryError> {
        let message = message(&self.from, &self.to, n)?;
        let target = self.target.clone();
        match tokio::time::timeout(timeout, self.transport.send(message)).await {
            Err(_) => Err(DeliveryError::TimedOut { target, timeout }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(smtp_error(target, &e, timeout)),
        }
    }
}

/// TLS to the relay, verified against `ca_file`'s certificates or the system's.
fn tls_parameters(spec: &EmailSpec) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(spec.host.clone());
    if let Some(ca) = &spec.ca {
        builder = builder.certificate_store(CertificateStore::None);
        for der in &ca.certificates {
            let certificate = Certificate::from_der(der.to_vec())
                .map_err(|e| format!("{}: {e}", ca.path.display()))?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build_rustls()
        .map_err(|e| format!("cannot set up TLS to {}: {e}", spec.host))
}

/// What a failed send says: the relay's reply when it gave one.
fn smtp_error(
    target: String,
    e: &lettre::transport::smtp::Error,
    timeout: Duration,
) -> DeliveryError {
    if e.is_timeout() {
        return DeliveryError::TimedOut { target, timeout };
    }
    if e.status().is_some() {
        return DeliveryError::Smtp {
            target,
            reply: one_line(&e.to_string(), 2 * super::EXCERPT_CHARS),
        };
    }
    // lettre nests its errors, each saying its sources again ("Connection error:
    // Connection error: ..."): the innermost says it once.
    let mut cause: &dyn std::error::Error = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let refused = cause
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    if refused {
        return DeliveryError::Refused { target };
    }
    DeliveryError::Unreachable {
        target,
        reason: cause.to_string(),
    }
}

/// The message for `n`, from `from` to each of `to`.
pub fn message(from: &Mailbox, to: &[Mailbox], n: &Notification) -> Result<Message, DeliveryError> {
    let header = |name: &'static str, value: &str| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
    };
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(format!(
            "{SUBJECT_PREFIX}{}",
            one_line(&n.summary(), super::EXCERPT_CHARS)
        ))
        .message_id(Some(message_id(&n.key, from)))
        .raw_header(header(KEY_HEADER, &n.key))
        .raw_header(header(STATUS_HEADER, n.status.as_str()));
    for to in to {
        builder = builder.to(to.clone());
    }
    builder
        .body(body(n))
        .map_err(|e| DeliveryError::Encode(e.to_string()))
}

/// `<key@domain>`, the key kept to the characters a message id allows.
fn message_id(key: &str, from: &Mailbox) -> String {
    let left: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_+=/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("<{left}@{}>", from.email.domain())
}

/// The plain-text body: the events, the alerts, and where it came from.
pub fn body(n: &Notification) -> String {
    let mut text = format!("{}\n", n.summary());
    if n.repeat {
        text.push_str("\nA reminder: these alerts still fire; nothing new happened.\n");
    }
    if !n.events.is_empty() {
        text.push_str("\nEvents, oldest first:\n");
        for e in &n.events {
            text.push_str(&event_lines(e));
        }
    }
    if !n.alerts.is_empty() {
        text.push_str("\nAlerts:\n");
        for a in &n.alerts {
            text.push_str(&alert_line(a));
        }
    }
    text.push_str(&format!(
        "\nSent by servicewatch on {} to receiver {}; notification {}.\n",
        n.node, n.receiver, n.key
    ));
    text
}

/// `- <time>  <service>: <summary>` and, below, why.
fn event_lines(e: &Event) -> String {
    let service = e
        .service
        .as_ref()
        .map_or_else(|| "(no service)".to_string(), |s| s.id.clone());
    let mut lines = format!(
        "- {}  {service}: {}\n",
        timestamp(e.at),
        one_line(&e.summary, 500)
    );
    if !e.reason.is_empty() {
        lines.push_str(&format!("    reason: {}\n", one_line(&e.reason, 500)));
    }
    lines
}

/// `- FIRING critical ServiceInactive on sips1: <summary> (since ...)`.
fn alert_line(a: &Alert) -> String {
    let when = match (a.status, a.ends_at) {
        (AlertStatus::Resolved, Some(end)) => {
            format!("from {} to {}", timestamp(a.starts_at), timestamp(end))
        }
        _ => format!("since {}", timestamp(a.starts_at)),
    };
    format!(
        "- {} {} {} on {}: {} ({when})\n",
        a.status.as_str().to_uppercase(),
        a.severity.as_str(),
        a.name,
        a.service,
        one_line(&a.summary, 500)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::event::{EventKind, ServiceRef, Severity};
    use std::collections::BTreeMap;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn notification() -> Notification {
        Notification {
            version: crate::alerts::notification::VERSION,
            key: "sips1/1700000000123/stateChanged".into(),
            receiver: "oncall".into(),
            status: AlertStatus::Firing,
            node: "node-a".into(),
            created_at: at(1_700_000_001),
            events: vec![Event {
                key: "sips1/1700000000123/stateChanged".into(),
                kind: EventKind::StateChanged,
                at: at(1_700_000_000),
                revision: 1_700_000_000_123,
                service: Some(ServiceRef {
                    id: "sips1".into(),
                    name: "SIPS1".into(),
                    service_type: "Voice".into(),
                }),
                state: Some("Inactive".into()),
                previous_state: Some("Active".into()),
                serving_instance: None,
                previous_serving_instance: Some("primary".into()),
                planned: None,
                severity: Severity::Critical,
                summary: "SIPS1 is Inactive".into(),
                reason: "primary: connection refused; backup: timed out".into(),
            }],
            alerts: vec![Alert {
                name: "ServiceInactive".into(),
                service: "sips1".into(),
                status: AlertStatus::Firing,
                severity: Severity::Critical,
                starts_at: at(1_700_000_000),
                ends_at: None,
                summary: "SIPS1 is Inactive".into(),
                labels: BTreeMap::new(),
            }],
            repeat: false,
        }
    }

    #[test]
    fn the_body_lists_events_and_alerts() {
        assert_eq!(
            body(&notification()),
            "SIPS1 is Inactive\n\
             \n\
             Events, oldest first:\n\
             - 2023-11-14T22:13:20.000Z  sips1: SIPS1 is Inactive\n\
             \x20   reason: primary: connection refused; backup: timed out\n\
             \n\
             Alerts:\n\
             - FIRING critical ServiceInactive on sips1: SIPS1 is Inactive (since 2023-11-14T22:13:20.000Z)\n\
             \n\
             Sent by servicewatch on node-a to receiver oncall; notification sips1/1700000000123/stateChanged.\n"
        );
    }

    #[test]
    fn a_repeat_says_so_and_a_resolved_alert_ends() {
        let mut n = notification();
        n.events.clear();
        n.repeat = true;
        n.alerts[0].status = AlertStatus::Resolved;
        n.alerts[0].ends_at = Some(at(1_700_000_600));
        let text = body(&n);
        assert!(
            text.starts_with("still resolved: SIPS1 is Inactive\n\nA reminder"),
            "{text}"
        );
        assert!(
            text.contains("- RESOLVED critical ServiceInactive on sips1: SIPS1 is Inactive (from 2023-11-14T22:13:20.000Z to 2023-11-14T22:23:20.000Z)\n"),
            "{text}"
        );
        assert!(!text.contains("Events"));
    }

    #[test]
    fn the_message_carries_subject_key_and_recipients() {
        let from: Mailbox = "servicewatch <sw@example.com>".parse().unwrap();
        let to: Vec<Mailbox> = vec![
            "oncall@example.com".parse().unwrap(),
            "noc@example.org".parse().unwrap(),
        ];
        let message = message(&from, &to, &notification()).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        for line in [
            "From: servicewatch <sw@example.com>\r\n",
            "To: oncall@example.com, noc@example.org\r\n",
            "Subject: [servicewatch] SIPS1 is Inactive\r\n",
            "X-Servicewatch-Key: sips1/1700000000123/stateChanged\r\n",
            "X-Servicewatch-Status: firing\r\n",
            "Message-ID: <sips1/1700000000123/stateChanged@example.com>\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        assert!(
            text.contains("reason: primary: connection refused"),
            "{text}"
        );
        let envelope = message.envelope();
        assert_eq!(envelope.to().len(), 2);
        assert_eq!(envelope.from().unwrap().to_string(), "sw@example.com");
    }
}
