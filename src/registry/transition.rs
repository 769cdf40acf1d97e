//! A change of a service's assessment as the log and the metrics tell it: the words of
//! each kind of change, and the switchovers counted, by cause.

use tracing::{info, warn};

use crate::domain::roles::Source;
use crate::domain::service::Role;
use crate::domain::state::Assessment;
use crate::domain::switchover::{Cause, switchover};
use crate::metrics::Metrics;

/// A change of a service's assessment, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Transition {
    pub before: Assessment,
    pub after: Assessment,
    /// The service's first assessment: announced even when it equals `before`, because
    /// nobody has heard of the service until now.
    pub first: bool,
    /// The first assessment, confirming what the history held before a restart (state and
    /// serving instance): nothing happened to the service, so the history need not say so.
    pub confirmed: bool,
    /// Why the serving instance moved, if it did, as the node that decided it saw it (on a
    /// cluster follower: as the leader's record says; `None` in a record that does not say).
    pub cause: Option<Cause>,
}

/// Logs a change of a service's resource; counts a switchover. Only a move from one
/// instance of the pair to the other is one: a role conflict or a fallback starting or
/// ending leaves the serving instance where it is, and the first assessment moves nothing
/// anyone had seen.
pub(super) fn log_transition(id: &str, t: Transition, reason: &str, metrics: &Metrics) {
    let (before, after) = (t.before, t.after);
    let (from_serving, to_serving) = (serving_label(before.serving), serving_label(after.serving));
    let moved = switchover(before.serving, after.serving).filter(|_| !t.first);
    if t.first && t.confirmed {
        info!(service = %id, state = %after.state, serving = to_serving, reason, "service confirmed as recorded before the restart");
    } else if t.first {
        info!(service = %id, state = %after.state, serving = to_serving, reason, "service assessed");
    } else if after.state != before.state {
        info!(service = %id, from = %before.state, to = %after.state, serving = to_serving, reason, "service state changed");
    } else if moved.is_none() && before.serving != after.serving {
        info!(service = %id, state = %after.state, from = from_serving, to = to_serving, reason, "serving instance changed");
    }
    if moved.is_some() {
        // A record written before causes were recorded says none: nobody planned it that
        // anyone can tell.
        let cause = t.cause.unwrap_or(Cause::Failure);
        let cause_name = cause.as_str();
        metrics.services.count_switchover(id, cause);
        match cause {
            Cause::Failure => {
                warn!(service = %id, state = %after.state, from = from_serving, to = to_serving, cause = cause_name, reason, "switchover")
            }
            Cause::Maintenance => {
                info!(service = %id, state = %after.state, from = from_serving, to = to_serving, cause = cause_name, reason, "switchover")
            }
        }
    }
    if after.source != before.source || t.first {
        let serving = to_serving;
        match after.source {
            Source::Conflict => {
                warn!(service = %id, serving, reason, "role conflict: both instances say they are primary; the configured primary is shown")
            }
            Source::Fallback => {
                info!(service = %id, serving, reason, "no healthy instance says it is primary; the serving instance is inferred from health")
            }
            Source::Role if !t.first => {
                info!(service = %id, serving, reason, "the serving instance is the one that says it is primary")
            }
            Source::Role | Source::Health => {}
        }
    }
}

/// The serving instance as logs show it.
pub(super) fn serving_label(serving: Option<Role>) -> &'static str {
    serving.map_or("none", Role::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::service::ServiceState;

    fn active(serving: Role, source: Source) -> Assessment {
        Assessment {
            state: ServiceState::Active,
            serving: Some(serving),
            source,
        }
    }

    fn change(before: Assessment, after: Assessment, cause: Option<Cause>) -> Transition {
        Transition {
            before,
            after,
            first: false,
            confirmed: false,
            cause,
        }
    }

    fn counted(metrics: &Metrics, cause: &str) -> bool {
        metrics.encode().contains(&format!(
            r#"switchovers_total{{service="v",cause="{cause}"}} 1"#
        ))
    }

    #[test]
    fn a_change_of_what_the_serving_instance_rests_on_is_no_switchover() {
        let metrics = Metrics::new();
        for (from, to) in [
            (Source::Fallback, Source::Role),
            (Source::Role, Source::Conflict),
            (Source::Conflict, Source::Fallback),
        ] {
            let t = change(active(Role::Primary, from), active(Role::Primary, to), None);
            log_transition("v", t, "roles", &metrics);
        }
        assert!(!metrics.encode().contains("switchovers_total{"));
    }

    #[test]
    fn a_move_is_counted_once_under_its_cause() {
        let metrics = Metrics::new();
        let (p, b) = (
            active(Role::Primary, Source::Health),
            active(Role::Backup, Source::Health),
        );
        log_transition("v", change(p, b, Some(Cause::Maintenance)), "w", &metrics);
        assert!(counted(&metrics, "maintenance"));
        assert!(!counted(&metrics, "failure"));
        // A record that does not say why: nobody planned it that anyone can tell.
        log_transition("v", change(b, p, None), "r", &metrics);
        assert!(counted(&metrics, "failure"));
    }

    #[test]
    fn the_first_assessment_moves_nothing_anyone_saw() {
        let metrics = Metrics::new();
        let t = Transition {
            first: true,
            ..change(
                active(Role::Primary, Source::Health),
                active(Role::Backup, Source::Health),
                Some(Cause::Failure),
            )
        };
        log_transition("v", t, "first", &metrics);
        assert!(!metrics.encode().contains("switchovers_total{"));
    }
}
