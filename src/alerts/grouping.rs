//! When a receiver is told: the first event of a quiet spell waits `group_wait` for others
//! (a mass outage is seen within a few probe intervals), later ones wait until
//! `group_interval` has passed since the last notification, as Alertmanager groups. So
//! 500 services failing at once reach each receiver as one notification, not 500.

use std::time::{Duration, Instant};

use crate::config::alerts::Timing;

/// One receiver's group of events waiting to be told.
#[derive(Debug)]
pub struct Group<T> {
    waiting: Vec<T>,
    /// When the waiting events are due.
    due: Option<Instant>,
    last_sent: Option<Instant>,
}

impl<T> Default for Group<T> {
    fn default() -> Self {
        Group {
            waiting: Vec::new(),
            due: None,
            last_sent: None,
        }
    }
}

impl<T> Group<T> {
    /// Adds `item` at `now`; returns when the group is due.
    pub fn add(&mut self, item: T, now: Instant, timing: &Timing) -> Instant {
        self.waiting.push(item);
        *self.due.get_or_insert_with(|| match self.last_sent {
            Some(sent) if now < sent + timing.group_interval => sent + timing.group_interval,
            _ => now + timing.group_wait,
        })
    }

    /// When the waiting events are due, if any wait.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The waiting events, if due at `now`; the group counts as sent then.
    pub fn take_due(&mut self, now: Instant) -> Option<Vec<T>> {
        if self.due? > now {
            return None;
        }
        self.due = None;
        self.last_sent = Some(now);
        Some(std::mem::take(&mut self.waiting))
    }

    /// Keeps only the waiting events `keep` accepts; returns the others.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> Vec<T> {
        let (kept, dropped) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|item| keep(item));
        self.waiting = kept;
        if self.waiting.is_empty() {
            self.due = None;
        }
        dropped
    }

    /// How many events wait.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// How long the next attempt at a failed delivery waits: doubling from one second, at
/// most a minute, so a receiver back from an outage hears within a minute.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        group_wait: Duration::from_secs(10),
        group_interval: Duration::from_secs(60),
        repeat_interval: Duration::from_secs(4 * 3600),
    };

    #[test]
    fn a_burst_is_one_notification_after_group_wait() {
        let start = Instant::now();
        let mut group = Group::default();
        for i in 0..500u64 {
            let due = group.add(i, start + Duration::from_millis(i * 10), &TIMING);
            assert_eq!(
                due,
                start + TIMING.group_wait,
                "the first event sets the time"
            );
        }
        assert_eq!(group.take_due(start + Duration::from_secs(9)), None);
        let told = group.take_due(start + TIMING.group_wait).unwrap();
        assert_eq!(told.len(), 500);
        assert_eq!(group.len(), 0);
    }

    #[test]
    fn after_a_notification_the_next_waits_for_group_interval() {
        let start = Instant::now();
        let mut group = Group::default();
        group.add(1, start, &TIMING);
        let sent = start + TIMING.group_wait;
        group.take_due(sent).unwrap();
        let next = group.add(2, sent + Duration::from_secs(5), &TIMING);
        assert_eq!(next, sent + TIMING.group_interval);
        group.take_due(next).unwrap();
        // A quiet spell longer than group_interval: group_wait again.
        let late = next + Duration::from_secs(600);
        assert_eq!(group.add(3, late, &TIMING), late + TIMING.group_wait);
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
