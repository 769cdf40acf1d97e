//! What the members show of etcd's leadership: whom each follows, which leader's member
//! the node found gone, and whether etcd has no working leader.
//!
//! A member that still follows a leader whose member is gone has not noticed yet: it would
//! hold every call (forwarded to the dead leader) until it elects another. Passing it over
//! at once, and asking again a moment later, brings the node back within moments of the
//! election instead of a call's timeout after it.
//!
//! Whether etcd has no working leader, as the members the node tried show it: a member
//! that answers it has no leader, or still follows a leader whose member is gone, or is gone
//! itself, cannot be part of a majority that commits anything. While a majority of the
//! members show that, one of them by answering (an election is going on among the living),
//! nothing can be written anywhere, so a node that cannot get in yet is missing nothing: it
//! need not call itself stale (its lease's deadline still does). When every member is gone,
//! etcd is down, and the node says so after the grace as usual.
//!
//! "Gone" is a refused or broken connection: the member's process is not there. A member
//! that does not answer in time proves nothing, and clears what it showed before.

use std::time::{Duration, Instant};

use super::Failure;

/// How long a member's answer counts: the node asks every member again well within it
/// while it reconnects (a pass over three members takes a few hundred milliseconds).
pub(super) const EVIDENCE_FOR: Duration = Duration::from_secs(1);
/// How long a leader whose member was found gone is taken for dead by the members that
/// still follow it: longer than an election (one to two election timeouts, a split vote
/// twice that).
pub(super) const GONE_FOR: Duration = Duration::from_secs(5);

/// What each member last showed of etcd's leadership.
#[derive(Debug)]
pub(super) struct Election {
    /// When each member last showed no working leader, and whether it answered so (rather
    /// than being gone).
    leaderless: Vec<Option<(Instant, bool)>>,
    /// Each endpoint's etcd member id, as its status said.
    ids: Vec<Option<u64>>,
    /// The etcd leader the last member that answered followed.
    leader: Option<u64>,
    /// That leader, once its member was found gone, and when.
    gone: Option<(u64, Instant)>,
}

impl Election {
    pub(super) fn new(members: usize) -> Self {
        Election {
            leaderless: vec![None; members],
            ids: vec![None; members],
            leader: None,
            gone: None,
        }
    }

    /// Member `member` says it is `id` and follows `leader` (0: none): why the node should
    /// pass it over, if it should.
    pub(super) fn status(
        &mut self,
        member: usize,
        id: u64,
        leader: u64,
        now: Instant,
    ) -> Option<&'static str> {
        if let Some(known) = self.ids.get_mut(member) {
            *known = Some(id);
        }
        // Its endpoint answers again; or longer than any election has passed, and a member
        // still following that leader means it is alive after all (refusing this node only).
        if self
            .gone
            .is_some_and(|(gone, since)| gone == id || now >= since + GONE_FOR)
        {
            self.gone = None;
        }
        let gone = self.gone.map(|(leader, _)| leader);
        let why = if leader == 0 {
            "the member has no etcd leader"
        } else if gone == Some(leader) {
            "the member still follows the etcd leader whose member is gone"
        } else {
            self.leader = Some(leader);
            self.unknown(member);
            return None;
        };
        self.leaderless(member, now, true);
        Some(why)
    }

    /// A round on member `member` failed as `failure`.
    pub(super) fn failed(&mut self, member: usize, failure: Failure, now: Instant) {
        match failure {
            Failure::NoLeader => self.leaderless(member, now, true),
            Failure::Down => {
                let id = self.ids.get(member).copied().flatten();
                if id.is_some() && id == self.leader {
                    self.gone = id.map(|id| (id, now));
                }
                self.leaderless(member, now, false);
            }
            Failure::Other => self.unknown(member),
        }
    }

    /// Member `member` showed no working leader at `now`: it answered so, or (`answered`
    /// false) it is gone.
    fn leaderless(&mut self, member: usize, now: Instant, answered: bool) {
        if let Some(seen) = self.leaderless.get_mut(member) {
            *seen = Some((now, answered));
        }
    }

    /// Member `member` answered otherwise (or not at all).
    fn unknown(&mut self, member: usize) {
        if let Some(seen) = self.leaderless.get_mut(member) {
            *seen = None;
        }
    }

    /// The node is back: what the members showed is history.
    pub(super) fn forget(&mut self) {
        self.leaderless.fill(None);
        self.gone = None;
    }

    /// Until when a majority of the members has shown no working leader, one of them by
    /// answering (`None`: they have not).
    pub(super) fn evident_until(&self) -> Option<Instant> {
        let majority = self.leaderless.len() / 2 + 1;
        let mut seen: Vec<(Instant, bool)> = self.leaderless.iter().flatten().copied().collect();
        seen.sort_unstable_by_key(|(at, _)| std::cmp::Reverse(*at));
        let counted = seen.get(..majority)?;
        let answered = counted.iter().filter(|(_, answered)| *answered);
        let until = counted[majority - 1]
            .0
            .min(answered.map(|(at, _)| *at).max()?);
        Some(until + EVIDENCE_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_of_members_without_a_leader_is_evidence_for_a_while() {
        let t0 = Instant::now();
        let mut election = Election::new(3);
        election.leaderless(0, t0, false);
        assert_eq!(
            election.evident_until(),
            None,
            "one of three is not a majority"
        );
        let t1 = t0 + Duration::from_millis(100);
        election.leaderless(1, t1, true);
        assert_eq!(election.evident_until(), Some(t0 + EVIDENCE_FOR));
        election.leaderless(2, t1, true);
        assert_eq!(election.evident_until(), Some(t1 + EVIDENCE_FOR));
        election.unknown(1);
        election.unknown(2);
        assert_eq!(election.evident_until(), None);
        election.leaderless(2, t1, true);
        election.forget();
        assert_eq!(election.evident_until(), None);
    }

    #[test]
    fn a_leader_whose_member_refuses_is_taken_for_dead_for_a_while_only() {
        let t0 = Instant::now();
        let mut election = Election::new(3);
        assert_eq!(election.status(0, 101, 101, t0), None);
        election.failed(0, Failure::Down, t0);
        assert!(election.status(1, 102, 101, t0).is_some(), "passed over");
        let later = t0 + GONE_FOR;
        assert_eq!(election.status(1, 102, 101, later), None, "alive after all");
        election.failed(0, Failure::Down, later);
        assert_eq!(
            election.status(0, 101, 101, later),
            None,
            "back, and leading"
        );
    }

    #[test]
    fn members_that_are_all_gone_are_an_outage_not_an_election() {
        let t0 = Instant::now();
        let mut election = Election::new(3);
        election.leaderless(0, t0, false);
        election.leaderless(1, t0, false);
        assert_eq!(election.evident_until(), None);
        let mut alone = Election::new(1);
        alone.leaderless(0, t0, false);
        assert_eq!(alone.evident_until(), None);
        alone.leaderless(0, t0, true);
        assert_eq!(alone.evident_until(), Some(t0 + EVIDENCE_FOR));
    }
}
