//! The `tcp` check: the instance's listening socket answers a connection.
//!
//! As HAProxy checks a TCP server, the probe is a half-open connection: SYN, SYN-ACK, then a
//! reset in place of the last ACK (the socket's quick ACKs are off, so that ACK waits for
//! data that never comes, and `SO_LINGER` 0 makes the close a reset). A SYN-ACK proves what a
//! completed connection proves: a process listens on the port and its accept queue has
//! room (when it is full, the kernel drops the SYN and the probe times out). What the
//! half-open saves:
//! - the backend's application never sees the probe: no accept, no log line, no read that
//!   fails, thousands of times an hour;
//! - no `TIME_WAIT` socket is left behind each probe (at 5,000 checks a second a graceful
//!   close keeps 300,000 of them, past many hosts' `tcp_max_tw_buckets`);
//! - the kernel's work for the handshake's last leg, the new connection and its close: on
//!   loopback about a third of the probe's cost, measured (see docs/PERFORMANCE.md).

use std::io;
use std::time::Duration;

use tokio::net::TcpSocket;

use super::Target;
use crate::domain::health::ProbeOutcome;

/// Opens a half-open connection and resets it.
pub async fn probe(target: &Target, timeout: Duration) -> Result<(ProbeOutcome, String), String> {
    tokio::time::timeout(timeout, half_open(target))
        .await
        .map_err(|_| format!("connect to {target} timed out after {timeout:?}"))?
        .map_err(|e| format!("connect to {target} failed: {e}"))?;
    Ok((ProbeOutcome::Up, format!("connected to {target}")))
}

/// Connects to each address of `target` in turn until one answers, and resets that
/// connection before its last ACK leaves.
async fn half_open(target: &Target) -> io::Result<()> {
    let mut last = None;
    for addr in tokio::net::lookup_host((target.host.as_str(), target.port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Without it the handshake completes; the probe still works, at a higher cost.
        let _ = socket2::SockRef::from(&socket).set_tcp_quickack(false);
        match socket.connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_zero_linger();
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[tokio::test]
    async fn a_probe_never_reaches_the_backends_application() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for _ in 0..3 {
            let (outcome, detail) = probe(&target(port), Duration::from_secs(2)).await.unwrap();
            assert_eq!(outcome, ProbeOutcome::Up);
            assert_eq!(detail, format!("connected to 127.0.0.1:{port}"));
        }
        // A completed connection would be waiting in the accept queue by now: the client
        // sends its last ACK before connect() returns.
        let client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (accepted, from) = listener.accept().await.unwrap();
        assert_eq!(
            from,
            client.local_addr().unwrap(),
            "the first connection the application accepts is the plain one, not a probe's"
        );
        drop(accepted);
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = probe(&target(port), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            e.starts_with(&format!("connect to 127.0.0.1:{port} failed")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_down_and_says_so() {
        let target = Target {
            // `.invalid` never resolves (RFC 6761).
            host: "servicewatch-probe.invalid".into(),
            port: 1,
        };
        let report = probe(&target, Duration::from_secs(2)).await.unwrap_err();
        assert!(
            report.starts_with("connect to servicewatch-probe.invalid:1 "),
            "{report}"
        );
    }
}
