//! The audit trail: a row per admin action (maintenance set or ended, a token created or
//! revoked, a reload) and per admin action refused (403), with who, from where, when, what
//! and how it ended. Kept in the history database, pruned by the history's age limit only
//! (`[history] max_age`): the per-service row limit is about changes, and an action must
//! not be pruned because a flapping service filled its quota.
//!
//! Entries are written by the history's writer thread, like changes (a request never waits
//! for SQLite); one queued while the queue is full is dropped and counted
//! (`servicewatch_audit_lost_total`).

use std::time::SystemTime;

use rusqlite::{Connection, params};

use super::store::{Query, millis, time};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    who     TEXT    NOT NULL,
    peer    TEXT,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at_ms);
";

/// What was done (or attempted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A service or an instance put into maintenance.
    MaintenanceSet,
    /// A service or an instance taken out of maintenance.
    MaintenanceEnded,
    TokenCreated,
    TokenRevoked,
    /// The API tokens listed (recorded when refused only: reads are not actions).
    TokensListed,
    /// The audit trail read (recorded when refused only).
    AuditRead,
    /// The configuration reloaded.
    Reload,
}

impl Action {
    const ALL: [Action; 7] = [
        Action::MaintenanceSet,
        Action::MaintenanceEnded,
        Action::TokenCreated,
        Action::TokenRevoked,
        Action::TokensListed,
        Action::AuditRead,
        Action::Reload,
    ];

    /// The action's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::MaintenanceSet => "maintenance.set",
            Action::MaintenanceEnded => "maintenance.end",
            Action::TokenCreated => "token.create",
            Action::TokenRevoked => "token.revoke",
            Action::TokensListed => "token.list",
            Action::AuditRead => "audit.read",
            Action::Reload => "reload",
        }
    }

    fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Refused for lack of permission (403).
    Refused,
    /// Permitted, but it could not be done (bad input, unknown target, a failure).
    Failed,
}

impl Outcome {
    /// The outcome's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    fn parse(name: &str) -> Option<Outcome> {
        [Outcome::Done, Outcome::Refused, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: SystemTime,
    /// The caller: a user's name, `display:NAME`, `token:NAME`, or `signal` (a SIGHUP).
    pub who: String,
    /// The peer address the request came from (none for a signal).
    pub from: Option<String>,
    pub action: Action,
    /// What it was done to: `SERVICE`, `SERVICE/INSTANCE`, a token's name, a file.
    pub target: String,
    pub outcome: Outcome,
    /// A maintenance reason, a token's scope, why it failed...
    pub detail: Option<String>,
}

/// Records entries (in the caller's transaction, if any).
pub fn insert(conn: &Connection, entries: &[Entry]) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO audit (at_ms, who, peer, action, target, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in entries {
        statement.execute(params![
            millis(e.at),
            e.who,
            e.from,
            e.action.as_str(),
            e.target,
            e.outcome.as_str(),
            e.detail
        ])?;
    }
    Ok(())
}

/// The entries `query` selects, newest first (in the order written, among equal times).
pub fn entries(conn: &Connection, query: &Query) -> rusqlite::Result<Vec<Entry>> {
    let mut statement = conn.prepare_cached(
        "SELECT at_ms, who, peer, action, target, outcome, detail FROM audit WHERE at_ms >= ?1 AND at_ms <= ?2 ORDER BY at_ms DESC, id DESC LIMIT ?3",
    )?;
    let since = query.since.map_or(i64::MIN, millis);
    let until = query.until.map_or(i64::MAX, millis);
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![since, until, limit], |row| {
        let unknown = |column: usize, value: String| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                format!("\"{value}\" is not one this servicewatch knows").into(),
            )
        };
        let action: String = row.get(3)?;
        let outcome: String = row.get(5)?;
        Ok(Entry {
            at: time(row.get(0)?),
            who: row.get(1)?,
            from: row.get(2)?,
            action: Action::parse(&action).ok_or_else(|| unknown(3, action))?,
            target: row.get(4)?,
            outcome: Outcome::parse(&outcome).ok_or_else(|| unknown(5, outcome))?,
            detail: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// Deletes the entries older than `oldest`; how many.
pub fn prune(conn: &Connection, oldest: SystemTime) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM audit WHERE at_ms < ?1",
        params![millis(oldest)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(s: u64, action: Action) -> Entry {
        Entry {
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s),
            who: "chief".into(),
            from: Some("192.0.2.7".into()),
            action,
            target: "sips1".into(),
            outcome: Outcome::Done,
            detail: Some("upgrade".into()),
        }
    }

    #[test]
    fn entries_read_back_newest_first_within_bounds_and_prune_by_age() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::store::prepare(&conn).unwrap();
        let written: Vec<Entry> = Action::ALL
            .iter()
            .enumerate()
            .map(|(i, a)| entry(i as u64, *a))
            .collect();
        insert(&conn, &written).unwrap();
        let all = Query {
            since: None,
            until: None,
            limit: 100,
        };
        let read = entries(&conn, &all).unwrap();
        assert_eq!(read.len(), 7);
        assert_eq!(read[0], written[6]);
        assert_eq!(read[6], written[0]);
        let some = Query {
            since: Some(written[1].at),
            until: Some(written[4].at),
            limit: 2,
        };
        let actions: Vec<Action> = entries(&conn, &some)
            .unwrap()
            .iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, [Action::TokensListed, Action::TokenRevoked]);
        assert_eq!(prune(&conn, written[2].at).unwrap(), 2);
        assert_eq!(entries(&conn, &all).unwrap().len(), 5);
    }
}
