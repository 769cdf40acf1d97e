//! The Bayeux 1.0 protocol (CometD), as pure code: parsing a batch of messages, channel
//! names and patterns, subscriptions, and the replies a CometD client expects.
//!
//! Architecture invariant: no I/O and no actors here. Sessions and transports live in
//! `crate::notify`; they call these functions and move the results around.

pub(crate) mod channel;
pub mod message;
pub(crate) mod refusal;
pub(crate) mod reply;
pub(crate) mod subscriptions;

/// The protocol version servicewatch speaks.
pub(crate) const VERSION: &str = "1.0";
/// The topic of service state changes.
pub(crate) const SERVICES_CHANNEL: &str = "/notifications/services";
/// The two transports, by their Bayeux connection-type names.
pub(crate) const WEBSOCKET: &str = "websocket";
/// See [`WEBSOCKET`].
pub(crate) const LONG_POLLING: &str = "long-polling";

/// One message as a batch of one (`[message]`), the form a WebSocket frame carries. Built
/// once per change and shared; a long-polling answer takes the inside back with
/// `unframe`, without copying.
pub fn frame(message: &[u8]) -> actix_web::web::Bytes {
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.push(b'[');
    framed.extend_from_slice(message);
    framed.push(b']');
    framed.into()
}

/// The message inside a batch of one made by [`frame`].
pub(crate) fn unframe(framed: &actix_web::web::Bytes) -> actix_web::web::Bytes {
    framed.slice(1..framed.len().saturating_sub(1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_unframe() {
        let framed = frame(br#"{"a":1}"#);
        assert_eq!(&framed[..], br#"[{"a":1}]"#);
        assert_eq!(&unframe(&framed)[..], br#"{"a":1}"#);
    }
}
