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
//!
//! The buffers are reused while checks follow one another and freed when the last check in
//! flight ends, so an idle daemon holds none. Freed, they go back to the operating system:
//! glibc would otherwise raise its mmap threshold past 19 MiB after the first free and keep
//! later buffers in its heap, so the verifier pins the threshold at [`MMAP_THRESHOLD`] (a
//! process-wide allocator setting, made once; it only affects allocations that large).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use argon2::Block;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

use crate::password::{self, PasswordError};

/// The most checks in flight on a machine with many cores: a login is rare, a burst of
/// them is an attack or a restart, and either can wait a few tens of milliseconds.
const MAX_SLOTS: usize = 4;

/// Allocations at least this large are mapped from, and returned to, the operating system.
pub const MMAP_THRESHOLD: usize = 4 * 1024 * 1024;

/// Pins glibc's mmap threshold (see the module doc).
fn return_large_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only sets an allocator parameter; M_MMAP_THRESHOLD takes a size.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        });
    }
}

/// Runs password checks, `slots` at a time.
pub struct Verifier {
    slots: Arc<Semaphore>,
    memory: Arc<MemoryPool>,
}

/// Argon2 working memory not in use; one buffer per check in flight at most.
struct MemoryPool {
    idle: Mutex<Vec<Vec<Block>>>,
    /// Checks running now; the last to end frees the idle buffers.
    running: AtomicUsize,
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
        return_large_buffers_to_the_os();
        Verifier {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            memory: Arc::new(MemoryPool {
                idle: Mutex::new(Vec::new()),
                running: AtomicUsize::new(0),
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
            pool.running.fetch_add(1, Ordering::AcqRel);
            let mut memory = pool.idle().pop().unwrap_or_default();
            let before = memory.len();
            let verified = password::verify_in(&password, &phc, &mut memory);
            pool.bytes.inc_by(bytes_of(memory.len() - before));
            pool.idle().push(memory);
            if pool.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                // The last check in flight: nothing to reuse the buffers for.
                let freed: Vec<Vec<Block>> = pool.idle().drain(..).collect();
                pool.bytes
                    .dec_by(freed.iter().map(|m| bytes_of(m.len())).sum());
            }
            drop(slot);
            verified
        });
        check
            .await
            .map_err(|e| PasswordError::Hashing(format!("the check did not finish: {e}")))?
    }

    /// Bytes of Argon2 working memory held.
    #[cfg(test)]
    pub fn memory_bytes(&self) -> i64 {
        self.memory.bytes.get()
    }
}

/// The size of `blocks` Argon2 blocks, for the gauge.
fn bytes_of(blocks: usize) -> i64 {
    i64::try_from(blocks * std::mem::size_of::<Block>()).unwrap_or(i64::MAX)
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
        // Watch the memory held while the burst runs.
        let per_check = bytes_of(argon2::Params::default().block_count());
        let mut most = 0;
        while !checks.iter().all(|c| c.is_finished()) {
            most = most.max(verifier.memory_bytes());
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        for check in checks {
            assert!(!check.await.unwrap().unwrap());
        }
        assert!(
            most > 0 && most <= 2 * per_check,
            "{most} bytes held at most"
        );
        assert!(verifier.verify("right".into(), hash).await.unwrap());
        assert_eq!(verifier.memory_bytes(), 0, "nothing held once idle");
        assert!(verifier.memory.idle().is_empty());
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
        assert!(verifier.memory.idle().is_empty(), "freed once idle");
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
