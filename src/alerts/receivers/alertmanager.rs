//! The `alertmanager` receiver: the notification's alerts, POSTed to Alertmanager's v2 API
//! (`/api/v2/alerts`, a JSON array of `{labels, annotations, startsAt, endsAt}`) on every
//! configured instance.
//!
//! Instances of an Alertmanager cluster do not forward alerts to each other (they gossip
//! silences and what they notified), so each is told everything, as Prometheus does; the
//! attempt succeeds when at least one took the alerts, since that one notifies. A firing
//! alert is sent without `endsAt` (Alertmanager then resolves it by itself after its
//! `resolve_timeout` unless told again: the dispatcher repeats firing alerts); a resolved
//! one carries its end. A notification without alerts is posted too, as an empty array:
//! a test notification then shows that the instances are reachable.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use super::DeliveryError;
use super::http::{HttpClient, origin};
use crate::alerts::event::{Alert, AlertStatus};
use crate::alerts::notification::Notification;
use crate::config::receivers::AlertmanagerSpec;
use crate::resource::timestamp;

/// An Alertmanager cluster, set up.
pub struct Alertmanager {
    urls: Vec<url::Url>,
    client: HttpClient,
}

/// One alert as Alertmanager's API takes it (`postableAlert`).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<&'static str, String>,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl Alertmanager {
    pub fn new(spec: &AlertmanagerSpec) -> Result<Alertmanager, String> {
        Ok(Alertmanager {
            urls: spec.urls.clone(),
            client: HttpClient::new(spec.ca.as_ref(), spec.login.clone())?,
        })
    }

    /// POSTs the alerts to every instance at once, each within `timeout`.
    pub async fn deliver(
        &self,
        receiver: &str,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let body =
            serde_json::to_vec(&payload(n)).map_err(|e| DeliveryError::Encode(e.to_string()))?;
        let posts = self
            .urls
            .iter()
            .map(|url| self.client.post_json(url, &[], body.clone(), timeout));
        let results = join_all(posts).await;
        let took = results.iter().any(Result::is_ok);
        let mut failures = Vec::new();
        for (url, result) in self.urls.iter().zip(results) {
            if let Err(error) = result {
                if took {
                    // The attempt succeeded: this is said here or nowhere.
                    tracing::warn!(receiver, instance = %origin(url), %error, "an Alertmanager instance did not take the alerts (another did)");
                }
                failures.push(error);
            }
        }
        if took {
            Ok(())
        } else {
            Err(DeliveryError::NoneAccepted(failures))
        }
    }
}

/// The notification's alerts in Alertmanager's form.
pub fn payload(n: &Notification) -> Vec<PostableAlert> {
    n.alerts.iter().map(|a| postable(a, n)).collect()
}

fn postable(alert: &Alert, n: &Notification) -> PostableAlert {
    let mut labels: BTreeMap<String, String> = alert
        .labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (label_name(name), value.clone()))
        .collect();
    labels
        .entry("alertname".into())
        .or_insert_with(|| alert.name.clone());
    labels
        .entry("service".into())
        .or_insert_with(|| alert.service.clone());
    let mut annotations = BTreeMap::from([("summary", alert.summary.clone())]);
    // Why, as the latest event about the alert's service in this notification tells it.
    let reason = n
        .events
        .iter()
        .rev()
        .find(|e| e.service.as_ref().is_some_and(|s| s.id == alert.service))
        .map(|e| e.reason.clone())
        .filter(|r| !r.is_empty());
    if let Some(reason) = reason {
        annotations.insert("description", reason);
    }
    let ends_at = match alert.status {
        AlertStatus::Firing => None,
        AlertStatus::Resolved => Some(timestamp(alert.ends_at.unwrap_or(n.created_at))),
    };
    PostableAlert {
        labels,
        annotations,
        starts_at: timestamp(alert.starts_at),
        ends_at,
    }
}

/// `name` as a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`): Alertmanager refuses the
/// whole request over one label it cannot take, and a service attribute may be named
/// `site-code`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::event::{Event, EventKind, ServiceRef, Severity};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn alert(status: AlertStatus) -> Alert {
        Alert {
            name: "ServiceInactive".into(),
            service: "sips1".into(),
            status,
            severity: Severity::Critical,
            starts_at: at(1_700_000_000),
            ends_at: None,
            summary: "SIPS1 is Inactive".into(),
            labels: BTreeMap::from([
                ("alertname".into(), "ServiceInactive".into()),
                ("service".into(), "sips1".into()),
                ("severity".into(), "critical".into()),
                ("site-code".into(), "par".into()),
                ("2nd".into(), "x".into()),
                ("empty".into(), String::new()),
            ]),
        }
    }

    fn notification(alerts: Vec<Alert>) -> Notification {
        Notification {
            version: crate::alerts::notification::VERSION,
            key: "k".into(),
            receiver: "am".into(),
            status: AlertStatus::Firing,
            node: "node-a".into(),
            created_at: at(1_700_000_060),
            events: vec![Event {
                key: "sips1/1/stateChanged".into(),
                kind: EventKind::StateChanged,
                at: at(1_700_000_000),
                revision: 1,
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
                reason: "primary: connection refused".into(),
            }],
            alerts,
            repeat: false,
        }
    }

    #[test]
    fn a_firing_alert_has_no_end() {
        let json =
            serde_json::to_value(payload(&notification(vec![alert(AlertStatus::Firing)]))).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{
                "labels": {
                    "alertname": "ServiceInactive",
                    "service": "sips1",
                    "severity": "critical",
                    "site_code": "par",
                    "_2nd": "x",
                },
                "annotations": {
                    "summary": "SIPS1 is Inactive",
                    "description": "primary: connection refused",
                },
                "startsAt": "2023-11-14T22:13:20.000Z",
            }])
        );
    }

    #[test]
    fn a_resolved_alert_ends() {
        let mut resolved = alert(AlertStatus::Resolved);
        let mut n = notification(vec![resolved.clone()]);
        assert_eq!(
            payload(&n)[0].ends_at.as_deref(),
            Some("2023-11-14T22:14:20.000Z"),
            "without its own end, the notification's time"
        );
        resolved.ends_at = Some(at(1_700_000_030));
        resolved.labels.clear();
        n.alerts = vec![resolved];
        n.events.clear();
        let alert = &payload(&n)[0];
        assert_eq!(alert.ends_at.as_deref(), Some("2023-11-14T22:13:50.000Z"));
        assert_eq!(
            alert.labels,
            BTreeMap::from([
                ("alertname".into(), "ServiceInactive".into()),
                ("service".into(), "sips1".into()),
            ]),
            "an alert always has its name and service"
        );
        assert!(!alert.annotations.contains_key("description"));
    }

    #[test]
    fn no_alerts_is_an_empty_array() {
        let json = serde_json::to_string(&payload(&notification(vec![]))).unwrap();
        assert_eq!(json, "[]");
    }
}
