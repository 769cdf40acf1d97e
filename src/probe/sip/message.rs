//! SIP messages as the `sip` check writes and reads them: the out-of-dialog `OPTIONS`
//! request of RFC 3261 §11, and the responses to it, parsed from bytes.
//!
//! Hand-written rather than a SIP stack crate: the check sends one request and reads one
//! kind of answer, and what it needs of a response is its status line and four headers
//! (`Via`, `CSeq`, `Call-ID`, `Content-Length`). The crates considered (`rsip`, `rvoip`'s
//! `sip-core`, `ezk-sip-core`) bring full message models, dialogs or transports for that;
//! the parser here is a page, does no I/O, and every way an answer can be cut or mangled is
//! a unit test below.
//!
//! Architecture invariant: this module does no I/O and never panics on what a peer sends.

use std::net::SocketAddr;

use thiserror::Error;

use crate::probe::{Target, readable};

/// The method of every request the check sends.
pub const METHOD: &str = "OPTIONS";

/// The magic cookie that starts every RFC 3261 branch (§8.1.1.7), which tells the peer the
/// branch alone identifies the transaction.
const BRANCH_COOKIE: &str = "z9hG4bK";

/// How much of an unreadable answer is quoted in an error, in characters.
const QUOTED_CHARS: usize = 60;

/// What identifies the check's one transaction, so that an answer to anything else (a late
/// answer to an earlier probe, another client's) is told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The `Via` branch, magic cookie included.
    pub branch: String,
    /// The whole `Call-ID`, `@host` included.
    pub call_id: String,
    /// The `From` tag.
    pub tag: String,
    /// The `CSeq` number (the method is always [`METHOD`]).
    pub cseq: u32,
}

impl Transaction {
    /// A new transaction with random identifiers, its `Call-ID` naming `local`.
    pub fn random(local: SocketAddr) -> Transaction {
        let token = || format!("{:016x}", fastrand::u64(..));
        Transaction {
            branch: format!("{BRANCH_COOKIE}{}", token()),
            call_id: format!("{}@{}", token(), host_of(local)),
            tag: token(),
            cseq: 1,
        }
    }
}

/// `local`'s address as a SIP host: an IPv6 address in brackets.
fn host_of(local: SocketAddr) -> String {
    match local {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// The `OPTIONS` request for `transaction`, to `target` over `transport` (`"udp"`, `"tcp"`
/// or `"tls"`), sent from `local` (the address the peer answers to, in `Via` and
/// `Contact`).
pub fn options_request(
    target: &Target,
    transport: &str,
    local: SocketAddr,
    transaction: &Transaction,
) -> String {
    let t = transport;
    let via = transport.to_ascii_uppercase();
    let host = host_of(local);
    format!(
        "{METHOD} sip:{target};transport={t} SIP/2.0\r\n\
         Via: SIP/2.0/{via} {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:servicewatch@{host}>;tag={tag}\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {METHOD}\r\n\
         Contact: <sip:servicewatch@{local};transport={t}>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: servicewatch/{version}\r\n\
         Content-Length: 0\r\n\r\n",
        branch = transaction.branch,
        tag = transaction.tag,
        call_id = transaction.call_id,
        cseq = transaction.cseq,
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// Why bytes from the peer are not a SIP response the check can read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not a SIP start line; the line, quoted.
    #[error("the answer is not SIP: \"{0}\"")]
    NotSip(String),
    /// A request line, where a response was awaited; its method.
    #[error("the peer sent a {0} request, not a response")]
    Request(String),
    /// `SIP/...` but not `SIP/2.0`, a three-digit code from 100 to 699 and a reason.
    #[error("bad SIP status line \"{0}\"")]
    BadStatusLine(String),
    /// A header line without a name and a colon, or a continuation with nothing to continue.
    #[error("bad SIP header line \"{0}\"")]
    BadHeader(String),
    /// A `Content-Length` that is not a number.
    #[error("bad Content-Length \"{0}\"")]
    BadContentLength(String),
    /// The head or the body cut short; what is missing.
    #[error("the answer is truncated: {0}")]
    Truncated(&'static str),
}

/// A parsed response: its status line and headers, names lowercased and in their long form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100 to 699.
    pub status: u16,
    /// The reason phrase, on one line with control bytes escaped.
    pub reason: String,
    headers: Vec<(String, String)>,
}

impl Response {
    /// The status line as the peer would print it, for the check's detail.
    pub fn status_line(&self) -> String {
        format!("SIP/2.0 {} {}", self.status, self.reason)
    }

    /// Whether the final answer is yet to come (1xx).
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// Every value of header `name` (long form, lowercase), in order, a comma-separated
    /// line split into its values for the headers that list (`Via`).
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(move |(_, v)| {
                let split: Box<dyn Iterator<Item = &str>> = if name == "via" {
                    Box::new(v.split(','))
                } else {
                    Box::new(std::iter::once(v.as_str()))
                };
                split.map(str::trim)
            })
    }

    /// The `branch` parameter of the topmost `Via`: the one this client added.
    pub fn top_branch(&self) -> Option<&str> {
        let top = self.values("via").next()?;
        top.split(';').skip(1).find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("branch")
                .then(|| value.trim())
        })
    }

    /// `CSeq`'s number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let mut words = self.values("cseq").next()?.split_whitespace();
        let number = words.next()?.parse().ok()?;
        Some((number, words.next()?))
    }

    /// The `Call-ID`.
    pub fn call_id(&self) -> Option<&str> {
        self.values("call-id").next()
    }
}

/// Why a well-formed response is not the answer to the check's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Mismatch {
    /// The top `Via` branch differs (or is missing).
    #[error("its Via branch is {}", shown(.0))]
    Branch(Option<String>),
    /// The `CSeq` number or method differs.
    #[error("its CSeq is {}", shown(.0))]
    CSeq(Option<String>),
    /// The `Call-ID` differs.
    #[error("its Call-ID is {}", shown(.0))]
    CallId(Option<String>),
}

/// A header value as a mismatch tells it: quoted, or missing.
fn shown(value: &Option<String>) -> String {
    match value {
        Some(value) => format!("\"{}\"", readable(value.as_bytes(), QUOTED_CHARS)),
        None => "missing".into(),
    }
}

/// Whether `response` answers `transaction`: the top `Via` branch (RFC 3261 §17.1.3), the
/// `CSeq` number and method, and the `Call-ID` are ours.
pub fn answers(response: &Response, transaction: &Transaction) -> Result<(), Mismatch> {
    if response.top_branch() != Some(transaction.branch.as_str()) {
        return Err(Mismatch::Branch(response.top_branch().map(str::to_string)));
    }
    if response.cseq() != Some((transaction.cseq, METHOD)) {
        let seen = response.values("cseq").next().map(str::to_string);
        return Err(Mismatch::CSeq(seen));
    }
    if response.call_id() != Some(transaction.call_id.as_str()) {
        return Err(Mismatch::CallId(response.call_id().map(str::to_string)));
    }
    Ok(())
}

/// Parses one whole response, as a UDP datagram brings it: head, blank line, and a body as
/// long as `Content-Length` says.
pub fn parse_response(bytes: &[u8]) -> Result<Response, ParseError> {
    let bytes = skip_leading_newlines(bytes);
    let Some((head, body_start)) = head_end(bytes) else {
        // Say "not SIP" before "truncated" when even the first line is not SIP.
        let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        status_line(&String::from_utf8_lossy(first))?;
        return Err(ParseError::Truncated("no blank line ends the headers"));
    };
    let response = parse_head(&bytes[..head])?;
    if content_length(&response)?.unwrap_or(0) > bytes.len() - body_start {
        return Err(ParseError::Truncated(
            "the body is shorter than Content-Length",
        ));
    }
    Ok(response)
}

/// On a stream (TCP, TLS): the length of the first whole message in `buf`, leading blank
/// lines (keepalives) included, or `None` while more bytes are needed.
pub fn message_length(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let skipped = buf.len() - skip_leading_newlines(buf).len();
    let Some((head, body_start)) = head_end(&buf[skipped..]) else {
        return Ok(None);
    };
    let response = parse_head(&buf[skipped..skipped + head])?;
    // A stream message must carry Content-Length (RFC 3261 §18.3); without one, no body.
    let body = content_length(&response)?.unwrap_or(0);
    let total = skipped + body_start + body;
    Ok((buf.len() >= total).then_some(total))
}

/// The bytes after any CR and LF that precede a message (RFC 3261 §7.5: ignored).
fn skip_leading_newlines(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Where the head ends and the body starts, once the blank line has come (CRLF CRLF, or bare
/// LFs from a lax peer).
fn head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c => Some((l, l + 2)),
        (Some(c), _) => Some((c, c + 4)),
        (None, Some(l)) => Some((l, l + 2)),
        (None, None) => None,
    }
}

/// Parses the status line and the headers, unfolding continuation lines.
fn parse_head(head: &[u8]) -> Result<Response, ParseError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let (status, reason) = status_line(lines.next().unwrap_or_default())?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // A folded line continues the previous header's value (RFC 3261 §7.3.1).
            let Some((_, value)) = headers.last_mut() else {
                return Err(ParseError::BadHeader(readable(
                    line.as_bytes(),
                    QUOTED_CHARS,
                )));
            };
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::BadHeader(readable(
                line.as_bytes(),
                QUOTED_CHARS,
            )));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ParseError::BadHeader(readable(
                line.as_bytes(),
                QUOTED_CHARS,
            )));
        }
        headers.push((long_name(name), value.trim().to_string()));
    }
    Ok(Response {
        status,
        reason,
        headers,
    })
}

/// Reads `SIP/2.0 200 OK` into the code and the reason phrase.
fn status_line(line: &str) -> Result<(u16, String), ParseError> {
    let line = line.trim_end_matches('\r');
    let quoted = || readable(line.as_bytes(), QUOTED_CHARS);
    if !line.starts_with("SIP/") {
        let mut words = line.split(' ');
        let method = words.next().unwrap_or_default();
        let is_request = !method.is_empty()
            && method.chars().all(|c| c.is_ascii_uppercase())
            && line.ends_with(" SIP/2.0");
        return Err(if is_request {
            ParseError::Request(method.to_string())
        } else {
            ParseError::NotSip(quoted())
        });
    }
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next().unwrap_or_default();
    match code.parse::<u16>() {
        Ok(status)
            if version == "SIP/2.0"
                && code.len() == 3
                && code.bytes().all(|b| b.is_ascii_digit())
                && (100..=699).contains(&status) =>
        {
            // The reason goes to logs and answers: on one line, control bytes escaped.
            Ok((status, readable(reason.trim().as_bytes(), QUOTED_CHARS)))
        }
        _ => Err(ParseError::BadStatusLine(quoted())),
    }
}

/// The long, lowercase form of a header name, compact forms expanded (RFC 3261 §7.3.3).
fn long_name(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    let long = match name.as_str() {
        "v" => "via",
        "i" => "call-id",
        "l" => "content-length",
        "f" => "from",
        "t" => "to",
        "m" => "contact",
        "c" => "content-type",
        "e" => "content-encoding",
        "k" => "supported",
        "s" => "subject",
        _ => return name,
    };
    long.to_string()
}

/// The `Content-Length`, if given.
fn content_length(response: &Response) -> Result<Option<usize>, ParseError> {
    response
        .values("content-length")
        .next()
        .map(|v| {
            v.parse()
                .map_err(|_| ParseError::BadContentLength(readable(v.as_bytes(), QUOTED_CHARS)))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transaction() -> Transaction {
        Transaction {
            branch: "z9hG4bKabc".into(),
            call_id: "c1@10.0.0.9".into(),
            tag: "t1".into(),
            cseq: 1,
        }
    }

    fn ok(extra: &str) -> String {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.9:40000;branch=z9hG4bKabc;rport=40000\r\nCall-ID: c1@10.0.0.9\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn builds_an_out_of_dialog_options_request() {
        let target = Target {
            host: "sip1.example.com".into(),
            port: 5060,
        };
        let local: SocketAddr = "10.0.0.9:40000".parse().unwrap();
        let request = options_request(&target, "udp", local, &transaction());
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            request,
            format!(
                "OPTIONS sip:sip1.example.com:5060;transport=udp SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 10.0.0.9:40000;branch=z9hG4bKabc;rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:servicewatch@10.0.0.9>;tag=t1\r\n\
                 To: <sip:sip1.example.com:5060>\r\n\
                 Call-ID: c1@10.0.0.9\r\n\
                 CSeq: 1 OPTIONS\r\n\
                 Contact: <sip:servicewatch@10.0.0.9:40000;transport=udp>\r\n\
                 Accept: application/sdp\r\n\
                 User-Agent: servicewatch/{version}\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        );
        let v6: SocketAddr = "[::1]:40000".parse().unwrap();
        let request = options_request(&target, "tls", v6, &transaction());
        assert!(
            request.contains("Via: SIP/2.0/TLS [::1]:40000;branch="),
            "{request}"
        );
        assert!(
            request.contains("From: <sip:servicewatch@[::1]>;tag="),
            "{request}"
        );
    }

    #[test]
    fn random_transactions_differ_and_carry_the_magic_cookie() {
        let local: SocketAddr = "[::1]:5".parse().unwrap();
        let (a, b) = (Transaction::random(local), Transaction::random(local));
        assert!(a.branch.starts_with("z9hG4bK") && a.branch.len() == 23);
        assert!(a.call_id.ends_with("@[::1]"));
        assert_ne!(a.branch, b.branch);
        assert_ne!(a.call_id, b.call_id);
    }

    #[test]
    fn parses_a_response_and_matches_it_to_its_transaction() {
        let response = parse_response(ok("").as_bytes()).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.status_line(), "SIP/2.0 200 OK");
        assert!(!response.is_provisional());
        assert_eq!(answers(&response, &transaction()), Ok(()));
        let trying = parse_response(b"SIP/2.0 100 Trying\r\n\r\n").unwrap();
        assert!(trying.is_provisional());
        assert_eq!(trying.reason, "Trying");
        let sly = parse_response(b"SIP/2.0 200 O\x1b[31mK\r\n\r\n").unwrap();
        assert_eq!(sly.status_line(), r"SIP/2.0 200 O\u{1b}[31mK");
    }

    #[test]
    fn folded_compact_and_any_case_headers_are_read() {
        let text = "SIP/2.0 503 Service Unavailable\r\n\
                    v: SIP/2.0/UDP 10.0.0.9:40000\r\n \t;branch=z9hG4bKabc\r\n\
                    VIA: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKother\r\n\
                    i: c1@10.0.0.9\r\n\
                    cseq:   1\r\n\tOPTIONS\r\n\
                    l: 0\r\n\r\n";
        let response = parse_response(text.as_bytes()).unwrap();
        assert_eq!(response.status_line(), "SIP/2.0 503 Service Unavailable");
        assert_eq!(response.top_branch(), Some("z9hG4bKabc"));
        assert_eq!(response.cseq(), Some((1, "OPTIONS")));
        assert_eq!(answers(&response, &transaction()), Ok(()));
    }

    #[test]
    fn the_top_via_of_several_on_one_line_is_ours() {
        let two = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;Branch=z9hG4bKabc , SIP/2.0/UDP b;branch=z9hG4bKx\r\nCall-ID: c1@10.0.0.9\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let response = parse_response(two.as_bytes()).unwrap();
        assert_eq!(answers(&response, &transaction()), Ok(()));
        let theirs = two.replace("a;Branch=z9hG4bKabc , ", "");
        let response = parse_response(theirs.as_bytes()).unwrap();
        assert_eq!(
            answers(&response, &transaction()),
            Err(Mismatch::Branch(Some("z9hG4bKx".into())))
        );
    }

    #[test]
    fn an_answer_to_another_transaction_says_what_differs() {
        let answer =
            |text: String| answers(&parse_response(text.as_bytes()).unwrap(), &transaction());
        assert_eq!(
            answer(ok("").replace("CSeq: 1 OPTIONS", "CSeq: 2 OPTIONS")),
            Err(Mismatch::CSeq(Some("2 OPTIONS".into())))
        );
        assert_eq!(
            answer(ok("").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")),
            Err(Mismatch::CSeq(Some("1 INVITE".into())))
        );
        assert_eq!(
            answer(ok("").replace("Call-ID: c1@10.0.0.9", "Call-ID: c2@10.0.0.9")),
            Err(Mismatch::CallId(Some("c2@10.0.0.9".into())))
        );
        assert_eq!(
            answer(ok("").replace("Call-ID: c1@10.0.0.9\r\n", "")),
            Err(Mismatch::CallId(None))
        );
    }

    #[test]
    fn what_is_not_a_sip_response_is_told() {
        let parse = |bytes: &[u8]| parse_response(bytes).unwrap_err();
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\n\r\n"),
            ParseError::NotSip("HTTP/1.1 200 OK".into())
        );
        assert_eq!(
            parse(b"\xff\x00garbage"),
            ParseError::NotSip("\u{fffd}\\u{0}garbage".into())
        );
        assert_eq!(parse(b""), ParseError::NotSip(String::new()));
        assert_eq!(
            parse(b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
            ParseError::Request("OPTIONS".into())
        );
        for bad in [
            "SIP/2.0 20 OK",
            "SIP/2.0 2000 OK",
            "SIP/3.0 200 OK",
            "SIP/2.0 OK",
            "SIP/2.0 099 x",
        ] {
            assert!(
                matches!(
                    parse(format!("{bad}\r\n\r\n").as_bytes()),
                    ParseError::BadStatusLine(_)
                ),
                "{bad}"
            );
        }
        assert_eq!(
            parse(b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n"),
            ParseError::BadHeader("no colon here".into())
        );
        assert_eq!(
            parse(b"SIP/2.0 200 OK\r\nContent-Length: ten\r\n\r\n"),
            ParseError::BadContentLength("ten".into())
        );
    }

    #[test]
    fn a_truncated_answer_is_told() {
        let whole = ok("");
        assert_eq!(
            parse_response(&whole.as_bytes()[..40]).unwrap_err(),
            ParseError::Truncated("no blank line ends the headers")
        );
        let with_body = whole.replace("Content-Length: 0", "Content-Length: 10");
        assert_eq!(
            parse_response(format!("{with_body}short").as_bytes()).unwrap_err(),
            ParseError::Truncated("the body is shorter than Content-Length")
        );
        // No prefix of a response panics.
        for end in 0..whole.len() {
            let _ = parse_response(&whole.as_bytes()[..end]);
            let _ = message_length(&whole.as_bytes()[..end]);
        }
    }

    #[test]
    fn a_stream_is_cut_into_messages_by_content_length() {
        let body = "SIP/2.0 200 OK\r\nl: 4\r\n\r\nabcd";
        let two = format!("\r\n\r\n{body}SIP/2.0 200 OK\r\n\r\n");
        assert_eq!(message_length(two.as_bytes()), Ok(Some(4 + body.len())));
        assert_eq!(message_length(&body.as_bytes()[..body.len() - 1]), Ok(None));
        assert_eq!(message_length(b"SIP/2.0 200 OK\r\nVia: x"), Ok(None));
        assert_eq!(
            message_length(b"garbage\r\n\r\n"),
            Err(ParseError::NotSip("garbage".into()))
        );
    }
}
