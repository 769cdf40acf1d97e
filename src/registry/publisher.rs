//! When the registry publishes: at once after a quiet spell, otherwise once per short
//! window, shared by every change in it.
//!
//! Building a snapshot costs work in proportion to every service (the full-list body is
//! rendered whole), so publishing once per change makes a burst of N changes cost N times
//! N. Here the window after a publish is a few times what that publish cost (between
//! [`MIN_WINDOW`] and [`MAX_WINDOW`]): rebuilding then takes at most about a fifth of the
//! registry's time however fast changes come, and a change waits at most one window. The
//! notifications of the changes wait with them, in order, and go out right after the
//! snapshot that shows them.
//!
//! A publish's cost is the CPU time the registry's thread spent on it ([`thread_cpu`]), not
//! the time that passed: on a busy machine the thread may be descheduled in the middle of a
//! cheap publish, and a window four times that pause held the next change back for
//! nothing (a watched death 0-1 ms after another service's change was heard 10 ms late).

use std::time::{Duration, Instant};

use actix_web::web::Bytes;

/// The shortest window: changes closer than this share a publish.
pub const MIN_WINDOW: Duration = Duration::from_millis(1);
/// The longest a change waits for its publish, however large the site.
pub const MAX_WINDOW: Duration = Duration::from_millis(100);
/// The window is this many times the last publish's cost.
const COST_FACTOR: u32 = 4;

/// The publish schedule and the notifications waiting for the next publish.
#[derive(Default)]
pub struct Publisher {
    /// Each waiting notification with the feature a subscriber needs to hear of it.
    waiting: Vec<(Bytes, String)>,
    /// When the last publish ended.
    last: Option<Instant>,
    /// What the last publish cost, in the registry thread's CPU time.
    cost: Duration,
}

/// The CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`); zero if the
/// clock cannot be read, which leaves the shortest window.
pub fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a local one.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

impl Publisher {
    /// A notification to offer after the next publish.
    pub fn wait(&mut self, notification: Bytes, feature: String) {
        self.waiting.push((notification, feature));
    }

    /// How long to wait before publishing, from `now`: `None` to publish at once.
    pub fn delay(&self, now: Instant) -> Option<Duration> {
        let window = (self.cost * COST_FACTOR).clamp(MIN_WINDOW, MAX_WINDOW);
        let due = self.last? + window;
        (now < due).then(|| due - now)
    }

    /// A publish that cost `cost` of the registry thread's CPU ended at `ended`: returns the
    /// notifications to offer now, in the order their changes happened.
    pub fn published(&mut self, cost: Duration, ended: Instant) -> Vec<(Bytes, String)> {
        self.cost = cost;
        self.last = Some(ended);
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_change_and_one_after_a_quiet_spell_go_out_at_once() {
        let t0 = Instant::now();
        let mut p = Publisher::default();
        assert_eq!(p.delay(t0), None, "never published");
        p.published(MS / 10, t0 + MS / 10);
        assert_eq!(
            p.delay(t0 + MS * 5),
            None,
            "quiet for longer than the window"
        );
    }

    #[test]
    fn a_change_right_after_a_publish_waits_for_the_window() {
        let t0 = Instant::now();
        let mut p = Publisher::default();
        // A publish that cost 5 ms opens a 20 ms window.
        p.published(MS * 5, t0 + MS * 5);
        assert_eq!(p.delay(t0 + MS * 5), Some(MS * 20));
        assert_eq!(p.delay(t0 + MS * 15), Some(MS * 10));
        assert_eq!(p.delay(t0 + MS * 25), None);
        // Cheap publishes still leave the minimum window; dear ones at most the maximum.
        p.published(Duration::ZERO, t0);
        assert_eq!(p.delay(t0), Some(MIN_WINDOW));
        p.published(Duration::from_secs(1), t0 + Duration::from_secs(1));
        assert_eq!(p.delay(t0 + Duration::from_secs(1)), Some(MAX_WINDOW));
    }

    #[test]
    fn the_cost_is_the_threads_cpu_time_not_the_time_that_passed() {
        let before = thread_cpu();
        std::thread::sleep(MS * 20);
        let slept = thread_cpu().saturating_sub(before);
        assert!(slept < MS * 5, "a thread asleep uses no CPU: {slept:?}");
        // A spinning thread's clock advances (however busy the machine: bounded by time).
        let before = thread_cpu();
        let deadline = Instant::now() + Duration::from_secs(10);
        while thread_cpu().saturating_sub(before) < MS * 5 && Instant::now() < deadline {
            std::hint::black_box(0);
        }
        let busy = thread_cpu().saturating_sub(before);
        assert!(busy >= MS * 5, "a spinning thread uses CPU: {busy:?}");
    }

    #[test]
    fn waiting_notifications_go_out_once_in_order() {
        let t0 = Instant::now();
        let mut p = Publisher::default();
        p.wait(Bytes::from_static(b"a down"), "api-voice".into());
        p.wait(Bytes::from_static(b"b down"), "api-multimedia".into());
        p.wait(Bytes::from_static(b"a up"), "api-voice".into());
        let out: Vec<_> = p
            .published(Duration::ZERO, t0)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(out, ["a down", "b down", "a up"]);
        assert!(p.published(Duration::ZERO, t0).is_empty());
    }
}
