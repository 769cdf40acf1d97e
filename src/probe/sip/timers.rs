//! When the `sip` check sends its request over UDP, per RFC 3261 §17.1.2.1 (a non-INVITE
//! client transaction): UDP loses datagrams, so the request is sent again after timer E,
//! which starts at T1 and doubles up to T2, until timer F (64 × T1) ends the transaction.
//! The check's `timeout` ends it sooner when it is shorter, as it usually is.
//!
//! Pure: the monitor owns time; this only says when.

use std::time::Duration;

/// RFC 3261's estimate of the round-trip time, and timer E's first value.
pub const T1: Duration = Duration::from_millis(500);

/// The longest timer E grows to.
pub const T2: Duration = Duration::from_secs(4);

/// Timer F: how long a non-INVITE transaction waits at most for its final answer.
pub const TIMER_F: Duration = Duration::from_millis(64 * 500);

/// When to send the request, from the start of the probe: the first at once, then each
/// timer E, all before `timeout` and timer F. A provisional answer does not stop them
/// (RFC 3261 §17.1.2.2 keeps retransmitting at T2 in the Proceeding state; the schedule is
/// kept as is, which only sends sooner).
pub fn transmissions(timeout: Duration) -> Vec<Duration> {
    let end = timeout.min(TIMER_F);
    let mut at = Duration::ZERO;
    let mut timer_e = T1;
    let mut sends = Vec::new();
    while at < end {
        sends.push(at);
        at += timer_e;
        timer_e = (timer_e * 2).min(T2);
    }
    sends
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(sends: Vec<Duration>) -> Vec<u128> {
        sends.into_iter().map(|d| d.as_millis()).collect()
    }

    #[test]
    fn timer_e_doubles_from_t1_to_t2() {
        assert_eq!(
            ms(transmissions(Duration::from_secs(20))),
            [0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500]
        );
    }

    #[test]
    fn the_timeout_bounds_the_transmissions() {
        assert_eq!(ms(transmissions(Duration::from_millis(400))), [0]);
        assert_eq!(ms(transmissions(Duration::from_millis(500))), [0]);
        assert_eq!(ms(transmissions(Duration::from_millis(501))), [0, 500]);
        assert_eq!(ms(transmissions(Duration::from_secs(2))), [0, 500, 1500]);
    }

    #[test]
    fn timer_f_ends_the_transaction_whatever_the_timeout() {
        let sends = transmissions(Duration::from_secs(3600));
        assert_eq!(sends.len(), 11, "{sends:?}");
        assert_eq!(sends.last(), Some(&Duration::from_millis(31_500)));
        assert_eq!(ms(transmissions(Duration::ZERO)), Vec::<u128>::new());
    }
}
