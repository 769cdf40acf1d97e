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
    let id = message
        .remove("id")
        .filter(|v| v.is_string() || v.is_number());
    let client_id = message
        .remove("clientId")
        .and_then(|v| v.as_str().map(str::to_string));
    let Some(channel) = message
        .remove("channel")
        .and_then(|v| v.as_str().map(str::to_string))
    else {
        return Err(reply::error(
            channel::UNSUCCESSFUL,
            id.as_ref(),
            client_id.as_deref(),
            &Refusal::bad_request("", "a message needs a channel"),
        ));
    };
    let need_client = |client_id: Option<String>| {
        client_id.ok_or_else(|| reply::unknown_client(&channel, id.as_ref(), None))
    };
    let request = match channel.as_str() {
        channel::HANDSHAKE => Request::Handshake { id },
        channel::CONNECT => Request::Connect {
            client_id: need_client(client_id)?,
            id,
        },
        channel::SUBSCRIBE | channel::UNSUBSCRIBE => {
            let client_id = need_client(client_id)?;
            let subscriptions = strings(message.get("subscription"));
            if subscriptions.is_empty() {
                return Err(reply::error(
                    &channel,
                    id.as_ref(),
                    Some(&client_id),
                    &Refusal::bad_request("", "a subscription is required"),
                ));
            }
            if channel == channel::SUBSCRIBE {
                let ext = message.get("ext");
                let snapshot = ext
                    .and_then(|ext| ext.get("snapshot"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let resume = match ext.and_then(|ext| ext.get("revision")) {
                    None | Some(Value::Null) => None,
                    Some(revision) => match revision.as_i64().filter(|r| *r >= 0) {
                        Some(revision) => Some(revision),
                        None => {
                            return Err(reply::error(
                                &channel,
                                id.as_ref(),
                                Some(&client_id),
                                &Refusal::bad_request(
                                    "ext.revision",
                                    "must be the revision of the last change received, a whole number",
                                ),
                            ));
                        }
                    },
                };
                Request::Subscribe {
                    id,
                    client_id,
                    subscriptions,
                    snapshot,
                    resume,
                }
            } else {
                Request::Unsubscribe {
                    id,
                    client_id,
                    subscriptions,
                }
            }
        }
        channel::DISCONNECT => Request::Disconnect {
            client_id: need_client(client_id)?,
            id,
        },
        meta if channel::is_meta(meta) => {
            return Err(reply::error(
                meta,
                id.as_ref(),
                client_id.as_deref(),
                &Refusal::bad_request(meta, "unknown meta channel"),
            ));
        }
        _ if !channel::is_valid(&channel) => {
            return Err(reply::error(
                &channel,
                id.as_ref(),
                client_id.as_deref(),
                &Refusal::bad_request(&channel, "invalid channel name"),
            ));
        }
        _ => Request::Publish {
            id,
            client_id,
            channel,
        },
    };
    Ok(request)
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
    fn ids_are_echoed_only_when_scalar() {
        let r = one(json!({"channel":"/meta/disconnect","clientId":"c","id":{"x":1}})).unwrap();
        assert_eq!(r.id(), None);
    }
}
