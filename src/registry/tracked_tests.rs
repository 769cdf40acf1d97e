//! The per-service record: waiting for every server, resuming, adopting, confirming.
use super::*;
use crate::config::settings::validate;
use crate::domain::service::ServiceState;
use std::time::Duration;

fn pair() -> Tracked {
    let file = toml::from_str(
        "[[service]]\nid = \"v\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\nbackup = { host = \"127.0.0.1\", port = 2 }\n",
    )
    .unwrap();
    let spec = validate(file, "test").unwrap().services.remove(0);
    Tracked::pending(spec, SystemTime::UNIX_EPOCH, None, Vec::new())
}

const PRIMARY: Part = Part::Pair(Role::Primary);
const BACKUP: Part = Part::Pair(Role::Backup);

#[test]
fn the_service_waits_for_every_server_then_follows_them() {
    let mut t = pair();
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(
        t.observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(1)),
        None
    );
    assert!(!t.is_ready(), "the primary is not known yet");
    let first = t
        .observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(2))
        .unwrap();
    assert!(t.is_ready());
    assert_eq!(first.after.serving, Some(Role::Primary));
    assert_eq!(t.since, at(2), "a new state");
    assert_eq!(t.record("n", "r", at(2)).assessment, first.after);
    // A switchover keeps the state, and so its since.
    let switch = t
        .observe(PRIMARY, 0, Health::Down, SaidRole::Unknown, at(3))
        .unwrap();
    assert_eq!(switch.after.state, ServiceState::Active);
    assert_eq!(switch.after.serving, Some(Role::Backup));
    assert_eq!(t.since, at(2));
    // Nothing changes when the primary recovers: no failback.
    assert_eq!(
        t.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(4)),
        None
    );
}

#[test]
fn the_first_assessment_is_announced_even_when_inactive() {
    let mut t = pair();
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    assert!(!t.is_known());
    assert_eq!(
        t.observe(PRIMARY, 0, Health::Down, SaidRole::Unknown, at(1)),
        None
    );
    let first = t
        .observe(BACKUP, 0, Health::Down, SaidRole::Unknown, at(2))
        .unwrap();
    assert!(first.first && t.is_known());
    assert_eq!(
        first.after,
        Assessment::INITIAL,
        "Inactive, as before, but now known"
    );
    assert_eq!(t.since, at(2), "since it was looked at, not since start-up");
    assert_eq!(
        t.observe(BACKUP, 0, Health::Down, SaidRole::Unknown, at(3)),
        None
    );
    // New monitors of a changed service resume what the old ones knew.
    let resumed = Tracked::resuming((*t.spec).clone(), &t);
    assert!(resumed.is_known() && !resumed.is_ready());
    assert_eq!(resumed.since, at(2));
}

#[test]
fn a_restart_confirmed_by_the_first_round_keeps_the_stored_state_since() {
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let spec = (*pair().spec).clone();
    let stored = Change {
        service: "v".into(),
        at: at(50),
        state: ServiceState::Active,
        state_since: at(10),
        serving: Some(Role::Backup),
        maintenance: None,
        reason: "before the restart".into(),
    };
    let mut t = Tracked::pending(spec.clone(), at(100), Some(&stored), Vec::new());
    assert_eq!(
        t.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(101)),
        None
    );
    let first = t
        .observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(102))
        .unwrap();
    assert!(
        first.first && first.confirmed,
        "nothing happened to the service"
    );
    assert_eq!(
        t.assessment.serving,
        Some(Role::Backup),
        "no failback on restart"
    );
    assert_eq!(t.since, at(10), "the stored since");

    // Found otherwise: a change like any other, since now.
    let mut t = Tracked::pending(spec, at(100), Some(&stored), Vec::new());
    t.observe(PRIMARY, 0, Health::Down, SaidRole::Unknown, at(101));
    let first = t
        .observe(BACKUP, 0, Health::Down, SaidRole::Unknown, at(102))
        .unwrap();
    assert!(first.first && !first.confirmed);
    assert_eq!(t.since, at(102));
}

#[test]
fn a_new_leader_resumes_the_stored_decision_instead_of_deciding_again() {
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    // The old leader: the primary failed, the backup serves since 10.
    let mut old = pair();
    old.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(10));
    old.observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(10));
    old.observe(PRIMARY, 0, Health::Down, SaidRole::Unknown, at(20));
    old.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(30));
    assert_eq!(old.assessment.serving, Some(Role::Backup));
    let record = old.record("sw1", "why", at(30));

    // The new leader adopts it; its monitors' first reports (both instances healthy)
    // change nothing: no failback, no new since, nothing to write.
    let mut new = pair();
    new.adopt(&record);
    assert!(new.is_known() && !new.is_ready());
    assert_eq!(new.servers[0].health, Health::Up, "resumed, not Unknown");
    assert_eq!(
        new.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(40)),
        None
    );
    assert_eq!(
        new.observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(40)),
        None
    );
    assert!(new.is_ready());
    assert_eq!(new.assessment.serving, Some(Role::Backup));
    assert_eq!(new.since, at(10));
}

#[test]
fn a_new_leader_moves_only_once_its_own_probes_have_seen_every_server() {
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    // Stored: the primary serves, both instances healthy (as of the last write).
    let mut old = pair();
    old.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(10));
    old.observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(10));
    let record = old.record("sw1", "why", at(10));

    // In truth the backup died too. The primary's failure alone, seen first, must not
    // hand the service to a backup nobody has looked at since.
    let mut new = pair();
    new.adopt(&record);
    new.unconfirm();
    assert_eq!(
        new.observe(PRIMARY, 0, Health::Down, SaidRole::Unknown, at(20)),
        None,
        "the stored decision stands while the first round runs"
    );
    assert_eq!(new.assessment.serving, Some(Role::Primary));
    let seen = new
        .observe(BACKUP, 0, Health::Down, SaidRole::Unknown, at(21))
        .unwrap();
    assert_eq!(seen.after, Assessment::INITIAL, "Inactive: both seen down");
    assert_eq!(new.since, at(21));

    // A leader that finds the stored decision right changes nothing: same since.
    let mut new = pair();
    new.adopt(&record);
    new.unconfirm();
    assert_eq!(
        new.observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(30)),
        None
    );
    assert_eq!(
        new.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(30)),
        None
    );
    assert!(new.is_ready());
    assert_eq!(new.since, at(10));
}

#[test]
fn a_pending_service_is_worth_asking_for_after_its_slowest_timeout() {
    let mut t = pair();
    assert_eq!(t.retry_after_secs(), 1, "a 1 s default timeout");
    let mut spec = (*t.spec).clone();
    spec.pair.backup.as_mut().unwrap().check.timeout = Duration::from_millis(2500);
    t = Tracked::pending(spec, SystemTime::UNIX_EPOCH, None, Vec::new());
    assert_eq!(t.retry_after_secs(), 3);
}

#[test]
fn reports_of_a_replaced_monitor_are_ignored() {
    let mut t = pair();
    t.servers[0].generation = 5;
    assert_eq!(
        t.observe(
            PRIMARY,
            4,
            Health::Up,
            SaidRole::Unknown,
            SystemTime::UNIX_EPOCH
        ),
        None
    );
    assert_eq!(t.servers[0].health, Health::Unknown);
}

/// A window on the pair's `instance`.
fn window(instance: &str) -> Window {
    Window {
        service: "v".into(),
        instance: Some(instance.into()),
        reason: "upgrade".into(),
        until: None,
        by: "chief".into(),
        since: SystemTime::UNIX_EPOCH,
    }
}

#[test]
fn a_move_says_whether_a_window_or_a_failure_made_it() {
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let mut t = pair();
    t.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(1));
    t.observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(1));

    let (planned, _) = t.maintain(vec![window("primary")], at(2));
    let planned = planned.unwrap();
    assert_eq!(planned.after.serving, Some(Role::Backup));
    assert_eq!(planned.cause, Some(Cause::Maintenance));
    assert_eq!(
        t.record("n", "r", at(2)).switchover,
        Some(Cause::Maintenance),
        "written for the followers"
    );

    // Out of maintenance: no failback, so nothing moves.
    assert_eq!(t.maintain(Vec::new(), at(3)).0, None);
    let failed = t
        .observe(BACKUP, 0, Health::Down, SaidRole::Unknown, at(4))
        .unwrap();
    assert_eq!(failed.after.serving, Some(Role::Primary));
    assert_eq!(
        failed.cause,
        Some(Cause::Failure),
        "the primary's window ended before, not in this decision"
    );

    let stopped = t
        .observe(PRIMARY, 0, Health::Down, SaidRole::Unknown, at(5))
        .unwrap();
    assert_eq!(stopped.after.serving, None);
    assert_eq!(stopped.cause, None, "no instance took over: no switchover");
    assert_eq!(t.record("n", "r", at(5)).switchover, None);
}

#[test]
fn a_follower_takes_the_cause_its_leader_wrote() {
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let mut leader = pair();
    leader.observe(PRIMARY, 0, Health::Up, SaidRole::Unknown, at(1));
    leader.observe(BACKUP, 0, Health::Up, SaidRole::Unknown, at(1));
    leader.maintain(vec![window("primary")], at(2));
    let mut follower = pair();
    follower.adopt(&leader.record("sw1", "why", at(2)));
    assert_eq!(follower.switchover, Some(Cause::Maintenance));
    assert_eq!(
        follower.record("sw2", "why", at(3)).switchover,
        Some(Cause::Maintenance),
        "kept if the follower leads next and rewrites the record"
    );
}
