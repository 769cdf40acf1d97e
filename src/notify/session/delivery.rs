//! How a session's messages reach its client: the attached WebSocket as frames, the held
//! `/meta/connect` (answered with what is queued), or the queue until the next connect. A
//! client that cannot keep up is a slow consumer and is ended.

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_web_actors::ws::{CloseCode, CloseReason};
use serde_json::Value;
use tracing::debug;

use super::{ClientSession, Held, Push};
use crate::bayeux;
use crate::bayeux::reply::{self, Advice};

impl ClientSession {
    /// Holds a connect; counted while held if it is a long-polling request's.
    pub(super) fn hold(&mut self, held: Held) {
        if matches!(held, Held::LongPolling { .. }) {
            self.shared.metrics.notifications.long_polls_held.inc();
        }
        self.held = Some(held);
    }

    /// Takes the held connect, to answer or drop it.
    pub(super) fn unhold(&mut self) -> Option<Held> {
        let held = self.held.take();
        if matches!(held, Some(Held::LongPolling { .. })) {
            self.shared.metrics.notifications.long_polls_held.dec();
        }
        held
    }

    /// Answers the held connect, if any, with whatever is queued.
    pub(super) fn release_held(&mut self, ctx: &mut Context<Self>) {
        let Some(held) = self.unhold() else {
            return;
        };
        if let Some(wait) = self.stale_wait.take() {
            ctx.cancel_future(wait);
        }
        match held {
            Held::WebSocket { id, timer } => {
                ctx.cancel_future(timer);
                let connect = self.connect_reply(id.as_ref(), self.advice());
                let batch = reply::render_batch([&connect], []);
                self.push(Bytes::from(batch), ctx);
            }
            Held::LongPolling {
                id,
                reply: answer,
                timer,
            } => {
                ctx.cancel_future(timer);
                let connect = self.connect_reply(id.as_ref(), self.advice());
                let _ = answer.send(self.drain_with([connect]));
            }
        }
        self.start_expiry(ctx);
    }

    /// A successful connect reply; on a cluster node that has lost etcd, marked
    /// `"ext":{"stale":true}`: what it delivers may be behind (docs/cluster.md). Remembers
    /// what the client was told.
    pub(super) fn connect_reply(&mut self, id: Option<&Value>, advice: Advice) -> Value {
        let mut connect = reply::connect(id, &self.id, Some(advice));
        self.told_stale = self.shared.cluster.is_stale();
        if self.told_stale {
            connect["ext"] = serde_json::json!({ "stale": true });
        }
        connect
    }

    /// Renders the queued messages followed by `replies`, emptying the queue.
    pub(super) fn drain_with<const N: usize>(&mut self, replies: [Value; N]) -> Vec<u8> {
        let queued: Vec<Bytes> = self.queue.drain(..).map(|m| bayeux::unframe(&m)).collect();
        reply::render_batch(&replies, queued.iter().map(|m| &m[..]))
    }

    /// Sends a frame to the attached WebSocket; a full connection makes a slow consumer.
    pub(super) fn push(&mut self, frame: Bytes, ctx: &mut Context<Self>) {
        let Some((_, recipient)) = &self.websocket else {
            self.queue.push_back(frame);
            return;
        };
        match recipient.try_send(Push::Frame(frame)) {
            Ok(()) => {}
            Err(SendError::Full(_)) => self.end_slow(ctx),
            Err(SendError::Closed(Push::Frame(frame))) => {
                self.websocket = None;
                self.queue.push_back(frame);
            }
            Err(SendError::Closed(Push::Close(_))) => self.websocket = None,
        }
    }

    /// Detaches the WebSocket, if any, and closes it with `code` and `reason`.
    pub(super) fn close_websocket(&mut self, code: CloseCode, reason: &str) {
        if let Some((_, recipient)) = self.websocket.take() {
            // Past the mailbox bound on purpose: the last message this connection gets.
            recipient.do_send(Push::Close(CloseReason {
                code,
                description: Some(reason.into()),
            }));
        }
    }

    /// Ends a session that cannot keep up: its WebSocket is closed with the reason, and its
    /// next long-polling connect is told to handshake again. Counted in `slow_consumers`
    /// here, whichever side noticed (its WebSocket's queue or its own queue full here, its
    /// mailbox full at its hub), once: a session already ending reads no more messages.
    pub(super) fn end_slow(&mut self, ctx: &mut Context<Self>) {
        self.shared.metrics.notifications.slow_consumers.inc();
        debug!(client = %self.id, "slow consumer: ending the session");
        self.close_websocket(
            CloseCode::Policy,
            "slow consumer: messages were not read in time",
        );
        ctx.stop();
    }

    /// Delivers messages (each a batch of one): at once to an attached WebSocket, as one
    /// frame; otherwise to the held long-polling connect, or to the queue.
    pub(super) fn deliver(&mut self, frames: Vec<Bytes>, ctx: &mut Context<Self>) {
        if self.websocket.is_some() {
            let frame = match <[Bytes; 1]>::try_from(frames) {
                Ok([one]) => one,
                Err(many) => {
                    let inner: Vec<Bytes> = many.iter().map(bayeux::unframe).collect();
                    Bytes::from(reply::render_batch([], inner.iter().map(|m| &m[..])))
                }
            };
            self.push(frame, ctx);
            return;
        }
        self.queue.extend(frames);
        if matches!(self.held, Some(Held::LongPolling { .. })) {
            self.release_held(ctx);
        } else if self.queue.len() > self.shared.settings.session_queue {
            self.end_slow(ctx);
        }
    }
}
