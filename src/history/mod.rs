//! The history of every service change, in an SQLite database under the state directory:
//! what happened at 3 a.m., which instance, what its check saw; and the maintenance windows,
//! so that they survive a restart.
//!
//! SQLite (through `rusqlite`, built in) rather than an embedded key-value store: the
//! history is read by service and time range, newest first, which is one indexed query; the
//! file survives a process killed at any moment (WAL, every batch a transaction); and a
//! sysadmin can open it with the `sqlite3` shell at 3 a.m. (docs/operations.md).
//!
//! Writes never wait: the registry hands each change to [`History::record`], which queues
//! it (bounded) for a thread of its own that writes whatever has queued up as one
//! transaction, so a burst of changes costs one commit. A process killed loses what was
//! queued, a few milliseconds' worth. When writing fails (a full or read-only disk), the
//! thread logs it once, sets `servicewatch_history_writing` to 0, counts what it cannot
//! keep, and tries again every [`RETRY_EVERY`]; supervision and the API go on regardless.

mod aggregates;
pub mod audit;
pub mod availability;
pub mod store;
pub mod tokens;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags};

use crate::auth::ApiTokenRecord;
use crate::config::history::HistorySettings;
use crate::domain::maintenance::{Window, Windows};
use crate::metrics::Metrics;
use availability::{Plan, Totals};
pub use store::{Change, Query, Retention};

/// Changes queued for the writer before new ones are dropped (and counted).
const QUEUE: usize = 100_000;
/// How often a writer whose writes failed tries again.
pub const RETRY_EVERY: Duration = Duration::from_secs(30);

/// Why the history cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot open the history database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the history database {} is damaged: {verdict}", path.display())]
    Damaged { path: PathBuf, verdict: String },
    #[error("cannot read the history: {0}")]
    Read(String),
    #[error("the history is off (no [history] path, and no systemd StateDirectory=)")]
    Off,
}

/// What the writer thread is asked to do.
enum Command {
    Record(Change),
    Audit(audit::Entry),
    PutWindow(Window),
    DeleteWindow {
        service: String,
        instance: Option<String>,
    },
    /// Answers once everything queued before it is written (or failed).
    Flush(std::sync::mpsc::Sender<()>),
}

/// The handle to the history: cloned wherever changes are recorded or read.
#[derive(Clone, Default)]
pub struct History(Option<Arc<Inner>>);

struct Inner {
    queue: SyncSender<Command>,
    path: PathBuf,
    metrics: Arc<Metrics>,
}

/// An opened history, and what it held: the last change of each service and the
/// maintenance windows.
pub struct Opened {
    pub history: History,
    pub latest: Vec<Change>,
    pub windows: Windows,
    /// The API tokens kept, for the authenticator.
    pub tokens: Vec<ApiTokenRecord>,
}

impl Opened {
    /// Nothing remembered, and nothing will be: no history.
    pub fn nothing() -> Opened {
        Opened {
            history: History::off(),
            latest: Vec::new(),
            windows: Windows::default(),
            tokens: Vec::new(),
        }
    }
}

impl History {
    /// The database file, when the history is kept.
    pub fn path(&self) -> Option<&Path> {
        self.0.as_ref().map(|inner| inner.path.as_path())
    }

    /// No history: records go nowhere, queries answer [`HistoryError::Off`].
    pub fn off() -> History {
        History(None)
    }

    /// Opens (creating it if new) the database at `path`, checks it, reads what it holds,
    /// and starts the writer thread.
    pub fn open(
        path: &Path,
        retention: Retention,
        metrics: Arc<Metrics>,
    ) -> Result<Opened, HistoryError> {
        let open_error = |source| HistoryError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        store::prepare(&conn).map_err(open_error)?;
        if let Some(verdict) = store::check(&conn).map_err(open_error)? {
            return Err(HistoryError::Damaged {
                path: path.to_path_buf(),
                verdict,
            });
        }
        let latest = store::latest(&conn).map_err(open_error)?;
        let windows = store::windows(&conn).map_err(open_error)?;
        let tokens = tokens::all(&conn).map_err(open_error)?;
        let (queue, commands) = std::sync::mpsc::sync_channel(QUEUE);
        let thread_metrics = metrics.clone();
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("history".into())
            .spawn(move || {
                writer::run(
                    conn,
                    commands,
                    retention,
                    thread_metrics,
                    thread_path,
                    RETRY_EVERY,
                )
            })
            .map_err(|e| HistoryError::Read(format!("cannot start the history thread: {e}")))?;
        metrics.history.writing.set(1);
        Ok(Opened {
            history: History(Some(Arc::new(Inner {
                queue,
                path: path.to_path_buf(),
                metrics,
            }))),
            latest,
            windows,
            tokens,
        })
    }

    /// Opens the history where `[history]` (or systemd's `STATE_DIRECTORY`) says; without
    /// one, or when the file cannot be opened, servicewatch runs without history and says so.
    pub fn open_configured(settings: &HistorySettings, metrics: Arc<Metrics>) -> Opened {
        let state_directory = std::env::var("STATE_DIRECTORY").ok();
        let Some(path) = settings.database(state_directory.as_deref()) else {
            tracing::info!(
                "no history kept: set [history] path, or run under systemd with StateDirectory="
            );
            return Opened::nothing();
        };
        match History::open(&path, settings.retention, metrics) {
            Ok(opened) => {
                tracing::info!(path = %path.display(), services = opened.latest.len(), maintenance = opened.windows.all().len(), tokens = opened.tokens.len(), "history opened");
                opened
            }
            Err(e) => {
                tracing::error!(
                    "{e}; servicewatch runs without history until restarted with a usable file"
                );
                Opened::nothing()
            }
        }
    }

    /// Queues a change for the database; never waits.
    pub fn record(&self, change: Change) {
        self.send(Command::Record(change));
    }

    /// Queues a maintenance window to store.
    pub fn put_window(&self, window: Window) {
        self.send(Command::PutWindow(window));
    }

    /// Queues the removal of a maintenance window.
    pub fn delete_window(&self, service: &str, instance: Option<&str>) {
        self.send(Command::DeleteWindow {
            service: service.to_string(),
            instance: instance.map(str::to_string),
        });
    }

    /// Queues an entry of the audit trail; never waits. Dropped (and counted in
    /// `servicewatch_audit_lost_total`) when the queue is full.
    pub fn audit(&self, entry: audit::Entry) {
        self.send(Command::Audit(entry));
    }

    fn send(&self, command: Command) {
        let Some(inner) = &self.0 else {
            return;
        };
        match inner.queue.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(Command::Audit(_))) => {
                inner.metrics.history.audit_lost.inc();
            }
            Err(TrySendError::Full(_)) => {
                inner.metrics.history.lost.inc();
            }
            // The writer has ended: the daemon is stopping.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits, at most `timeout`, until everything queued so far is written: on stop, so
    /// that the last changes are kept.
    pub fn flush(&self, timeout: Duration) {
        let Some(inner) = &self.0 else {
            return;
        };
        let (done, wait) = std::sync::mpsc::channel();
        if inner.queue.send(Command::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }

    /// The changes of `service` that `query` selects, newest first, read on a blocking
    /// thread with a connection of its own (WAL: readers never wait for the writer).
    pub async fn changes(&self, service: &str, query: Query) -> Result<Vec<Change>, HistoryError> {
        let service = service.to_string();
        self.read(move |conn| store::changes(conn, &service, &query))
            .await
    }

    /// The availability totals of each of `services` over each of `periods` (`[since,
    /// until)`), by service then by period, read as [`History::changes`] reads.
    pub async fn availability(
        &self,
        services: Vec<String>,
        periods: &[(SystemTime, SystemTime)],
    ) -> Result<Vec<Vec<Totals>>, HistoryError> {
        let plans: Vec<Plan> = periods
            .iter()
            .map(|(since, until)| Plan::of(store::millis(*since), store::millis(*until)))
            .collect();
        self.read(move |conn| store::availability(conn, &services, &plans))
            .await
    }

    /// The audit entries that `query` selects, newest first, read as
    /// [`History::changes`] reads.
    pub async fn audit_entries(&self, query: Query) -> Result<Vec<audit::Entry>, HistoryError> {
        self.read(move |conn| audit::entries(conn, &query)).await
    }

    /// Stores a new API token, and answers once it is kept: `Ok(false)` if the name is
    /// taken already.
    pub async fn put_token(&self, record: ApiTokenRecord) -> Result<bool, HistoryError> {
        let inserted = self
            .on_connection(false, move |conn| match tokens::insert(conn, &record) {
                Ok(()) => Ok(true),
                Err(e) if tokens::is_duplicate(&e) => Ok(false),
                Err(e) => Err(e),
            })
            .await?;
        Ok(inserted)
    }

    /// Deletes a revoked API token, and answers once it is gone.
    pub async fn delete_token(&self, name: &str) -> Result<(), HistoryError> {
        let name = name.to_string();
        self.on_connection(false, move |conn| tokens::delete(conn, &name).map(drop))
            .await
    }

    /// Runs `read` on a blocking thread, over a read-only connection of its own.
    async fn read<T, F>(&self, read: F) -> Result<T, HistoryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.on_connection(true, read).await
    }

    /// Runs `work` on a blocking thread, over a connection of its own (`read_only`, or
    /// one that writes beside the writer thread: SQLite takes turns, within the busy
    /// timeout).
    async fn on_connection<T, F>(&self, read_only: bool, work: F) -> Result<T, HistoryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let Some(inner) = &self.0 else {
            return Err(HistoryError::Off);
        };
        let path = inner.path.clone();
        let mode = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open_with_flags(&path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| HistoryError::Read(e.to_string()))?;
            let wait = if read_only { 2 } else { 5 };
            conn.busy_timeout(Duration::from_secs(wait))
                .map_err(|e| HistoryError::Read(e.to_string()))?;
            work(&conn).map_err(|e| HistoryError::Read(e.to_string()))
        })
        .await
        .map_err(|e| HistoryError::Read(format!("the database thread failed: {e}")))?
    }
}
