//! `WsConnection`: one actor per WebSocket connection (actix-web-actors' `WebsocketContext`).
//!
//! It is thin: text frames become batches for [`super::dispatch`], and pushes from the
//! session become text frames. It keeps the connection honest: a ping every
//! `ping_interval`, and a peer silent for three of them is dropped; a frame over
//! `max_message_size` closes with 1009.
//!
//! A peer that stops reading makes the HTTP layer stop polling this actor, so its mailbox
//! fills and the session's `try_send` fails: the session then ends as a slow consumer. The
//! connection itself is freed by the kernel's `TCP_USER_TIMEOUT` (set on every accepted
//! socket), since a frozen actor cannot close it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use bytestring::ByteString;
use tracing::debug;

use super::session::{Detach, Push, Via};
use super::{Shared, dispatch};
use crate::auth::Caller;
use crate::bayeux::message::{connecting_clients, parse_batch};
use crate::bayeux::refusal::Refusal;
use crate::bayeux::{channel, reply};

/// Numbers connections so a session can tell a stale one from the current one.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Silent ping intervals after which a peer counts as dead.
const MISSED_PINGS: u32 = 3;

/// `GET <base>/notifications` with an upgrade: starts a connection actor.
/// The caller was authenticated by the upgrade request (the login cookie, or Basic from
/// a non-browser client); every batch of the connection acts on that caller's behalf.
pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Arc<Shared>>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, actix_web::Error> {
    let max = shared.settings.max_message_size;
    let connection = WsConnection {
        shared: shared.get_ref().clone(),
        caller: caller.into_inner(),
        id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
        last_heard: Instant::now(),
        sessions: Vec::new(),
    };
    ws::WsResponseBuilder::new(connection, &req, stream)
        .frame_size(max)
        .start()
}

/// The connection actor.
pub struct WsConnection {
    shared: Arc<Shared>,
    caller: Caller,
    id: u64,
    last_heard: Instant,
    /// ClientIds that sent a connect here, to detach from when the connection ends.
    sessions: Vec<String>,
}

impl WsConnection {
    fn heartbeat(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.last_heard.elapsed() > self.shared.settings.ping_interval * MISSED_PINGS {
            debug!(
                connection = self.id,
                "peer silent for {MISSED_PINGS} ping intervals; closing"
            );
            ctx.close(Some(CloseReason {
                code: CloseCode::Away,
                description: Some("no answer to pings".into()),
            }));
            ctx.stop();
        } else {
            ctx.ping(b"");
        }
    }

    fn on_batch(&mut self, bytes: &[u8], ctx: &mut ws::WebsocketContext<Self>) {
        let batch = match parse_batch(bytes) {
            Ok(batch) => batch,
            Err(e) => {
                debug!(connection = self.id, error = %e, "batch refused");
                let refusal = reply::error(
                    channel::UNSUCCESSFUL,
                    None,
                    None,
                    &Refusal::bad_request("", e),
                );
                ctx.text(text(reply::render_batch([&refusal], [])));
                return;
            }
        };
        for client in connecting_clients(&batch) {
            if !self.sessions.iter().any(|s| s == client) {
                self.sessions.push(client.to_string());
            }
        }
        let via = Via::WebSocket {
            connection: self.id,
            recipient: ctx.address().recipient(),
        };
        let shared = self.shared.clone();
        let caller = self.caller.clone();
        // Wait for the replies before reading the next frame, so they keep the order of
        // the requests.
        ctx.wait(
            async move { dispatch(&shared, &caller, batch, via).await }
                .into_actor(self)
                .map(|answer, _, ctx| {
                    if answer.len() > 2 {
                        ctx.text(text(answer));
                    }
                }),
        );
    }
}

/// A JSON array we rendered as a text frame.
fn text(json: Vec<u8>) -> ByteString {
    // Rendered from `serde_json` output and ASCII punctuation: always UTF-8.
    ByteString::try_from(web::Bytes::from(json)).unwrap_or_default()
}

impl Actor for WsConnection {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.shared.settings.session_queue);
        self.shared
            .metrics
            .notifications
            .websocket_connections
            .inc();
        ctx.run_interval(self.shared.settings.ping_interval, |act, ctx| {
            act.heartbeat(ctx)
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared
            .metrics
            .notifications
            .websocket_connections
            .dec();
        for client in &self.sessions {
            if let Some(session) = self.shared.directory.get(client, &self.caller.user) {
                session.do_send(Detach {
                    connection: self.id,
                });
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsConnection {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => self.on_batch(text.as_bytes(), ctx),
            Ok(ws::Message::Binary(bytes)) => self.on_batch(&bytes, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_)) => {
                ctx.close(Some(CloseReason {
                    code: CloseCode::Unsupported,
                    description: Some("fragmented messages are not supported".into()),
                }));
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                debug!(
                    connection = self.id,
                    "frame over the size limit; closing with 1009"
                );
                let description = format!(
                    "message larger than {} bytes",
                    self.shared.settings.max_message_size
                );
                ctx.close(Some(CloseReason {
                    code: CloseCode::Size,
                    description: Some(description),
                }));
                ctx.stop();
            }
            Err(e) => {
                debug!(connection = self.id, error = %e, "WebSocket protocol error; closing");
                ctx.close(Some(CloseReason {
                    code: CloseCode::Protocol,
                    description: Some(e.to_string()),
                }));
                ctx.stop();
            }
        }
    }
}

impl Handler<Push> for WsConnection {
    type Result = ();

    fn handle(&mut self, push: Push, ctx: &mut Self::Context) {
        match push {
            Push::Frame(frame) => match ByteString::try_from(frame) {
                Ok(text) => ctx.text(text),
                Err(_) => debug!(connection = self.id, "dropped a frame that is not UTF-8"),
            },
            Push::Close(reason) => {
                ctx.close(Some(reason));
                ctx.stop();
            }
        }
    }
}
