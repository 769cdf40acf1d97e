//! `[alerts]`: who is told, of what, and how often. The receivers' own tables are in
//! [`super::receivers`]; this file holds the timing, flap detection and routes.
//!
//! ```toml
//! [alerts]
//! group_wait = "10s"        # how long the first event of a group waits for others
//! group_interval = "1m"     # between two notifications of one receiver
//! repeat_interval = "4h"    # alerts still firing are told again after this long
//!
//! [[alerts.route]]          # every matching route sends to its receivers
//! receivers = ["oncall"]
//! services = ["sip*"]       # ids, `*` matches any run of characters
//! types = ["Voice"]
//! events = ["stateChanged", "redundancyLost"]
//! attributes = { site = "paris" }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::HumanDuration;
use super::receivers::{ReceiverSection, ReceiverSpec, validate_receivers};
use super::rules::{Invalid, at_least_one, positive};
use crate::domain::event_kind::EventKind;

/// Alertmanager's default is 30 s; a contact center wants to hear of an outage sooner,
/// and a mass outage still fits in one notification: most of it is seen within a few
/// probe intervals.
const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(10);
const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// Nagios's defaults (`high_service_flap_threshold`, `low_service_flap_threshold`).
const DEFAULT_FLAP_HIGH: f64 = 20.0;
const DEFAULT_FLAP_LOW: f64 = 5.0;
/// About 350 KB of JSON: a mass outage of thousands of services goes out in a few
/// notifications rather than one that a proxy's body limit (nginx: 1 MB by default) refuses.
const DEFAULT_MAX_EVENTS: usize = 500;
/// Two weeks: time to order, get and install a certificate without a weekend's rush.
const DEFAULT_CERTIFICATE_DAYS: f64 = 14.0;

/// `[alerts]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    pub group_wait: Option<HumanDuration>,
    pub group_interval: Option<HumanDuration>,
    pub repeat_interval: Option<HumanDuration>,
    pub flap_high_threshold: Option<f64>,
    pub flap_low_threshold: Option<f64>,
    /// Whether a service in a maintenance window is kept quiet (default true).
    pub mute_in_maintenance: Option<bool>,
    pub certificate_days: Option<f64>,
    pub max_events: Option<usize>,
    #[serde(default)]
    pub receiver: Vec<ReceiverSection>,
    #[serde(default)]
    pub route: Vec<RouteSection>,
}

/// One `[[alerts.route]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub receivers: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// `[alerts]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    pub timing: Timing,
    pub flapping: FlapThresholds,
    pub mute_in_maintenance: bool,
    /// An instance's certificate that expires within this many days fires an alert; 0:
    /// never.
    pub certificate_days: f64,
    /// Most events one notification carries; a larger group goes out in several.
    pub max_events: usize,
    pub receivers: Vec<ReceiverSpec>,
    /// Empty: every event goes to every receiver.
    pub routes: Vec<Route>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        validate_alerts(&AlertsSection::default()).expect("the defaults are valid")
    }
}

/// How notifications are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

/// Nagios's flap detection thresholds, in percent of state changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlapThresholds {
    /// Flapping starts above this.
    pub high: f64,
    /// And stops below this.
    pub low: f64,
}

/// A route, checked: what it matches and where it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Indexes into [`AlertSettings::receivers`].
    pub receivers: Vec<usize>,
    /// Id patterns (`*` matches any run); empty: every service.
    pub services: Vec<String>,
    /// Service types (`Voice`...); empty: every type.
    pub types: Vec<String>,
    /// Empty: every kind.
    pub events: Vec<EventKind>,
    /// Attributes a service must have, with these values (as text).
    pub attributes: BTreeMap<String, String>,
}

/// Checks `[alerts]`; keys are named from `alerts.`.
pub(super) fn validate_alerts(section: &AlertsSection) -> Result<AlertSettings, Invalid> {
    let prefix = |(key, message): Invalid| (format!("alerts.{key}"), message);
    let timing = Timing {
        group_wait: positive("group_wait", section.group_wait, DEFAULT_GROUP_WAIT)
            .map_err(prefix)?,
        group_interval: positive(
            "group_interval",
            section.group_interval,
            DEFAULT_GROUP_INTERVAL,
        )
        .map_err(prefix)?,
        repeat_interval: positive(
            "repeat_interval",
            section.repeat_interval,
            DEFAULT_REPEAT_INTERVAL,
        )
        .map_err(prefix)?,
    };
    let flapping = FlapThresholds {
        high: section.flap_high_threshold.unwrap_or(DEFAULT_FLAP_HIGH),
        low: section.flap_low_threshold.unwrap_or(DEFAULT_FLAP_LOW),
    };
    for (key, value) in [
        ("flap_high_threshold", flapping.high),
        ("flap_low_threshold", flapping.low),
    ] {
        if !(0.0..=100.0).contains(&value) || value.is_nan() {
            return Err(prefix((
                key.into(),
                "must be a percentage, from 0 to 100".into(),
            )));
        }
    }
    if flapping.low >= flapping.high {
        return Err(prefix((
            "flap_low_threshold".into(),
            format!(
                "must be below flap_high_threshold ({}), or flapping would never stop",
                flapping.high
            ),
        )));
    }
    let certificate_days = section.certificate_days.unwrap_or(DEFAULT_CERTIFICATE_DAYS);
    if !(0.0..=3650.0).contains(&certificate_days) {
        return Err(prefix((
            "certificate_days".into(),
            "must be a number of days from 0 (never) to 3650".into(),
        )));
    }
    let max_events =
        at_least_one("max_events", section.max_events, DEFAULT_MAX_EVENTS).map_err(prefix)?;
    let receivers = validate_receivers(&section.receiver).map_err(prefix)?;
    let routes = section
        .route
        .iter()
        .enumerate()
        .map(|(i, r)| {
            validate_route(r, &receivers).map_err(|(k, m)| (format!("route[{i}].{k}"), m))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(prefix)?;
    Ok(AlertSettings {
        timing,
        flapping,
        mute_in_maintenance: section.mute_in_maintenance.unwrap_or(true),
        certificate_days,
        max_events,
        receivers,
        routes,
    })
}

fn validate_route(r: &RouteSection, receivers: &[ReceiverSpec]) -> Result<Route, Invalid> {
    if r.receivers.is_empty() {
        return Err(("receivers".into(), "must name at least one receiver".into()));
    }
    let indexes = r
        .receivers
        .iter()
        .map(|name| {
            receivers
                .iter()
                .position(|s| &s.name == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = receivers.iter().map(|s| s.name.as_str()).collect();
                    (
                        "receivers".to_string(),
                        format!(
                            "no receiver named \"{name}\" (configured: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let events = r
        .events
        .iter()
        .map(|name| {
            EventKind::named(name).ok_or_else(|| {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                (
                    "events".to_string(),
                    format!(
                        "unknown event \"{name}\"; expected one of {}",
                        known.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for t in &r.types {
        if t.parse::<crate::domain::service::ServiceType>().is_err() {
            return Err(("types".into(), format!("unknown service type \"{t}\"")));
        }
    }
    Ok(Route {
        receivers: indexes,
        services: r.services.clone(),
        types: r.types.clone(),
        events,
        attributes: r.attributes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Invalid {
        let section: AlertsSection = toml::from_str(text).unwrap();
        validate_alerts(&section).unwrap_err()
    }

    #[test]
    fn defaults_are_documented_values() {
        let s = AlertSettings::default();
        assert_eq!(s.timing.group_wait, Duration::from_secs(10));
        assert_eq!(s.timing.repeat_interval, Duration::from_secs(4 * 3600));
        assert_eq!((s.flapping.high, s.flapping.low), (20.0, 5.0));
        assert!(s.mute_in_maintenance);
        assert_eq!(s.certificate_days, 14.0);
        assert!(s.routes.is_empty());
    }

    #[test]
    fn each_refusal_names_its_key() {
        assert_eq!(
            refused("group_wait = \"0s\""),
            ("alerts.group_wait".into(), "must be longer than 0".into())
        );
        assert_eq!(
            refused("flap_low_threshold = 30.0").0,
            "alerts.flap_low_threshold"
        );
        assert_eq!(
            refused("flap_high_threshold = 120.0").0,
            "alerts.flap_high_threshold"
        );
        let unknown_receiver = refused("[[route]]\nreceivers = [\"pager\"]");
        assert_eq!(unknown_receiver.0, "alerts.route[0].receivers");
        assert!(
            unknown_receiver.1.contains("\"pager\""),
            "{unknown_receiver:?}"
        );
        let hook = "[[receiver]]\nname = \"hook\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\n";
        let bad_event = refused(&format!(
            "{hook}[[route]]\nreceivers = [\"hook\"]\nevents = [\"down\"]"
        ));
        assert_eq!(bad_event.0, "alerts.route[0].events");
        assert!(bad_event.1.contains("stateChanged"), "{bad_event:?}");
        assert_eq!(
            refused(&format!(
                "{hook}[[route]]\nreceivers = [\"hook\"]\ntypes = [\"Fax\"]"
            ))
            .0,
            "alerts.route[0].types"
        );
    }
}
