//! The `sip` check: an out-of-dialog `OPTIONS` request (RFC 3261 §11) to the instance over
//! UDP, TCP or TLS, and its final answer judged by its status code.
//!
//! A SIP server that answers `OPTIONS` has received, parsed and processed a SIP request:
//! more than a `tcp` check proves (SIP Server's port may accept connections while its SIP
//! stack is stuck), and the only check there is over UDP, where nothing answers a
//! connection. Which final answers count as up is configured (`up`, `degraded`); by
//! default any 2xx or 4xx is up, anything else down (see [`DEFAULT_UP`]).
//!
//! The message code is pure (`message`, `timers`); `udp` and `stream` own the sockets.

pub mod message;
mod stream;
pub mod timers;
mod udp;

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use self::message::{Mismatch, ParseError, Response, Transaction, answers};
use super::Target;
use super::https::TlsClient;
use crate::domain::health::ProbeOutcome;

/// The answers counted as up unless `up` says otherwise: any 2xx (the server would take a
/// call) and any 4xx. A 4xx faults the request, not the server: the probe's `OPTIONS` has
/// no user, no credentials, and may come from an address the server does not serve (401,
/// 403, 404, 405, 481, 486 are all common answers from a healthy server), and the server
/// parsed and processed it to say so. 5xx says the server itself fails: 503 in particular
/// means overloaded or going away, and RFC 3263 §4.3 tells a client receiving it to try the
/// next server, which is what a down instance makes the pair do. 6xx is a server declining
/// everything; 3xx, one that does not serve at this address.
pub const DEFAULT_UP: [StatusMatch; 2] = [StatusMatch::Class(2), StatusMatch::Class(4)];

/// What a `sip` check sends, over what, and how it judges the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SipCheck {
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// Final answers that count as up.
    pub up: Vec<StatusMatch>,
    /// Final answers that count as degraded (the instance serves, flagged); checked before
    /// `up`, so that `degraded = [503]` with `up = ["5xx"]` singles 503 out.
    pub degraded: Vec<StatusMatch>,
}

/// How the request travels.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// One datagram, retransmitted on RFC 3261's timers.
    Udp,
    /// A connection per probe.
    Tcp,
    /// A connection per probe, TLS on it, verified as the `https` check does.
    Tls(Box<TlsClient>),
}

impl Transport {
    /// The name in the configuration and in `;transport=`.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls(_) => "tls",
        }
    }
}

/// A status code (`503`) or a class of them (`"5xx"`), as `up` and `degraded` list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// One code: 503.
    Code(u16),
    /// The hundreds digit: 2 for 2xx.
    Class(u16),
}

impl StatusMatch {
    /// Reads `"503"` or `"5xx"` (any case); only final answers (200 to 699) can be matched,
    /// since a provisional one is never judged.
    pub fn parse(text: &str) -> Result<StatusMatch, String> {
        let refuse = || {
            format!(
                "\"{text}\" is not a final SIP status code (200 to 699) or class (\"2xx\" to \"6xx\")"
            )
        };
        let lower = text.trim().to_ascii_lowercase();
        if let Some(digit) = lower.strip_suffix("xx") {
            return match digit.parse::<u16>() {
                Ok(class @ 2..=6) if digit.len() == 1 => Ok(StatusMatch::Class(class)),
                _ => Err(refuse()),
            };
        }
        match lower.parse::<u16>() {
            Ok(code @ 200..=699) => Ok(StatusMatch::Code(code)),
            _ => Err(refuse()),
        }
    }

    fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => code == status,
            StatusMatch::Class(class) => status / 100 == class,
        }
    }
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusMatch::Code(code) => write!(f, "{code}"),
            StatusMatch::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// The most a probe reads of one answer: SIP over UDP should fit a datagram, and an
/// `OPTIONS` answer is a few hundred bytes with its SDP.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a probe saw no final answer it could judge.
#[derive(Debug, Error)]
enum Failure {
    /// Resolving, connecting or the TLS handshake, already worded.
    #[error("{0}")]
    Connect(String),
    #[error("{action} {target} failed: {source}")]
    Io {
        action: &'static str,
        target: Target,
        source: std::io::Error,
    },
    #[error(
        "{target} refused the request (ICMP port unreachable: nothing listens on that UDP port)"
    )]
    Refused { target: Target },
    #[error("{target} answered what the check cannot read: {source}")]
    Unreadable { target: Target, source: ParseError },
    #[error("{target} sent {MAX_MESSAGE_BYTES} bytes without a whole SIP message")]
    TooLarge { target: Target },
    #[error("{target} closed the connection before a final answer{seen}")]
    Closed { target: Target, seen: Box<Seen> },
    #[error("no answer from {target} after {transmissions} transmission{s} over udp{seen}", s = if *transmissions == 1 { "" } else { "s" })]
    NoAnswer {
        target: Target,
        transmissions: usize,
        seen: Box<Seen>,
    },
    #[error("no final answer from {target} within {timeout:?}{seen}")]
    NoFinalAnswer {
        target: Target,
        timeout: Duration,
        seen: Box<Seen>,
    },
}

/// What came that was not the final answer to the probe's transaction: told when none
/// came, so that "no answer" is not taken for "silence".
#[derive(Debug, Default)]
struct Seen {
    provisional: Option<String>,
    ignored: usize,
    last_ignored: Option<(String, Mismatch)>,
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = &self.provisional {
            write!(f, "; the last provisional answer was {status}")?;
        }
        if let Some((status, why)) = &self.last_ignored {
            let n = self.ignored;
            let s = if n == 1 { "" } else { "s" };
            write!(
                f,
                "; {n} answer{s} to another transaction ignored (the last, {status}: {why})"
            )?;
        }
        Ok(())
    }
}

/// The probe's transaction, waiting for its final answer among whatever the peer sends.
#[derive(Debug)]
struct Waiting {
    transaction: Transaction,
    seen: Seen,
}

impl Waiting {
    fn new(transaction: Transaction) -> Waiting {
        Waiting {
            transaction,
            seen: Seen::default(),
        }
    }

    /// Takes one response; returns it when it is the final answer to the transaction. An
    /// answer to another transaction (a late one to an earlier probe) is ignored, as RFC
    /// 3261 §18.1.2 has a client discard it; a provisional one is noted and waited past.
    fn consider(&mut self, response: Response) -> Option<Response> {
        if let Err(why) = answers(&response, &self.transaction) {
            self.seen.ignored += 1;
            self.seen.last_ignored = Some((response.status_line(), why));
            return None;
        }
        if response.is_provisional() {
            self.seen.provisional = Some(response.status_line());
            return None;
        }
        Some(response)
    }
}

/// Sends the request and judges the final answer, all within `timeout`.
pub(crate) async fn probe(
    check: &SipCheck,
    target: &Target,
    timeout: Duration,
) -> Result<(ProbeOutcome, String), String> {
    let answer = match &check.transport {
        Transport::Udp => udp::exchange(target, timeout).await,
        Transport::Tcp => stream::exchange(None, target, timeout).await,
        Transport::Tls(tls) => stream::exchange(Some(tls), target, timeout).await,
    };
    answer
        .map(|response| judge(check, &response))
        .map_err(|failure| failure.to_string())
}

/// Decides the outcome from the final answer's status.
fn judge(check: &SipCheck, response: &Response) -> (ProbeOutcome, String) {
    let status = response.status;
    let line = response.status_line();
    if check.degraded.iter().any(|m| m.matches(status)) {
        (
            ProbeOutcome::Degraded,
            format!("{line}, counted as degraded"),
        )
    } else if check.up.iter().any(|m| m.matches(status)) {
        (ProbeOutcome::Up, line)
    } else {
        let up = check.up.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        (
            ProbeOutcome::Down,
            format!("{line}, not an answer counted as up ({})", up.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::sip::message::parse_response;

    fn response(status_line: &str, branch: &str) -> Response {
        let text = format!(
            "{status_line}\r\nVia: SIP/2.0/UDP 10.0.0.9:4;branch={branch}\r\nCall-ID: c@h\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        parse_response(text.as_bytes()).unwrap()
    }

    fn check(degraded: Vec<StatusMatch>) -> SipCheck {
        SipCheck {
            transport: Transport::Udp,
            up: DEFAULT_UP.to_vec(),
            degraded,
        }
    }

    #[test]
    fn codes_and_classes_are_read_and_refused() {
        assert_eq!(StatusMatch::parse("503"), Ok(StatusMatch::Code(503)));
        assert_eq!(StatusMatch::parse("2XX"), Ok(StatusMatch::Class(2)));
        for bad in ["100", "1xx", "7xx", "700", "20x", "22xx", "", "ok"] {
            let why = StatusMatch::parse(bad).unwrap_err();
            assert!(
                why.starts_with(&format!("\"{bad}\" is not a final")),
                "{why}"
            );
        }
        assert_eq!(StatusMatch::Class(4).to_string(), "4xx");
    }

    #[test]
    fn the_default_counts_2xx_and_4xx_as_up_and_server_failures_as_down() {
        let judged = |line: &str| judge(&check(vec![]), &response(line, "b"));
        assert_eq!(
            judged("SIP/2.0 200 OK"),
            (ProbeOutcome::Up, "SIP/2.0 200 OK".into())
        );
        assert_eq!(judged("SIP/2.0 405 Method Not Allowed").0, ProbeOutcome::Up);
        assert_eq!(
            judged("SIP/2.0 503 Service Unavailable"),
            (
                ProbeOutcome::Down,
                "SIP/2.0 503 Service Unavailable, not an answer counted as up (2xx, 4xx)".into()
            )
        );
        for down in [
            "SIP/2.0 302 Moved",
            "SIP/2.0 500 Oops",
            "SIP/2.0 603 Decline",
        ] {
            assert_eq!(judged(down).0, ProbeOutcome::Down, "{down}");
        }
    }

    #[test]
    fn degraded_answers_are_singled_out_before_up_ones() {
        let mut check = check(vec![StatusMatch::Code(503)]);
        check.up.push(StatusMatch::Class(5));
        let judged = |line: &str| judge(&check, &response(line, "b"));
        assert_eq!(
            judged("SIP/2.0 503 Service Unavailable"),
            (
                ProbeOutcome::Degraded,
                "SIP/2.0 503 Service Unavailable, counted as degraded".into()
            )
        );
        assert_eq!(
            judged("SIP/2.0 500 Server Internal Error").0,
            ProbeOutcome::Up
        );
    }

    #[test]
    fn the_transaction_waits_past_provisional_and_foreign_answers() {
        let mut waiting = Waiting::new(Transaction {
            branch: "z9hG4bKours".into(),
            call_id: "c@h".into(),
            tag: "t".into(),
            cseq: 1,
        });
        assert!(
            waiting
                .consider(response("SIP/2.0 200 OK", "z9hG4bKold"))
                .is_none()
        );
        assert!(
            waiting
                .consider(response("SIP/2.0 100 Trying", "z9hG4bKours"))
                .is_none()
        );
        assert_eq!(
            waiting.seen.to_string(),
            "; the last provisional answer was SIP/2.0 100 Trying; 1 answer to another transaction ignored (the last, SIP/2.0 200 OK: its Via branch is \"z9hG4bKold\")"
        );
        let answer = waiting.consider(response("SIP/2.0 486 Busy Here", "z9hG4bKours"));
        assert_eq!(answer.map(|r| r.status), Some(486));
    }
}
