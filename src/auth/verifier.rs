//! Password checks with bounded memory: at most a few Argon2 verifications at once, each in
//! working memory taken from a pool and given back.
//!
//! Argon2 needs m KiB of memory per check (19 MiB with the default parameters). Run on the
//! blocking pool with a fresh allocation each time, a burst of wrong passwords spreads that
//! over as many threads as the burst is wide, and the allocator keeps it in each thread's
//! arena: memory grows with the burst and never comes back. Here the number of checks in
//! flight is a fixed `slots` (checks beyond it wait their turn), and each check borrows one of
//! at most `slots` buffers, so the memory for password checks is at most `slots` times the
//! largest configured hash's m, whatever arrives. More slots than cores would not check any
//! faster: Argon2 is CPU-bound.

use std::sync::{Arc, Mutex, MutexGuard};

use argon2::Block;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

use crate::password::{self, PasswordError};

/// The most checks in flight on a machine with many cores: a login is rare, a burst of
/// them is an attack or a restart, and either can wait a few tens of milliseconds.
const MAX_SLOTS: usize = 4;

/// Runs password checks, `slots` at a time.
pub struct Verifier {
    slots: Arc<Semaphore>,
    memory: Arc<MemoryPool>,
}

/// Argon2 working memory not in use; one buffer per check in flight at most.
struct MemoryPool {
    idle: Mutex<Vec<Vec<Block>>>,
    /// Bytes held by every buffer, idle or in use.
    bytes: Gauge,
}

impl MemoryPool {
    fn idle(&self) -> MutexGuard<'_, Vec<Vec<Block>>> {
        // One push or pop per critical section: a poisoned pool is still consistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Verifier {
    /// One slot per core, at most [`MAX_SLOTS`]; `bytes` reports the memory held.
    pub fn new(bytes: Gauge) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Verifier::with_slots(cores.min(MAX_SLOTS), bytes)
    }

    pub fn with_slots(slots: usize, bytes: Gauge) -> Self {
        Verifier {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            memory: Arc::new(MemoryPool {
                idle: Mutex::new(Vec::new()),
                bytes,
            }),
        }
    }

    /// Whether `password` matches the PHC string `phc`, checked on the blocking pool once a
    /// slot is free. The slot and the buffer go with the check, so a caller that gives up
    /// waiting (its client hung up) cannot let more checks run at once than there are slots.
    pub async fn verify(&self, password: String, phc: Arc<str>) -> Result<bool, PasswordError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let pool = self.memory.clone();
        let check = tokio::task::spawn_blocking(move || {
            let mut memory = pool.idle().pop().unwrap_or_default();
            let before = memory.len();
            let verified = password::verify_in(&password, &phc, &mut memory);
            let grown = (memory.len() - before) * std::mem::size_of::<Block>();
            pool.bytes.inc_by(i64::try_from(grown).unwrap_or(i64::MAX));
            pool.idle().push(memory);
            drop(slot);
            verified
        });
        check
            .await
            .map_err(|e| PasswordError::Hashing(format!("the check did not finish: {e}")))?
    }

    /// Bytes of Argon2 working memory held.
    pub fn memory_bytes(&self) -> i64 {
        self.memory.bytes.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_checks_holds_at_most_one_buffer_per_slot() {
        let hash: Arc<str> = password::hash("right").unwrap().into();
        let verifier = Arc::new(Verifier::with_slots(2, Gauge::default()));
        let checks: Vec<_> = (0..16)
            .map(|i| {
                let (verifier, hash) = (verifier.clone(), hash.clone());
                tokio::spawn(async move { verifier.verify(format!("wrong{i}"), hash).await })
            })
            .collect();
        for check in checks {
            assert!(!check.await.unwrap().unwrap());
        }
        assert!(verifier.verify("right".into(), hash).await.unwrap());
        let per_check = argon2::Params::default().block_count() * std::mem::size_of::<Block>();
        assert!(verifier.memory.idle().len() <= 2);
        assert!(
            verifier.memory_bytes() <= 2 * per_check as i64 && verifier.memory_bytes() > 0,
            "{} bytes held",
            verifier.memory_bytes()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_check_keeps_its_slot_until_it_ends() {
        let hash: Arc<str> = password::hash("right").unwrap().into();
        let verifier = Verifier::with_slots(1, Gauge::default());
        // Started, then given up on at once: Argon2 still runs, holding the only slot.
        let abandoned = verifier.verify("wrong".into(), hash.clone());
        assert!(
            tokio::time::timeout(std::time::Duration::from_micros(1), abandoned)
                .await
                .is_err()
        );
        assert!(verifier.verify("right".into(), hash).await.unwrap());
        assert_eq!(verifier.memory.idle().len(), 1, "one buffer, reused");
    }

    #[tokio::test]
    async fn a_broken_hash_is_an_error_not_a_match() {
        let verifier = Verifier::with_slots(1, Gauge::default());
        assert!(matches!(
            verifier.verify("x".into(), "plaintext".into()).await,
            Err(PasswordError::NotAHash(_))
        ));
    }
}
