//! Probes: one file per check kind, each an async function that looks at one instance once
//! and says what it saw. They own the sockets and processes; what an outcome means for the
//! service is decided in `domain`.

pub mod cql;
pub(crate) mod exec;
pub mod http;
pub(crate) mod https;
pub(crate) mod role;
pub mod sip;
pub(crate) mod tcp;
pub(crate) mod watch;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::domain::health::{ProbeOutcome, Schedule};
use crate::domain::text::one_line;

/// A check, fully resolved from the configuration layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What a probe does.
    pub kind: CheckKind,
    /// Hold a connection open to the instance between probes and probe at once when it
    /// closes (`probe::watch`).
    pub watch: bool,
    /// Bound on one probe, connection included.
    pub timeout: Duration,
    /// Consecutive successes for a down instance to count as up.
    pub rise: u32,
    /// Consecutive failures for an up instance to count as down.
    pub fall: u32,
    /// How often to probe, up and down, with its jitter.
    pub schedule: Schedule,
}

/// What a check does.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP/1.1 request is answered with an expected status (and body).
    Http(http::HttpCheck),
    /// The same over TLS, the certificate verified and its end of validity told.
    Https(https::HttpsCheck),
    /// Cassandra's native protocol answers OPTIONS with SUPPORTED.
    Cql,
    /// A command exits 0 (up), 1 (degraded) or anything else (down).
    Exec(exec::ExecCheck),
    /// A SIP `OPTIONS` request gets a final answer counted as up (or degraded).
    Sip(sip::SipCheck),
}

impl CheckKind {
    /// The name used in the configuration and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(_) => "http",
            CheckKind::Https(_) => "https",
            CheckKind::Cql => "cql",
            CheckKind::Exec(_) => "exec",
            CheckKind::Sip(_) => "sip",
        }
    }
}

/// The host and port a probe looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// A name or an address (IPv6 without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What one probe saw: the outcome and, for logs, a short description of why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// Up, degraded or down.
    pub outcome: ProbeOutcome,
    /// What was seen, in a sentence for the log and the instance detail.
    pub detail: String,
    /// How long the probe took, connection included.
    pub elapsed: Duration,
    /// `https`: the end of validity of the certificate the server showed.
    pub certificate_not_after: Option<SystemTime>,
}

/// Runs one probe of `kind` against `target`, bounded by `timeout`.
pub async fn run(kind: &CheckKind, target: &Target, timeout: Duration) -> ProbeReport {
    let started = Instant::now();
    let mut certificate_not_after = None;
    // Every kind but `tcp` is boxed: this future is as large as its largest kind, and it is
    // moved whole each time a probe starts (the TLS and SIP ones hold kilobytes), thousands
    // of times a second for checks that are mostly `tcp`.
    let result = match kind {
        CheckKind::Tcp => tcp::probe(target, timeout).await,
        CheckKind::Http(check) => Box::pin(http::probe(check, target, timeout)).await,
        CheckKind::Https(check) => {
            let seen = Box::pin(https::probe(check, target, timeout)).await;
            certificate_not_after = seen.not_after;
            seen.result
        }
        CheckKind::Cql => Box::pin(cql::probe(target, timeout)).await,
        CheckKind::Exec(check) => Box::pin(exec::probe(check, target, timeout)).await,
        CheckKind::Sip(check) => Box::pin(sip::probe(check, target, timeout)).await,
    };
    let (outcome, detail) = match result {
        Ok(seen) => seen,
        Err(why) => (ProbeOutcome::Down, why),
    };
    ProbeReport {
        outcome,
        detail,
        elapsed: started.elapsed(),
        certificate_not_after,
    }
}

/// What a backend said, made fit for a log line, a metric label or an answer: decoded
/// lossily, on one line, at most `max_chars` characters ([`one_line`]).
pub(crate) fn readable(said: &[u8], max_chars: usize) -> String {
    one_line(&String::from_utf8_lossy(said), max_chars)
}

/// Connects to `target` within `timeout`, resolving its host name if it has one.
pub(crate) async fn connect(
    target: &Target,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, String> {
    match tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    {
        Ok(Ok(stream)) => {
            // Probes write small requests and wait for the answer: do not let Nagle hold them.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(format!("connect to {target} failed: {e}")),
        Err(_) => Err(format!("connect to {target} timed out after {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn what_a_peer_says_is_decoded_on_one_line() {
        assert_eq!(readable(b"ok\r\nnext", 100), r"ok\r\nnext");
        assert_eq!(readable(b"\xff\xfe", 10), "\u{fffd}\u{fffd}");
    }
}
