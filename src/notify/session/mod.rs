//! `ClientSession`: one actor per Bayeux clientId, whatever transport the client uses.
//!
//! It owns the client's subscriptions, the messages not yet delivered, and the `/meta/connect`
//! it holds. Transports talk to it: a WebSocket connection attaches itself on connect and
//! receives pushes; a long-polling request gets its answer when there is something to
//! deliver or the connect times out. Because the session outlives any one transport, a client
//! may handshake over long-polling and continue over a WebSocket (as Faye and aiocometd do)
//! or the other way round.
//!
//! A batch ([`Incoming`]) is handed message by message to its channel's handler, one file
//! each, as mini-redis keeps one command a file: `connect.rs`, `subscribe.rs`,
//! `unsubscribe.rs`, `disconnect.rs`, and `refused.rs` (publishes, and handshakes naming a
//! session). The decisions they take are [`super::policy`]'s pure functions; how messages
//! reach the client is `delivery.rs`.
//!
//! A session belongs to the [`Caller`] who handshook it, and receives the changes of the
//! services that caller's contact center sees, no others (the registry filters).
//!
//! Bounds: the mailbox holds at most `session_queue` messages from the registry (beyond
//! that the registry drops the session as a slow consumer), and so does the queue of
//! undelivered messages. A session whose client sends no connect for `session_timeout`
//! ends and frees everything.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_web_actors::ws::{CloseCode, CloseReason};
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::debug;

mod connect;
mod delivery;
mod disconnect;
mod refused;
mod subscribe;
mod unsubscribe;

use super::Shared;
use crate::auth::Caller;
use crate::bayeux::message::Request;
use crate::bayeux::reply::{self, Advice};
use crate::bayeux::subscriptions::Subscriptions;
use crate::bayeux::{self, channel};
use crate::registry::{Delivery, UnsubscribeServices};

/// How long a long-polling client is advised to wait before reconnecting to a stopping
/// daemon: long enough for a restart, short enough that a UI does not look stuck.
const SHUTDOWN_RETRY_MS: u64 = 2_000;

/// What a session sends a WebSocket connection.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum Push {
    /// A text frame: a JSON array of Bayeux messages.
    Frame(Bytes),
    /// Close the connection with this reason.
    Close(CloseReason),
}

/// The transport a batch came over.
#[derive(Clone)]
pub enum Via {
    WebSocket {
        /// Identifies the connection, so that a stale one cannot detach a newer one.
        connection: u64,
        recipient: Recipient<Push>,
    },
    LongPolling,
}

/// Messages of one batch for this session, in order.
#[derive(Message)]
#[rtype(result = "Answer")]
pub struct Incoming {
    pub requests: Vec<Request>,
    pub via: Via,
}

/// The replies to a batch: at once, or (a long-polling connect held) later.
#[derive(MessageResponse)]
pub enum Answer {
    /// A JSON array.
    Now(Vec<u8>),
    /// The JSON array will come when the held connect is answered.
    Held(oneshot::Receiver<Vec<u8>>),
}

/// The daemon is stopping: tell the client to come back later, and end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// The session's user was removed or changed by a reload: end it, and make the client
/// authenticate again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revoke;

/// The directory ended this session to make room for a new one (its WebSocket had closed
/// and its client had not come back); a client that comes back is told to handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evicted;

/// A WebSocket connection closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub connection: u64,
}

/// What the handlers of one batch's messages produce.
struct Batch {
    /// The replies, in the order of the messages.
    replies: Vec<Value>,
    /// A long-polling connect was held: the batch is answered when it is.
    held: Option<oneshot::Receiver<Vec<u8>>>,
    /// The client disconnected: the session ends once the batch is answered.
    disconnect: bool,
}

/// A `/meta/connect` waiting for something to deliver.
enum Held {
    WebSocket {
        id: Option<Value>,
        timer: SpawnHandle,
    },
    LongPolling {
        id: Option<Value>,
        reply: oneshot::Sender<Vec<u8>>,
        timer: SpawnHandle,
    },
}

/// The session actor.
pub struct ClientSession {
    id: Arc<str>,
    shared: Arc<Shared>,
    caller: Caller,
    subscriptions: Subscriptions,
    /// Whether the registry sends this session service changes.
    registered: bool,
    /// Messages (each a batch of one) waiting for a transport.
    queue: VecDeque<Bytes>,
    websocket: Option<(u64, Recipient<Push>)>,
    held: Option<Held>,
    /// Whether a first connect has been answered.
    connected: bool,
    /// A snapshot was asked for and has not arrived yet: a long-polling connect waits for
    /// it, so that a client subscribing with a snapshot finds it in its next connect's
    /// answer rather than one connect later.
    snapshot_pending: bool,
    expiry: Option<SpawnHandle>,
    /// Its WebSocket closed and no transport has come since (see the directory).
    orphaned: bool,
    /// Whether the last connect reply said the node was stale (a client is told at once
    /// when that changes).
    told_stale: bool,
    /// Waits for the node to turn stale or fresh while a connect is held.
    stale_wait: Option<SpawnHandle>,
}

impl ClientSession {
    pub fn new(id: Arc<str>, shared: Arc<Shared>, caller: Caller) -> Self {
        ClientSession {
            id,
            shared,
            caller,
            subscriptions: Subscriptions::default(),
            registered: false,
            queue: VecDeque::new(),
            websocket: None,
            held: None,
            connected: false,
            snapshot_pending: false,
            expiry: None,
            orphaned: false,
            told_stale: false,
            stale_wait: None,
        }
    }

    fn advice(&self) -> Advice {
        self.shared.advice()
    }

    /// (Re)starts the countdown within which the next connect must come.
    fn start_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.expiry.take() {
            ctx.cancel_future(old);
        }
        let timeout = self.shared.settings.session_timeout;
        self.expiry = Some(ctx.run_later(timeout, |act, ctx| {
            debug!(client = %act.id, "no connect within the session timeout; forgetting the client");
            // A WebSocket still attached would otherwise stay open with nobody behind it:
            // its client learns why instead, whenever it reads again.
            act.close_websocket(
                CloseCode::Policy,
                "session expired: no /meta/connect within the session timeout",
            );
            ctx.stop();
        }));
    }

    fn stop_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.expiry.take() {
            ctx.cancel_future(old);
        }
    }
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.shared.settings.session_queue);
        self.shared.metrics.notifications.sessions.inc();
        // A handshaken client has the session timeout to send its first connect.
        self.start_expiry(ctx);
        debug!(client = %self.id, user = %self.caller.user, "session started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.metrics.notifications.sessions.dec();
        self.shared.directory.remove(&self.id);
        if self.registered {
            self.shared.registry.do_send(UnsubscribeServices {
                client_id: self.id.clone(),
            });
        }
        if let Some(Held::LongPolling {
            id, reply: answer, ..
        }) = self.unhold()
        {
            let unknown = reply::unknown_client(channel::CONNECT, id.as_ref(), Some(&self.id));
            let _ = answer.send(reply::render_batch([&unknown], []));
        }
        debug!(client = %self.id, "session ended");
    }
}

impl Handler<Incoming> for ClientSession {
    type Result = Answer;

    /// Each message goes to its channel's handler (a file each), in order; the batch is
    /// answered once all have run.
    fn handle(&mut self, msg: Incoming, ctx: &mut Self::Context) -> Answer {
        let alone = msg.requests.len() == 1;
        let mut batch = Batch {
            replies: Vec::with_capacity(msg.requests.len()),
            held: None,
            disconnect: false,
        };
        for request in msg.requests {
            match request {
                Request::Connect { id, .. } => self.connect(id, &msg.via, alone, &mut batch, ctx),
                Request::Subscribe {
                    id,
                    subscriptions,
                    snapshot,
                    resume,
                    ..
                } => self.subscribe(
                    id.as_ref(),
                    &subscriptions,
                    snapshot,
                    resume,
                    &mut batch,
                    ctx,
                ),
                Request::Unsubscribe {
                    id, subscriptions, ..
                } => self.unsubscribe(id.as_ref(), &subscriptions, &mut batch, ctx),
                Request::Disconnect { id, .. } => self.disconnect(id.as_ref(), &mut batch),
                Request::Publish { id, channel, .. } => {
                    self.publish(id.as_ref(), &channel, &mut batch)
                }
                Request::Handshake { id, .. } => self.handshake(id.as_ref(), &mut batch),
            }
        }
        if batch.disconnect {
            self.release_held(ctx);
            ctx.stop();
        }
        match batch.held {
            Some(answer) if batch.replies.is_empty() => Answer::Held(answer),
            _ => {
                let raw = match msg.via {
                    Via::LongPolling => self.queue.drain(..).map(|m| bayeux::unframe(&m)).collect(),
                    Via::WebSocket { .. } => Vec::new(),
                };
                Answer::Now(reply::render_batch(
                    &batch.replies,
                    raw.iter().map(|m| &m[..]),
                ))
            }
        }
    }
}

impl Handler<Delivery> for ClientSession {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, ctx: &mut Self::Context) {
        match delivery {
            Delivery::Message(frame) => self.deliver(vec![frame], ctx),
            Delivery::Messages(frames) => self.deliver(frames, ctx),
            Delivery::Snapshot(frames) => {
                self.snapshot_pending = false;
                self.deliver(frames, ctx)
            }
            Delivery::SlowConsumer => {
                self.registered = false;
                self.end_slow(ctx);
            }
        }
    }
}

impl Handler<Detach> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) {
        if self
            .websocket
            .as_ref()
            .is_some_and(|(c, _)| *c == msg.connection)
        {
            self.websocket = None;
            if let Some(Held::WebSocket { timer, .. }) = &self.held {
                ctx.cancel_future(*timer);
                if let Some(wait) = self.stale_wait.take() {
                    ctx.cancel_future(wait);
                }
                self.held = None;
            }
            // The client may come back on another connection within the session timeout,
            // unless a new session needs the place first.
            self.orphaned = true;
            self.shared.directory.orphan(&self.id);
            self.start_expiry(ctx);
        }
    }
}

impl Handler<Evicted> for ClientSession {
    type Result = ();

    fn handle(&mut self, _msg: Evicted, ctx: &mut Self::Context) {
        debug!(client = %self.id, user = %self.caller.user, "orphaned session ended to make room for a new one");
        ctx.stop();
    }
}

impl Handler<Shutdown> for ClientSession {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        self.close_websocket(CloseCode::Away, "server shutting down");
        if let Some(Held::LongPolling {
            id,
            reply: answer,
            timer,
        }) = self.unhold()
        {
            ctx.cancel_future(timer);
            let advice = Advice {
                reconnect: "retry",
                interval_ms: SHUTDOWN_RETRY_MS,
                timeout_ms: 0,
            };
            let connect = self.connect_reply(id.as_ref(), advice);
            let _ = answer.send(reply::render_batch([&connect], []));
        }
        ctx.stop();
    }
}

impl Handler<Revoke> for ClientSession {
    type Result = ();

    fn handle(&mut self, _msg: Revoke, ctx: &mut Self::Context) {
        debug!(client = %self.id, user = %self.caller.user, "credentials revoked by a reload; ending the session");
        self.close_websocket(CloseCode::Policy, "credentials revoked; log in again");
        // `stopped` answers a held long-polling connect with 402 and advice to handshake.
        ctx.stop();
    }
}
