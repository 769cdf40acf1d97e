//! Replies to meta messages, in the shape CometD clients check: the request's channel,
//! its `id` echoed, `successful`, and on failure `error` as `code:args:message` with
//! `advice` telling the client what to do next.

use serde_json::{Map, Value, json};

use super::VERSION;
use super::channel;
use super::refusal::Refusal;

/// `advice`: what the client should do after this reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advice {
    /// `retry`, `handshake` or `none`.
    pub reconnect: &'static str,
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

impl Advice {
    fn to_json(self) -> Value {
        json!({"reconnect": self.reconnect, "interval": self.interval_ms, "timeout": self.timeout_ms})
    }
}

fn base(
    channel: &str,
    id: Option<&Value>,
    client_id: Option<&str>,
    successful: bool,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("channel".into(), Value::from(channel));
    if let Some(id) = id {
        m.insert("id".into(), id.clone());
    }
    if let Some(c) = client_id {
        m.insert("clientId".into(), Value::from(c));
    }
    m.insert("successful".into(), Value::from(successful));
    m
}

/// A successful handshake.
pub fn handshake(
    id: Option<&Value>,
    client_id: &str,
    connection_types: &[&str],
    advice: Advice,
) -> Value {
    let mut m = base(channel::HANDSHAKE, id, Some(client_id), true);
    m.insert("version".into(), Value::from(VERSION));
    m.insert("supportedConnectionTypes".into(), json!(connection_types));
    m.insert("advice".into(), advice.to_json());
    Value::Object(m)
}

/// A handshake refused (for instance when the server has too many sessions).
pub fn handshake_refused(id: Option<&Value>, error: &Refusal, advice: Advice) -> Value {
    let mut m = base(channel::HANDSHAKE, id, None, false);
    m.insert("version".into(), Value::from(VERSION));
    m.insert(
        "supportedConnectionTypes".into(),
        json!([super::WEBSOCKET, super::LONG_POLLING]),
    );
    m.insert("error".into(), Value::from(error.as_str()));
    m.insert("advice".into(), advice.to_json());
    Value::Object(m)
}

/// A successful connect.
pub fn connect(id: Option<&Value>, client_id: &str, advice: Option<Advice>) -> Value {
    let mut m = base(channel::CONNECT, id, Some(client_id), true);
    if let Some(a) = advice {
        m.insert("advice".into(), a.to_json());
    }
    Value::Object(m)
}

/// A successful subscribe or unsubscribe of `subscription`.
pub fn subscription(
    channel: &str,
    id: Option<&Value>,
    client_id: &str,
    subscription: &str,
) -> Value {
    let mut m = base(channel, id, Some(client_id), true);
    m.insert("subscription".into(), Value::from(subscription));
    Value::Object(m)
}

/// A failed subscribe or unsubscribe of `subscription`.
pub fn subscription_error(
    channel: &str,
    id: Option<&Value>,
    client_id: &str,
    subscription: &str,
    error: &Refusal,
) -> Value {
    let mut m = base(channel, id, Some(client_id), false);
    m.insert("subscription".into(), Value::from(subscription));
    m.insert("error".into(), Value::from(error.as_str()));
    Value::Object(m)
}

/// A successful disconnect.
pub fn disconnect(id: Option<&Value>, client_id: &str) -> Value {
    Value::Object(base(channel::DISCONNECT, id, Some(client_id), true))
}

/// A failure on `channel`.
pub fn error(channel: &str, id: Option<&Value>, client_id: Option<&str>, error: &Refusal) -> Value {
    let mut m = base(channel, id, client_id, false);
    m.insert("error".into(), Value::from(error.as_str()));
    Value::Object(m)
}

/// The reply to a message naming a client the server does not know (never handshaken,
/// timed out, or dropped as a slow consumer): handshake again.
pub fn unknown_client(channel: &str, id: Option<&Value>, client_id: Option<&str>) -> Value {
    let mut m = base(channel, id, client_id, false);
    m.insert(
        "error".into(),
        Value::from(Refusal::unknown_client(client_id.unwrap_or("")).as_str()),
    );
    m.insert(
        "advice".into(),
        json!({"reconnect": "handshake", "interval": 0}),
    );
    Value::Object(m)
}

/// Renders a batch of replies (as values) and pre-serialized messages as one JSON array.
pub fn render_batch<'a>(
    replies: impl IntoIterator<Item = &'a Value>,
    raw: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(b'[');
    let mut first = true;
    let mut comma = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    for message in raw {
        comma(&mut out);
        out.extend_from_slice(message);
    }
    for reply in replies {
        comma(&mut out);
        // Serializing a Value built from strings and numbers cannot fail.
        out.extend_from_slice(&serde_json::to_vec(reply).unwrap_or_default());
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADVICE: Advice = Advice {
        reconnect: "retry",
        interval_ms: 0,
        timeout_ms: 30000,
    };

    #[test]
    fn handshake_shape() {
        let r = handshake(
            Some(&json!("1")),
            "abc",
            &["websocket", "long-polling"],
            ADVICE,
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"channel":"/meta/handshake","id":"1","clientId":"abc","successful":true,"version":"1.0","supportedConnectionTypes":["websocket","long-polling"],"advice":{"reconnect":"retry","interval":0,"timeout":30000}}"#
        );
    }

    #[test]
    fn errors_and_unknown_clients() {
        let r = subscription_error(
            "/meta/subscribe",
            None,
            "c",
            "/meta/x",
            &Refusal::forbidden("/meta/x", "meta channels cannot be subscribed to"),
        );
        assert_eq!(r["successful"], false);
        assert_eq!(
            r["error"],
            "403:/meta/x:meta channels cannot be subscribed to"
        );
        assert_eq!(r["subscription"], "/meta/x");
        let u = unknown_client("/meta/connect", Some(&json!("9")), Some("zz"));
        assert_eq!(u["error"], "402:zz:Unknown client");
        assert_eq!(u["id"], "9");
        assert_eq!(u["advice"]["reconnect"], "handshake");
    }

    #[test]
    fn renders_raw_messages_before_replies() {
        let replies = [connect(None, "c", None)];
        let raw: [&[u8]; 1] = [br#"{"channel":"/notifications/services","data":{}}"#];
        assert_eq!(
            String::from_utf8(render_batch(&replies, raw)).unwrap(),
            r#"[{"channel":"/notifications/services","data":{}},{"channel":"/meta/connect","clientId":"c","successful":true}]"#
        );
        assert_eq!(render_batch(&[], std::iter::empty::<&[u8]>()), b"[]");
    }
}
