//! Which client session a clientId names, across transports and HTTP workers.
//!
//! A long-polling client's requests land on any worker thread, and a client may handshake
//! over long-polling and continue over a WebSocket; every one of those paths looks the
//! session up here. The map is behind a mutex held only for a lookup or an insert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Addr;

use super::session::ClientSession;

/// Random bytes in a clientId: 160 bits, well above the 128 a guess must not find.
const CLIENT_ID_BYTES: usize = 20;

/// Every live client session, bounded in number.
pub struct Directory {
    sessions: Mutex<HashMap<Arc<str>, Addr<ClientSession>>>,
    max_sessions: usize,
}

impl Directory {
    pub fn new(max_sessions: usize) -> Self {
        Directory {
            sessions: Mutex::new(HashMap::new()),
            max_sessions,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Addr<ClientSession>>> {
        // A panic while holding this lock leaves the map consistent (each operation is one
        // insert or remove), so a poisoned lock is still usable.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session with a fresh clientId, unless there are already `max_sessions`.
    pub fn create(&self, start: impl FnOnce(Arc<str>) -> Addr<ClientSession>) -> Option<Arc<str>> {
        let mut sessions = self.lock();
        if sessions.len() >= self.max_sessions {
            return None;
        }
        let id: Arc<str> = new_client_id().into();
        let addr = start(id.clone());
        sessions.insert(id.clone(), addr);
        Some(id)
    }

    /// The session a clientId names.
    pub fn get(&self, client_id: &str) -> Option<Addr<ClientSession>> {
        self.lock().get(client_id).cloned()
    }

    /// Forgets a session (it ended).
    pub fn remove(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    /// Every session alive now.
    pub fn all(&self) -> Vec<Addr<ClientSession>> {
        self.lock().values().cloned().collect()
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
