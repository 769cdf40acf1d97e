//! The history database's SQL: its schema, and each read and write as a function over a
//! connection, so that every one is tested on an in-memory database.
//!
//! One table of changes (a row per change of a service's resource, with its time and
//! reason) and one of maintenance windows (a row per instance, or per service, in
//! maintenance). Times are milliseconds since the Unix epoch, UTC. States and roles are
//! stored by their wire names and typed here, at the boundary, so that no reader of a
//! [`Change`] parses them again.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, params};

use super::aggregates;
use super::availability::{Mark, Plan, Totals};
pub use crate::config::history::Retention;
use crate::domain::maintenance::{Window, Windows};
pub use crate::domain::service::{Role, ServiceState};

/// The schema version this code writes (`PRAGMA user_version`). 1: the changes and the
/// maintenance windows; 2: the availability aggregates beside them, built from the rows
/// when a database of schema 1 is opened; 3: the API tokens and the audit trail, new
/// tables that a database of schema 2 gains empty.
pub const SCHEMA_VERSION: i64 = 3;
/// The first schema with the availability aggregates: older databases have them built.
const AGGREGATES_SINCE: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS changes (
    id          INTEGER PRIMARY KEY,
    service     TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    state_since_ms INTEGER NOT NULL,
    serving     TEXT,
    maintenance TEXT,
    reason      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_service ON changes (service, at_ms);
CREATE TABLE IF NOT EXISTS maintenance (
    service  TEXT    NOT NULL,
    instance TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    until_ms INTEGER,
    by_user  TEXT    NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (service, instance)
);
";

/// One change of a service, as recorded and as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: String,
    pub at: SystemTime,
    /// The state after the change (unchanged when only the serving instance changed).
    pub state: ServiceState,
    /// Since when the state holds (before `at` when only the serving instance changed).
    pub state_since: SystemTime,
    /// The instance serving, if any.
    pub serving: Option<Role>,
    /// The maintenance in force, in words, if any.
    pub maintenance: Option<String>,
    /// Why: which instance, what its check saw (or who set a maintenance).
    pub reason: String,
}

/// A stored name this servicewatch does not know (a row written by hand, or by a newer
/// version): the row cannot be typed, and the read says which column and what it held
/// rather than guessing.
#[derive(Debug, thiserror::Error)]
#[error(
    "the {column} column holds \"{value}\", which is not one this servicewatch knows ({known})"
)]
struct UnknownName {
    column: &'static str,
    value: String,
    /// The names the column may hold.
    known: String,
}

/// Which changes to read: newest first, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub limit: usize,
}

/// Sets up a connection for servicewatch's use and the schema if the file is new. WAL and
/// `synchronous = NORMAL`: a commit is one write to the log, and a process killed at any
/// moment leaves every committed change and an intact file (only a power loss can take
/// the last commits, never the file).
pub fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // Answers the mode now in force: a file on a file system without shared memory
    // (some network mounts) stays in its old mode, which is safe, only slower.
    let _mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the database was written by a newer servicewatch (schema {version}, this one knows {SCHEMA_VERSION})"
        )));
    }
    // The tables, any migration and the new version in one transaction: a process killed
    // meanwhile leaves the database as it was, and the next start does it again.
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(aggregates::SCHEMA)?;
    tx.execute_batch(super::tokens::SCHEMA)?;
    tx.execute_batch(super::audit::SCHEMA)?;
    if version < AGGREGATES_SINCE {
        aggregates::rebuild(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// Whether the file is intact (`PRAGMA quick_check`): `Ok(None)` if so, else what is wrong.
pub fn check(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    Ok((verdict != "ok").then_some(verdict))
}

/// Records changes and adds them to the availability aggregates (in the caller's
/// transaction, if any; without one, a change and its aggregates may be parted by a crash).
pub fn insert(conn: &Connection, changes: &[Change]) -> rusqlite::Result<()> {
    {
        let mut statement = conn.prepare_cached(
            "INSERT INTO changes (service, at_ms, state, state_since_ms, serving, maintenance, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for c in changes {
            statement.execute(params![
                c.service,
                millis(c.at),
                c.state.as_str(),
                millis(c.state_since),
                c.serving.map(Role::as_str),
                c.maintenance,
                c.reason
            ])?;
            let mark = Mark {
                at_ms: millis(c.at),
                active: c.state == ServiceState::Active,
                maintenance: c.maintenance.is_some(),
            };
            aggregates::record(conn, &c.service, conn.last_insert_rowid(), &mark)?;
        }
    }
    Ok(())
}

/// The changes of `service` that `query` selects, newest first.
pub fn changes(conn: &Connection, service: &str, query: &Query) -> rusqlite::Result<Vec<Change>> {
    let mut statement = conn.prepare_cached(
        "SELECT service, at_ms, state, state_since_ms, serving, maintenance, reason FROM changes
         WHERE service = ?1 AND at_ms >= ?2 AND at_ms <= ?3
         ORDER BY at_ms DESC, id DESC LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![
            service,
            query.since.map_or(i64::MIN, millis),
            query.until.map_or(i64::MAX, millis),
            i64::try_from(query.limit).unwrap_or(i64::MAX)
        ],
        row_to_change,
    )?;
    rows.collect()
}

/// The availability totals of each of `services` over each of `plans`, by service then by
/// plan (see [`super::availability`]).
pub fn availability(
    conn: &Connection,
    services: &[String],
    plans: &[Plan],
) -> rusqlite::Result<Vec<Vec<Totals>>> {
    aggregates::read(conn, services, plans)
}

/// The last change recorded of each service: what a restart resumes from.
pub fn latest(conn: &Connection) -> rusqlite::Result<Vec<Change>> {
    let mut statement = conn.prepare(
        "SELECT service, at_ms, state, state_since_ms, serving, maintenance, reason FROM changes
         WHERE id IN (SELECT MAX(id) FROM changes GROUP BY service)",
    )?;
    let rows = statement.query_map([], row_to_change)?;
    // A row this servicewatch cannot read (edited by hand, or written by another version)
    // costs its service the resumed state, not the whole history: said, and skipped.
    let mut latest = Vec::new();
    for row in rows {
        match row {
            Ok(change) => latest.push(change),
            Err(e @ rusqlite::Error::FromSqlConversionFailure(..)) => {
                tracing::warn!(error = %e, "skipping a service's last change in the history: it cannot be read; the service starts as if it had none");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(latest)
}

/// Deletes what `retention` does not keep: rows older than its age, and the oldest beyond
/// its count; and the availability's day totals older than `aggregates::KEEP_DAYS`, which
/// outlive the rows. Returns how many rows went.
pub fn prune(conn: &Connection, retention: &Retention, now: SystemTime) -> rusqlite::Result<usize> {
    aggregates::prune(conn, millis(now))?;
    let oldest = millis(now.checked_sub(retention.max_age).unwrap_or(UNIX_EPOCH));
    let by_age = conn.execute("DELETE FROM changes WHERE at_ms < ?1", params![oldest])?
        + super::audit::prune(conn, time(oldest))?;
    let keep = i64::try_from(retention.max_rows).unwrap_or(i64::MAX);
    let cut: Option<i64> = conn
        .query_row(
            "SELECT id FROM changes ORDER BY id DESC LIMIT 1 OFFSET ?1",
            params![keep],
            |row| row.get(0),
        )
        .optional()?;
    let by_count = match cut {
        Some(id) => conn.execute("DELETE FROM changes WHERE id <= ?1", params![id])?,
        None => 0,
    };
    Ok(by_age + by_count)
}

/// Every maintenance window stored.
pub fn windows(conn: &Connection) -> rusqlite::Result<Windows> {
    let mut statement = conn.prepare(
        "SELECT service, instance, reason, until_ms, by_user, since_ms FROM maintenance",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(Window {
            service: row.get(0)?,
            instance: Some(row.get::<_, String>(1)?).filter(|i| !i.is_empty()),
            reason: row.get(2)?,
            until: row.get::<_, Option<i64>>(3)?.map(time),
            by: row.get(4)?,
            since: time(row.get(5)?),
        })
    })?;
    Ok(Windows::from(rows.collect::<rusqlite::Result<Vec<_>>>()?))
}

/// Stores a maintenance window, replacing the one of the same service and instance.
pub fn put_window(conn: &Connection, w: &Window) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO maintenance (service, instance, reason, until_ms, by_user, since_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            w.service,
            w.instance.clone().unwrap_or_default(),
            w.reason,
            w.until.map(millis),
            w.by,
            millis(w.since)
        ],
    )?;
    Ok(())
}

/// Removes the maintenance window of a service's instance (`None`: of the service).
pub fn delete_window(
    conn: &Connection,
    service: &str,
    instance: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM maintenance WHERE service = ?1 AND instance = ?2",
        params![service, instance.unwrap_or_default()],
    )?;
    Ok(())
}

fn row_to_change(row: &rusqlite::Row<'_>) -> rusqlite::Result<Change> {
    Ok(Change {
        service: row.get(0)?,
        at: time(row.get(1)?),
        state: named(
            2,
            "state",
            row.get(2)?,
            &ServiceState::ALL.map(ServiceState::as_str),
        )?,
        state_since: time(row.get(3)?),
        serving: row
            .get::<_, Option<String>>(4)?
            .map(|text| named(4, "serving", text, &Role::ALL.map(Role::as_str)))
            .transpose()?,
        maintenance: row.get(5)?,
        reason: row.get(6)?,
    })
}

/// `text`, read from the column `column` at `index`, as the name of one of `known`.
fn named<T: FromStr>(
    index: usize,
    column: &'static str,
    text: String,
    known: &[&str],
) -> rusqlite::Result<T> {
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            Box::new(UnknownName {
                column,
                value: text,
                known: known.join(", "),
            }),
        )
    })
}

/// `at` in milliseconds since the Unix epoch (negative before it).
pub(super) fn millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The time `ms` milliseconds after the Unix epoch (before it if negative).
pub(super) fn time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        prepare(&conn).unwrap();
        conn
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn change(service: &str, s: u64, state: ServiceState) -> Change {
        Change {
            service: service.into(),
            at: at(s),
            state,
            state_since: at(0),
            serving: (state == ServiceState::Active).then_some(Role::Primary),
            maintenance: None,
            reason: format!("{service} at {s}"),
        }
    }

    #[test]
    fn reads_back_newest_first_within_the_bounds() {
        let conn = db();
        let written: Vec<Change> = (0..10)
            .map(|s| change(if s % 2 == 0 { "a" } else { "b" }, s, ServiceState::Active))
            .collect();
        insert(&conn, &written).unwrap();
        let all = Query {
            since: None,
            until: None,
            limit: 100,
        };
        let a = changes(&conn, "a", &all).unwrap();
        assert_eq!(
            a.iter().map(|c| c.at).collect::<Vec<_>>(),
            [8, 6, 4, 2, 0].map(at)
        );
        assert_eq!(a[0], written[8]);
        let window = Query {
            since: Some(at(2)),
            until: Some(at(6)),
            limit: 2,
        };
        let some = changes(&conn, "a", &window).unwrap();
        assert_eq!(
            some.iter().map(|c| c.at).collect::<Vec<_>>(),
            [6, 4].map(at)
        );
        assert!(changes(&conn, "nope", &all).unwrap().is_empty());
        let mut last = latest(&conn).unwrap();
        last.sort_by(|x, y| x.service.cmp(&y.service));
        assert_eq!(last, vec![written[8].clone(), written[9].clone()]);
    }

    #[test]
    fn states_and_roles_are_stored_by_their_wire_names() {
        let conn = db();
        let mut backup = change("a", 1, ServiceState::ReadOnly);
        backup.serving = Some(Role::Backup);
        insert(&conn, &[change("a", 0, ServiceState::Inactive), backup]).unwrap();
        let stored: Vec<(String, Option<String>)> = conn
            .prepare("SELECT state, serving FROM changes ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            stored,
            [
                ("Inactive".to_string(), None),
                ("ReadOnly".to_string(), Some("backup".to_string()))
            ]
        );
    }

    #[test]
    fn a_row_with_an_unknown_name_is_a_read_error_and_skipped_at_start() {
        let all = Query {
            since: None,
            until: None,
            limit: 100,
        };
        for (state, serving, column, value) in [
            ("Degraded", Some("primary"), "state", "Degraded"),
            ("Active", Some("Primary"), "serving", "Primary"),
        ] {
            let conn = db();
            conn.execute(
                "INSERT INTO changes (service, at_ms, state, state_since_ms, serving, reason) VALUES ('a', 0, ?1, 0, ?2, 'by hand')",
                params![state, serving],
            )
            .unwrap();
            let refused = changes(&conn, "a", &all).unwrap_err().to_string();
            assert!(
                refused.contains(&format!("the {column} column holds \"{value}\"")),
                "{refused}"
            );
            // At start, it costs that service its resumed state, not the whole history.
            conn.execute(
                "INSERT INTO changes (service, at_ms, state, state_since_ms, serving, reason) VALUES ('b', 0, 'Active', 0, NULL, 'fine')",
                [],
            )
            .unwrap();
            let kept: Vec<String> = latest(&conn)
                .unwrap()
                .into_iter()
                .map(|c| c.service)
                .collect();
            assert_eq!(kept, ["b"]);
        }
    }

    #[test]
    fn retention_keeps_the_newest_by_age_and_by_count() {
        let conn = db();
        let written: Vec<Change> = (0..10)
            .map(|s| change("a", s * 60, ServiceState::Active))
            .collect();
        insert(&conn, &written).unwrap();
        let by_age = Retention {
            max_age: Duration::from_secs(5 * 60),
            max_rows: 1000,
        };
        // Now is 9 minutes in: 4 minutes and earlier go.
        assert_eq!(prune(&conn, &by_age, at(9 * 60)).unwrap(), 4);
        let by_count = Retention {
            max_age: Duration::from_secs(86_400),
            max_rows: 2,
        };
        assert_eq!(prune(&conn, &by_count, at(9 * 60)).unwrap(), 4);
        let all = Query {
            since: None,
            until: None,
            limit: 100,
        };
        let left = changes(&conn, "a", &all).unwrap();
        assert_eq!(
            left.iter().map(|c| c.at).collect::<Vec<_>>(),
            [540, 480].map(at)
        );
    }

    #[test]
    fn maintenance_windows_round_trip() {
        let conn = db();
        let window = Window {
            service: "sips1".into(),
            instance: Some("primary".into()),
            reason: "upgrade to 8.5.1".into(),
            until: Some(at(3600)),
            by: "ops".into(),
            since: at(0),
        };
        put_window(&conn, &window).unwrap();
        let whole = Window {
            instance: None,
            until: None,
            ..window.clone()
        };
        put_window(&conn, &whole).unwrap();
        let stored = windows(&conn).unwrap();
        assert_eq!(stored.all().len(), 2);
        assert!(stored.all().contains(&window) && stored.all().contains(&whole));
        delete_window(&conn, "sips1", Some("primary")).unwrap();
        assert_eq!(windows(&conn).unwrap().all(), [whole]);
    }

    #[test]
    fn a_database_from_a_newer_servicewatch_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let refused = prepare(&conn).unwrap_err().to_string();
        assert!(refused.contains("newer servicewatch"), "{refused}");
        assert_eq!(check(&db()).unwrap(), None);
    }
}
