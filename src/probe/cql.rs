//! The `cql` check: Cassandra's native protocol answers an OPTIONS request with SUPPORTED.
//!
//! This is the cheapest request the protocol has: no authentication, no keyspace, no query.
//! A node that answers it has its native transport up, which is what Provisioning needs.
//! Frames follow the native protocol v4 specification (Cassandra 2.2 and later).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Target;
use crate::domain::health::ProbeOutcome;

/// Protocol version 4, request direction.
const VERSION_REQUEST: u8 = 0x04;
/// The response direction bit of the version byte.
const RESPONSE_BIT: u8 = 0x80;
/// ERROR: the node refuses the request (protocol spec, section 4.2.1).
pub(crate) const OPCODE_ERROR: u8 = 0x00;
/// OPTIONS: asks the node what it supports; the probe's one request.
pub(crate) const OPCODE_OPTIONS: u8 = 0x05;
/// SUPPORTED: the answer to OPTIONS a live node gives.
pub(crate) const OPCODE_SUPPORTED: u8 = 0x06;
/// The frame header: version, flags, stream (2 bytes), opcode, body length (4 bytes).
pub const HEADER_LEN: usize = 9;
/// The largest response body a probe reads; SUPPORTED is a few hundred bytes.
const MAX_BODY_BYTES: u32 = 64 * 1024;

/// The OPTIONS request: stream 0, empty body.
pub(crate) const OPTIONS_FRAME: [u8; HEADER_LEN] =
    [VERSION_REQUEST, 0, 0, 0, OPCODE_OPTIONS, 0, 0, 0, 0];

/// The SUPPORTED frame answering the request on `stream`, listing `options` (a string
/// multimap: each key with its values), as a Cassandra node answers OPTIONS. The probe only
/// reads it; the stand-in backends and the tests write it, with this one encoder.
pub fn supported_frame(stream: u16, options: &[(&str, &[&str])]) -> Vec<u8> {
    // Lengths are `[short]`s; the options a stand-in lists are a few short words.
    let short = |b: &mut Vec<u8>, n: usize| b.extend_from_slice(&(n as u16).to_be_bytes());
    let string = |b: &mut Vec<u8>, s: &str| {
        short(b, s.len());
        b.extend_from_slice(s.as_bytes());
    };
    let mut body = Vec::new();
    short(&mut body, options.len());
    for (key, values) in options {
        string(&mut body, key);
        short(&mut body, values.len());
        for value in *values {
            string(&mut body, value);
        }
    }
    let mut frame = vec![VERSION_REQUEST | RESPONSE_BIT, 0];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.push(OPCODE_SUPPORTED);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// A response frame header.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame is (SUPPORTED, ERROR...).
    pub opcode: u8,
    /// The body's length, which follows the header.
    pub body_len: u32,
}

/// Sends OPTIONS and judges the answer within `timeout`.
pub(crate) async fn probe(
    target: &Target,
    timeout: Duration,
) -> Result<(ProbeOutcome, String), String> {
    match tokio::time::timeout(timeout, exchange(target, timeout)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no CQL answer from {target} within {timeout:?}")),
    }
}

async fn exchange(target: &Target, timeout: Duration) -> Result<(ProbeOutcome, String), String> {
    let mut stream = super::connect(target, timeout).await?;
    stream
        .write_all(&OPTIONS_FRAME)
        .await
        .map_err(|e| format!("sending OPTIONS to {target} failed: {e}"))?;
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| format!("reading the CQL answer of {target} failed: {e}"))?;
    let header = parse_header(&header)?;
    let mut body = vec![0u8; header.body_len as usize];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("reading the CQL answer of {target} failed: {e}"))?;
    Ok(judge(&header, &body))
}

/// Parses a response header, refusing what is not a CQL response.
pub fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<FrameHeader, String> {
    if bytes[0] & RESPONSE_BIT == 0 {
        return Err(format!(
            "the answer is not a CQL response (first byte {:#04x})",
            bytes[0]
        ));
    }
    let body_len = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    if body_len > MAX_BODY_BYTES {
        return Err(format!(
            "the CQL answer announces {body_len} bytes, more than an OPTIONS answer holds"
        ));
    }
    Ok(FrameHeader {
        opcode: bytes[4],
        body_len,
    })
}

/// Decides the outcome of a complete response.
pub fn judge(header: &FrameHeader, body: &[u8]) -> (ProbeOutcome, String) {
    match header.opcode {
        OPCODE_SUPPORTED => {
            let version = cql_version(body).unwrap_or_else(|| "unknown".to_string());
            (
                ProbeOutcome::Up,
                format!("SUPPORTED (CQL_VERSION {version})"),
            )
        }
        OPCODE_ERROR => (
            ProbeOutcome::Down,
            format!("CQL error: {}", error_message(body)),
        ),
        other => (
            ProbeOutcome::Down,
            format!("unexpected CQL opcode {other:#04x} in answer to OPTIONS"),
        ),
    }
}

/// Reads `[short n][string][short n][string]...` values.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn short(&mut self) -> Option<u16> {
        let (head, rest) = self.0.split_first_chunk::<2>()?;
        self.0 = rest;
        Some(u16::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<String> {
        let len = self.short()? as usize;
        if self.0.len() < len {
            return None;
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(super::readable(text, 200))
    }
}

/// The first CQL_VERSION of a SUPPORTED body (a string multimap).
fn cql_version(body: &[u8]) -> Option<String> {
    let mut reader = Reader(body);
    for _ in 0..reader.short()? {
        let key = reader.string()?;
        let count = reader.short()?;
        let mut values = Vec::with_capacity(count as usize);
        for _ in 0..count {
            values.push(reader.string()?);
        }
        if key == "CQL_VERSION" {
            return values.into_iter().next();
        }
    }
    None
}

/// The message of an ERROR body: `[int code][string message]`.
fn error_message(body: &[u8]) -> String {
    let Some((code, rest)) = body.split_first_chunk::<4>() else {
        return "truncated error".to_string();
    };
    let message = Reader(rest).string().unwrap_or_default();
    format!("{:#06x} {message}", u32::from_be_bytes(*code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SUPPORTED frame as Cassandra 4 sends it (abridged).
    fn supported() -> Vec<u8> {
        supported_frame(
            0,
            &[
                ("COMPRESSION", &["snappy", "lz4"]),
                ("CQL_VERSION", &["3.4.5"]),
            ],
        )
    }

    #[test]
    fn options_is_a_v4_request_with_an_empty_body() {
        assert_eq!(OPTIONS_FRAME, [0x04, 0, 0, 0, 0x05, 0, 0, 0, 0]);
    }

    #[test]
    fn a_supported_frame_is_encoded_as_the_protocol_says() {
        assert_eq!(
            supported_frame(0x0102, &[("CQL_VERSION", &["3.4.5"])]),
            b"\x84\x00\x01\x02\x06\x00\x00\x00\x18\x00\x01\x00\x0bCQL_VERSION\x00\x01\x00\x053.4.5"
        );
    }

    #[test]
    fn supported_is_up_and_names_the_version() {
        let frame = supported();
        let (head, body) = frame.split_at(HEADER_LEN);
        let header = parse_header(head.try_into().unwrap()).unwrap();
        assert_eq!(header.body_len as usize, body.len());
        let (outcome, detail) = judge(&header, body);
        assert_eq!(outcome, ProbeOutcome::Up);
        assert_eq!(detail, "SUPPORTED (CQL_VERSION 3.4.5)");
    }

    #[test]
    fn error_is_down_with_its_message() {
        let mut body = 0x000Au32.to_be_bytes().to_vec();
        body.extend_from_slice(&(7u16).to_be_bytes());
        body.extend_from_slice(b"bad ver");
        let header = FrameHeader {
            opcode: OPCODE_ERROR,
            body_len: body.len() as u32,
        };
        let (outcome, detail) = judge(&header, &body);
        assert_eq!(outcome, ProbeOutcome::Down);
        assert_eq!(detail, "CQL error: 0x000a bad ver");
    }

    #[test]
    fn refuses_requests_and_huge_bodies() {
        assert!(
            parse_header(&OPTIONS_FRAME)
                .unwrap_err()
                .contains("not a CQL response")
        );
        assert!(parse_header(&[0x84, 0, 0, 0, 6, 0x7f, 0, 0, 0]).is_err());
    }

    #[test]
    fn survives_a_truncated_body() {
        let header = FrameHeader {
            opcode: OPCODE_SUPPORTED,
            body_len: 3,
        };
        assert_eq!(
            judge(&header, &[0, 1, 0]).1,
            "SUPPORTED (CQL_VERSION unknown)"
        );
        assert_eq!(error_message(&[0, 0]), "truncated error");
    }
}
