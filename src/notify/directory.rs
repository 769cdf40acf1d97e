//! Which client session a clientId names, across transports and HTTP workers.
//!
//! A long-polling client's requests land on any worker thread, and a client may handshake
//! over long-polling and continue over a WebSocket; every one of those paths looks the
//! session up here. The map is behind a mutex held only for a lookup or an insert.
//!
//! Each session belongs to the user who handshook it: a clientId presented by anybody else
//! names no session, so a clientId that leaked (a log, a proxy) is useless without that
//! user's credentials too.
//!
//! What a closed transport means for the bounds: a session whose WebSocket closed is an
//! *orphan*. It lives on for `session_timeout`, so that a client whose connection blipped
//! continues on a new one with its subscriptions and queued messages, but it does not hold
//! its place against a live client: a handshake that would pass a bound ends the oldest
//! orphan (of the same user for the per-user bound, of anybody for the total) instead of
//! being refused. Its client, should it come back, is told to handshake again (402) and
//! does, with a snapshot if it asks for one. Only sessions with a live transport, or
//! between two long-polling requests, can make a handshake wait. Without this, a network
//! blip that reconnects many wallboards on one shared account would lock that account out
//! for `session_timeout`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Addr;

use super::session::{ClientSession, Evicted};

/// Random bytes in a clientId: 160 bits, well above the 128 a guess must not find.
const CLIENT_ID_BYTES: usize = 20;

/// Why no session was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many sessions (at most {0})")]
    Total(usize),
    #[error("too many sessions for this user (at most {0})")]
    PerUser(usize),
}

struct Entry {
    addr: Addr<ClientSession>,
    user: Arc<str>,
    /// When its WebSocket closed (a sequence number: lower is older), while it has no
    /// transport since.
    orphaned: Option<u64>,
}

#[derive(Default)]
struct Table {
    sessions: HashMap<Arc<str>, Entry>,
    per_user: HashMap<Arc<str>, usize>,
    /// Numbers orphanings, oldest first.
    orphanings: u64,
}

impl Table {
    /// Forgets a session; returns its entry.
    fn forget(&mut self, client_id: &str) -> Option<Entry> {
        let entry = self.sessions.remove(client_id)?;
        if let Some(count) = self.per_user.get_mut(&entry.user) {
            *count -= 1;
            if *count == 0 {
                self.per_user.remove(&entry.user);
            }
        }
        Some(entry)
    }

    /// Ends the oldest orphan that `of` accepts, making room; whether there was one.
    fn evict_oldest_orphan(&mut self, of: impl Fn(&Entry) -> bool) -> bool {
        let oldest = self
            .sessions
            .iter()
            .filter(|(_, e)| of(e))
            .filter_map(|(id, e)| e.orphaned.map(|at| (at, id.clone())))
            .min();
        let Some((_, id)) = oldest else {
            return false;
        };
        if let Some(entry) = self.forget(&id) {
            entry.addr.do_send(Evicted);
        }
        true
    }
}

/// Every live client session, bounded in number, in total and per user.
pub struct Directory {
    table: Mutex<Table>,
    max_sessions: usize,
    max_per_user: usize,
}

impl Directory {
    pub fn new(max_sessions: usize, max_per_user: usize) -> Self {
        Directory {
            table: Mutex::new(Table::default()),
            max_sessions,
            max_per_user,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding this lock leaves the map consistent (each operation is one
        // insert or remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session of `user` with a fresh clientId, unless the bounds are reached.
    pub fn create(
        &self,
        user: &Arc<str>,
        start: impl FnOnce(Arc<str>) -> Addr<ClientSession>,
    ) -> Result<Arc<str>, Refused> {
        let mut table = self.lock();
        let held = table.per_user.get(user).copied().unwrap_or(0);
        if held >= self.max_per_user && !table.evict_oldest_orphan(|e| e.user == *user) {
            return Err(Refused::PerUser(self.max_per_user));
        }
        if table.sessions.len() >= self.max_sessions && !table.evict_oldest_orphan(|_| true) {
            return Err(Refused::Total(self.max_sessions));
        }
        let id: Arc<str> = new_client_id().into();
        let addr = start(id.clone());
        let held = table.per_user.get(user).copied().unwrap_or(0);
        table.per_user.insert(user.clone(), held + 1);
        table.sessions.insert(
            id.clone(),
            Entry {
                addr,
                user: user.clone(),
                orphaned: None,
            },
        );
        Ok(id)
    }

    /// The session a clientId names, if it belongs to `user`.
    pub fn get(&self, client_id: &str, user: &str) -> Option<Addr<ClientSession>> {
        let table = self.lock();
        let entry = table.sessions.get(client_id)?;
        (*entry.user == *user).then(|| entry.addr.clone())
    }

    /// Forgets a session (it ended).
    pub fn remove(&self, client_id: &str) {
        self.lock().forget(client_id);
    }

    /// A session's WebSocket closed and no transport replaced it: it may be ended to make
    /// room for a new one.
    pub fn orphan(&self, client_id: &str) {
        let mut table = self.lock();
        table.orphanings += 1;
        let at = table.orphanings;
        if let Some(entry) = table.sessions.get_mut(client_id) {
            entry.orphaned = Some(at);
        }
    }

    /// An orphan's client came back on a transport: it holds its place again.
    pub fn adopt(&self, client_id: &str) {
        if let Some(entry) = self.lock().sessions.get_mut(client_id) {
            entry.orphaned = None;
        }
    }

    /// Every session alive now.
    pub fn all(&self) -> Vec<Addr<ClientSession>> {
        self.of_users(|_| true)
    }

    /// The sessions of the users `owned` picks.
    pub fn of_users(&self, owned: impl Fn(&str) -> bool) -> Vec<Addr<ClientSession>> {
        self.lock()
            .sessions
            .values()
            .filter(|e| owned(&e.user))
            .map(|e| e.addr.clone())
            .collect()
    }
}

/// A clientId: random bytes from the operating system, in hex.
fn new_client_id() -> String {
    let mut bytes = [0u8; CLIENT_ID_BYTES];
    // The OS random source does not fail on Linux once booted; should it, the ids must still
    // differ, so fall back to a non-cryptographic generator rather than to zeros.
    if getrandom::fill(&mut bytes).is_err() {
        bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_long_and_distinct() {
        let a = new_client_id();
        let b = new_client_id();
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
