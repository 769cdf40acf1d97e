//! The loopback listeners standing in for backends in the benches that take every service
//! down at once: opened below the kernel's ephemeral port range, closed all together.

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The listeners standing in for the backends.
pub struct Backends {
    pub ports: Vec<u16>,
    tasks: Vec<JoinHandle<()>>,
}

impl Backends {
    /// Listens on `n` free ports below the kernel's ephemeral range, so that the
    /// connections of the probes (whose local ports come from that range) can never hold
    /// one of them when the listeners reopen after the outage.
    pub async fn open_new(n: usize) -> Backends {
        let range =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
        let ephemeral_low: u16 = range
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(32768);
        let mut ports = Vec::with_capacity(n);
        for port in 10_000..ephemeral_low {
            if ports.len() == n {
                break;
            }
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                ports.push(port);
            }
        }
        assert_eq!(
            ports.len(),
            n,
            "not enough free ports below {ephemeral_low}"
        );
        Backends::open(&ports).await
    }

    /// Listens on `ports` again.
    pub async fn open(ports: &[u16]) -> Backends {
        let mut tasks = Vec::with_capacity(ports.len());
        let mut bound = Vec::with_capacity(ports.len());
        for &port in ports {
            let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
            bound.push(listener.local_addr().unwrap().port());
            tasks.push(tokio::spawn(async move {
                loop {
                    let _ = listener.accept().await;
                }
            }));
        }
        Backends {
            ports: bound,
            tasks,
        }
    }

    /// Closes every listener at once.
    pub fn close(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}
