//! Flap detection as Nagios does it: the weighted percentage of state changes over the
//! last 21 checks, newer changes weighing more (from 0.75 for the oldest to 1.25 for the
//! newest); flapping starts above the high threshold and stops below the low one.
//!
//! servicewatch hears of changes, not of every check, so the 21 checks are the service's
//! last 21 check intervals: an interval counts as a change when the state changed within
//! it (once, or back and forth: a state that flips back before the next check is flapping
//! all the more).

use std::time::{Duration, SystemTime};

use crate::config::alerts::FlapThresholds;

/// Checks looked at, as Nagios's `MAX_STATE_HISTORY_ENTRIES`.
pub const CHECKS: usize = 21;
const LOW_WEIGHT: f64 = 0.75;
const HIGH_WEIGHT: f64 = 1.25;

/// The weighted percentage of state changes among the last [`CHECKS`] checks, each
/// `interval` long, ending at `now`; `changes` are the times the state changed.
pub fn percent_state_change(changes: &[SystemTime], now: SystemTime, interval: Duration) -> f64 {
    if interval.is_zero() {
        return 0.0;
    }
    let transitions = CHECKS - 1;
    let mut weighted = 0.0;
    // Transition x (1 = oldest .. 20 = newest) is the interval ending `20 - x` intervals
    // before `now`.
    for x in 1..=transitions {
        let age = (transitions - x) as u32;
        let Some(end) = now.checked_sub(interval * age) else {
            continue;
        };
        let start = end.checked_sub(interval).unwrap_or(SystemTime::UNIX_EPOCH);
        if changes.iter().any(|&c| c > start && c <= end) {
            weighted +=
                (x - 1) as f64 * (HIGH_WEIGHT - LOW_WEIGHT) / (transitions - 1) as f64 + LOW_WEIGHT;
        }
    }
    weighted * 100.0 / transitions as f64
}

/// Whether a service flaps, given whether it did: started above `high`, stopped below
/// `low`, unchanged in between.
pub fn flapping(was: bool, percent: f64, thresholds: FlapThresholds) -> bool {
    if was {
        percent >= thresholds.low
    } else {
        percent > thresholds.high
    }
}

/// The changes that can still count at `now`: older ones are forgotten.
pub fn prune(changes: &mut Vec<SystemTime>, now: SystemTime, interval: Duration) {
    let horizon = interval * CHECKS as u32;
    if let Some(oldest) = now.checked_sub(horizon) {
        changes.retain(|&c| c > oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAGIOS: FlapThresholds = FlapThresholds {
        high: 20.0,
        low: 5.0,
    };

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    #[test]
    fn no_change_is_zero_and_every_interval_changing_is_one_hundred() {
        let second = Duration::from_secs(1);
        assert_eq!(percent_state_change(&[], at(100), second), 0.0);
        let every: Vec<SystemTime> = (0..=100).map(at).collect();
        let all = percent_state_change(&every, at(100), second);
        assert!((all - 100.0).abs() < 1e-9, "{all}");
    }

    #[test]
    fn newer_changes_weigh_more_as_in_nagios() {
        let second = Duration::from_secs(1);
        // The newest transition weighs 1.25, the oldest 0.75, of 20.
        let newest = percent_state_change(&[at(100)], at(100), second);
        let oldest = percent_state_change(&[at(81)], at(100), second);
        assert!((newest - 1.25 * 100.0 / 20.0).abs() < 1e-9, "{newest}");
        assert!((oldest - 0.75 * 100.0 / 20.0).abs() < 1e-9, "{oldest}");
        assert_eq!(
            percent_state_change(&[at(79)], at(100), second),
            0.0,
            "too old"
        );
    }

    #[test]
    fn flapping_starts_above_high_and_stops_below_low() {
        let second = Duration::from_secs(1);
        // Four changes in the last ten checks: about 21 % -> flapping.
        let changes: Vec<SystemTime> = [92, 94, 96, 98].into_iter().map(at).collect();
        let p = percent_state_change(&changes, at(100), second);
        assert!(p > 20.0, "{p}");
        assert!(flapping(false, p, NAGIOS));
        // Quiet since: the changes age and lose weight, then leave the window.
        let later = percent_state_change(&changes, at(110), second);
        assert!((5.0..20.0).contains(&later), "{later}");
        assert!(
            flapping(true, later, NAGIOS),
            "hysteresis: still flapping between the thresholds"
        );
        assert!(
            !flapping(false, later, NAGIOS),
            "and not started by it either"
        );
        let gone = percent_state_change(&changes, at(120), second);
        assert!(!flapping(true, gone, NAGIOS), "{gone}");
    }

    #[test]
    fn prune_keeps_only_what_can_count() {
        let second = Duration::from_secs(1);
        let mut changes: Vec<SystemTime> = [10, 70, 90].into_iter().map(at).collect();
        prune(&mut changes, at(100), second);
        assert_eq!(changes, vec![at(90)]);
    }
}
