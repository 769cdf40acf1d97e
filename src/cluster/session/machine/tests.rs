//! The session's rules, event by event, without etcd.

use super::*;

const TTL: Duration = Duration::from_secs(3);
const LEASE: i64 = 7;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A session over three members, starting on member 0 at `t0`.
fn machine(t0: Instant) -> Machine {
    Machine::new(TTL, 3, 0, t0)
}

fn has_stale(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Stale(true)))
}

fn connects_to(actions: &[Action]) -> Option<usize> {
    actions.iter().find_map(|a| match a {
        Action::Connect { member } => Some(*member),
        _ => None,
    })
}

/// The first round, up to working at `revision`, everything at `now`.
fn first_round(m: &mut Machine, now: Instant, revision: i64) -> Vec<Action> {
    assert_eq!(
        m.handle(now, Event::Tick),
        vec![Action::Connect { member: 0 }]
    );
    assert_eq!(m.handle(now, Event::Connected), vec![Action::Status]);
    assert_eq!(
        m.handle(now, status(0)),
        vec![Action::GrantLease { ttl: TTL }]
    );
    let granted = Event::LeaseGranted {
        id: LEASE,
        ttl: TTL,
        asked: now,
    };
    assert_eq!(
        m.handle(now, granted),
        vec![
            Action::LeaseUntil(now + TTL),
            Action::KeepAlive { id: LEASE }
        ]
    );
    assert_eq!(m.handle(now, Event::KeepAliveOpened), vec![Action::ReadAll]);
    let from = (revision - HISTORY_REVISIONS).max(1);
    assert_eq!(
        m.handle(now, Event::Read { revision }),
        vec![Action::Watch { from }]
    );
    m.handle(now, Event::WatchCreated)
}

/// A working session at revision 100 that leads at term 50, as of `t0`.
fn leader(t0: Instant) -> Machine {
    let mut m = machine(t0);
    first_round(&mut m, t0, 100);
    assert_eq!(
        m.handle(t0, Event::Tick),
        vec![Action::Renew, Action::Campaign { lease: LEASE }]
    );
    let elected = Event::Campaigned(Campaign::Elected { term: 50 });
    assert_eq!(
        m.handle(t0, elected),
        vec![Action::Lead {
            term: 50,
            again: false
        }]
    );
    m
}

/// The status of member `member` (ids 101, 102, 103), following the first as etcd leader.
fn status(member: usize) -> Event {
    Event::Status {
        member_id: 101 + member as u64,
        leader: 101,
    }
}

/// Connects to the member the round is on: its status, then what follows.
fn connect(m: &mut Machine, now: Instant, member: usize) -> Vec<Action> {
    assert_eq!(m.handle(now, Event::Connected), vec![Action::Status]);
    m.handle(now, status(member))
}

fn fail(m: &mut Machine, now: Instant, failure: Failure) -> Vec<Action> {
    let detail = "connection refused".to_string();
    m.handle(now, Event::Failed { failure, detail })
}

/// Reconnects (the lease still alive) and resumes the watch; returns the actions of the
/// newest write's answer.
fn resume(m: &mut Machine, now: Instant, last: i64, newest: i64) -> Vec<Action> {
    let member = connects_to(&m.handle(now, Event::Tick)).expect("a connection");
    assert_eq!(member, m.member());
    assert_eq!(
        connect(m, now, member),
        vec![Action::CheckLease { id: LEASE }]
    );
    let alive = Event::LeaseAlive {
        ttl: ms(2500),
        asked: now,
    };
    let opened = m.handle(now, alive);
    assert_eq!(opened.last(), Some(&Action::KeepAlive { id: LEASE }));
    assert_eq!(
        m.handle(now, Event::KeepAliveOpened),
        vec![Action::Watch { from: last + 1 }]
    );
    assert_eq!(m.handle(now, Event::WatchCreated), vec![Action::ReadNewest]);
    m.handle(now, Event::Newest { revision: newest })
}

#[test]
fn the_first_round_reads_everything_with_its_history_and_turns_fresh() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    let actions = first_round(&mut m, t0, 25_000);
    assert_eq!(
        actions[..3],
        [
            Action::Synced {
                revision: 25_000,
                history_from: Some(5_000)
            },
            Action::Reached { revision: 25_000 },
            Action::Stale(false),
        ]
    );
    assert!(m.working());
    assert_eq!(m.watched(4_999 + 1), Delivery::Past);
    assert_eq!(m.watched(25_000), Delivery::Past);
    assert_eq!(m.watched(25_001), Delivery::Changed);
}

#[test]
fn a_short_outage_keeps_the_lease_and_resumes_the_watch_after_the_last_revision() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    assert_eq!(m.watched(101), Delivery::Changed);
    m.handle(t0, Event::WatchBatchEnd);
    let t1 = t0 + ms(200);
    let failed = fail(&mut m, t1, Failure::Other);
    assert_eq!(failed[0], Action::Disconnect);
    assert!(!failed.contains(&Action::Depose), "{failed:?}");
    assert!(!has_stale(&failed));
    // Back within the grace: never stale, still leading, no new election.
    let back = resume(&mut m, t1 + ms(50), 101, 101);
    assert!(
        back.contains(&Action::Reached { revision: 101 }),
        "{back:?}"
    );
    assert!(!has_stale(&back));
    assert_eq!(m.term(), Some(50));
    let later = m.handle(t1 + ms(300), Event::Tick);
    assert!(
        !later
            .iter()
            .any(|a| matches!(a, Action::Campaign { .. } | Action::Depose)),
        "{later:?}"
    );
}

#[test]
fn a_lease_etcd_no_longer_has_means_a_new_lease_and_no_leadership() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    fail(&mut m, t0 + ms(100), Failure::Other);
    let now = t0 + ms(100);
    assert_eq!(connects_to(&m.handle(now, Event::Tick)), Some(1));
    assert_eq!(
        connect(&mut m, now, 1),
        vec![Action::CheckLease { id: LEASE }]
    );
    assert_eq!(
        m.handle(now, Event::LeaseGone),
        vec![Action::Depose, Action::GrantLease { ttl: TTL }]
    );
    assert_eq!(m.term(), None);
    let granted = Event::LeaseGranted {
        id: 8,
        ttl: TTL,
        asked: now,
    };
    assert_eq!(
        m.handle(now, granted).last(),
        Some(&Action::KeepAlive { id: 8 })
    );
}

#[test]
fn a_resumed_watch_replays_from_the_last_revision_and_the_node_campaigns_once_caught_up() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    first_round(&mut m, t0, 100);
    m.handle(t0, Event::Tick);
    m.handle(t0, Event::Campaigned(Campaign::Lost));
    let t1 = t0 + ms(100);
    fail(&mut m, t1, Failure::Other);
    let replaying = resume(&mut m, t1, 100, 105);
    assert_eq!(
        replaying,
        vec![Action::Log(Note::Replaying {
            last: 100,
            newest: 105
        })]
    );
    // Not caught up: renewals go on, campaigns wait.
    let ticked = m.handle(t1, Event::Tick);
    assert_eq!(ticked, vec![Action::Renew]);
    assert_eq!(m.wake_at(), Some((t1 + GRACE).min(t1 + RENEW_AT_MOST)));
    assert_eq!(m.watched(103), Delivery::Changed);
    assert!(m.handle(t1, Event::WatchBatchEnd).is_empty());
    assert_eq!(m.watched(105), Delivery::Changed);
    let caught_up = m.handle(t1 + ms(10), Event::WatchBatchEnd);
    assert_eq!(caught_up[0], Action::Reached { revision: 105 });
    assert_eq!(
        m.handle(t1 + ms(10), Event::Tick),
        vec![Action::Campaign { lease: LEASE }]
    );
}

#[test]
fn a_compaction_right_after_the_read_reads_everything_again_without_history() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    first_round(&mut m, t0, 30_000);
    m.handle(t0, Event::Tick);
    let canceled = m.handle(t0, Event::WatchCanceled { compacted: 20_000 });
    assert_eq!(
        canceled,
        vec![
            Action::Log(Note::Compacted {
                last: Some(30_000),
                compacted: 20_000
            }),
            Action::ReadAll
        ]
    );
    assert_eq!(
        m.handle(t0, Event::Read { revision: 30_002 }),
        vec![Action::Watch { from: 30_003 }]
    );
    let synced = m.handle(t0, Event::WatchCreated);
    assert_eq!(
        synced[0],
        Action::Synced {
            revision: 30_002,
            history_from: None
        }
    );
}

#[test]
fn a_compaction_of_the_changes_missed_reads_everything_again() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    first_round(&mut m, t0, 100);
    m.handle(t0, Event::Tick);
    assert_eq!(m.watched(120), Delivery::Changed);
    fail(&mut m, t0, Failure::Other);
    resume(&mut m, t0, 120, 120);
    let canceled = m.handle(t0, Event::WatchCanceled { compacted: 150 });
    assert_eq!(canceled.last(), Some(&Action::ReadAll));
    // The history before the first read was never found missing: it is asked again.
    assert_eq!(
        m.handle(t0, Event::Read { revision: 200 }),
        vec![Action::Watch { from: 1 }]
    );
}

#[test]
fn rounds_go_to_the_next_member_and_back_off_only_on_failures_in_a_row() {
    let t0 = Instant::now();
    let mut m = Machine::new(TTL, 3, 1, t0);
    assert_eq!(connects_to(&m.handle(t0, Event::Tick)), Some(1));
    let mut now = t0;
    let mut waits = Vec::new();
    for expected in [2, 0, 1, 2] {
        fail(&mut m, now, Failure::Other);
        let wake = m.wake_at().unwrap();
        waits.push(wake - now);
        assert!(connects_to(&m.handle(wake - ms(1), Event::Tick)).is_none());
        now = wake;
        assert_eq!(connects_to(&m.handle(now, Event::Tick)), Some(expected));
    }
    assert_eq!(waits, [ms(100), ms(100), ms(100), ms(200)]);
    // While members answer that they have no leader, the wait stays short.
    fail(&mut m, now, Failure::NoLeader);
    assert_eq!(m.wake_at(), Some(now + ELECTION_RETRY));
}

#[test]
fn a_round_that_had_worked_is_followed_at_once_by_the_next_member() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    let t1 = t0 + ms(700);
    fail(&mut m, t1, Failure::Other);
    assert_eq!(connects_to(&m.handle(t1, Event::Tick)), Some(1));
}

#[test]
fn the_backoff_doubles_per_pass_over_the_members() {
    assert_eq!(backoff(0, 3, Failure::Other), Duration::ZERO);
    assert_eq!(backoff(3, 3, Failure::Other), ms(100));
    assert_eq!(backoff(4, 3, Failure::Other), ms(200));
    assert_eq!(backoff(7, 3, Failure::Other), ms(400));
    assert_eq!(backoff(5, 1, Failure::Other), ms(1600));
    assert_eq!(backoff(60, 1, Failure::Other), MAX_BACKOFF);
    assert_eq!(backoff(60, 3, Failure::NoLeader), ELECTION_RETRY);
}

#[test]
fn a_leader_keeps_its_term_and_the_node_stays_fresh_across_an_etcd_election() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    let t1 = t0 + ms(500);
    fail(&mut m, t1, Failure::Down);
    // The other members answer that they have no leader while they elect one: nothing can
    // be committed, so the node is not behind, past the grace too.
    let mut now = t1;
    while now < t1 + GRACE + ms(500) {
        now = m.wake_at().unwrap();
        let actions = m.handle(now, Event::Tick);
        assert!(!actions.contains(&Action::Depose), "{actions:?}");
        assert!(!has_stale(&actions), "{actions:?}");
        if let Some(member) = connects_to(&actions) {
            assert_eq!(m.handle(now, Event::Connected), vec![Action::Status]);
            let electing = Event::Status {
                member_id: 101 + member as u64,
                leader: 0,
            };
            let refused = m.handle(now, electing);
            assert!(matches!(refused[1], Action::Log(Note::RoundFailed { .. })));
            assert!(!has_stale(&refused));
        }
    }
    assert!(now < t0 + TTL);
    let now = m.wake_at().unwrap();
    let back = resume(&mut m, now, 100, 100);
    assert!(!back.contains(&Action::Depose));
    assert!(!has_stale(&back));
    assert_eq!(m.term(), Some(50));
}

#[test]
fn a_node_whose_members_all_time_out_turns_stale_after_the_grace() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    let t1 = t0 + ms(100);
    fail(&mut m, t1, Failure::Other);
    let mut stale_at = None;
    let mut now = t1;
    while stale_at.is_none() && now < t0 + TTL {
        now = m.wake_at().unwrap();
        let actions = m.handle(now, Event::Tick);
        if has_stale(&actions) {
            stale_at = Some(now);
        }
        if connects_to(&actions).is_some() {
            m.handle(now, Event::Connected);
            fail(&mut m, now, Failure::Other);
        }
    }
    assert_eq!(stale_at, Some(t1 + GRACE));
    assert_eq!(m.term(), Some(50), "the lease still holds");
}

#[test]
fn a_leader_is_deposed_when_its_lease_deadline_passes_before_it_is_back() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    fail(&mut m, t0 + ms(100), Failure::Other);
    m.handle(t0 + ms(100), Event::Tick);
    let lapsed = m.handle(t0 + TTL, Event::Tick);
    assert!(lapsed.contains(&Action::Depose), "{lapsed:?}");
    assert_eq!(m.term(), None);
    // etcd may have extended the lease meanwhile: the next round asks before granting.
    m.handle(
        t0 + TTL,
        Event::Failed {
            failure: Failure::Other,
            detail: "x".into(),
        },
    );
    let now = m.wake_at().unwrap();
    let member = connects_to(&m.handle(now, Event::Tick)).unwrap();
    assert_eq!(
        connect(&mut m, now, member),
        vec![Action::CheckLease { id: LEASE }]
    );
}

#[test]
fn a_node_turns_stale_only_after_the_grace_or_at_once_when_its_lease_lapses() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    let t1 = t0 + ms(100);
    fail(&mut m, t1, Failure::Other);
    assert_eq!(m.wake_at(), Some(t1));
    m.handle(t1, Event::Tick);
    assert_eq!(m.wake_at(), Some(t1 + GRACE));
    assert!(!has_stale(&m.handle(t1 + GRACE - ms(1), Event::Tick)));
    let stale = m.handle(t1 + GRACE, Event::Tick);
    assert!(has_stale(&stale));
    assert!(
        stale
            .iter()
            .any(|a| matches!(a, Action::Log(Note::Lost { .. })))
    );
    // A process that fell behind its lease while the round worked (paused) is stale at
    // once, no longer leads, says why, and rejoins with a new lease.
    let mut m = leader(t0);
    let resumed = m.handle(t0 + ms(3500), Event::Renewed { ttl: TTL });
    assert_eq!(resumed[..2], [Action::Stale(true), Action::Depose]);
    assert!(resumed.contains(&Action::Log(Note::LeaseExpired { member: 0 })));
    assert!(resumed.contains(&Action::Disconnect));
    assert_eq!(
        connects_to(&resumed),
        Some(1),
        "at once, on the next member"
    );
    let now = t0 + ms(3500);
    assert_eq!(
        connect(&mut m, now, 1),
        vec![Action::GrantLease { ttl: TTL }]
    );
}

#[test]
fn a_renewal_proves_the_lease_from_when_it_was_asked() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    // The first renewal's answer proves no more than the grant did.
    assert!(
        m.handle(t0 + ms(10), Event::Renewed { ttl: TTL })
            .is_empty()
    );
    let t1 = t0 + RENEW_AT_MOST;
    assert_eq!(m.handle(t1, Event::Tick), vec![Action::Renew]);
    let renewed = m.handle(t1 + ms(40), Event::Renewed { ttl: TTL });
    assert_eq!(renewed, vec![Action::LeaseUntil(t1 + TTL)]);
}

#[test]
fn a_refused_write_deposes_and_a_resignation_revokes_the_lease() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    assert_eq!(m.handle(t0, Event::WriteRefused), vec![Action::Depose]);
    let mut m = leader(t0);
    assert_eq!(
        m.handle(t0, Event::Resigning),
        vec![Action::Revoke { lease: LEASE }, Action::Depose]
    );
    let later = m.handle(t0 + ms(300), Event::Tick);
    assert!(later.is_empty(), "{later:?}");
    assert!(m.handle(t0, Event::LeaseGone).is_empty());
}

#[test]
fn a_node_that_never_reached_etcd_says_so_once() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    m.handle(t0, Event::Tick);
    let first = fail(&mut m, t0, Failure::Other);
    assert!(matches!(
        first[1],
        Action::Log(Note::CannotReach { member: 0, .. })
    ));
    let now = m.wake_at().unwrap();
    m.handle(now, Event::Tick);
    let second = fail(&mut m, now, Failure::Other);
    assert!(matches!(
        second[1],
        Action::Log(Note::RoundFailed { first: false, .. })
    ));
    assert!(!has_stale(&second), "stale from the start, not again");
}

#[test]
fn a_member_that_still_follows_the_etcd_leader_found_down_is_passed_over_at_once() {
    let t0 = Instant::now();
    let mut m = leader(t0);
    // The node was on member 0, the etcd leader, which dies.
    let t1 = t0 + ms(200);
    fail(&mut m, t1, Failure::Down);
    assert_eq!(connects_to(&m.handle(t1, Event::Tick)), Some(1));
    // Member 1 has not noticed yet: the node does not wait on it.
    assert_eq!(m.handle(t1, Event::Connected), vec![Action::Status]);
    let passed = m.handle(t1, status(1));
    assert_eq!(passed[0], Action::Disconnect);
    assert_eq!(m.wake_at(), Some(t1 + ELECTION_RETRY));
    // Once member 2 follows a new leader, the round goes on.
    let now = t1 + ELECTION_RETRY;
    assert_eq!(connects_to(&m.handle(now, Event::Tick)), Some(2));
    assert_eq!(m.handle(now, Event::Connected), vec![Action::Status]);
    let elected = Event::Status {
        member_id: 103,
        leader: 103,
    };
    assert_eq!(
        m.handle(now, elected),
        vec![Action::CheckLease { id: LEASE }]
    );
    assert_eq!(m.term(), Some(50));
}

#[test]
fn a_follower_member_found_down_is_not_held_against_the_others() {
    let t0 = Instant::now();
    let mut m = Machine::new(TTL, 3, 1, t0);
    assert_eq!(connects_to(&m.handle(t0, Event::Tick)), Some(1));
    assert_eq!(m.handle(t0, Event::Connected), vec![Action::Status]);
    // Member 1 (102) follows 101.
    assert_eq!(
        m.handle(t0, status(1)),
        vec![Action::GrantLease { ttl: TTL }]
    );
    fail(&mut m, t0, Failure::Down);
    let now = m.wake_at().unwrap();
    assert_eq!(connects_to(&m.handle(now, Event::Tick)), Some(2));
    assert_eq!(m.handle(now, Event::Connected), vec![Action::Status]);
    assert_eq!(
        m.handle(now, status(2)),
        vec![Action::GrantLease { ttl: TTL }]
    );
}
