//! The history's writer thread: batches what is queued into one transaction, prunes by the
//! retention, and survives a disk that refuses writes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tracing::{error, info, warn};

use super::Command;
use super::store::{self, Change, Retention};
use crate::metrics::Metrics;

/// Most commands written in one transaction.
const BATCH: usize = 1000;
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Runs until every handle is dropped (the daemon stopped), writing what comes; after a
/// failed write, what comes within `retry` is not tried (and counted lost).
pub(super) fn run(
    mut conn: Connection,
    commands: Receiver<Command>,
    retention: Retention,
    metrics: Arc<Metrics>,
    path: PathBuf,
    retry: Duration,
) {
    let mut pruned: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    prune(&conn, &retention, &mut pruned);
    loop {
        let first = match commands.recv_timeout(PRUNE_EVERY) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch: Vec<Command> = first.into_iter().collect();
        while batch.len() < BATCH {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let (mut changes, mut puts, mut deletes, mut flushes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut audits = Vec::new();
        for command in batch {
            match command {
                Command::Record(change) => changes.push(change),
                Command::Audit(entry) => audits.push(entry),
                Command::PutWindow(window) => puts.push(window),
                Command::DeleteWindow { service, instance } => deletes.push((service, instance)),
                Command::Flush(done) => flushes.push(done),
            }
        }
        let waiting = failing_since.is_some_and(|since| since.elapsed() < retry);
        let (changed, audited) = (changes.len() as u64, audits.len() as u64);
        if waiting {
            metrics.history.lost.inc_by(changed);
            metrics.history.audit_lost.inc_by(audited);
        } else if !(changes.is_empty()
            && puts.is_empty()
            && deletes.is_empty()
            && audits.is_empty())
        {
            let written = write(&mut conn, (&changes, &audits), &puts, &deletes);
            if written.is_ok() {
                metrics.history.changes.inc_by(changed);
                metrics.history.audit_entries.inc_by(audited);
            }
            match (written, failing_since) {
                (Ok(()), Some(_)) => {
                    info!(path = %path.display(), "history: writing again");
                    failing_since = None;
                    metrics.history.writing.set(1);
                }
                (Ok(()), None) => {}
                (Err(e), before) => {
                    if before.is_none() {
                        error!(path = %path.display(), error = %e, retry_every = ?retry, "history stopped: cannot write the database; servicewatch goes on supervising and serving, and retries");
                    }
                    failing_since = Some(Instant::now());
                    metrics.history.writing.set(0);
                    metrics.history.lost.inc_by(changed);
                    metrics.history.audit_lost.inc_by(audited);
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if failing_since.is_none() && pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            prune(&conn, &retention, &mut pruned);
        }
    }
}

/// Deletes what the retention does not keep, and notes when.
fn prune(conn: &Connection, retention: &Retention, pruned: &mut Option<Instant>) {
    *pruned = Some(Instant::now());
    match store::prune(conn, retention, SystemTime::now()) {
        Ok(0) => {}
        Ok(n) => info!(rows = n, "history: pruned by the retention"),
        Err(e) => warn!(error = %e, "history: pruning failed"),
    }
}

/// Writes one batch in one transaction.
fn write(
    conn: &mut Connection,
    (changes, audits): (&[Change], &[super::audit::Entry]),
    puts: &[crate::domain::maintenance::Window],
    deletes: &[(String, Option<String>)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    store::insert(&tx, changes)?;
    super::audit::insert(&tx, audits)?;
    for window in puts {
        store::put_window(&tx, window)?;
    }
    for (service, instance) in deletes {
        store::delete_window(&tx, service, instance.as_deref())?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::service::{Role, ServiceState};
    use std::sync::mpsc::sync_channel;

    fn change(n: u64) -> Change {
        Change {
            service: "sips1".into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n),
            state: ServiceState::Active,
            state_since: SystemTime::UNIX_EPOCH,
            serving: Some(Role::Primary),
            maintenance: None,
            reason: "x".repeat(200),
        }
    }

    fn flush(queue: &std::sync::mpsc::SyncSender<Command>) {
        let (done, wait) = std::sync::mpsc::channel();
        queue.send(Command::Flush(done)).unwrap();
        wait.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    /// A disk that fills up: SQLite's own "database or disk is full", made by capping the
    /// file at the pages it has; space is then freed by another connection, as an admin
    /// cleaning up would.
    #[test]
    fn a_full_disk_stops_the_history_and_space_freed_resumes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let conn = Connection::open(&path).unwrap();
        store::prepare(&conn).unwrap();
        let filler: Vec<Change> = (0..200).map(change).collect();
        store::insert(&conn, &filler).unwrap();
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages).unwrap();
        let metrics = Arc::new(Metrics::new());
        metrics.history.writing.set(1);
        let (queue, commands) = sync_channel(100);
        let retention = Retention {
            max_age: Duration::from_secs(u64::MAX / 4),
            max_rows: 1_000_000,
        };
        let thread_metrics = metrics.clone();
        let writer = std::thread::spawn(move || {
            run(
                conn,
                commands,
                retention,
                thread_metrics,
                path,
                Duration::from_millis(50),
            )
        });
        for n in 1000..1050 {
            queue.send(Command::Record(change(n))).unwrap();
        }
        flush(&queue);
        assert_eq!(metrics.history.writing.get(), 0, "the writing stopped");
        // The last page may have room for a first small batch (how the 50 are batched
        // depends on the writer thread's timing): every change is either kept or counted
        // as lost.
        let cleaner = Connection::open(dir.path().join("h.sqlite")).unwrap();
        cleaner.busy_timeout(Duration::from_secs(5)).unwrap();
        let written: i64 = cleaner
            .query_row(
                "SELECT COUNT(*) FROM changes WHERE at_ms >= ?1",
                [(1_700_000_000i64 + 1000) * 1000],
                |r| r.get(0),
            )
            .unwrap();
        let lost = metrics.history.lost.get();
        assert_eq!(lost + written as u64, 50, "lost {lost}, written {written}");
        assert!(lost > 0, "lost {lost}");

        cleaner.execute("DELETE FROM changes", []).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut n = 2000;
        while metrics.history.writing.get() == 0 {
            assert!(std::time::Instant::now() < deadline, "never resumed");
            n += 1;
            queue.send(Command::Record(change(n))).unwrap();
            flush(&queue);
            std::thread::sleep(Duration::from_millis(20));
        }
        let kept: i64 = cleaner
            .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
            .unwrap();
        assert!(kept >= 1, "written again");
        drop(queue);
        writer.join().unwrap();
    }
}
