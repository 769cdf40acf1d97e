//! Incoming Bayeux messages: a batch (a JSON array of messages, or one object) and each
//! message turned into a [`Request`], or into the error reply that refuses it.

use serde_json::{Map, Value};

use super::refusal::Refusal;
use super::{channel, reply};

/// What a client asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The client's `supportedConnectionTypes` are not read: servicewatch offers both
    /// transports to every client, and the client picks.
    Handshake {
        /// The message's `id`, echoed in the reply.
        id: Option<Value>,
    },
    /// `/meta/connect`: the poll a reply is held on until there is something to deliver.
    Connect {
        /// The message's `id`, echoed in the reply.
        id: Option<Value>,
        /// The session the client was given at handshake.
        client_id: String,
    },
    /// `/meta/subscribe`.
    Subscribe {
        /// The message's `id`, echoed in the reply.
        id: Option<Value>,
        /// The session the client was given at handshake.
        client_id: String,
        /// The channel patterns, one or several.
        subscriptions: Vec<String>,
        /// `ext.snapshot = true`: send the current state of every service first.
        snapshot: bool,
        /// `ext.revision = N` (on a cluster): send the changes after revision N first, or
        /// every service's current state if they are no longer known.
        resume: Option<i64>,
    },
    /// `/meta/unsubscribe`.
    Unsubscribe {
        /// The message's `id`, echoed in the reply.
        id: Option<Value>,
        /// The session the client was given at handshake.
        client_id: String,
        /// The channel patterns, one or several.
        subscriptions: Vec<String>,
    },
    /// `/meta/disconnect`: the session ends.
    Disconnect {
        /// The message's `id`, echoed in the reply.
        id: Option<Value>,
        /// The session the client was given at handshake.
        client_id: String,
    },
    /// A message on a non-meta channel: a publish, which servicewatch refuses.
    Publish {
        /// The message's `id`, echoed in the refusal.
        id: Option<Value>,
        /// The session it names, if any (the refusal does not need one).
        client_id: Option<String>,
        /// The channel published to.
        channel: String,
    },
}

impl Request {
    /// The clientId the message names, for the meta channels that need one.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Request::Handshake { .. } => None,
            Request::Publish { client_id, .. } => client_id.as_deref(),
            Request::Connect { client_id, .. }
            | Request::Subscribe { client_id, .. }
            | Request::Unsubscribe { client_id, .. }
            | Request::Disconnect { client_id, .. } => Some(client_id),
        }
    }

    /// The channel, for replies.
    pub fn channel(&self) -> &str {
        match self {
            Request::Handshake { .. } => channel::HANDSHAKE,
            Request::Connect { .. } => channel::CONNECT,
            Request::Subscribe { .. } => channel::SUBSCRIBE,
            Request::Unsubscribe { .. } => channel::UNSUBSCRIBE,
            Request::Disconnect { .. } => channel::DISCONNECT,
            Request::Publish { channel, .. } => channel,
        }
    }

    /// The message id, echoed in replies.
    pub fn id(&self) -> Option<&Value> {
        match self {
            Request::Handshake { id, .. }
            | Request::Connect { id, .. }
            | Request::Subscribe { id, .. }
            | Request::Unsubscribe { id, .. }
            | Request::Disconnect { id, .. }
            | Request::Publish { id, .. } => id.as_ref(),
        }
    }
}

/// Parses a batch: a JSON array of message objects, or a single object.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON: {e}"))?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err("a Bayeux batch is a JSON array of message objects".to_string()),
    };
    if items.is_empty() {
        return Err("an empty batch".to_string());
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(map) => Ok(map),
            _ => Err("every message of a batch must be a JSON object".to_string()),
        })
        .collect()
}

/// The clientIds that the `/meta/connect` messages of a batch name, before the batch is
/// parsed further: a transport attaches to them.
pub fn connecting_clients(batch: &[Map<String, Value>]) -> impl Iterator<Item = &str> {
    batch.iter().filter_map(|message| {
        let connects = message.get("channel").and_then(Value::as_str) == Some(channel::CONNECT);
        connects
            .then(|| message.get("clientId").and_then(Value::as_str))
            .flatten()
    })
}

/// Turns one message into a request, or into the reply that refuses it.
pub fn parse(mut message: Map<String, Value>) -> Result<Request, Value> {
    let envelope = Envelope::read(&mut message)?;
    match envelope.channel.as_str() {
        channel::HANDSHAKE => Ok(Request::Handshake { id: envelope.id }),
        channel::CONNECT => Ok(Request::Connect {
            client_id: envelope.client()?,
            id: envelope.id,
        }),
        channel::SUBSCRIBE => subscribe(envelope, &message),
        channel::UNSUBSCRIBE => unsubscribe(envelope, &message),
        channel::DISCONNECT => Ok(Request::Disconnect {
            client_id: envelope.client()?,
            id: envelope.id,
        }),
        _ => publish(envelope),
    }
}

/// What every message carries, read before its channel says what else to read: the
/// refusals of the other fields echo it.
struct Envelope {
    /// Kept only when a string or a number: anything else is not echoed.
    id: Option<Value>,
    client_id: Option<String>,
    channel: String,
}

impl Envelope {
    /// Takes the id, clientId and channel out of `message`; a message without a channel
    /// cannot be answered on one, so its refusal goes to `/meta/unsuccessful`.
    fn read(message: &mut Map<String, Value>) -> Result<Envelope, Value> {
        let id = message
            .remove("id")
            .filter(|v| v.is_string() || v.is_number());
        let client_id = message
            .remove("clientId")
            .and_then(|v| v.as_str().map(str::to_string));
        match message
            .remove("channel")
            .and_then(|v| v.as_str().map(str::to_string))
        {
            Some(channel) => Ok(Envelope {
                id,
                client_id,
                channel,
            }),
            None => Err(reply::error(
                channel::UNSUCCESSFUL,
                id.as_ref(),
                client_id.as_deref(),
                &Refusal::bad_request("", "a message needs a channel"),
            )),
        }
    }

    /// The clientId a meta channel after the handshake needs; without one the client is
    /// told to handshake again, as for a clientId the server does not know.
    fn client(&self) -> Result<String, Value> {
        self.client_id
            .clone()
            .ok_or_else(|| reply::unknown_client(&self.channel, self.id.as_ref(), None))
    }

    /// The reply refusing this message with `refusal`.
    fn refuse(&self, client_id: Option<&str>, refusal: &Refusal) -> Value {
        reply::error(&self.channel, self.id.as_ref(), client_id, refusal)
    }

    /// The clientId, and the channel patterns the message's `subscription` names (one is
    /// required), of a `/meta/subscribe` or `/meta/unsubscribe`.
    fn subscriptions(&self, message: &Map<String, Value>) -> Result<(String, Vec<String>), Value> {
        let client_id = self.client()?;
        let subscriptions = strings(message.get("subscription"));
        if subscriptions.is_empty() {
            return Err(self.refuse(
                Some(&client_id),
                &Refusal::bad_request("", "a subscription is required"),
            ));
        }
        Ok((client_id, subscriptions))
    }
}

/// `/meta/subscribe`, with what its `ext` asks to be sent first.
fn subscribe(envelope: Envelope, message: &Map<String, Value>) -> Result<Request, Value> {
    let (client_id, subscriptions) = envelope.subscriptions(message)?;
    let ext = message.get("ext");
    let resume = revision(ext).map_err(|refusal| envelope.refuse(Some(&client_id), &refusal))?;
    Ok(Request::Subscribe {
        id: envelope.id,
        client_id,
        subscriptions,
        snapshot: snapshot(ext),
        resume,
    })
}

/// `/meta/unsubscribe`.
fn unsubscribe(envelope: Envelope, message: &Map<String, Value>) -> Result<Request, Value> {
    let (client_id, subscriptions) = envelope.subscriptions(message)?;
    Ok(Request::Unsubscribe {
        id: envelope.id,
        client_id,
        subscriptions,
    })
}

/// A message on any other channel: a publish if the channel is a valid non-meta one (for
/// the session to refuse as such), else refused here.
fn publish(envelope: Envelope) -> Result<Request, Value> {
    let channel = envelope.channel.as_str();
    let refusal = if channel::is_meta(channel) {
        "unknown meta channel"
    } else if !channel::is_valid(channel) {
        "invalid channel name"
    } else {
        return Ok(Request::Publish {
            id: envelope.id,
            client_id: envelope.client_id,
            channel: envelope.channel,
        });
    };
    Err(envelope.refuse(
        envelope.client_id.as_deref(),
        &Refusal::bad_request(channel, refusal),
    ))
}

/// `ext.snapshot`: whether every service's current state is sent first; anything but
/// `true` is no.
fn snapshot(ext: Option<&Value>) -> bool {
    ext.and_then(|ext| ext.get("snapshot"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `ext.revision`: the revision a client resumes from. Absent or null is no resume; any
/// value but a whole number of at least 0 is refused, since a guess would resume from the
/// wrong change.
fn revision(ext: Option<&Value>) -> Result<Option<i64>, Refusal> {
    match ext.and_then(|ext| ext.get("revision")) {
        None | Some(Value::Null) => Ok(None),
        Some(revision) => revision
            .as_i64()
            .filter(|r| *r >= 0)
            .map(Some)
            .ok_or_else(|| {
                Refusal::bad_request(
                    "ext.revision",
                    "must be the revision of the last change received, a whole number",
                )
            }),
    }
}

/// A string, or an array of strings, as a list.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Result<Request, Value> {
        parse(v.as_object().unwrap().clone())
    }

    #[test]
    fn batches_are_arrays_or_one_object() {
        assert_eq!(
            parse_batch(br#"[{"channel":"/meta/handshake"}]"#)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            parse_batch(br#"{"channel":"/meta/handshake"}"#)
                .unwrap()
                .len(),
            1
        );
        assert!(
            parse_batch(b"[{")
                .unwrap_err()
                .starts_with("malformed JSON")
        );
        assert!(parse_batch(b"42").unwrap_err().contains("JSON array"));
        assert!(parse_batch(b"[1]").unwrap_err().contains("JSON object"));
        assert_eq!(parse_batch(b"[]").unwrap_err(), "an empty batch");
    }

    #[test]
    fn finds_the_clients_a_batch_connects() {
        let batch = parse_batch(
            br#"[{"channel":"/meta/connect","clientId":"a"},{"channel":"/meta/subscribe","clientId":"b"},{"channel":"/meta/connect"},{"channel":"/meta/connect","clientId":7},{"channel":"/meta/connect","clientId":"c"}]"#,
        )
        .unwrap();
        assert_eq!(connecting_clients(&batch).collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn parses_meta_messages() {
        assert_eq!(
            one(
                json!({"channel":"/meta/handshake","id":"1","version":"1.0","supportedConnectionTypes":["websocket","long-polling"]})
            ),
            Ok(Request::Handshake {
                id: Some(json!("1"))
            })
        );
        assert_eq!(
            one(
                json!({"channel":"/meta/subscribe","id":7,"clientId":"c","subscription":"/notifications/services","ext":{"snapshot":true}})
            ),
            Ok(Request::Subscribe {
                id: Some(json!(7)),
                client_id: "c".into(),
                subscriptions: vec!["/notifications/services".into()],
                snapshot: true,
                resume: None,
            })
        );
        assert_eq!(
            one(
                json!({"channel":"/meta/subscribe","clientId":"c","subscription":"/notifications/services","ext":{"revision":41}})
            ),
            Ok(Request::Subscribe {
                id: None,
                client_id: "c".into(),
                subscriptions: vec!["/notifications/services".into()],
                snapshot: false,
                resume: Some(41),
            })
        );
        for bad in [json!("41"), json!(-1), json!(4.5)] {
            let refused = one(
                json!({"channel":"/meta/subscribe","clientId":"c","subscription":"/notifications/services","ext":{"revision":bad}}),
            )
            .unwrap_err();
            assert_eq!(
                refused["error"],
                "400:ext.revision:must be the revision of the last change received, a whole number"
            );
        }
        assert_eq!(
            one(json!({"channel":"/meta/unsubscribe","clientId":"c","subscription":["/a","/b"]})),
            Ok(Request::Unsubscribe {
                id: None,
                client_id: "c".into(),
                subscriptions: vec!["/a".into(), "/b".into()]
            })
        );
        assert_eq!(
            one(json!({"channel":"/meta/connect","clientId":"c","connectionType":"long-polling"})),
            Ok(Request::Connect {
                id: None,
                client_id: "c".into(),
            })
        );
        assert!(matches!(
            one(json!({"channel":"/notifications/services","data":{}})),
            Ok(Request::Publish { .. })
        ));
    }

    #[test]
    fn refuses_with_replies() {
        let no_channel = one(json!({"id":"3"})).unwrap_err();
        assert_eq!(
            no_channel,
            json!({"channel":"/meta/unsuccessful","id":"3","successful":false,"error":"400::a message needs a channel"})
        );
        let unknown_meta =
            one(json!({"channel":"/meta/bogus","id":"4","clientId":"c"})).unwrap_err();
        assert_eq!(
            unknown_meta["error"],
            "400:/meta/bogus:unknown meta channel"
        );
        let no_client = one(json!({"channel":"/meta/connect","id":"5"})).unwrap_err();
        assert_eq!(no_client["error"], "402::Unknown client");
        assert_eq!(no_client["advice"]["reconnect"], "handshake");
        let no_subscription = one(json!({"channel":"/meta/subscribe","clientId":"c"})).unwrap_err();
        assert_eq!(no_subscription["error"], "400::a subscription is required");
        let bad_channel = one(json!({"channel":"nope"})).unwrap_err();
        assert_eq!(bad_channel["error"], "400:nope:invalid channel name");
    }

    #[test]
    fn reads_what_ext_asks_to_be_sent_first() {
        assert!(snapshot(Some(&json!({"snapshot": true}))));
        for no in [
            json!({"snapshot": "true"}),
            json!({"snapshot": false}),
            json!({}),
        ] {
            assert!(!snapshot(Some(&no)), "{no}");
        }
        assert!(!snapshot(None));
        assert_eq!(revision(None), Ok(None));
        assert_eq!(revision(Some(&json!({"revision": null}))), Ok(None));
        assert_eq!(revision(Some(&json!({"revision": 0}))), Ok(Some(0)));
        assert!(revision(Some(&json!({"revision": -1}))).is_err());
    }

    #[test]
    fn the_subscription_is_checked_before_the_revision() {
        let refused =
            one(json!({"channel":"/meta/subscribe","clientId":"c","ext":{"revision":"x"}}))
                .unwrap_err();
        assert_eq!(refused["error"], "400::a subscription is required");
        let unsubscribe = one(json!({"channel":"/meta/unsubscribe","id":"9"})).unwrap_err();
        assert_eq!(unsubscribe["error"], "402::Unknown client");
    }

    #[test]
    fn ids_are_echoed_only_when_scalar() {
        let r = one(json!({"channel":"/meta/disconnect","clientId":"c","id":{"x":1}})).unwrap();
        assert_eq!(r.id(), None);
    }
}
