//! How long the node waits before its next round: not at all after a round that had
//! worked (the next member is another machine), longer and longer while rounds keep
//! failing, and never long while the members show an election.

use std::time::Duration;

use super::Failure;

/// The first wait before reconnecting after a round that failed without working; it
/// doubles with each full pass over the members, up to [`MAX_BACKOFF`]. After a round that
/// had worked, the next member is tried at once: it is another machine.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait while members answer that they have no etcd leader: an election takes
/// about one election timeout (1 s by default), and the node should be back within a
/// fraction of it once it ends, not a doubled backoff later.
pub const ELECTION_RETRY: Duration = Duration::from_millis(100);
/// How long into an outage the node retries every [`ELECTION_RETRY`] while the members
/// show an election: longer than any election, and then the normal backoff (a cluster that
/// lost its majority answers "no leader" for good).
pub const FAST_RETRY_FOR: Duration = Duration::from_secs(10);

/// The wait before the next round after `failures` rounds in a row failed without working
/// (0: the round had worked) over `members` members, the last one as `failure`.
pub fn backoff(failures: u32, members: usize, failure: Failure) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let passes = (failures - 1) / members.max(1) as u32;
    let wait = FIRST_BACKOFF
        .saturating_mul(1 << passes.min(16))
        .min(MAX_BACKOFF);
    match failure {
        Failure::NoLeader => wait.min(ELECTION_RETRY),
        Failure::Down | Failure::Other => wait,
    }
}
