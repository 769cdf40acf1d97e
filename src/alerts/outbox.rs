//! The alerts' durable memory, in the history database (tables of their own beside the
//! history's): what each service was last seen as (so that a restart tells nothing new and
//! misses nothing that changed meanwhile), the events waiting to be grouped, and the
//! notifications not yet delivered. An event decided just before a `kill -9` is sent after
//! the restart.
//!
//! Writes are synchronous, each a transaction: the dispatcher runs on a thread of its own,
//! and a change is worth a few milliseconds to be sure it is told. Without a history
//! database (none configured, no systemd `StateDirectory=`) the same tables live in memory,
//! and a restart forgets what was not yet delivered.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::derive::View;
use super::event::Event;
use super::notification::Notification;
use crate::cluster::record::millis;
use crate::domain::service::{Role, ServiceState};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_views (
    service TEXT PRIMARY KEY,
    view TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_waiting (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_certificates (
    service TEXT NOT NULL,
    instance TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (service, instance)
);
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
";

/// Why the outbox cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the alerts' outbox in {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("the alerts' outbox: {0}")]
    Write(#[from] rusqlite::Error),
    #[error("the alerts' outbox holds an unreadable row: {0}")]
    Row(#[from] serde_json::Error),
}

/// A notification kept until delivered.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub receiver: String,
    pub notification: Notification,
    pub attempts: u32,
    /// This node's own news (its etcd lost, say), sent whether or not it leads.
    pub local: bool,
}

/// The alerts' tables.
pub struct Outbox {
    conn: Connection,
}

impl Outbox {
    /// The outbox in the database at `path`, or in memory.
    pub fn open(path: Option<&Path>) -> Result<Outbox, OutboxError> {
        let shown = path.map_or_else(|| "memory".to_string(), |p| p.display().to_string());
        let open = || -> rusqlite::Result<Connection> {
            let conn = match path {
                Some(p) => Connection::open(p)?,
                None => Connection::open_in_memory()?,
            };
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // As the history's writer does: a commit is one write to the log, and a process
            // killed at any moment (kill -9, a panic) loses nothing; only a power cut may
            // lose the last commits. FULL would wait for a disk flush per change, and a
            // mass outage on a busy disk would then reach its receivers seconds late.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| OutboxError::Open {
            path: shown,
            source,
        })?;
        Ok(Outbox { conn })
    }

    /// Every service's view, as last kept.
    pub fn views(&self) -> Result<Vec<(String, View)>, OutboxError> {
        let mut stmt = self.conn.prepare("SELECT service, view FROM alert_views")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut views = Vec::new();
        for row in rows {
            let (service, text) = row?;
            let stored: StoredView = serde_json::from_str(&text)?;
            if let Some(view) = stored.view() {
                views.push((service, view));
            }
        }
        Ok(views)
    }

    /// Keeps, in one transaction, a service's new view (if it changed) and the events it
    /// told, waiting for each receiver's next group; returns the events' row ids, receiver by
    /// receiver. One commit per change, however many receivers hear of it.
    pub fn record(
        &mut self,
        view: Option<(&str, &View)>,
        waiting: &[(&str, &[Event])],
    ) -> Result<Vec<Vec<i64>>, OutboxError> {
        let tx = self.conn.transaction()?;
        if let Some((service, view)) = view {
            tx.execute(
                "INSERT INTO alert_views (service, view) VALUES (?1, ?2)
                 ON CONFLICT(service) DO UPDATE SET view = excluded.view",
                params![service, serde_json::to_string(&StoredView::of(view))?],
            )?;
        }
        let mut ids = Vec::with_capacity(waiting.len());
        for (receiver, events) in waiting {
            let mut kept = Vec::with_capacity(events.len());
            for event in *events {
                tx.execute(
                    "INSERT INTO alert_waiting (receiver, event) VALUES (?1, ?2)",
                    params![receiver, serde_json::to_string(event)?],
                )?;
                kept.push(tx.last_insert_rowid());
            }
            ids.push(kept);
        }
        tx.commit()?;
        Ok(ids)
    }

    /// The certificates told as expiring (and not renewed since): service, instance, and
    /// since when.
    pub fn certificates(&self) -> Result<Vec<(String, String, SystemTime)>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare("SELECT service, instance, since_ms FROM alert_certificates")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (service, instance, since) = row?;
            out.push((service, instance, time(since.max(0) as u64)));
        }
        Ok(out)
    }

    /// A certificate told as expiring (`since`: when), or renewed (`None`).
    pub fn put_certificate(
        &self,
        service: &str,
        instance: &str,
        since: Option<SystemTime>,
    ) -> Result<(), OutboxError> {
        match since {
            Some(since) => self.conn.execute(
                "INSERT INTO alert_certificates (service, instance, since_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(service, instance) DO UPDATE SET since_ms = excluded.since_ms",
                params![service, instance, millis(since) as i64],
            )?,
            None => self.conn.execute(
                "DELETE FROM alert_certificates WHERE service = ?1 AND instance = ?2",
                params![service, instance],
            )?,
        };
        Ok(())
    }

    /// Every event waiting, by receiver, oldest first.
    pub fn waiting(&self) -> Result<Vec<(i64, String, Event)>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, receiver, event FROM alert_waiting ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, receiver, text) = row?;
            out.push((id, receiver, serde_json::from_str(&text)?));
        }
        Ok(out)
    }

    /// Events waiting that another node delivered: forgotten.
    pub fn forget_waiting(&mut self, ids: &[i64]) -> Result<(), OutboxError> {
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.execute("DELETE FROM alert_waiting WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A group is told: its waiting events (`grouped`, row ids) become one notification
    /// to deliver, in one transaction. Returns the notification's row id.
    pub fn enqueue(
        &mut self,
        grouped: &[i64],
        notification: &Notification,
    ) -> Result<i64, OutboxError> {
        let tx = self.conn.transaction()?;
        for id in grouped {
            tx.execute("DELETE FROM alert_waiting WHERE id = ?1", params![id])?;
        }
        tx.execute(
            "INSERT INTO alert_outbox (receiver, key, body) VALUES (?1, ?2, ?3)",
            params![
                notification.receiver,
                notification.key,
                serde_json::to_string(notification)?
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    /// Every notification not yet delivered, oldest first.
    pub fn pending(&self) -> Result<Vec<Pending>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, receiver, body, attempts FROM alert_outbox ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, receiver, body, attempts) = row?;
            out.push(Pending {
                id,
                receiver,
                notification: serde_json::from_str(&body)?,
                attempts,
                local: false,
            });
        }
        Ok(out)
    }

    /// One more attempt failed.
    pub fn attempted(&self, id: i64, attempts: u32) -> Result<(), OutboxError> {
        self.conn.execute(
            "UPDATE alert_outbox SET attempts = ?2 WHERE id = ?1",
            params![id, attempts],
        )?;
        Ok(())
    }

    /// Delivered, given up or dropped: forgotten.
    pub fn done(&self, id: i64) -> Result<(), OutboxError> {
        self.conn
            .execute("DELETE FROM alert_outbox WHERE id = ?1", params![id])?;
        Ok(())
    }
}

/// A view as kept: states and roles by their wire names, times in milliseconds.
#[derive(Serialize, Deserialize)]
struct StoredView {
    state: String,
    since_ms: u64,
    serving: Option<String>,
    redundant: Option<bool>,
    redundant_since_ms: u64,
    service_maintenance: bool,
    instance_maintenance: bool,
    flapping: bool,
}

impl StoredView {
    fn of(v: &View) -> StoredView {
        StoredView {
            state: v.state.as_str().to_string(),
            since_ms: millis(v.since),
            serving: v.serving.map(|r| r.as_str().to_string()),
            redundant: v.redundant,
            redundant_since_ms: millis(v.redundant_since),
            service_maintenance: v.service_maintenance,
            instance_maintenance: v.instance_maintenance,
            flapping: v.flapping,
        }
    }

    /// The view, unless it names a state or role this servicewatch does not know (a row
    /// from a newer one): then the service is seen afresh.
    fn view(&self) -> Option<View> {
        Some(View {
            state: self.state.parse::<ServiceState>().ok()?,
            since: time(self.since_ms),
            serving: match &self.serving {
                Some(r) => Some(r.parse::<Role>().ok()?),
                None => None,
            },
            redundant: self.redundant,
            redundant_since: time(self.redundant_since_ms),
            service_maintenance: self.service_maintenance,
            instance_maintenance: self.instance_maintenance,
            flapping: self.flapping,
        })
    }
}

fn time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}
