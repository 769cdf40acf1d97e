//! From one service's committed change to the events receivers are told and the alerts
//! that fire: pure functions over what the alerts keep of each service (its [`View`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::event::{Alert, AlertStatus, Event, EventKind, ServiceRef, Severity};
use crate::domain::service::{Role, ServiceState};
use crate::domain::switchover::Cause;

/// What the alerts keep of a service: enough to tell what changed, kept across restarts
/// (in the outbox's database) so that a restart tells nothing new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub state: ServiceState,
    /// Since when the state holds (the resource's `stateSince`).
    pub since: SystemTime,
    pub serving: Option<Role>,
    /// `None`: the service has no spare by configuration.
    pub redundant: Option<bool>,
    /// Since when `redundant` holds.
    pub redundant_since: SystemTime,
    /// A window holds on the whole service.
    pub service_maintenance: bool,
    /// A window holds on one of its instances.
    pub instance_maintenance: bool,
    pub flapping: bool,
}

/// One committed change of a service, as the alerts are told of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub service: ServiceRef,
    /// The service's attributes that are text, for routes and Alertmanager's labels.
    pub attributes: BTreeMap<String, String>,
    pub revision: i64,
    pub at: SystemTime,
    pub reason: String,
    /// Why the serving instance moved, as the decision said, when it did.
    pub switchover: Option<Cause>,
    pub view: View,
}

/// One event, before it is dressed with what every event carries.
struct Told {
    kind: EventKind,
    severity: Severity,
    summary: String,
    planned: Option<bool>,
}

impl Told {
    fn new(kind: EventKind, severity: Severity, summary: String) -> Told {
        Told {
            kind,
            severity,
            summary,
            planned: None,
        }
    }
}

/// The events that `after` tells against `before` (`None`: the service is seen for the
/// first time, which tells nothing). `mute` keeps quiet what a maintenance window
/// explains: everything, for a window on the whole service; the loss of redundancy, for
/// a window on an instance. A service that flaps tells no state change.
pub fn events(before: Option<&View>, observed: &Observed, mute: bool) -> Vec<Event> {
    let Some(before) = before else {
        return Vec::new();
    };
    let after = &observed.view;
    let id = &observed.service.id;
    let mut told = Vec::new();
    if before.service_maintenance
        && !after.service_maintenance
        && after.state != ServiceState::Active
    {
        told.push(Told::new(
            EventKind::MaintenanceEndedDown,
            Severity::Critical,
            format!("{id}: maintenance ended with the service {}", after.state),
        ));
    }
    if !(mute && after.service_maintenance) {
        told.extend(state_told(before, after, id));
        told.extend(switchover_told(before, observed));
    }
    if !(mute && (after.service_maintenance || after.instance_maintenance)) {
        told.extend(redundancy_told(before, after, id));
    }
    told.into_iter()
        .map(|t| Event {
            key: format!("{id}/{}/{}", observed.revision, t.kind.as_str()),
            kind: t.kind,
            at: observed.at,
            revision: observed.revision,
            service: Some(observed.service.clone()),
            state: Some(after.state.as_str().to_string()),
            previous_state: Some(before.state.as_str().to_string()),
            serving_instance: after.serving.map(|r| r.as_str().to_string()),
            previous_serving_instance: before.serving.map(|r| r.as_str().to_string()),
            planned: t.planned,
            severity: t.severity,
            summary: t.summary,
            reason: observed.reason.clone(),
        })
        .collect()
}

/// Flapping started or stopped; else the state changed (held while flapping).
fn state_told(before: &View, after: &View, id: &str) -> Option<Told> {
    if after.flapping != before.flapping {
        return Some(if after.flapping {
            Told::new(
                EventKind::FlappingStarted,
                Severity::Warning,
                format!(
                    "{id} is flapping (now {}); its state changes are held until it settles",
                    after.state
                ),
            )
        } else {
            Told::new(
                EventKind::FlappingStopped,
                Severity::Info,
                format!("{id} stopped flapping; it is {}", after.state),
            )
        });
    }
    (after.state != before.state && !after.flapping).then(|| {
        Told::new(
            EventKind::StateChanged,
            state_severity(after.state),
            format!("{id} is {} (was {})", after.state, before.state),
        )
    })
}

/// The serving instance moved from one instance of the pair to the other.
fn switchover_told(before: &View, observed: &Observed) -> Option<Told> {
    let after = &observed.view;
    let (from, to) = (before.serving?, after.serving?);
    if from == to {
        return None;
    }
    let planned = match observed.switchover {
        Some(cause) => cause == Cause::Maintenance,
        // A decision that did not say (written by an older servicewatch).
        None => after.instance_maintenance || before.instance_maintenance,
    };
    let (severity, cause) = if planned {
        (Severity::Info, "maintenance")
    } else {
        (Severity::Warning, "failure")
    };
    let mut told = Told::new(
        EventKind::Switchover,
        severity,
        format!(
            "{}: {} serves instead of {} ({cause})",
            observed.service.id,
            to.as_str(),
            from.as_str()
        ),
    );
    told.planned = Some(planned);
    Some(told)
}

/// The service lost its redundancy, or has it back.
fn redundancy_told(before: &View, after: &View, id: &str) -> Option<Told> {
    match (before.redundant, after.redundant) {
        (Some(true), Some(false)) => Some(Told::new(
            EventKind::RedundancyLost,
            Severity::Warning,
            format!("{id} lost its redundancy: one more failure and it stops"),
        )),
        (Some(false), Some(true)) => Some(Told::new(
            EventKind::RedundancyRestored,
            Severity::Info,
            format!("{id} is redundant again"),
        )),
        _ => None,
    }
}

fn state_severity(state: ServiceState) -> Severity {
    match state {
        ServiceState::Inactive => Severity::Critical,
        ServiceState::ReadOnly => Severity::Warning,
        ServiceState::Active => Severity::Info,
    }
}

/// The alerts that fire for a service in `view`, muted ones left out.
pub fn firing(observed: &Observed, mute: bool) -> Vec<Alert> {
    let view = &observed.view;
    if mute && view.service_maintenance {
        return Vec::new();
    }
    let id = &observed.service.id;
    let mut alerts = Vec::new();
    let mut fire = |name: &str, severity: Severity, starts_at: SystemTime, summary: String| {
        let mut labels = BTreeMap::new();
        for (k, v) in &observed.attributes {
            labels.insert(k.clone(), v.clone());
        }
        labels.insert("alertname".into(), name.to_string());
        labels.insert("service".into(), id.clone());
        labels.insert("type".into(), observed.service.service_type.clone());
        labels.insert("severity".into(), severity.as_str().to_string());
        alerts.push(Alert {
            name: name.to_string(),
            service: id.clone(),
            status: AlertStatus::Firing,
            severity,
            starts_at,
            ends_at: None,
            summary,
            labels,
        });
    };
    match view.state {
        ServiceState::Inactive => fire(
            "ServiceInactive",
            Severity::Critical,
            view.since,
            format!("{id} is Inactive"),
        ),
        ServiceState::ReadOnly => fire(
            "ServiceReadOnly",
            Severity::Warning,
            view.since,
            format!("{id} is ReadOnly"),
        ),
        ServiceState::Active => {}
    }
    if view.redundant == Some(false) && !(mute && view.instance_maintenance) {
        fire(
            "RedundancyLost",
            Severity::Warning,
            view.redundant_since,
            format!("{id} has no healthy spare left"),
        );
    }
    if view.flapping {
        fire(
            "Flapping",
            Severity::Warning,
            observed.at,
            format!("{id} is flapping"),
        );
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn view(state: ServiceState, serving: Option<Role>) -> View {
        View {
            state,
            since: SystemTime::UNIX_EPOCH,
            serving,
            redundant: Some(true),
            redundant_since: SystemTime::UNIX_EPOCH,
            service_maintenance: false,
            instance_maintenance: false,
            flapping: false,
        }
    }

    fn observed(view: View) -> Observed {
        Observed {
            service: ServiceRef {
                id: "sip".into(),
                name: "SIP".into(),
                service_type: "Voice".into(),
            },
            attributes: BTreeMap::from([("site".to_string(), "paris".to_string())]),
            revision: 42,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(60),
            reason: "primary: connect refused".into(),
            switchover: None,
            view,
        }
    }

    fn kinds(events: &[Event]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    const A: ServiceState = ServiceState::Active;
    const I: ServiceState = ServiceState::Inactive;
    const P: Option<Role> = Some(Role::Primary);
    const B: Option<Role> = Some(Role::Backup);

    #[test]
    fn the_first_sight_tells_nothing() {
        assert!(events(None, &observed(view(I, None)), true).is_empty());
    }

    #[test]
    fn a_state_change_and_a_switchover_are_told_with_stable_keys() {
        let down = events(Some(&view(A, P)), &observed(view(I, None)), true);
        assert_eq!(kinds(&down), [EventKind::StateChanged]);
        assert_eq!(down[0].key, "sip/42/stateChanged");
        assert_eq!(down[0].severity, Severity::Critical);
        assert_eq!(down[0].summary, "sip is Inactive (was Active)");
        let moved = events(Some(&view(A, P)), &observed(view(A, B)), true);
        assert_eq!(kinds(&moved), [EventKind::Switchover]);
        assert_eq!(moved[0].planned, Some(false));
        assert_eq!(
            moved[0].previous_serving_instance.as_deref(),
            Some("primary")
        );
    }

    #[test]
    fn a_move_during_an_instance_window_is_planned() {
        let mut after = view(A, B);
        after.instance_maintenance = true;
        after.redundant = Some(false);
        let moved = events(Some(&view(A, P)), &observed(after.clone()), true);
        assert_eq!(
            kinds(&moved),
            [EventKind::Switchover],
            "the lost redundancy is explained"
        );
        assert_eq!(moved[0].planned, Some(true));
        assert_eq!(moved[0].severity, Severity::Info);
        let unmuted = events(Some(&view(A, P)), &observed(after), false);
        assert_eq!(
            kinds(&unmuted),
            [EventKind::Switchover, EventKind::RedundancyLost]
        );
    }

    #[test]
    fn the_decisions_cause_tells_a_planned_move() {
        let mut after = view(A, B);
        after.instance_maintenance = true;
        let mut told = observed(after);
        told.switchover = Some(Cause::Failure);
        let moved = events(Some(&view(A, P)), &told, true);
        assert_eq!(
            moved[0].planned,
            Some(false),
            "the backup's window did not move it"
        );
        told.switchover = Some(Cause::Maintenance);
        told.view.instance_maintenance = false;
        let moved = events(Some(&view(A, P)), &told, true);
        assert_eq!(moved[0].planned, Some(true));
    }

    #[test]
    fn a_service_window_mutes_it_and_its_end_tells_what_is_still_down() {
        let mut maintained = view(A, P);
        maintained.service_maintenance = true;
        let mut down = maintained.clone();
        down.state = I;
        down.serving = None;
        assert!(events(Some(&maintained), &observed(down.clone()), true).is_empty());
        assert!(firing(&observed(down.clone()), true).is_empty());
        let mut ended = down.clone();
        ended.service_maintenance = false;
        let told = events(Some(&down), &observed(ended), true);
        assert_eq!(kinds(&told), [EventKind::MaintenanceEndedDown]);
        assert_eq!(told[0].severity, Severity::Critical);
    }

    #[test]
    fn redundancy_lost_and_restored() {
        let mut lost = view(A, P);
        lost.redundant = Some(false);
        assert_eq!(
            kinds(&events(Some(&view(A, P)), &observed(lost.clone()), true)),
            [EventKind::RedundancyLost]
        );
        assert_eq!(
            kinds(&events(Some(&lost), &observed(view(A, P)), true)),
            [EventKind::RedundancyRestored]
        );
        let mut single = view(A, P);
        single.redundant = None;
        assert!(events(Some(&single), &observed(single.clone()), true).is_empty());
    }

    #[test]
    fn a_flapping_service_tells_flapping_not_each_state() {
        let mut flapping = view(I, None);
        flapping.flapping = true;
        let started = events(Some(&view(A, P)), &observed(flapping.clone()), true);
        assert_eq!(kinds(&started), [EventKind::FlappingStarted]);
        let mut still = flapping.clone();
        still.state = A;
        still.serving = P;
        assert!(events(Some(&flapping), &observed(still.clone()), true).is_empty());
        let mut settled = still.clone();
        settled.flapping = false;
        assert_eq!(
            kinds(&events(Some(&still), &observed(settled), true)),
            [EventKind::FlappingStopped]
        );
    }

    #[test]
    fn alerts_fire_with_labels_alertmanager_routes_by() {
        let mut v = view(I, None);
        v.redundant = Some(false);
        let alerts = firing(&observed(v), true);
        let names: Vec<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["ServiceInactive", "RedundancyLost"]);
        let labels = &alerts[0].labels;
        assert_eq!(labels["alertname"], "ServiceInactive");
        assert_eq!(labels["service"], "sip");
        assert_eq!(labels["type"], "Voice");
        assert_eq!(labels["severity"], "critical");
        assert_eq!(labels["site"], "paris");
        assert!(firing(&observed(view(A, P)), true).is_empty());
    }
}
