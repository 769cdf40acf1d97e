//! `/meta/connect`: the client's poll. Answered at once or held until there is something to
//! deliver or `connect_timeout` passes ([`policy::answer_connect_now`] decides); over a
//! WebSocket, the connect also attaches the connection and flushes the queue to it.

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use super::{Batch, ClientSession, Held, Via};
use crate::notify::policy::{self, ConnectContext, Transport};

impl ClientSession {
    /// Handles a connect; `alone`: it is the only message of its batch.
    pub(super) fn connect(
        &mut self,
        id: Option<Value>,
        via: &Via,
        alone: bool,
        batch: &mut Batch,
        ctx: &mut Context<Self>,
    ) {
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
        if let Via::WebSocket {
            connection,
            recipient,
        } = via
        {
            self.websocket = Some((*connection, recipient.clone()));
            while let Some(frame) = self.queue.pop_front() {
                self.push(frame, ctx);
            }
        } else {
            // The client moved (back) to long-polling.
            self.websocket = None;
        }
        // A client not yet told that the node turned stale (or fresh again) is told now.
        let news = self.shared.cluster.is_stale() != self.told_stale;
        if now || news {
            let reply = self.connect_reply(id.as_ref(), self.advice());
            batch.replies.push(reply);
            self.start_expiry(ctx);
            return;
        }
        let timer = ctx.run_later(self.shared.settings.connect_timeout, |act, ctx| {
            act.release_held(ctx)
        });
        if self.shared.cluster.is_clustered() {
            self.wait_for_staleness(ctx);
        }
        match via {
            Via::WebSocket { .. } => self.hold(Held::WebSocket { id, timer }),
            Via::LongPolling => {
                let (reply, answer) = oneshot::channel();
                self.hold(Held::LongPolling { id, reply, timer });
                batch.held = Some(answer);
            }
        }
    }
}

impl ClientSession {
    /// Answers the held connect as soon as the node turns stale or fresh, whatever
    /// `connect_timeout` is: a UI says "stale" within moments, not at its next poll.
    fn wait_for_staleness(&mut self, ctx: &mut Context<Self>) {
        let mut changes = self.shared.cluster.staleness_changes();
        let waiting = async move { changes.changed().await.is_ok() };
        self.stale_wait = Some(ctx.spawn(waiting.into_actor(self).map(|alive, act, ctx| {
            act.stale_wait = None;
            if !alive || act.held.is_none() {
                return;
            }
            if act.shared.cluster.is_stale() != act.told_stale {
                act.release_held(ctx);
            } else {
                act.wait_for_staleness(ctx);
            }
        })));
    }
}
