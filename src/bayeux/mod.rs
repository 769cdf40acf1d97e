//! The Bayeux 1.0 protocol (CometD), as pure code: parsing a batch of messages, channel
//! names and patterns, subscriptions, and the replies a CometD client expects.
//!
//! Architecture invariant: no I/O and no actors here. Sessions and transports live in
//! [`crate::notify`]; they call these functions and move the results around.

pub mod channel;
pub mod message;
pub mod refusal;
pub mod reply;
pub mod subscriptions;

/// The protocol version servicewatch speaks.
pub const VERSION: &str = "1.0";
/// The topic of service state changes.
pub const SERVICES_CHANNEL: &str = "/notifications/services";
/// The two transports, by their Bayeux connection-type names.
pub const WEBSOCKET: &str = "websocket";
pub const LONG_POLLING: &str = "long-polling";

/// One message as a batch of one (`[message]`), the form a WebSocket frame carries. Built
/// once per change and shared; a long-polling answer takes the inside back with
/// [`unframe`], without copying.
pub fn frame(message: &[u8]) -> actix_web::web::Bytes {
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.push(b'[');
    framed.extend_from_slice(message);
    framed.push(b']');
    framed.into()
}

/// The message inside a batch of one made by [`frame`].
pub fn unframe(framed: &actix_web::web::Bytes) -> actix_web::web::Bytes {
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
