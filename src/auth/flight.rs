//! One Argon2 verification per login at a time: concurrent logins with the same name and
//! password (a shared wallboard account reconnecting after a restart) wait for the first
//! one's outcome instead of each paying for Argon2.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::lock;

/// Serializes the verifications of one login (name and password).
pub(super) type Gate = Arc<tokio::sync::Mutex<()>>;
/// The gates of the logins being verified, by cache key.
pub(super) type Gates = Mutex<HashMap<Vec<u8>, Gate>>;

/// One caller's place among the concurrent verifications of one login. Dropping it (also
/// when the request is abandoned midway) forgets the login's gate once nobody else waits.
pub(super) struct Flight<'a> {
    verifying: &'a Gates,
    key: &'a [u8],
    pub gate: Gate,
}

impl<'a> Flight<'a> {
    pub fn join(verifying: &'a Gates, key: &'a [u8]) -> Self {
        let gate = lock(verifying).entry(key.to_vec()).or_default().clone();
        Flight {
            verifying,
            key,
            gate,
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut verifying = lock(self.verifying);
        // The map and this flight hold the last references: nobody else waits.
        if Arc::strong_count(&self.gate) == 2 {
            verifying.remove(self.key);
        }
    }
}
