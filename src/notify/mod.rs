//! Pushed state changes: Bayeux (CometD) over WebSocket and long-polling on one URL,
//! `<base>/notifications`.
//!
//! - [`session`]: `ClientSession`, one actor per clientId, transport-independent.
//! - [`websocket`]: `WsConnection`, one actor per WebSocket connection.
//! - [`long_polling`]: the HTTP handler for `POST <base>/notifications[/...]`.
//! - [`directory`]: clientId to session, shared by every worker.
//!
//! Both transports parse a batch with [`crate::bayeux`] and hand it to [`dispatch`], which
//! answers handshakes itself and routes everything else to the session the clientId names.

pub mod directory;
pub mod long_polling;
pub mod policy;
pub mod session;
pub mod websocket;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use serde_json::Value;

use crate::auth::Caller;
use crate::bayeux::message::{self, Request};
use crate::bayeux::refusal::Refusal;
use crate::bayeux::reply::{self, Advice};
use crate::bayeux::{LONG_POLLING, WEBSOCKET};
use crate::cluster::ClusterStatus;
use crate::config::notifications::NotificationSettings;
use crate::metrics::Metrics;
use crate::registry::Registry;
use directory::Directory;
use session::{Answer, ClientSession, Incoming, Via};

/// How long past `connect_timeout` a long-polling request waits for its held connect before
/// answering by itself; only reached if the session vanished without answering.
const HELD_ANSWER_GRACE: Duration = Duration::from_secs(5);

/// What every transport and session shares.
pub struct Shared {
    pub settings: NotificationSettings,
    pub metrics: Arc<Metrics>,
    pub registry: Addr<Registry>,
    pub directory: Directory,
    /// How long a long-polling request's body may take to arrive (`[limits]
    /// request_timeout`).
    pub body_timeout: std::time::Duration,
    /// A cluster node that has lost etcd says so in every connect reply (`ext.stale`).
    pub cluster: Arc<ClusterStatus>,
}

impl Shared {
    pub fn new(
        settings: NotificationSettings,
        body_timeout: std::time::Duration,
        registry: Addr<Registry>,
        metrics: Arc<Metrics>,
        cluster: Arc<ClusterStatus>,
    ) -> Self {
        Shared {
            body_timeout,
            cluster,
            metrics,
            directory: Directory::new(settings.max_sessions, settings.max_sessions_per_user),
            settings,
            registry,
        }
    }

    /// Tells every session the daemon is stopping: WebSockets are closed with 1001 and held
    /// long-polling connects are answered with advice to reconnect.
    pub fn shutdown(&self) {
        for session in self.directory.all() {
            session.do_send(session::Shutdown);
        }
    }

    /// Ends the sessions of users whose credentials a reload revoked (removed, or changed):
    /// their WebSockets close with 1008 and held long-polling connects are told to
    /// handshake again, which asks for the new credentials.
    pub fn revoke(&self, users: &BTreeSet<Arc<str>>) {
        for session in self.directory.of_users(|user| users.contains(user)) {
            session.do_send(session::Revoke);
        }
    }

    /// The advice of handshake and connect replies.
    pub fn advice(&self) -> Advice {
        Advice {
            reconnect: "retry",
            interval_ms: 0,
            timeout_ms: self.settings.connect_timeout.as_millis() as u64,
        }
    }
}

/// Handles one parsed batch: handshakes here, everything else by the named session, in
/// order, on behalf of `caller`. Returns the JSON array of replies (and, for long-polling,
/// of messages).
pub async fn dispatch(
    shared: &Arc<Shared>,
    caller: &Caller,
    batch: Vec<serde_json::Map<String, Value>>,
    via: Via,
) -> Vec<u8> {
    let mut replies: Vec<Value> = Vec::new();
    // Consecutive requests for one session go to it together, so that it sees a
    // `[subscribe, connect]` batch whole.
    let mut groups: Vec<(Option<String>, Vec<Request>)> = Vec::new();
    for parsed in batch.into_iter().map(message::parse) {
        match parsed {
            Err(refusal) => replies.push(refusal),
            Ok(Request::Handshake { id, .. }) => {
                replies.push(handshake(shared, caller, id.as_ref()))
            }
            Ok(request) => {
                let client = request.client_id().map(str::to_string);
                match groups.last_mut() {
                    Some((group_client, requests)) if *group_client == client => {
                        requests.push(request)
                    }
                    _ => groups.push((client, vec![request])),
                }
            }
        }
    }
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for (client, requests) in groups {
        send_group(
            shared,
            caller,
            client,
            requests,
            &via,
            &mut replies,
            &mut parts,
        )
        .await;
    }
    if !replies.is_empty() {
        parts.insert(0, reply::render_batch(&replies, []));
    }
    merge(parts)
}

fn handshake(shared: &Arc<Shared>, caller: &Caller, id: Option<&Value>) -> Value {
    let for_session = shared.clone();
    let created = shared.directory.create(&caller.user, |client_id| {
        ClientSession::new(client_id, for_session, caller.clone()).start()
    });
    match created {
        Ok(client_id) => {
            reply::handshake(id, &client_id, &[WEBSOCKET, LONG_POLLING], shared.advice())
        }
        Err(refused) => {
            tracing::debug!(user = %caller.user, "handshake refused: {refused}");
            reply::handshake_refused(
                id,
                &Refusal::unavailable(refused),
                Advice {
                    reconnect: "handshake",
                    interval_ms: 5_000,
                    timeout_ms: 0,
                },
            )
        }
    }
}

/// Sends one group of requests to the session its clientId names and collects the answer.
async fn send_group(
    shared: &Arc<Shared>,
    caller: &Caller,
    client_id: Option<String>,
    requests: Vec<Request>,
    via: &Via,
    replies: &mut Vec<Value>,
    parts: &mut Vec<Vec<u8>>,
) {
    let Some(client_id) = client_id else {
        // Requests without a clientId (a publish) have no session to go to.
        for request in requests {
            replies.push(reply::unknown_client(request.channel(), request.id(), None));
        }
        return;
    };
    let unknown = |requests: Vec<Request>, replies: &mut Vec<Value>| {
        for request in requests {
            replies.push(reply::unknown_client(
                request.channel(),
                request.id(),
                Some(&client_id),
            ));
        }
    };
    // A clientId of another user's session names nothing, exactly like an unknown one.
    let Some(session) = shared.directory.get(&client_id, &caller.user) else {
        unknown(requests, replies);
        return;
    };
    let copy = requests.clone();
    match session
        .send(Incoming {
            requests,
            via: via.clone(),
        })
        .await
    {
        Ok(Answer::Now(batch)) => parts.push(batch),
        Ok(Answer::Held(rx)) => {
            let wait = shared.settings.connect_timeout + HELD_ANSWER_GRACE;
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(batch)) => parts.push(batch),
                _ => unknown(copy, replies),
            }
        }
        // The session ended between the lookup and the send.
        Err(_) => unknown(copy, replies),
    }
}

/// Joins JSON arrays into one.
fn merge(parts: Vec<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 2);
    out.push(b'[');
    for part in parts {
        let inner = &part[1..part.len() - 1];
        if inner.is_empty() {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(inner);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_arrays() {
        assert_eq!(
            merge(vec![b"[1,2]".to_vec(), b"[]".to_vec(), b"[3]".to_vec()]),
            b"[1,2,3]"
        );
        assert_eq!(merge(vec![]), b"[]");
    }
}
