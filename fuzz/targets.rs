//! What each fuzz target feeds and checks. Shared by the fuzzer (`fuzz_targets/`, one
//! binary per target) and by the regression tests (`tests/fuzz_regressions.rs`), which run
//! every input kept under `fuzz/regressions/<target>/` on the stable toolchain.
//!
//! Beyond "does not panic", each target checks what a user would notice: refusals are one
//! readable line, and a parse gives the same answer however its input is cut.

#![allow(dead_code)]

use std::collections::BTreeSet;

use servicewatch::api::query::{self, Fields};
use servicewatch::bayeux::message::{self, Request};
use servicewatch::probe::sip::message as sip;
use servicewatch::probe::{cql, http};

/// One line, no control characters: what a log line or an error answer can carry.
fn assert_readable(what: &str, text: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "{what} is not one readable line: {text:?}"
    );
}

/// A Bayeux batch as a transport receives it: parsed, then each message turned into a
/// request or the reply refusing it.
pub fn bayeux_batch(data: &[u8]) {
    let batch = match message::parse_batch(data) {
        Ok(batch) => batch,
        Err(refusal) => return assert_readable("a batch refusal", &refusal),
    };
    assert!(!batch.is_empty(), "an empty batch is refused");
    let connecting = message::connecting_clients(&batch).count();
    assert!(connecting <= batch.len());
    for m in batch {
        match message::parse(m) {
            Ok(request) => {
                let _ = (request.channel(), request.id(), request.client_id());
                if let Request::Subscribe { subscriptions, .. } = &request {
                    assert!(!subscriptions.is_empty(), "a subscribe names a channel");
                }
            }
            Err(reply) => {
                assert_eq!(reply["successful"], false, "{reply}");
                let error = reply["error"].as_str().expect("a refusal has an error");
                assert_readable("a Bayeux error", error);
            }
        }
    }
}

/// The attributes a snapshot knows, as the query parser checks names against them.
fn attributes() -> BTreeSet<String> {
    [
        "id",
        "name",
        "type",
        "state",
        "stateSince",
        "servingInstance",
        "uri",
        "path",
        "contactCenterId",
        "site",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// A query string of `GET /services` (first byte odd) or `GET /services/{id}`.
pub fn services_query(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let known = attributes();
    let filters_allowed = mode % 2 == 1;
    match query::parse(text, &known, filters_allowed) {
        Ok(parsed) => {
            if let Some(Fields::Only(names)) = &parsed.fields {
                for name in names {
                    assert!(known.contains(name), "{name:?} is not an attribute");
                }
                let resource = serde_json::Map::from_iter(
                    known
                        .iter()
                        .map(|k| (k.clone(), serde_json::Value::from(k.as_str()))),
                );
                let projected = query::project(&resource, names);
                assert!(projected.keys().all(|k| names.contains(k)));
            }
            assert!(filters_allowed || parsed.filters.is_empty());
        }
        Err(refusal) => assert_readable("a query refusal", &refusal.to_string()),
    }
}

/// A configuration file's text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(refusal) = servicewatch::config::parse(text, "fuzz.toml", None) {
        assert_readable("a configuration refusal", &refusal.to_string());
    }
}

/// An HTTP answer to a probe, arriving in two pieces cut where the first two bytes say;
/// the third byte says whether the body is judged. The result must be the one of the
/// answer arriving whole.
pub fn http_answer(data: &[u8]) {
    let [a, b, mode, answer @ ..] = data else {
        return;
    };
    let wants_body = mode % 2 == 1;
    let whole = {
        let mut reader = http::Answer::new(wants_body);
        reader.push(answer).and_then(|_| reader.finish())
    };
    let cut = (usize::from(*a) << 8 | usize::from(*b)) % (answer.len() + 1);
    let pieces = {
        let mut reader = http::Answer::new(wants_body);
        match reader.push(&answer[..cut]) {
            Ok(true) => reader.finish(),
            Ok(false) => reader.push(&answer[cut..]).and_then(|_| reader.finish()),
            Err(e) => Err(e),
        }
    };
    match (&whole, &pieces) {
        (Err(e), _) | (_, Err(e)) => assert_readable("an HTTP probe refusal", e),
        _ => {}
    }
    if wants_body {
        assert_eq!(whole, pieces, "cut at {cut}");
    } else {
        let status = |r: &Result<Option<(u16, Vec<u8>)>, String>| {
            r.as_ref().ok().map(|a| a.as_ref().map(|(s, _)| *s))
        };
        assert_eq!(status(&whole), status(&pieces), "cut at {cut}");
    }
}

/// A CQL answer to OPTIONS: a frame header and what follows it.
pub fn cql_frame(data: &[u8]) {
    let Some((header, rest)) = data.split_first_chunk::<{ cql::HEADER_LEN }>() else {
        return;
    };
    match cql::parse_header(header) {
        Ok(header) => {
            let body = &rest[..rest.len().min(header.body_len as usize)];
            let (_, reason) = cql::judge(&header, body);
            assert_readable("a CQL probe's reason", &reason);
        }
        Err(refusal) => assert_readable("a CQL refusal", &refusal),
    }
}

/// A SIP answer as the `sip` check reads it: whole (a UDP datagram), and cut out of a stream
/// (TCP, TLS) however its bytes arrive, the cut giving the same message as the whole.
pub fn sip_response(data: &[u8]) {
    match sip::parse_response(data) {
        Ok(response) => {
            assert!((100..=699).contains(&response.status));
            assert_readable("a SIP status line", &response.status_line());
        }
        Err(refusal) => assert_readable("a SIP refusal", &refusal.to_string()),
    }
    let whole = sip::message_length(data);
    if let Ok(Some(length)) = whole {
        assert!(length <= data.len());
        assert!(
            sip::parse_response(&data[..length]).is_ok(),
            "a message cut from a stream parses"
        );
    }
    for cut in 0..data.len() {
        let part = sip::message_length(&data[..cut]);
        assert!(
            part == Ok(None) || part == whole,
            "a prefix gives {part:?}, the whole {whole:?}"
        );
    }
}
