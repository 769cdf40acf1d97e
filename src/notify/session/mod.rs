//! `ClientSession`: one actor per Bayeux clientId, whatever transport the client uses.
//!
//! It owns the client's subscriptions, the messages not yet delivered, and the `/meta/connect`
//! it holds. Transports talk to it: a WebSocket connection attaches itself on connect and
//! receives pushes; a long-polling request gets its answer when there is something to
//! deliver or the connect times out. Because the session outlives any one transport, a client
//! may handshake over long-polling and continue over a WebSocket (as Faye and aiocometd do)
//! or the other way round.
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

mod delivery;

use super::Shared;
use super::policy::{self, ConnectContext, Registration, Transport};
use crate::auth::Caller;
use crate::bayeux::message::Request;
use crate::bayeux::refusal::Refusal;
use crate::bayeux::reply::{self, Advice};
use crate::bayeux::subscriptions::Subscriptions;
use crate::bayeux::{self, SERVICES_CHANNEL, channel};
use crate::registry::{Delivery, Hub, SubscribeServices, UnsubscribeServices};

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

    /// Registers with the registry, or unregisters, as the subscriptions now require.
    /// `resume`: the revision after which the client wants the changes it missed (it then
    /// asks for a catch-up, as `snapshot` does).
    fn update_registration(
        &mut self,
        snapshot: bool,
        resume: Option<i64>,
        ctx: &mut Context<Self>,
    ) {
        let wants = self.subscriptions.matches(SERVICES_CHANNEL);
        let snapshot = snapshot || resume.is_some();
        match policy::registration(wants, self.registered, snapshot) {
            Registration::Subscribe { snapshot } => {
                self.snapshot_pending |= snapshot;
                self.shared.registry.do_send(SubscribeServices {
                    client_id: self.id.clone(),
                    recipient: ctx.address().recipient(),
                    hub: Hub::current(),
                    features: self.caller.features.clone(),
                    snapshot,
                    resume,
                });
            }
            Registration::Unsubscribe => self.shared.registry.do_send(UnsubscribeServices {
                client_id: self.id.clone(),
            }),
            Registration::Unchanged => {}
        }
        self.registered = wants;
    }

    fn connect(
        &mut self,
        id: Option<Value>,
        via: &Via,
        alone: bool,
        replies: &mut Vec<Value>,
        ctx: &mut Context<Self>,
    ) -> Option<oneshot::Receiver<Vec<u8>>> {
        // One outstanding connect per client: a new one answers the previous (which starts
        // the expiry countdown, stopped again since this connect is here).
        self.release_held(ctx);
        self.stop_expiry(ctx);
        if std::mem::take(&mut self.orphaned) {
            self.shared.directory.adopt(&self.id);
        }
        let now = policy::answer_connect_now(ConnectContext {
            transport: match via {
                Via::WebSocket { .. } => Transport::WebSocket,
                Via::LongPolling => Transport::LongPolling,
            },
            first: !self.connected,
            snapshot_pending: self.snapshot_pending,
            alone,
            queued: self.queue.len(),
        });
        self.connected = true;
        match via {
            Via::WebSocket {
                connection,
                recipient,
            } => {
                self.websocket = Some((*connection, recipient.clone()));
                while let Some(frame) = self.queue.pop_front() {
                    self.push(frame, ctx);
                }
                if now {
                    replies.push(self.connect_reply(id.as_ref(), self.advice()));
                    self.start_expiry(ctx);
                } else {
                    let timer = ctx.run_later(self.shared.settings.connect_timeout, |act, ctx| {
                        act.release_held(ctx)
                    });
                    self.hold(Held::WebSocket { id, timer });
                }
                None
            }
            Via::LongPolling => {
                // The client moved (back) to long-polling.
                self.websocket = None;
                if now {
                    replies.push(self.connect_reply(id.as_ref(), self.advice()));
                    self.start_expiry(ctx);
                    None
                } else {
                    let (tx, rx) = oneshot::channel();
                    let timer = ctx.run_later(self.shared.settings.connect_timeout, |act, ctx| {
                        act.release_held(ctx)
                    });
                    self.hold(Held::LongPolling {
                        id,
                        reply: tx,
                        timer,
                    });
                    Some(rx)
                }
            }
        }
    }
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.shared.settings.session_queue);
        self.shared.metrics.sessions.inc();
        // A handshaken client has the session timeout to send its first connect.
        self.start_expiry(ctx);
        debug!(client = %self.id, user = %self.caller.user, "session started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.metrics.sessions.dec();
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

    fn handle(&mut self, msg: Incoming, ctx: &mut Self::Context) -> Answer {
        let alone = msg.requests.len() == 1;
        let mut replies = Vec::with_capacity(msg.requests.len());
        let mut later = None;
        let mut disconnect = false;
        for request in msg.requests {
            match request {
                Request::Connect { id, .. } => {
                    later = self
                        .connect(id, &msg.via, alone, &mut replies, ctx)
                        .or(later);
                }
                Request::Subscribe {
                    id,
                    subscriptions,
                    snapshot,
                    resume,
                    ..
                } => {
                    for channel in &subscriptions {
                        let result = self
                            .subscriptions
                            .add(channel, self.shared.settings.max_subscriptions);
                        replies.push(match result {
                            Ok(()) => reply::subscription(channel::SUBSCRIBE, id.as_ref(), &self.id, channel),
                            Err(e) => {
                                debug!(client = %self.id, channel, error = %e, "subscription refused");
                                reply::subscription_error(channel::SUBSCRIBE, id.as_ref(), &self.id, channel, &Refusal::forbidden(channel, e))
                            }
                        });
                    }
                    self.update_registration(snapshot, resume, ctx);
                }
                Request::Unsubscribe {
                    id, subscriptions, ..
                } => {
                    for channel in &subscriptions {
                        replies.push(if self.subscriptions.remove(channel) {
                            reply::subscription(
                                channel::UNSUBSCRIBE,
                                id.as_ref(),
                                &self.id,
                                channel,
                            )
                        } else {
                            reply::subscription_error(
                                channel::UNSUBSCRIBE,
                                id.as_ref(),
                                &self.id,
                                channel,
                                &Refusal::bad_request(channel, "not subscribed"),
                            )
                        });
                    }
                    self.update_registration(false, None, ctx);
                }
                Request::Disconnect { id, .. } => {
                    replies.push(reply::disconnect(id.as_ref(), &self.id));
                    disconnect = true;
                }
                Request::Publish { id, channel, .. } => {
                    replies.push(reply::error(
                        &channel,
                        id.as_ref(),
                        Some(&self.id),
                        &Refusal::forbidden(&channel, "Permission denied"),
                    ));
                }
                Request::Handshake { id, .. } => {
                    replies.push(reply::error(
                        channel::HANDSHAKE,
                        id.as_ref(),
                        Some(&self.id),
                        &Refusal::bad_request("", "a handshake carries no clientId"),
                    ));
                }
            }
        }
        if disconnect {
            self.release_held(ctx);
            ctx.stop();
        }
        match later {
            Some(rx) if replies.is_empty() => Answer::Held(rx),
            _ => {
                let raw = match msg.via {
                    Via::LongPolling => self.queue.drain(..).map(|m| bayeux::unframe(&m)).collect(),
                    Via::WebSocket { .. } => Vec::new(),
                };
                Answer::Now(reply::render_batch(&replies, raw.iter().map(|m| &m[..])))
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
