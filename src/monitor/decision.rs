//! What a monitor makes of one probe, as a pure function: the server's health after it, what
//! the log says of it and in which words, whether the registry is told and with which
//! reason, and what happens next to the probe schedule and the watch connection.
//!
//! The actor ([`super::ServerMonitor`]) only performs the [`Decision`]: it writes the log
//! lines, the metrics and the instance record, sends the report and moves its timers. Kept
//! apart so that each rule is tested without sockets, actors or clocks.

use crate::domain::health::{Health, HealthTracker, ProbeOutcome};
use crate::domain::roles::SaidRole;

/// What the monitor knows of its server between probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Known {
    /// The smoothed health and the streak towards its next change.
    pub tracker: HealthTracker,
    /// What the server last said of its role (with a role check).
    pub said: SaidRole,
    /// Whether a probe has been reported yet. The first is reported even when it finds the
    /// health the monitor resumed from: the registry of a new leader decides only on what
    /// its own monitors have seen, and waits for each server's first report.
    pub reported: bool,
}

/// The server, as decisions name it.
pub(super) struct Server<'a> {
    /// `primary sips1 (10.0.0.5:5060)`.
    pub label: &'a str,
    /// The check kind's name (`tcp`, `http`...).
    pub check: &'a str,
    /// Whether the check holds a watch connection (`watch = true`).
    pub watched: bool,
}

/// What one probe brought.
pub(super) struct Seen<'a> {
    pub outcome: ProbeOutcome,
    /// The probe's sentence.
    pub detail: String,
    /// The role check's answer and its sentence, when the server was asked.
    pub said: Option<(SaidRole, String)>,
    /// What the watch connection saw, when the probe was made at once because it closed.
    pub watch_closed: Option<&'a str>,
}

/// What the log says of the health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HealthNews {
    /// The first outcome set the health (a debug line: "first probe").
    First(Health),
    /// The smoothed health changed (an info line: "instance health changed").
    Changed { from: Health, to: Health },
    /// Nothing changed (a debug line: "probe").
    Steady,
}

impl HealthNews {
    /// The health reached, when it changed (the first probe included).
    pub fn reached(self) -> Option<Health> {
        match self {
            HealthNews::First(to) | HealthNews::Changed { to, .. } => Some(to),
            HealthNews::Steady => None,
        }
    }
}

/// What the log says of the role answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RoleNews {
    /// Not asked: no role check, or the probe failed.
    NotAsked,
    /// The same answer as last time (a debug line).
    Same,
    /// A new answer (an info line: "role check: the instance ...").
    Changed { was: SaidRole },
    /// No usable answer, where there was one (a warning: "role check: no usable answer").
    Unusable { was: SaidRole },
}

impl RoleNews {
    /// Whether the answer differs from the last one (the role gauges move).
    pub fn changed(self) -> bool {
        matches!(self, RoleNews::Changed { .. } | RoleNews::Unusable { .. })
    }
}

/// What to do about one probe.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Decision {
    pub health: HealthNews,
    pub role: RoleNews,
    /// What the probe saw, as logged and recorded: with what the watch saw when its closing
    /// made the probe.
    pub saw: String,
    /// The role answer, to record (moved from [`Seen::said`]).
    pub said: Option<(SaidRole, String)>,
    /// The reason to send the registry, when there is a change to report. Written only
    /// then: most probes change nothing, and they run thousands of times a second on a
    /// large site.
    pub report: Option<String>,
    /// The watch has just shown the server dead: the probe planned while it was healthy (at
    /// `interval`) gives way to one on the down schedule, so that a server restarted at
    /// once is seen back within `down_interval`.
    pub replan: bool,
    /// Whether a watch connection should now be held open.
    pub watch: bool,
}

/// Whether a server's watch connection should be open: the check asks for one and the
/// server is healthy (a down server's recovery is the probes' to see).
pub(super) fn wants_watch(watched: bool, health: Health) -> bool {
    watched && health.is_healthy()
}

/// Feeds one probe into what the monitor knows and says what to do about it.
///
/// A failed probe made because the watch connection closed marks the server down at once,
/// whatever `fall` says: the process is gone (its kernel closed the connection and refuses
/// new ones). A passing one leaves the health alone (a server that closes idle connections).
pub(super) fn decide(known: &mut Known, server: &Server, seen: Seen) -> Decision {
    let before = known.tracker.health();
    let confirmed = seen.watch_closed.is_some() && seen.outcome == ProbeOutcome::Down;
    let changed = if confirmed {
        known.tracker.confirm_down()
    } else {
        known.tracker.observe(seen.outcome)
    };
    let health = match changed {
        Some(to) if before != Health::Unknown => HealthNews::Changed { from: before, to },
        Some(to) => HealthNews::First(to),
        None => HealthNews::Steady,
    };
    let role = match &seen.said {
        None => RoleNews::NotAsked,
        Some((role, _)) if *role == known.said => RoleNews::Same,
        Some((SaidRole::Unknown, _)) => RoleNews::Unusable { was: known.said },
        Some(_) => RoleNews::Changed { was: known.said },
    };
    if let Some((role, _)) = &seen.said {
        known.said = *role;
    }
    let saw = match seen.watch_closed {
        Some(watch) => format!("{} (probed at once: {watch})", seen.detail),
        None => seen.detail,
    };
    let first = !std::mem::replace(&mut known.reported, true);
    let report = match (&changed, &seen.said) {
        (None, Some((_, why))) if role.changed() => {
            Some(format!("{}: role check {why}", server.label))
        }
        (Some(_), _) => Some(format!("{}: {} check {saw}", server.label, server.check)),
        _ if first => Some(format!("{}: {} check {saw}", server.label, server.check)),
        _ => None,
    };
    Decision {
        health,
        role,
        saw,
        said: seen.said,
        report,
        replan: confirmed && changed.is_some(),
        watch: wants_watch(server.watched, known.tracker.health()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeOutcome::{Degraded, Down, Up};

    const SERVER: Server = Server {
        label: "primary ts1 (10.0.0.5:3000)",
        check: "tcp",
        watched: true,
    };

    /// What a monitor that has reported before knows.
    fn known(health: Health, rise: u32, fall: u32) -> Known {
        Known {
            tracker: HealthTracker::resume(health, rise, fall),
            said: SaidRole::Unknown,
            reported: true,
        }
    }

    #[test]
    fn a_resumed_monitor_reports_its_first_probe_even_when_it_confirms_the_health() {
        let mut k = Known {
            reported: false,
            ..known(Health::Up, 3, 3)
        };
        let d = decide(&mut k, &SERVER, probe(Up, "connected"));
        assert_eq!(d.health, HealthNews::Steady);
        assert_eq!(
            d.report.as_deref(),
            Some("primary ts1 (10.0.0.5:3000): tcp check connected")
        );
        let again = decide(&mut k, &SERVER, probe(Up, "connected"));
        assert_eq!(again.report, None, "then only changes");
    }

    fn probe(outcome: ProbeOutcome, detail: &str) -> Seen<'static> {
        Seen {
            outcome,
            detail: detail.to_string(),
            said: None,
            watch_closed: None,
        }
    }

    fn answered(outcome: ProbeOutcome, role: SaidRole, why: &str) -> Seen<'static> {
        Seen {
            said: Some((role, why.to_string())),
            ..probe(outcome, "connected")
        }
    }

    #[test]
    fn the_first_probe_sets_the_health_and_is_reported_with_what_it_saw() {
        let mut k = known(Health::Unknown, 3, 3);
        let d = decide(&mut k, &SERVER, probe(Up, "connected in 1 ms"));
        assert_eq!(d.health, HealthNews::First(Health::Up));
        assert_eq!(
            d.report.as_deref(),
            Some("primary ts1 (10.0.0.5:3000): tcp check connected in 1 ms")
        );
        assert_eq!(d.saw, "connected in 1 ms");
        assert!(d.watch, "a healthy watched server gets its watch");
        assert!(!d.replan);
    }

    #[test]
    fn a_steady_probe_reports_nothing_and_keeps_the_watch() {
        let mut k = known(Health::Up, 2, 2);
        let d = decide(&mut k, &SERVER, probe(Up, "connected"));
        assert_eq!(
            (d.health, d.role, d.report),
            (HealthNews::Steady, RoleNews::NotAsked, None)
        );
        assert!(d.watch);
    }

    #[test]
    fn health_changes_only_after_fall_failures_and_then_drops_the_watch() {
        let mut k = known(Health::Up, 2, 2);
        let first = decide(&mut k, &SERVER, probe(Down, "refused"));
        assert_eq!((first.health, first.report), (HealthNews::Steady, None));
        let second = decide(&mut k, &SERVER, probe(Down, "refused"));
        assert_eq!(
            second.health,
            HealthNews::Changed {
                from: Health::Up,
                to: Health::Down
            }
        );
        assert_eq!(
            second.report.as_deref(),
            Some("primary ts1 (10.0.0.5:3000): tcp check refused")
        );
        assert!(!second.watch, "no watch on a down server");
        assert!(
            !second.replan,
            "the probes' own schedule already follows the health"
        );
    }

    #[test]
    fn a_failed_probe_after_the_watch_closed_is_down_at_once_and_replans_the_next_probe() {
        let mut k = known(Health::Up, 2, 3);
        let d = decide(
            &mut k,
            &SERVER,
            Seen {
                watch_closed: Some("the server closed the watch connection"),
                ..probe(Down, "refused")
            },
        );
        assert_eq!(
            d.health,
            HealthNews::Changed {
                from: Health::Up,
                to: Health::Down
            },
            "no waiting for fall"
        );
        assert_eq!(
            d.saw,
            "refused (probed at once: the server closed the watch connection)"
        );
        assert_eq!(
            d.report.as_deref(),
            Some(
                "primary ts1 (10.0.0.5:3000): tcp check refused (probed at once: the server closed the watch connection)"
            )
        );
        assert!(d.replan, "the next probe goes on the down schedule");
        assert!(!d.watch);
        // Recovery still takes `rise`.
        assert_eq!(
            decide(&mut k, &SERVER, probe(Up, "ok")).health,
            HealthNews::Steady
        );
        assert_eq!(
            decide(&mut k, &SERVER, probe(Up, "ok")).health.reached(),
            Some(Health::Up)
        );
    }

    #[test]
    fn a_passing_probe_after_the_watch_closed_changes_nothing() {
        let mut k = known(Health::Up, 2, 2);
        let d = decide(
            &mut k,
            &SERVER,
            Seen {
                watch_closed: Some("closed after 5 s"),
                ..probe(Up, "connected")
            },
        );
        assert_eq!(
            (d.health, d.report, d.replan),
            (HealthNews::Steady, None, false)
        );
        assert!(d.watch, "the watch is reopened");
    }

    #[test]
    fn a_watched_failure_of_a_server_already_down_does_not_replan() {
        let mut k = known(Health::Down, 2, 2);
        let d = decide(
            &mut k,
            &SERVER,
            Seen {
                watch_closed: Some("reset"),
                ..probe(Down, "refused")
            },
        );
        assert_eq!((d.health, d.replan), (HealthNews::Steady, false));
    }

    #[test]
    fn a_server_without_a_watch_never_gets_one() {
        let unwatched = Server {
            watched: false,
            ..SERVER
        };
        let d = decide(
            &mut known(Health::Unknown, 1, 1),
            &unwatched,
            probe(Degraded, "exit 1"),
        );
        assert_eq!(d.health, HealthNews::First(Health::Degraded));
        assert!(!d.watch);
    }

    #[test]
    fn a_new_role_answer_is_reported_with_the_role_checks_words() {
        let mut k = known(Health::Up, 1, 1);
        let d = decide(
            &mut k,
            &SERVER,
            answered(Up, SaidRole::Primary, "says it is primary"),
        );
        assert_eq!(
            d.role,
            RoleNews::Changed {
                was: SaidRole::Unknown
            }
        );
        assert_eq!(
            d.report.as_deref(),
            Some("primary ts1 (10.0.0.5:3000): role check says it is primary")
        );
        assert_eq!(k.said, SaidRole::Primary);
        assert_eq!(
            d.said,
            Some((SaidRole::Primary, "says it is primary".into()))
        );
        let again = decide(
            &mut k,
            &SERVER,
            answered(Up, SaidRole::Primary, "says it is primary"),
        );
        assert_eq!((again.role, again.report), (RoleNews::Same, None));
    }

    #[test]
    fn losing_a_usable_answer_is_a_change_reported_as_such() {
        let mut k = Known {
            said: SaidRole::Backup,
            ..known(Health::Up, 1, 1)
        };
        let d = decide(
            &mut k,
            &SERVER,
            answered(Up, SaidRole::Unknown, "timed out"),
        );
        assert_eq!(
            d.role,
            RoleNews::Unusable {
                was: SaidRole::Backup
            }
        );
        assert!(d.role.changed());
        assert_eq!(
            d.report.as_deref(),
            Some("primary ts1 (10.0.0.5:3000): role check timed out")
        );
    }

    #[test]
    fn a_health_change_with_a_role_change_gives_the_probes_reason() {
        let mut k = known(Health::Unknown, 1, 1);
        let d = decide(
            &mut k,
            &SERVER,
            answered(Up, SaidRole::Backup, "says it is backup"),
        );
        assert_eq!(d.health, HealthNews::First(Health::Up));
        assert!(d.role.changed());
        assert_eq!(
            d.report.as_deref(),
            Some("primary ts1 (10.0.0.5:3000): tcp check connected")
        );
    }
}
