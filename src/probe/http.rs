//! The `http` check: an HTTP/1.1 request answered with an expected status and, optionally, a
//! body that contains an expected string.
//!
//! A full HTTP client would bring a connection pool, redirects and TLS that a health probe
//! must not use; this sends one request with `Connection: close`, reads at most
//! `MAX_RESPONSE_BYTES`, and parses the head with `httparse`.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Target;
use crate::domain::health::ProbeOutcome;

/// The most a probe reads of a response, head and body together. A health endpoint that
/// says more than this is judged on what fits.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Most headers a response may carry before the probe gives up on it.
const MAX_HEADERS: usize = 64;

/// The request to send and what to expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// `GET`, `HEAD`...
    pub method: String,
    /// The request target, starting with `/`.
    pub path: String,
    /// Accepted statuses; empty means any 2xx or 3xx, as HAProxy's `httpchk` does.
    pub expect_status: Vec<u16>,
    /// Text the body must contain; `None`: the body is not read.
    pub expect_body: Option<String>,
}

/// The parsed start of a response.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the status line and headers, blank line included.
    length: usize,
    content_length: Option<usize>,
    chunked: bool,
}

/// Sends the request and judges the answer, all within `timeout`.
pub(crate) async fn probe(
    check: &HttpCheck,
    target: &Target,
    timeout: Duration,
) -> Result<(ProbeOutcome, String), String> {
    fetch(check, target, timeout)
        .await
        .map(|(status, body)| judge(check, status, &body))
}

/// Sends the request and returns the status and body, all within `timeout`, judging
/// nothing: for a caller that reads the answer its own way (the role check).
pub(crate) async fn fetch(
    check: &HttpCheck,
    target: &Target,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    match tokio::time::timeout(timeout, exchange(check, target, timeout)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no complete HTTP answer from {target} within {timeout:?}"
        )),
    }
}

async fn exchange(
    check: &HttpCheck,
    target: &Target,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let stream = super::connect(target, timeout).await?;
    converse(stream, check, target).await
}

/// Sends the request on `stream` (plain TCP, or TLS for `https`) and reads the answer.
pub(super) async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    check: &HttpCheck,
    target: &Target,
) -> Result<(u16, Vec<u8>), String> {
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: servicewatch/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        check.method,
        check.path,
        env!("CARGO_PKG_VERSION"),
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request to {target} failed: {e}"))?;

    let mut answer = Answer::new(check.expect_body.is_some());
    let mut chunk = [0u8; 4096];
    loop {
        let room = answer.room().min(chunk.len());
        if room == 0 {
            break;
        }
        let n = match stream.read(&mut chunk[..room]).await {
            Ok(n) => n,
            // A TLS server that closes without close_notify (most do, after
            // `Connection: close`): the answer ends there, and is judged on what came.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("reading the answer of {target} failed: {e}")),
        };
        if n == 0 || answer.push(&chunk[..n])? {
            break;
        }
    }
    answer
        .finish()?
        .ok_or_else(|| format!("{target} closed the connection before a full HTTP head"))
}

/// A response as it arrives: bytes pushed in, whatever sizes they come in, until it says
/// it has enough; then its status and decoded body. No I/O here, so that every way an
/// answer can be cut is testable (and fuzzed: `fuzz/`).
#[derive(Debug)]
pub struct Answer {
    buf: Vec<u8>,
    head: Option<Head>,
    /// The body is judged: read it to its end, not just the head.
    wants_body: bool,
}

impl Answer {
    /// An empty answer; `wants_body`: the check judges the body, so it is read to its end.
    pub fn new(wants_body: bool) -> Answer {
        Answer {
            buf: Vec::with_capacity(4096),
            head: None,
            wants_body,
        }
    }

    /// How many more bytes it takes before [`MAX_RESPONSE_BYTES`] is reached.
    pub(crate) fn room(&self) -> usize {
        MAX_RESPONSE_BYTES - self.buf.len()
    }

    /// Takes the next bytes (beyond `Answer::room` they are ignored); `Ok(true)` once
    /// enough has arrived, `Err` when the answer is not HTTP.
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool, String> {
        let take = bytes.len().min(self.room());
        self.buf.extend_from_slice(&bytes[..take]);
        if self.head.is_none() {
            self.head = parse_head(&self.buf)?;
        }
        Ok(match &self.head {
            Some(head) => !self.wants_body || body_complete(head, &self.buf),
            None => false,
        })
    }

    /// The status and body once the peer has stopped (or enough has arrived); `Ok(None)`
    /// when the head never came whole.
    pub fn finish(self) -> Result<Option<(u16, Vec<u8>)>, String> {
        let head = match self.head {
            Some(head) => head,
            None => match parse_head(&self.buf)? {
                Some(head) => head,
                None => return Ok(None),
            },
        };
        let raw_body = &self.buf[head.length..];
        let body = if head.chunked {
            let mut body = Vec::new();
            walk_chunks(raw_body, Some(&mut body));
            body
        } else {
            raw_body[..head
                .content_length
                .unwrap_or(raw_body.len())
                .min(raw_body.len())]
                .to_vec()
        };
        Ok(Some((head.status, body)))
    }
}

/// Parses the head once it is complete; `Ok(None)` while more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(length)) => {
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::trim)
            };
            Ok(Some(Head {
                status: response.code.unwrap_or(0),
                length,
                content_length: header("content-length").and_then(|v| v.parse().ok()),
                chunked: header("transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
            }))
        }
        Err(e) => Err(format!("the answer is not HTTP: {e}")),
    }
}

/// Whether the whole body has arrived, so the probe need not wait for the peer to close.
fn body_complete(head: &Head, buf: &[u8]) -> bool {
    let body = &buf[head.length..];
    if head.chunked {
        walk_chunks(body, None)
    } else {
        head.content_length.is_some_and(|n| body.len() >= n)
    }
}

/// Walks a chunked body chunk by chunk, appending the data to `out` when given (whatever
/// complete data precedes a truncation); returns whether the last (empty) chunk was
/// reached. Walking by the sizes, not looking for `0\r\n\r\n`, matters: those bytes may
/// well be inside a chunk's data.
fn walk_chunks(mut raw: &[u8], mut out: Option<&mut Vec<u8>>) -> bool {
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return false;
        };
        raw = &raw[line_end + 2..];
        if size == 0 {
            return true;
        }
        let take = size.min(raw.len());
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(&raw[..take]);
        }
        if take < size || raw.len() < size + 2 {
            return false;
        }
        raw = &raw[size + 2..];
    }
    false
}

/// Decides the outcome from the status and body.
pub(super) fn judge(check: &HttpCheck, status: u16, body: &[u8]) -> (ProbeOutcome, String) {
    let status_ok = if check.expect_status.is_empty() {
        (200..400).contains(&status)
    } else {
        check.expect_status.contains(&status)
    };
    if !status_ok {
        return (
            ProbeOutcome::Down,
            format!("HTTP status {status}, not an expected one"),
        );
    }
    match &check.expect_body {
        Some(needle) if !contains(body, needle.as_bytes()) => (
            ProbeOutcome::Down,
            format!("HTTP status {status}, but the body does not contain {needle:?}"),
        ),
        _ => (ProbeOutcome::Up, format!("HTTP status {status}")),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expect_status: Vec<u16>, expect_body: Option<&str>) -> HttpCheck {
        HttpCheck {
            method: "GET".into(),
            path: "/health".into(),
            expect_status,
            expect_body: expect_body.map(str::to_string),
        }
    }

    #[test]
    fn parses_a_head_once_complete() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        let head = parse_head(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 204);
        assert_eq!(head.content_length, Some(0));
        assert!(!head.chunked);
        let head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n")
            .unwrap()
            .unwrap();
        assert!(head.chunked);
    }

    #[test]
    fn refuses_what_is_not_http() {
        assert!(
            parse_head(b"SSH-2.0-OpenSSH_9.2\r\n")
                .unwrap_err()
                .contains("not HTTP")
        );
    }

    fn dechunk(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        walk_chunks(raw, Some(&mut out));
        out
    }

    #[test]
    fn decodes_chunks() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5\r\nped"),
            b"Wikiped",
            "keeps a truncated tail"
        );
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }

    #[test]
    fn default_status_range_is_2xx_and_3xx() {
        let c = check(vec![], None);
        assert_eq!(judge(&c, 200, b"").0, ProbeOutcome::Up);
        assert_eq!(judge(&c, 302, b"").0, ProbeOutcome::Up);
        assert_eq!(judge(&c, 404, b"").0, ProbeOutcome::Down);
        assert_eq!(judge(&c, 503, b"").0, ProbeOutcome::Down);
    }

    #[test]
    fn explicit_statuses_and_body() {
        let c = check(vec![200], Some("\"status\":\"UP\""));
        assert_eq!(judge(&c, 200, br#"{"status":"UP"}"#).0, ProbeOutcome::Up);
        let (outcome, why) = judge(&c, 200, br#"{"status":"DOWN"}"#);
        assert_eq!(outcome, ProbeOutcome::Down);
        assert!(why.contains("does not contain"));
        assert_eq!(judge(&c, 204, br#"{"status":"UP"}"#).0, ProbeOutcome::Down);
    }

    #[test]
    fn knows_when_the_body_is_complete() {
        let head = Head {
            status: 200,
            length: 0,
            content_length: Some(3),
            chunked: false,
        };
        assert!(!body_complete(&head, b"ab"));
        assert!(body_complete(&head, b"abc"));
        let chunked = Head {
            status: 200,
            length: 0,
            content_length: None,
            chunked: true,
        };
        assert!(body_complete(&chunked, b"1\r\na\r\n0\r\n\r\n"));
        // The terminator's bytes inside a chunk's data do not end the body.
        assert!(!body_complete(&chunked, b"9\r\nab0\r\n\r\nc"));
        assert!(body_complete(&chunked, b"9\r\nab0\r\n\r\ncd\r\n0\r\n"));
    }

    #[test]
    fn an_answer_is_the_same_however_it_is_cut() {
        let whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab0\r\n\r\ncd\r\n2\r\nef\r\n0\r\n\r\n";
        let mut one_go = Answer::new(true);
        assert_eq!(one_go.push(whole), Ok(true));
        let expected = one_go.finish().unwrap().unwrap();
        assert_eq!(expected, (200, b"ab0\r\n\r\ncdef".to_vec()));
        for cut in 1..whole.len() {
            let mut answer = Answer::new(true);
            let done = answer.push(&whole[..cut]).unwrap();
            if !done {
                answer.push(&whole[cut..]).unwrap();
            }
            assert_eq!(answer.finish().unwrap().unwrap(), expected, "cut at {cut}");
        }
    }

    #[test]
    fn an_answer_without_a_whole_head_is_none() {
        let mut answer = Answer::new(false);
        assert_eq!(answer.push(b"HTTP/1.1 200 OK\r\nServer"), Ok(false));
        assert_eq!(answer.finish(), Ok(None));
        let mut answer = Answer::new(false);
        assert!(answer.push(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
    }
}
