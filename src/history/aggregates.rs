//! The availability aggregates' SQL: per-service, per-UTC-day totals kept up to date as
//! changes are written, each service's latest change, the rebuild from the rows (a database
//! of schema 1, written before the aggregates existed), their pruning, and the read that
//! answers a period (see [`super::availability`] for the arithmetic and why).
//!
//! Architecture invariant: every change row is written through [`record`] in the same
//! transaction as the row (`store::insert` does), so the totals always match the rows that
//! were ever written, whatever the retention removed since.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::availability::{Mark, Plan, Totals, day_of, merged, split_by_day};

/// How many days of totals are kept: the longest range the API answers (400 days), and the
/// partial day at each end.
pub const KEEP_DAYS: i64 = 402;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS availability_days (
    service     TEXT    NOT NULL,
    day         INTEGER NOT NULL,
    observed_ms INTEGER NOT NULL,
    active_ms   INTEGER NOT NULL,
    maintenance_ms INTEGER NOT NULL,
    active_maintenance_ms INTEGER NOT NULL,
    PRIMARY KEY (service, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS availability_latest (
    service     TEXT    PRIMARY KEY,
    change_id   INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    active      INTEGER NOT NULL,
    maintenance INTEGER NOT NULL
);
";

/// A change row as availability reads it: its id (to tell rows read twice apart), the
/// service's mark.
const MARK_COLUMNS: &str = "id, at_ms, state = 'Active', maintenance IS NOT NULL";

/// Adds the span from `service`'s previous change to this one (row `id`, `mark`) to the day
/// totals, and makes this one the latest. A change older than the latest (a clock stepped
/// back) adds nothing and leaves the latest as it was: the rows then disagree with the
/// totals by that span, at most.
pub(super) fn record(
    conn: &Connection,
    service: &str,
    id: i64,
    mark: &Mark,
) -> rusqlite::Result<()> {
    let previous = latest(conn, service)?;
    if let Some((_, previous)) = previous {
        if mark.at_ms < previous.at_ms {
            return Ok(());
        }
        add_days(
            conn,
            service,
            &split_by_day(&previous, previous.at_ms, mark.at_ms),
        )?;
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO availability_latest (service, change_id, at_ms, active, maintenance) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![service, id, mark.at_ms, mark.active, mark.maintenance])?;
    Ok(())
}

/// Adds per-day totals to `service`'s.
fn add_days(conn: &Connection, service: &str, days: &[(i64, Totals)]) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO availability_days (service, day, observed_ms, active_ms, maintenance_ms, active_maintenance_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (service, day) DO UPDATE SET
           observed_ms = observed_ms + excluded.observed_ms,
           active_ms = active_ms + excluded.active_ms,
           maintenance_ms = maintenance_ms + excluded.maintenance_ms,
           active_maintenance_ms = active_maintenance_ms + excluded.active_maintenance_ms",
    )?;
    for (day, t) in days {
        statement.execute(params![
            service,
            day,
            t.observed_ms,
            t.active_ms,
            t.maintenance_ms,
            t.active_maintenance_ms
        ])?;
    }
    Ok(())
}

/// The latest change of `service` (row id and mark), if any was recorded.
fn latest(conn: &Connection, service: &str) -> rusqlite::Result<Option<(i64, Mark)>> {
    conn.prepare_cached(
        "SELECT change_id, at_ms, active, maintenance FROM availability_latest WHERE service = ?1",
    )?
    .query_row(params![service], |row| Ok((row.get(0)?, mark(row)?)))
    .optional()
}

/// Columns 1 to 3 of `row` as a mark.
fn mark(row: &rusqlite::Row<'_>) -> rusqlite::Result<Mark> {
    Ok(Mark {
        at_ms: row.get(1)?,
        active: row.get(2)?,
        maintenance: row.get(3)?,
    })
}

/// Builds the totals and the latest changes again from every row (in the caller's
/// transaction): once, when a database written before the aggregates is opened.
pub(super) fn rebuild(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("DELETE FROM availability_days; DELETE FROM availability_latest;")?;
    let mut statement = conn.prepare(&format!(
        "SELECT service, {MARK_COLUMNS} FROM changes ORDER BY service, at_ms, id"
    ))?;
    let mut rows = statement.query([])?;
    let mut current: Option<(String, i64, Mark)> = None;
    let mut days: BTreeMap<i64, Totals> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let service: String = row.get(0)?;
        let id: i64 = row.get(1)?;
        let next = Mark {
            at_ms: row.get(2)?,
            active: row.get(3)?,
            maintenance: row.get(4)?,
        };
        match &current {
            Some((same, _, previous)) if *same == service => {
                for (day, t) in split_by_day(previous, previous.at_ms, next.at_ms) {
                    days.entry(day).or_default().add(&t);
                }
            }
            _ => {
                if let Some(done) = current.take() {
                    finish(conn, done, &mut days)?;
                }
            }
        }
        current = Some((service, id, next));
    }
    if let Some(done) = current {
        finish(conn, done, &mut days)?;
    }
    Ok(())
}

/// Writes one service's rebuilt totals and latest change, and empties `days`.
fn finish(
    conn: &Connection,
    (service, id, last): (String, i64, Mark),
    days: &mut BTreeMap<i64, Totals>,
) -> rusqlite::Result<()> {
    let totals: Vec<(i64, Totals)> = std::mem::take(days).into_iter().collect();
    add_days(conn, &service, &totals)?;
    conn.execute(
        "INSERT OR REPLACE INTO availability_latest (service, change_id, at_ms, active, maintenance) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![service, id, last.at_ms, last.active, last.maintenance],
    )?;
    Ok(())
}

/// Deletes the day totals older than [`KEEP_DAYS`] before `now_ms`; returns how many went.
pub(super) fn prune(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM availability_days WHERE day < ?1",
        params![day_of(now_ms) - KEEP_DAYS],
    )
}

/// The totals of each of `services` over each of `plans` (answers by service, then by
/// plan), read in one transaction so that a change written meanwhile is either wholly in
/// or wholly out. Per service: its latest change, its day totals over the whole days of
/// every plan, and the rows at the plans' edges (each merged range of them one indexed
/// read from the last row at or before its start).
pub fn read(
    conn: &Connection,
    services: &[String],
    plans: &[Plan],
) -> rusqlite::Result<Vec<Vec<Totals>>> {
    let tx = conn.unchecked_transaction()?;
    let edges = merged(plans.iter().flat_map(Plan::edges).collect());
    let whole = plans.iter().filter_map(|p| p.days);
    let day_range = whole.fold(None, |range: Option<(i64, i64)>, (first, end)| {
        Some(range.map_or((first, end), |(f, e)| (f.min(first), e.max(end))))
    });
    let mut answers = Vec::with_capacity(services.len());
    for service in services {
        let latest = latest(&tx, service)?;
        let days = match day_range {
            Some((first, end)) => day_totals(&tx, service, first, end)?,
            None => Vec::new(),
        };
        let mut rows: Vec<(i64, Mark)> = latest.into_iter().collect();
        for (from, to) in &edges {
            rows.extend(rows_from(&tx, service, *from, *to)?);
        }
        rows.sort_unstable_by_key(|(id, m)| (m.at_ms, *id));
        rows.dedup_by_key(|(id, _)| *id);
        let marks: Vec<Mark> = rows.into_iter().map(|(_, m)| m).collect();
        let latest = latest.map(|(_, m)| m);
        answers.push(
            plans
                .iter()
                .map(|p| p.totals(&marks, &days, latest.as_ref()))
                .collect(),
        );
    }
    tx.commit()?;
    Ok(answers)
}

/// `service`'s day totals of the days `[first, end)`.
fn day_totals(
    conn: &Connection,
    service: &str,
    first: i64,
    end: i64,
) -> rusqlite::Result<Vec<(i64, Totals)>> {
    let mut statement = conn.prepare_cached(
        "SELECT day, observed_ms, active_ms, maintenance_ms, active_maintenance_ms FROM availability_days
         WHERE service = ?1 AND day >= ?2 AND day < ?3",
    )?;
    let rows = statement.query_map(params![service, first, end], |row| {
        Ok((
            row.get(0)?,
            Totals {
                observed_ms: row.get(1)?,
                active_ms: row.get(2)?,
                maintenance_ms: row.get(3)?,
                active_maintenance_ms: row.get(4)?,
            },
        ))
    })?;
    rows.collect()
}

/// `service`'s rows from the last at or before `from_ms` (all of those at that time) to
/// before `to_ms`, with their ids.
fn rows_from(
    conn: &Connection,
    service: &str,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<(i64, Mark)>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {MARK_COLUMNS} FROM changes
         WHERE service = ?1 AND at_ms < ?3 AND at_ms >= COALESCE(
           (SELECT MAX(at_ms) FROM changes WHERE service = ?1 AND at_ms <= ?2), ?2)
         ORDER BY at_ms, id"
    ))?;
    let rows = statement.query_map(params![service, from_ms, to_ms], |row| {
        Ok((row.get(0)?, mark(row)?))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::domain::service::ServiceState;
    use crate::history::availability::{DAY_MS, between};
    use crate::history::store::{self, Change};

    const H: i64 = 3_600_000;
    /// 2023-11-14T00:00:00Z.
    const EPOCH_DAY: i64 = 19_675;

    fn at(ms: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis((EPOCH_DAY * DAY_MS + ms) as u64)
    }

    /// Ten days of changes of two services, every 10 to 14 hours, in every state, some in
    /// maintenance.
    fn changes() -> Vec<Change> {
        let states = [
            ServiceState::Active,
            ServiceState::Inactive,
            ServiceState::ReadOnly,
        ];
        (0..40)
            .map(|i: i64| Change {
                service: if i % 2 == 0 { "a" } else { "b" }.into(),
                at: at(3 * H + i * 6 * H + (i % 3) * H),
                state: states[(i % 5 % 3) as usize],
                state_since: at(0),
                serving: None,
                maintenance: (i % 7 == 3).then(|| "upgrade".to_string()),
                reason: format!("change {i}"),
            })
            .collect()
    }

    fn marks(changes: &[Change], service: &str) -> Vec<Mark> {
        changes
            .iter()
            .filter(|c| c.service == service)
            .map(|c| Mark {
                at_ms: store::millis(c.at),
                active: c.state == ServiceState::Active,
                maintenance: c.maintenance.is_some(),
            })
            .collect()
    }

    fn table(conn: &Connection, sql: &str) -> Vec<Vec<i64>> {
        let mut statement = conn.prepare(sql).unwrap();
        let width = statement.column_count();
        statement
            .query_map([], |row| (0..width).map(|i| row.get(i)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    const DAYS: &str = "SELECT day, observed_ms, active_ms, maintenance_ms, active_maintenance_ms FROM availability_days ORDER BY service, day";
    const LATEST: &str =
        "SELECT change_id, at_ms, active, maintenance FROM availability_latest ORDER BY service";

    #[test]
    fn a_database_of_schema_1_gets_the_totals_written_changes_get() {
        let written = changes();
        let live = Connection::open_in_memory().unwrap();
        store::prepare(&live).unwrap();
        store::insert(&live, &written).unwrap();

        let old = Connection::open_in_memory().unwrap();
        old.execute_batch(
            "CREATE TABLE changes (id INTEGER PRIMARY KEY, service TEXT NOT NULL, at_ms INTEGER NOT NULL, state TEXT NOT NULL, state_since_ms INTEGER NOT NULL, serving TEXT, maintenance TEXT, reason TEXT NOT NULL);
             CREATE INDEX changes_by_service ON changes (service, at_ms);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        for c in &written {
            old.execute(
                "INSERT INTO changes (service, at_ms, state, state_since_ms, maintenance, reason) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
                params![c.service, store::millis(c.at), c.state.as_str(), c.maintenance, c.reason],
            )
            .unwrap();
        }
        store::prepare(&old).unwrap();
        let version: i64 = old
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, store::SCHEMA_VERSION);
        assert!(table(&old, DAYS).len() > 10);
        assert_eq!(table(&old, DAYS), table(&live, DAYS));
        assert_eq!(table(&old, LATEST), table(&live, LATEST));
        // Opening it again does not count the rows twice.
        store::prepare(&old).unwrap();
        assert_eq!(table(&old, DAYS), table(&live, DAYS));
    }

    #[test]
    fn a_read_is_what_the_rows_say_and_outlives_their_pruning() {
        let written = changes();
        let conn = Connection::open_in_memory().unwrap();
        store::prepare(&conn).unwrap();
        store::insert(&conn, &written).unwrap();
        let services = ["a".to_string(), "b".to_string()];
        let now = 12 * DAY_MS + 5 * H;
        let start = EPOCH_DAY * DAY_MS;
        let periods: Vec<(i64, i64)> = [(now - 24 * H, now), (now - 7 * DAY_MS, now), (0, now)]
            .into_iter()
            .chain([(H, 5 * DAY_MS + 2 * H), (30 * H, 30 * H)])
            .map(|(from, to)| (start + from, start + to))
            .collect();
        let plans: Vec<Plan> = periods.iter().map(|(f, t)| Plan::of(*f, *t)).collect();
        let read_all = || read(&conn, &services, &plans).unwrap();
        let before = read_all();
        for (s, service) in services.iter().enumerate() {
            let rows = marks(&written, service);
            for (p, (from, to)) in periods.iter().enumerate() {
                assert_eq!(before[s][p], between(&rows, *from, *to), "{service} {p}");
            }
        }
        // Every row pruned: the whole days and the open span are still answered.
        let retention = store::Retention {
            max_age: Duration::from_secs(3600),
            max_rows: 1_000_000,
        };
        store::prune(&conn, &retention, at(now)).unwrap();
        assert!(table(&conn, "SELECT id FROM changes").is_empty());
        let after = read_all();
        for s in 0..services.len() {
            // The last 24 hours: after the latest change of both services.
            assert_eq!(after[s][0], before[s][0]);
            let (whole, plan) = (after[s][1], plans[1]);
            let (first, end) = plan.days.unwrap();
            // The whole days, and the partial last one from the latest change (before it);
            // the partial first day had only rows, now gone: not observed.
            assert_eq!(whole.observed_ms, (end - first) * DAY_MS + 5 * H);
        }
        // Totals older than KEEP_DAYS go.
        store::prune(&conn, &retention, at((KEEP_DAYS + 20) * DAY_MS)).unwrap();
        assert!(table(&conn, DAYS).is_empty());
    }
}
