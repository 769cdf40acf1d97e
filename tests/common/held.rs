//! A backend that keeps every connection it accepts until it is killed: killing it closes
//! the listener and every connection at once, as the kernel does when a process dies. What
//! the measures of a watched server's death use (`benches/detection.rs`,
//! `tests/cluster_detection_cost.rs`): the watch connection it holds is closed by the kill.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A listener that holds what it accepts.
pub struct HeldBackend {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl HeldBackend {
    /// Listens on `addr` (port 0: any free port).
    pub async fn start(addr: SocketAddr) -> HeldBackend {
        let listener = TcpListener::bind(addr).await.expect("bind the backend");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        HeldBackend {
            addr,
            accepted,
            task: Some(task),
        }
    }

    /// The connections accepted since it started listening.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes the listeners of `backends` and every connection they hold, all at once (a
    /// mass death), then waits until they are closed.
    pub async fn kill_together(backends: &mut [HeldBackend]) {
        let tasks: Vec<JoinHandle<()>> =
            backends.iter_mut().filter_map(|b| b.task.take()).collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Closes the listener and every connection it holds.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}
