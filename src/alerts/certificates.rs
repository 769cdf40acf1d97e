//! Certificates about to expire: an instance checked over `https` whose certificate ends
//! within `[alerts] certificate_days` fires `CertificateExpiring` and tells a
//! `certificateExpiring` event once; a renewed certificate resolves it. Pure rules over what
//! the monitors last saw of each certificate ([`crate::instances`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::event::{Alert, AlertStatus, Event, EventKind, ServiceRef, Severity};
use crate::cluster::record::millis;

/// The alert's name; its key in the firing alerts adds the instance.
pub const ALERT: &str = "CertificateExpiring";
/// Below this many days the alert is critical.
const CRITICAL_DAYS: f64 = 3.0;

/// One instance's certificate, as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen<'a> {
    pub service: &'a ServiceRef,
    pub attributes: &'a BTreeMap<String, String>,
    /// `primary`, `backup`, `cassandra-N`.
    pub instance: String,
    pub not_after: SystemTime,
    /// Days left at the time of the look.
    pub days_left: f64,
}

/// Whether a certificate with `days_left` counts as expiring under `threshold` days (0:
/// never).
pub fn expiring(days_left: f64, threshold: f64) -> bool {
    threshold > 0.0 && days_left < threshold
}

fn severity(days_left: f64) -> Severity {
    if days_left < CRITICAL_DAYS {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

fn summary(seen: &Seen<'_>) -> String {
    let when = crate::resource::timestamp(seen.not_after);
    if seen.days_left <= 0.0 {
        format!(
            "{} {}: its certificate expired at {when}",
            seen.service.id, seen.instance
        )
    } else {
        // Floored, as the instance detail's `daysLeft`: the time left is never overstated
        // (4.97 days reads 4.9, not 5.0).
        format!(
            "{} {}: its certificate expires in {:.1} days, at {when}",
            seen.service.id,
            seen.instance,
            (seen.days_left * 10.0).floor() / 10.0
        )
    }
}

/// The event telling that `seen` expires soon, at `now`. Its key names the certificate (by
/// its end), so that every node, and every look after a restart, names it alike.
pub fn event(seen: &Seen<'_>, now: SystemTime) -> Event {
    let not_after_ms = millis(seen.not_after);
    Event {
        key: format!(
            "{}/{}/certificateExpiring/{not_after_ms}",
            seen.service.id, seen.instance
        ),
        kind: EventKind::CertificateExpiring,
        at: now,
        revision: 0,
        service: Some(seen.service.clone()),
        state: None,
        previous_state: None,
        serving_instance: None,
        previous_serving_instance: None,
        planned: None,
        severity: severity(seen.days_left),
        summary: summary(seen),
        reason: format!("the certificate {} showed", seen.instance),
    }
}

/// The alert firing for `seen`, since `since`.
pub fn alert(seen: &Seen<'_>, since: SystemTime) -> Alert {
    let mut labels: BTreeMap<String, String> = seen.attributes.clone();
    let severity = severity(seen.days_left);
    labels.insert("alertname".into(), ALERT.into());
    labels.insert("service".into(), seen.service.id.clone());
    labels.insert("type".into(), seen.service.service_type.clone());
    labels.insert("instance".into(), seen.instance.clone());
    labels.insert("severity".into(), severity.as_str().into());
    Alert {
        name: ALERT.into(),
        service: seen.service.id.clone(),
        status: AlertStatus::Firing,
        severity,
        starts_at: since,
        ends_at: None,
        summary: summary(seen),
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiring_below_the_threshold_and_never_at_zero() {
        assert!(expiring(13.9, 14.0));
        assert!(!expiring(14.0, 14.0));
        assert!(expiring(-1.0, 14.0), "expired already");
        assert!(!expiring(-1.0, 0.0), "0 turns it off");
    }

    #[test]
    fn the_event_and_alert_name_the_instance_and_the_certificate() {
        let service = ServiceRef {
            id: "gws".into(),
            name: "GWS".into(),
            service_type: "Media".into(),
        };
        let attributes = BTreeMap::from([("site".to_string(), "paris".to_string())]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let seen = Seen {
            service: &service,
            attributes: &attributes,
            instance: "backup".into(),
            not_after: now + Duration::from_secs(5 * 86_400),
            days_left: 5.0,
        };
        let e = event(&seen, now);
        assert_eq!(e.key, "gws/backup/certificateExpiring/1800432000000");
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(
            e.summary,
            "gws backup: its certificate expires in 5.0 days, at 2027-01-20T08:00:00.000Z"
        );
        let sooner = Seen {
            days_left: 4.97,
            ..seen.clone()
        };
        assert!(
            summary(&sooner).contains("expires in 4.9 days"),
            "{}",
            summary(&sooner)
        );
        let a = alert(
            &Seen {
                days_left: 1.0,
                ..seen
            },
            now,
        );
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.labels["instance"], "backup");
        assert_eq!(a.labels["alertname"], "CertificateExpiring");
        assert_eq!(a.labels["site"], "paris");
    }
}
