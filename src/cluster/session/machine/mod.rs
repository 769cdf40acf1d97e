//! The etcd session's decisions, as a state machine over plain values: events in (a call's
//! outcome, a watch event, the clock), actions out (the next call, what to tell the registry
//! and the status). It does no I/O and reads no clock: every event comes with the instant it
//! happened, and [`Machine::wake_at`] says when the clock next matters. The loop in `mod.rs`
//! performs the actions and feeds back what came of them, so every rule below is tested
//! here without etcd.
//!
//! A round is one connection to one member: connect, reuse the lease (or grant one), open
//! its keep-alive, then resume the watch from the revision after the last one seen (or read
//! everything and watch from there), and work: renew, campaign, deliver, write. Any failed
//! call ends the round; the next one goes to the next member, at once if the round had
//! worked, after a backoff if rounds keep failing.
//!
//! Each round first asks its member whom it follows as etcd leader: one that follows none,
//! or the leader whose member the node found gone, would hold every call until etcd elects
//! another, so the node tries the next member soon instead (`election.rs`).
//!
//! A failed round is not an outage yet. A leader keeps its term while its lease is known to
//! hold (`lease_until`), so that losing a member (the etcd leader included, whose
//! replacement takes an election) costs neither a re-election nor a restart of the
//! monitors: its writes wait, and the fence still protects them. The node turns stale only
//! if it is not back within [`GRACE`] and the members do not show an election (nothing is
//! committed during one), or at once when its lease's deadline passes.

mod backoff;
mod election;
mod events;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use backoff::FAST_RETRY_FOR;
#[cfg(test)]
pub(super) use backoff::MAX_BACKOFF;
pub(super) use backoff::{ELECTION_RETRY, backoff};
use election::Election;
pub(super) use events::{Action, Campaign, Delivery, Event, Failure, Note};

/// How long after a failure the node may still call itself fresh, unless the members show
/// meanwhile that etcd is electing a leader (`election.rs`: nothing can be committed then,
/// so it is not behind). A node whose member died, or whose calls a member holds for a
/// dead etcd leader, needs this long to try the others and learn which case it is in: a
/// call's timeout on a member that holds it (half a second to a second), another on the next
/// one, the dead member's refusal. A node cut off for real is flagged this much late (at once
/// if its lease's deadline passes first).
pub(super) const GRACE: Duration = Duration::from_millis(1500);
/// The longest interval between two renewals of the lease (a third of its TTL if that is
/// shorter): what the node can prove of its lease after a failure is the TTL less this, and
/// a leader must prove it across an etcd election (one to two seconds) to keep leading.
pub(super) const RENEW_AT_MOST: Duration = Duration::from_millis(500);
/// How often a follower tries to become leader: a dead leader's key is gone within the lease
/// TTL, and a follower notices within this much more.
pub(super) const CAMPAIGN_INTERVAL: Duration = Duration::from_millis(250);
/// How far back a full read replays etcd's history into the node's log of changes (in
/// revisions, which count every write under the prefix and the leader key).
pub(super) const HISTORY_REVISIONS: i64 = 20_000;

/// Where the round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between rounds: the next one starts at `until`.
    Waiting {
        until: Instant,
    },
    Connecting,
    Probing,
    CheckingLease,
    Granting,
    OpeningKeepAlive,
    /// Creating the watch from the revision after the last one seen.
    Resuming,
    ReadingNewest,
    Reading,
    /// Creating the watch after a full read made at `revision`.
    WatchingRead {
        revision: i64,
        history_from: Option<i64>,
    },
    /// The round works: lease renewed, watch delivering.
    Working,
}

/// The session's state between events.
#[derive(Debug)]
pub(super) struct Machine {
    lease_ttl: Duration,
    renew_every: Duration,
    members: usize,
    /// The member of the current round (or the next one, between rounds).
    member: usize,
    phase: Phase,
    /// The lease this process holds, kept across rounds while etcd still has it.
    lease: Option<i64>,
    /// Until when the lease is known to hold; `None` once that has passed (or no lease).
    lease_until: Option<Instant>,
    /// When the oldest unanswered renewal left: its answer proves the lease from then.
    renew_sent: Option<Instant>,
    /// The create revision of the leader key while this node leads.
    term: Option<i64>,
    /// The last revision the watch delivered; the next round resumes after it.
    last_revision: Option<i64>,
    /// The revision of the last full read: changes up to it are history.
    read_at: i64,
    /// Whether a full read replays the history before it (until etcd has compacted it).
    history: bool,
    /// The newest revision the watch must deliver before the node is caught up.
    catch_up_to: Option<i64>,
    /// Caught up within the watch response being delivered.
    caught_up_at: Option<i64>,
    stale: bool,
    /// When the current outage began (from the first failed call, or the start).
    outage: Option<Instant>,
    /// The last failure's words, for the log line of the outage.
    last_detail: String,
    /// Whether the outage has been logged as such.
    reported: bool,
    ever_reached: bool,
    /// Rounds in a row that failed before working.
    failures: u32,
    /// What the members showed of etcd's leadership.
    election: Election,
    resigned: bool,
    next_renew: Instant,
    next_campaign: Instant,
}

impl Machine {
    /// A session over `members` endpoints starting on member `first`, at `now`: stale until
    /// it has read the cluster.
    pub(super) fn new(lease_ttl: Duration, members: usize, first: usize, now: Instant) -> Self {
        let members = members.max(1);
        Machine {
            lease_ttl,
            renew_every: (lease_ttl / 3).min(RENEW_AT_MOST),
            members,
            member: first % members,
            phase: Phase::Waiting { until: now },
            lease: None,
            lease_until: None,
            renew_sent: None,
            term: None,
            last_revision: None,
            read_at: 0,
            history: true,
            catch_up_to: None,
            caught_up_at: None,
            stale: true,
            outage: Some(now),
            last_detail: String::new(),
            reported: false,
            ever_reached: false,
            failures: 0,
            election: Election::new(members),
            resigned: false,
            next_renew: now,
            next_campaign: now,
        }
    }

    /// The member of the current round.
    #[cfg(test)]
    pub(super) fn member(&self) -> usize {
        self.member
    }

    /// The leader's term while this node leads: what its writes are fenced by.
    /// The lease this node holds, if any: what its views are bound to.
    pub(super) fn lease(&self) -> Option<i64> {
        self.lease
    }

    pub(super) fn term(&self) -> Option<i64> {
        self.term
    }

    /// Whether the round works: writes are sent only then (they wait in the channel
    /// meanwhile), and the watch and the keep-alive are listened to.
    pub(super) fn working(&self) -> bool {
        self.phase == Phase::Working
    }

    /// When the clock next matters (the loop sends [`Event::Tick`] then).
    pub(super) fn wake_at(&self) -> Option<Instant> {
        let mut at = [self.lease_until, self.grace_end()]
            .into_iter()
            .flatten()
            .min();
        let mut sooner = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        match self.phase {
            Phase::Waiting { until } => sooner(until),
            Phase::Working => {
                if self.lease.is_some() {
                    sooner(self.next_renew);
                }
                if self.may_campaign() {
                    sooner(self.next_campaign);
                }
            }
            _ => {}
        }
        at
    }

    /// When the node turns stale if it is not back: the grace after the failure, or later
    /// while a majority of the members shows etcd has no working leader (nothing can be
    /// committed meanwhile; see `election.rs`).
    fn grace_end(&self) -> Option<Instant> {
        let since = self.outage.filter(|_| !self.stale)?;
        let electing = self.election.evident_until().unwrap_or(since);
        Some((since + GRACE).max(electing))
    }

    fn may_campaign(&self) -> bool {
        self.phase == Phase::Working
            && self.term.is_none()
            && !self.resigned
            && self.catch_up_to.is_none()
            && self.caught_up_at.is_none()
            && self.lease.is_some()
    }

    /// What to do about `event`, which happened at `now`.
    pub(super) fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        self.clock(now, &mut out);
        match event {
            Event::Tick => {}
            Event::Failed { failure, detail } => {
                if !matches!(self.phase, Phase::Waiting { .. }) {
                    self.end_round(now, failure, detail, &mut out);
                }
            }
            Event::Resigning => self.resign(&mut out),
            Event::WriteRefused => self.depose(&mut out),
            // Answers to calls the clock made, whatever step the round is at since.
            Event::Renewed { ttl } => {
                if let Some(sent) = self.renew_sent.take() {
                    self.set_lease_until(sent + ttl, &mut out);
                }
            }
            Event::Campaigned(campaign) => self.campaigned(campaign, &mut out),
            event => self.round_event(now, event, &mut out),
        }
        out
    }

    /// The events of a round's steps, each valid in one phase (a late answer of a round
    /// that has ended is ignored).
    fn round_event(&mut self, now: Instant, event: Event, out: &mut Vec<Action>) {
        match (self.phase, event) {
            (Phase::Connecting, Event::Connected) => self.step(Phase::Probing, Action::Status, out),
            (Phase::Probing, Event::Status { member_id, leader }) => {
                self.probed(now, member_id, leader, out)
            }
            (Phase::CheckingLease, Event::LeaseAlive { ttl, asked }) => {
                self.set_lease_until(asked + ttl, out);
                self.keep_alive(out);
            }
            (Phase::CheckingLease, Event::LeaseGone) => {
                self.lease = None;
                self.depose(out);
                self.grant(out);
            }
            (Phase::Granting, Event::LeaseGranted { id, ttl, asked }) => {
                self.depose(out);
                self.lease = Some(id);
                self.lease_until = None;
                self.set_lease_until(asked + ttl, out);
                self.keep_alive(out);
            }
            (Phase::OpeningKeepAlive, Event::KeepAliveOpened) => match self.last_revision {
                Some(last) => self.step(Phase::Resuming, Action::Watch { from: last + 1 }, out),
                None => self.step(Phase::Reading, Action::ReadAll, out),
            },
            (Phase::Resuming, Event::WatchCreated) => {
                self.step(Phase::ReadingNewest, Action::ReadNewest, out)
            }
            (Phase::ReadingNewest, Event::Newest { revision }) => self.resumed(now, revision, out),
            (Phase::Reading, Event::Read { revision }) => {
                let history_from = self.history.then(|| (revision - HISTORY_REVISIONS).max(1));
                let from = history_from.unwrap_or(revision + 1);
                let phase = Phase::WatchingRead {
                    revision,
                    history_from,
                };
                self.step(phase, Action::Watch { from }, out);
            }
            (
                Phase::WatchingRead {
                    revision,
                    history_from,
                },
                Event::WatchCreated,
            ) => {
                self.read_at = revision;
                self.last_revision = Some(revision);
                out.push(Action::Synced {
                    revision,
                    history_from,
                });
                self.work(now);
                self.reached(now, revision, out);
            }
            (Phase::Working, event) => self.working_event(now, event, out),
            _ => {}
        }
    }

    /// The member said who it is and whom it follows. One that follows no leader, or the
    /// leader whose member was just found down, would hold or refuse every call until etcd
    /// has elected another: the next member is tried soon instead, so that the node is back
    /// within moments of the election rather than a call's timeout after it.
    fn probed(&mut self, now: Instant, member_id: u64, leader: u64, out: &mut Vec<Action>) {
        match self.election.status(self.member, member_id, leader, now) {
            Some(detail) => self.end_round(now, Failure::NoLeader, detail.into(), out),
            None => match self.lease {
                Some(id) => self.step(Phase::CheckingLease, Action::CheckLease { id }, out),
                None => self.grant(out),
            },
        }
    }

    /// The events of a round that works.
    fn working_event(&mut self, now: Instant, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::WatchBatchEnd => {
                if let Some(revision) = self.caught_up_at.take() {
                    self.reached(now, revision, out);
                }
            }
            Event::WatchCanceled { compacted } if compacted > 0 => {
                // The changes missed are gone: read every service again, without the
                // history before the read if that was what etcd no longer had.
                out.push(Action::Log(Note::Compacted {
                    last: self.last_revision,
                    compacted,
                }));
                if self.last_revision <= Some(self.read_at) {
                    self.history = false;
                }
                self.last_revision = None;
                self.catch_up_to = None;
                self.step(Phase::Reading, Action::ReadAll, out);
            }
            Event::WatchCanceled { .. } => {
                let detail = "etcd canceled the watch".to_string();
                self.end_round(now, Failure::Other, detail, out);
            }
            Event::LeaseGone if !self.resigned => {
                self.lease = None;
                self.lease_lapsed(now, out);
            }
            _ => {}
        }
    }

    /// A campaign's outcome, if the round that made it goes on.
    fn campaigned(&mut self, campaign: Campaign, out: &mut Vec<Action>) {
        let round_on = !matches!(self.phase, Phase::Waiting { .. } | Phase::Connecting);
        if self.term.is_some() || self.resigned || !round_on {
            return;
        }
        if let Campaign::Elected { term } | Campaign::StillOurs { term } = campaign {
            self.term = Some(term);
            let again = matches!(campaign, Campaign::StillOurs { .. });
            out.push(Action::Lead { term, again });
        }
    }

    /// How a watch event at `revision` is to be told (the loop tells it if it is a put of
    /// a record or windows). Ends the catch-up when it reaches the newest write.
    pub(super) fn watched(&mut self, revision: i64) -> Delivery {
        if self.phase != Phase::Working {
            return Delivery::Ignored;
        }
        if self.catch_up_to.is_some_and(|newest| revision >= newest) {
            self.catch_up_to = None;
            self.caught_up_at = Some(revision);
        }
        if revision <= self.read_at {
            return Delivery::Past;
        }
        self.last_revision = Some(revision);
        Delivery::Changed
    }

    /// What time alone decides: the lease's deadline, the end of the grace, the next
    /// round, renewals and campaigns.
    fn clock(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.lease_until.is_some_and(|until| now >= until) {
            self.lease_until = None;
            self.lease_lapsed(now, out);
        }
        if self.grace_end().is_some_and(|end| now >= end) {
            self.turn_stale(out);
            if !self.reported {
                self.reported = true;
                let (member, detail) = (self.member, self.last_detail.clone());
                out.push(Action::Log(Note::Lost { member, detail }));
            }
        }
        match self.phase {
            Phase::Waiting { until } if now >= until => {
                self.phase = Phase::Connecting;
                out.push(Action::Connect {
                    member: self.member,
                });
            }
            Phase::Working => {
                if let Some(lease) = self.lease {
                    if now >= self.next_renew {
                        self.next_renew = now + self.renew_every;
                        self.renew_sent.get_or_insert(now);
                        out.push(Action::Renew);
                    }
                    if self.may_campaign() && now >= self.next_campaign {
                        self.next_campaign = now + CAMPAIGN_INTERVAL;
                        out.push(Action::Campaign { lease });
                    }
                }
            }
            _ => {}
        }
    }

    /// The lease can no longer be counted on: stale and deposed at once. A round that
    /// works ends (this process fell behind its own lease: paused, starved), and the next
    /// one starts with a new lease; between rounds the lease is kept, for etcd may have
    /// extended it (a new etcd leader does), which the next round asks.
    fn lease_lapsed(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.turn_stale(out);
        self.depose(out);
        if self.phase == Phase::Working {
            self.lease = None;
            if !self.reported {
                self.reported = true;
                out.push(Action::Log(Note::LeaseExpired {
                    member: self.member,
                }));
            }
            let detail = "the lease expired".to_string();
            self.end_round(now, Failure::Other, detail, out);
        } else if !self.reported && self.ever_reached {
            self.reported = true;
            let (member, detail) = (self.member, self.last_detail.clone());
            out.push(Action::Log(Note::Lost { member, detail }));
        }
    }

    /// The round failed: the next one, on the next member, at once if this one had
    /// worked. The leader keeps its term: only the lease's deadline deposes it.
    fn end_round(&mut self, now: Instant, failure: Failure, detail: String, out: &mut Vec<Action>) {
        let worked = self.phase == Phase::Working;
        out.push(Action::Disconnect);
        self.election.failed(self.member, failure, now);
        self.failures = if worked { 0 } else { self.failures + 1 };
        let electing = self
            .election
            .evident_until()
            .is_some_and(|until| now < until)
            && self.outage.is_none_or(|since| now < since + FAST_RETRY_FOR);
        let retry_in = if electing {
            backoff(self.failures, self.members, failure).min(ELECTION_RETRY)
        } else {
            backoff(self.failures, self.members, failure)
        };
        let first = self.outage.is_none();
        if first {
            self.outage = Some(now);
        }
        if !self.ever_reached && !self.reported {
            self.reported = true;
            let (member, detail) = (self.member, detail.clone());
            out.push(Action::Log(Note::CannotReach { member, detail }));
        } else {
            out.push(Action::Log(Note::RoundFailed {
                member: self.member,
                detail: detail.clone(),
                retry_in,
                first,
            }));
        }
        self.last_detail = detail;
        self.phase = Phase::Waiting {
            until: now + retry_in,
        };
        self.member = (self.member + 1) % self.members;
        self.catch_up_to = None;
        self.caught_up_at = None;
        self.renew_sent = None;
    }

    /// The watch resumed, and the newest key under the prefix is at `newest`: caught up if
    /// the node has seen it, otherwise once the watch brings it. Until then the node does
    /// not campaign (a paused leader would lead again from what it knew before its pause).
    fn resumed(&mut self, now: Instant, newest: i64, out: &mut Vec<Action>) {
        self.work(now);
        let last = self.last_revision.unwrap_or_default();
        if newest <= last {
            self.reached(now, last, out);
        } else {
            self.catch_up_to = Some(newest);
            out.push(Action::Log(Note::Replaying { last, newest }));
        }
    }

    fn work(&mut self, now: Instant) {
        self.phase = Phase::Working;
        self.next_renew = now;
        self.next_campaign = now;
    }

    /// Caught up: fresh again.
    fn reached(&mut self, now: Instant, revision: i64, out: &mut Vec<Action>) {
        out.push(Action::Reached { revision });
        if self.stale {
            self.stale = false;
            out.push(Action::Stale(false));
        }
        out.push(Action::Log(Note::Connected {
            member: self.member,
            revision,
            outage: self.outage.map(|t| now.saturating_duration_since(t)),
        }));
        self.outage = None;
        self.election.forget();
        self.reported = false;
        self.ever_reached = true;
        self.failures = 0;
    }

    fn step(&mut self, phase: Phase, action: Action, out: &mut Vec<Action>) {
        self.phase = phase;
        out.push(action);
    }

    fn grant(&mut self, out: &mut Vec<Action>) {
        let ttl = self.lease_ttl;
        self.step(Phase::Granting, Action::GrantLease { ttl }, out);
    }

    fn keep_alive(&mut self, out: &mut Vec<Action>) {
        if let Some(id) = self.lease {
            self.step(Phase::OpeningKeepAlive, Action::KeepAlive { id }, out);
        }
    }

    /// The lease is known to hold until `until` (never moved back).
    fn set_lease_until(&mut self, until: Instant, out: &mut Vec<Action>) {
        if self.lease_until.is_none_or(|known| until > known) {
            self.lease_until = Some(until);
            out.push(Action::LeaseUntil(until));
        }
    }

    fn turn_stale(&mut self, out: &mut Vec<Action>) {
        if !self.stale {
            self.stale = true;
            out.push(Action::Stale(true));
        }
    }

    fn depose(&mut self, out: &mut Vec<Action>) {
        if self.term.take().is_some() {
            out.push(Action::Depose);
        }
    }

    fn resign(&mut self, out: &mut Vec<Action>) {
        self.resigned = true;
        if let Some(lease) = self.lease.take() {
            out.push(Action::Revoke { lease });
        }
        self.lease_until = None;
        self.depose(out);
    }
}
