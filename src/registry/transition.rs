//! A change of a service's assessment as the log and the metrics tell it: the words of
//! each kind of change, and the switchovers counted.

use tracing::{info, warn};

use crate::domain::roles::Source;
use crate::domain::service::Role;
use crate::domain::state::Assessment;
use crate::metrics::{Metrics, ServiceLabels};

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
}

/// Logs a change of a service's resource; counts a switchover.
pub(super) fn log_transition(id: &str, t: Transition, reason: &str, metrics: &Metrics) {
    let (before, after) = (t.before, t.after);
    let (from_serving, to_serving) = (serving_label(before.serving), serving_label(after.serving));
    if t.first && t.confirmed {
        info!(service = %id, state = %after.state, serving = to_serving, reason, "service confirmed as recorded before the restart");
    } else if t.first {
        info!(service = %id, state = %after.state, serving = to_serving, reason, "service assessed");
    } else if after.state != before.state {
        info!(service = %id, from = %before.state, to = %after.state, serving = to_serving, reason, "service state changed");
    } else if before.serving.is_some() && after.serving.is_some() {
        warn!(service = %id, state = %after.state, from = from_serving, to = to_serving, reason, "switchover");
        metrics
            .services
            .switchovers
            .get_or_create(&ServiceLabels {
                service: id.to_string(),
            })
            .inc();
    } else if before.serving != after.serving {
        info!(service = %id, state = %after.state, from = from_serving, to = to_serving, reason, "serving instance changed");
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
