//! Slows password guessing: an address that failed to log in `max_failures` times within
//! `failure_window` is refused (429) for `lockout`, before any password is verified, so a
//! guesser costs no Argon2 time either.
//!
//! Checks still running count as failures until they end: an address may have at most
//! `max_failures` minus its failures checks in flight, so a burst of concurrent guesses is
//! refused beyond that at once, instead of every guess of the burst being checked before the
//! first failure is counted.
//!
//! The throttle is per address, never per account: locking an account would let anybody
//! lock its owner out by failing on purpose, while an address only locks itself. IPv6
//! addresses count by their /64, the block one subscriber usually holds, so that a guesser
//! cannot get a fresh budget by changing the low bits. The table is bounded; when it is
//! full of live records a new address is not tracked (and a warning says so) rather than
//! evicting an address that is locked out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::auth::ThrottleSettings;

/// Addresses tracked at once: a few megabytes at most.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl From<IpAddr> for Key {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Key::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Key::V6(prefix)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    /// Checks begun and not yet ended.
    in_flight: u32,
}

impl Record {
    fn new(now: Instant) -> Self {
        Record {
            failures: 0,
            window_start: now,
            locked_until: None,
            in_flight: 0,
        }
    }

    fn live(&self, now: Instant, settings: &ThrottleSettings) -> bool {
        self.in_flight > 0
            || self.locked_until.is_some_and(|until| now < until)
            || now.duration_since(self.window_start) < settings.failure_window
    }

    /// Starts the count over when the window has passed.
    fn roll(&mut self, now: Instant, settings: &ThrottleSettings) {
        if now.duration_since(self.window_start) >= settings.failure_window {
            self.failures = 0;
            self.window_start = now;
        }
    }
}

/// How long an address whose checks in flight fill its budget is asked to wait.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// A password check under way from one address, counted until it ends: by
/// [`Attempt::failed`], or by being dropped (a success, or a client that hung up).
#[must_use = "an attempt counts as in flight until it is dropped"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    /// `None` when the address is not tracked (throttle off, or the table full).
    key: Option<Key>,
}

impl Attempt<'_> {
    /// Ends the check as a failed login; returns whether this failure locked the address
    /// out.
    pub fn failed(mut self, now: Instant) -> bool {
        let Some(key) = self.key.take() else {
            return false;
        };
        let settings = self.throttle.settings;
        let mut records = self.throttle.lock();
        let Some(record) = records.get_mut(&key) else {
            return false;
        };
        record.in_flight = record.in_flight.saturating_sub(1);
        record.roll(now, &settings);
        record.failures += 1;
        if record.failures >= settings.max_failures && record.locked_until.is_none_or(|u| u <= now)
        {
            record.locked_until = Some(now + settings.lockout);
            // The count starts over once the lockout ends.
            record.failures = 0;
            record.window_start = now + settings.lockout;
            return true;
        }
        false
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut records = self.throttle.lock();
        if let Some(record) = records.get_mut(&key) {
            record.in_flight = record.in_flight.saturating_sub(1);
            if record.in_flight == 0 && record.failures == 0 && record.locked_until.is_none() {
                records.remove(&key);
            }
        }
    }
}

/// Failed logins by address.
pub struct Throttle {
    settings: ThrottleSettings,
    records: Mutex<HashMap<Key, Record>>,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Self {
        Throttle {
            settings,
            records: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Record>> {
        // One map operation per critical section: a poisoned map is still consistent.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(retry_after)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.settings.max_failures == 0 {
            return Ok(());
        }
        match self.lock().get(&Key::from(ip)).and_then(|r| r.locked_until) {
            Some(until) if now < until => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Begins a password check from `ip`, counted as a failure until it ends. `Err` (how
    /// long to wait) while the address is locked out, or while its failures and the checks
    /// it has in flight already reach `max_failures`.
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<Attempt<'_>, Duration> {
        let settings = self.settings;
        let untracked = Attempt {
            throttle: self,
            key: None,
        };
        if settings.max_failures == 0 {
            return Ok(untracked);
        }
        let key = Key::from(ip);
        let mut records = self.lock();
        if records.len() >= MAX_TRACKED && !records.contains_key(&key) {
            records.retain(|_, r| r.live(now, &settings));
            if records.len() >= MAX_TRACKED {
                tracing::warn!(
                    tracked = MAX_TRACKED,
                    "too many addresses failing to log in to track another; it is not throttled"
                );
                return Ok(untracked);
            }
        }
        let record = records.entry(key).or_insert_with(|| Record::new(now));
        if let Some(until) = record.locked_until.filter(|until| now < *until) {
            return Err(until - now);
        }
        record.roll(now, &settings);
        if record.failures + record.in_flight >= settings.max_failures {
            return Err(BUSY_RETRY);
        }
        record.in_flight += 1;
        Ok(Attempt {
            throttle: self,
            key: Some(key),
        })
    }

    /// Counts a failed login from `ip` (a check begun and failed at once); returns whether
    /// this failure locked it out.
    #[cfg(test)]
    pub fn fail(&self, ip: IpAddr, now: Instant) -> bool {
        match self.begin(ip, now) {
            Ok(attempt) => attempt.failed(now),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: ThrottleSettings = ThrottleSettings {
        max_failures: 3,
        failure_window: Duration::from_secs(60),
        lockout: Duration::from_secs(30),
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_an_address_out_after_repeated_failures_then_lets_it_back() {
        let t = Throttle::new(SETTINGS);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        assert!(!t.fail(a, now));
        assert!(!t.fail(a, now));
        assert_eq!(t.check(a, now), Ok(()));
        assert!(
            t.fail(a, now + Duration::from_secs(1)),
            "the third failure locks"
        );
        assert_eq!(
            t.check(a, now + Duration::from_secs(11)),
            Err(Duration::from_secs(20))
        );
        assert_eq!(
            t.check(ip("192.0.2.2"), now),
            Ok(()),
            "other addresses are not affected"
        );
        assert_eq!(t.check(a, now + Duration::from_secs(31)), Ok(()));
        assert!(
            !t.fail(a, now + Duration::from_secs(32)),
            "a fresh count after the lockout"
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = Throttle::new(SETTINGS);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for minute in 0..10 {
            let at = now + Duration::from_secs(61 * minute);
            assert!(!t.fail(a, at));
            assert!(!t.fail(a, at));
        }
        assert_eq!(t.check(a, now + Duration::from_secs(700)), Ok(()));
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let t = Throttle::new(SETTINGS);
        let now = Instant::now();
        t.fail(ip("2001:db8:1:2::1"), now);
        t.fail(ip("2001:db8:1:2::2"), now);
        t.fail(ip("2001:db8:1:2:ffff::3"), now);
        assert!(t.check(ip("2001:db8:1:2::99"), now).is_err());
        assert!(t.check(ip("2001:db8:1:3::1"), now).is_ok());
        for _ in 0..3 {
            t.fail(ip("::ffff:192.0.2.7"), now);
        }
        assert!(t.check(ip("192.0.2.7"), now).is_err());
    }

    #[test]
    fn checks_in_flight_count_until_they_end() {
        let t = Throttle::new(SETTINGS);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        let first = t.begin(a, now).unwrap();
        let second = t.begin(a, now).unwrap();
        let third = t.begin(a, now).unwrap();
        assert_eq!(
            t.begin(a, now).err(),
            Some(BUSY_RETRY),
            "three in flight fill a budget of three"
        );
        assert!(t.begin(ip("192.0.2.2"), now).is_ok(), "per address");
        // A success (or a client that hung up) gives its place back.
        drop(first);
        let fourth = t.begin(a, now).unwrap();
        assert!(!second.failed(now));
        assert!(!third.failed(now));
        assert_eq!(
            t.begin(a, now).err(),
            Some(BUSY_RETRY),
            "two failed, one in flight"
        );
        assert!(fourth.failed(now), "the third failure locks");
        assert_eq!(t.begin(a, now).err(), Some(SETTINGS.lockout));
        assert_eq!(t.check(a, now), Err(SETTINGS.lockout));
    }

    #[test]
    fn successes_leave_nothing_tracked() {
        let t = Throttle::new(SETTINGS);
        let now = Instant::now();
        for i in 0..100u8 {
            drop(t.begin(IpAddr::from([192, 0, 2, i]), now).unwrap());
        }
        assert!(t.lock().is_empty());
    }

    #[test]
    fn zero_turns_it_off() {
        let t = Throttle::new(ThrottleSettings {
            max_failures: 0,
            ..SETTINGS
        });
        let now = Instant::now();
        for _ in 0..100 {
            assert!(!t.fail(ip("192.0.2.1"), now));
        }
        let held: Vec<_> = (0..100)
            .map(|_| t.begin(ip("192.0.2.1"), now).unwrap())
            .collect();
        assert_eq!(held.len(), 100);
        assert_eq!(t.check(ip("192.0.2.1"), now), Ok(()));
    }
}
