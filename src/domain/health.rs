//! From probe outcomes to instance health: rise/fall counting and the probe schedule.
//!
//! The model is HAProxy's: an instance changes from down to up only after `rise`
//! consecutive successes and from up to down only after `fall` consecutive failures, so one
//! lost packet does not flip a service. While a change is in doubt (a streak has started but
//! not finished) probes run at `fast_interval`; while the instance is down, at
//! `down_interval`.
//!
//! One departure from HAProxy: an instance starts `Unknown`, and its first outcome decides
//! its health at once. A daemon that has just started should report what it sees within one
//! probe, not after `rise` intervals.

use std::fmt;
use std::time::Duration;

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The instance answered as expected.
    Up,
    /// The instance answered but says it is impaired (an `exec` check that exited 1).
    /// It still counts as a success: a degraded instance keeps serving.
    Degraded,
    /// The instance did not answer as expected, or not in time.
    Down,
}

impl ProbeOutcome {
    /// Every outcome, for whoever keeps something per outcome (the probe counters).
    pub const ALL: [ProbeOutcome; 3] =
        [ProbeOutcome::Up, ProbeOutcome::Degraded, ProbeOutcome::Down];

    /// The wire name, used in logs, metrics and the instance detail.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeOutcome::Up => "up",
            ProbeOutcome::Degraded => "degraded",
            ProbeOutcome::Down => "down",
        }
    }
}

/// The health of one instance after rise/fall smoothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No probe has finished yet.
    Unknown,
    /// Healthy.
    Up,
    /// Healthy but impaired; serves like `Up`.
    Degraded,
    /// Not healthy.
    Down,
}

impl Health {
    /// Whether the instance can serve clients.
    pub(crate) fn is_healthy(self) -> bool {
        matches!(self, Health::Up | Health::Degraded)
    }

    /// The wire name, used in logs and resources.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts consecutive outcomes against an instance's current health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTracker {
    health: Health,
    /// Consecutive outcomes that disagree with `health`; reset by one that agrees.
    streak: u32,
    rise: u32,
    fall: u32,
}

impl HealthTracker {
    /// A tracker for an instance not probed yet. `rise` and `fall` below 1 count as 1.
    pub(crate) fn new(rise: u32, fall: u32) -> Self {
        HealthTracker {
            health: Health::Unknown,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    /// A tracker that carries on from `health` (a server's monitor restarted after its actor
    /// died): the streak starts over, the health does not.
    pub(crate) fn resume(health: Health, rise: u32, fall: u32) -> Self {
        HealthTracker {
            health,
            ..HealthTracker::new(rise, fall)
        }
    }

    /// The current smoothed health.
    pub(crate) fn health(&self) -> Health {
        self.health
    }

    /// Whether a change has started and not yet finished (the time for `fast_interval`).
    pub(crate) fn in_doubt(&self) -> bool {
        self.streak > 0
    }

    /// Feeds one outcome; returns the new health when it changed.
    pub(crate) fn observe(&mut self, outcome: ProbeOutcome) -> Option<Health> {
        let before = self.health;
        let seen = match outcome {
            ProbeOutcome::Up => Health::Up,
            ProbeOutcome::Degraded => Health::Degraded,
            ProbeOutcome::Down => Health::Down,
        };
        match (before, seen.is_healthy()) {
            (Health::Unknown, _) => {
                self.health = seen;
                self.streak = 0;
            }
            // Healthy and still healthy: Up and Degraded swap at once, since neither
            // changes whether the instance serves.
            (Health::Up | Health::Degraded, true) => {
                self.health = seen;
                self.streak = 0;
            }
            (Health::Up | Health::Degraded, false) => {
                self.streak += 1;
                if self.streak >= self.fall {
                    self.health = Health::Down;
                    self.streak = 0;
                }
            }
            (Health::Down, true) => {
                self.streak += 1;
                if self.streak >= self.rise {
                    self.health = seen;
                    self.streak = 0;
                }
            }
            (Health::Down, false) => self.streak = 0,
        }
        (self.health != before).then_some(self.health)
    }

    /// A failure beyond doubt (the instance closed its watch connection and a probe right
    /// after failed): down now, whatever `fall` says; recovery still takes `rise`. Returns
    /// the new health when it changed.
    pub(crate) fn confirm_down(&mut self) -> Option<Health> {
        let before = self.health;
        self.health = Health::Down;
        self.streak = 0;
        (before != Health::Down).then_some(Health::Down)
    }
}

/// The intervals of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Between probes of a steady, healthy instance.
    pub interval: Duration,
    /// Between probes while a change is in doubt, and before the first outcome.
    pub fast_interval: Duration,
    /// Between probes of an instance that is down.
    pub down_interval: Duration,
    /// Fraction (0 to 0.5) by which each delay is spread, so that checks configured alike
    /// do not fire together.
    pub jitter: f64,
}

impl Schedule {
    /// The delay before the next probe of an instance in the tracker's condition, before
    /// jitter.
    pub(crate) fn base_delay(&self, tracker: &HealthTracker) -> Duration {
        if tracker.in_doubt() || tracker.health() == Health::Unknown {
            self.fast_interval
        } else if tracker.health() == Health::Down {
            self.down_interval
        } else {
            self.interval
        }
    }

    /// Spreads `base` by up to `jitter` either way; `unit` is a random number in [0, 1).
    pub(crate) fn jittered(&self, base: Duration, unit: f64) -> Duration {
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        base.mul_f64(factor.max(0.0))
    }

    /// The longest time a steady instance can take to be seen down after it fails: the wait
    /// for the probe already scheduled, then `fall` probes each bounded by `timeout`, spaced
    /// by `fast_interval` after the first failure. Tests and docs use it as the promise.
    pub fn worst_case_detection(&self, timeout: Duration, fall: u32) -> Duration {
        let spread = 1.0 + self.jitter;
        let fall = fall.max(1);
        self.interval.max(self.down_interval).mul_f64(spread)
            + timeout * fall
            + self.fast_interval.mul_f64(spread) * (fall - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeOutcome::*;

    fn feed(tracker: &mut HealthTracker, outcomes: &[ProbeOutcome]) -> Vec<Option<Health>> {
        outcomes.iter().map(|o| tracker.observe(*o)).collect()
    }

    #[test]
    fn a_confirmed_failure_is_down_at_once_and_recovery_still_takes_rise() {
        let mut t = HealthTracker::new(2, 3);
        assert_eq!(t.observe(ProbeOutcome::Up), Some(Health::Up));
        assert_eq!(t.observe(ProbeOutcome::Down), None, "one failure of three");
        assert_eq!(t.confirm_down(), Some(Health::Down), "no waiting for fall");
        assert_eq!(t.confirm_down(), None, "already down");
        assert_eq!(t.observe(ProbeOutcome::Up), None, "one success of two");
        assert_eq!(t.observe(ProbeOutcome::Up), Some(Health::Up));
    }

    #[test]
    fn a_resumed_tracker_keeps_its_health_and_counts_afresh() {
        let mut t = HealthTracker::resume(Health::Up, 2, 2);
        assert_eq!(t.health(), Health::Up);
        assert_eq!(t.observe(Down), None, "one failure of two");
        assert_eq!(t.observe(Down), Some(Health::Down));
        let unknown = HealthTracker::resume(Health::Unknown, 2, 2);
        assert_eq!(unknown, HealthTracker::new(2, 2));
    }

    #[test]
    fn an_outcome_is_named_as_the_health_it_leads_to() {
        for outcome in [Up, Degraded, Down] {
            let mut t = HealthTracker::new(1, 1);
            let health = t.observe(outcome).unwrap();
            assert_eq!(outcome.as_str(), health.as_str());
        }
    }

    #[test]
    fn first_outcome_decides_at_once() {
        let mut t = HealthTracker::new(3, 3);
        assert_eq!(t.observe(Down), Some(Health::Down));
        let mut t = HealthTracker::new(3, 3);
        assert_eq!(t.observe(Up), Some(Health::Up));
        let mut t = HealthTracker::new(3, 3);
        assert_eq!(t.observe(Degraded), Some(Health::Degraded));
    }

    #[test]
    fn falls_after_fall_consecutive_failures() {
        let mut t = HealthTracker::new(2, 3);
        t.observe(Up);
        assert_eq!(feed(&mut t, &[Down, Down]), vec![None, None]);
        assert!(t.in_doubt());
        assert_eq!(t.observe(Down), Some(Health::Down));
        assert!(!t.in_doubt());
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let mut t = HealthTracker::new(2, 2);
        t.observe(Up);
        assert_eq!(feed(&mut t, &[Down, Up, Down, Up]), vec![None; 4]);
        assert_eq!(t.health(), Health::Up);
        assert!(!t.in_doubt());
    }

    #[test]
    fn rises_after_rise_consecutive_successes() {
        let mut t = HealthTracker::new(2, 1);
        t.observe(Down);
        assert_eq!(t.observe(Up), None);
        assert_eq!(t.observe(Down), None, "a failure resets the rise streak");
        assert_eq!(t.observe(Up), None);
        assert_eq!(t.observe(Degraded), Some(Health::Degraded));
    }

    #[test]
    fn up_and_degraded_swap_without_smoothing() {
        let mut t = HealthTracker::new(5, 5);
        t.observe(Up);
        assert_eq!(t.observe(Degraded), Some(Health::Degraded));
        assert_eq!(t.observe(Up), Some(Health::Up));
    }

    #[test]
    fn zero_rise_and_fall_act_as_one() {
        let mut t = HealthTracker::new(0, 0);
        t.observe(Up);
        assert_eq!(t.observe(Down), Some(Health::Down));
        assert_eq!(t.observe(Up), Some(Health::Up));
    }

    fn schedule() -> Schedule {
        Schedule {
            interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_secs(5),
            jitter: 0.1,
        }
    }

    #[test]
    fn delay_follows_the_condition() {
        let s = schedule();
        let mut t = HealthTracker::new(2, 2);
        assert_eq!(s.base_delay(&t), s.fast_interval, "unknown: probe soon");
        t.observe(Up);
        assert_eq!(s.base_delay(&t), s.interval);
        t.observe(Down);
        assert_eq!(s.base_delay(&t), s.fast_interval, "in doubt");
        t.observe(Down);
        assert_eq!(s.base_delay(&t), s.down_interval);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let s = schedule();
        let base = Duration::from_secs(10);
        assert_eq!(s.jittered(base, 0.0), Duration::from_secs(9));
        assert_eq!(s.jittered(base, 0.5), base);
        assert!(s.jittered(base, 0.999_999) <= Duration::from_secs(11));
        let no_jitter = Schedule { jitter: 0.0, ..s };
        assert_eq!(no_jitter.jittered(base, 0.7), base);
    }

    #[test]
    fn worst_case_detection_adds_the_wait_and_each_failed_probe() {
        let s = Schedule {
            jitter: 0.0,
            ..schedule()
        };
        // down_interval (5s) is the longest wait, then 3 probes of up to 1s, 2 fast gaps.
        assert_eq!(
            s.worst_case_detection(Duration::from_secs(1), 3),
            Duration::from_secs(5 + 3) + Duration::from_millis(1000)
        );
    }
}
