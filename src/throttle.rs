//! Slows password guessing: an address that failed to log in `max_failures` times within
//! `failure_window` is refused (429) for `lockout`, before any password is verified, so a
//! guesser costs no Argon2 time either.
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

/// Addresses tracked at once: a few megabytes at most.
const MAX_TRACKED: usize = 65_536;

/// When the throttle engages, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failed logins from one address that lock it out; 0 turns the throttle off.
    pub max_failures: u32,
    /// The period failures are counted over.
    pub failure_window: Duration,
    /// How long a locked-out address is refused.
    pub lockout: Duration,
}

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
}

impl Record {
    fn live(&self, now: Instant, settings: &ThrottleSettings) -> bool {
        self.locked_until.is_some_and(|until| now < until)
            || now.duration_since(self.window_start) < settings.failure_window
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

    /// Counts a failed login from `ip`; returns whether this failure locked it out.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> bool {
        let settings = self.settings;
        if settings.max_failures == 0 {
            return false;
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
                return false;
            }
        }
        let record = records.entry(key).or_insert(Record {
            failures: 0,
            window_start: now,
            locked_until: None,
        });
        if now.duration_since(record.window_start) >= settings.failure_window {
            record.failures = 0;
            record.window_start = now;
        }
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
    fn zero_turns_it_off() {
        let t = Throttle::new(ThrottleSettings {
            max_failures: 0,
            ..SETTINGS
        });
        let now = Instant::now();
        for _ in 0..100 {
            assert!(!t.fail(ip("192.0.2.1"), now));
        }
        assert_eq!(t.check(ip("192.0.2.1"), now), Ok(()));
    }
}
