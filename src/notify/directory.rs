//! Which client session a clientId names, across transports and HTTP workers.
//!
//! A long-polling client's requests land on any worker thread, and a client may handshake
//! over long-polling and continue over a WebSocket; every one of those paths looks the
//! session up here. The map is behind a mutex held only for a lookup or an insert.
//!
//! Each session belongs to the user who handshook it: a clientId presented by anybody else
//! names no session, so a clientId that leaked (a log, a proxy) is useless without that
//! user's credentials too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Addr;

use super::session::ClientSession;

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
}

#[derive(Default)]
struct Table {
    sessions: HashMap<Arc<str>, Entry>,
    per_user: HashMap<Arc<str>, usize>,
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
        if table.sessions.len() >= self.max_sessions {
            return Err(Refused::Total(self.max_sessions));
        }
        let held = table.per_user.get(user).copied().unwrap_or(0);
        if held >= self.max_per_user {
            return Err(Refused::PerUser(self.max_per_user));
        }
        let id: Arc<str> = new_client_id().into();
        let addr = start(id.clone());
        table.per_user.insert(user.clone(), held + 1);
        table.sessions.insert(
            id.clone(),
            Entry {
                addr,
                user: user.clone(),
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
        let mut table = self.lock();
        let Some(entry) = table.sessions.remove(client_id) else {
            return;
        };
        if let Some(count) = table.per_user.get_mut(&entry.user) {
            *count -= 1;
            if *count == 0 {
                table.per_user.remove(&entry.user);
            }
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
