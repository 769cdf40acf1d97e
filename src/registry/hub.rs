//! `Hub`: one actor per thread whose sessions subscribe (each HTTP worker), holding that
//! thread's subscribers.
//!
//! Why: sessions live on the HTTP workers, the registry on a thread of its own. Offered to
//! each session directly, one change to ten thousand subscribers was ten thousand messages
//! across threads: the registry spent milliseconds in the loop before the last session
//! heard anything, and each worker took every message through the lock of its cross-thread
//! run queue, contended by the registry pushing the next. The registry now sends one
//! message per hub (one per worker); each hub offers the change to its own sessions, on
//! their thread, with the same rules ([`Subscribers`]): the feature filter, one delivery per
//! publish, and the slow-consumer bound.
//!
//! Publishes that reach a hub together (its worker was busy while the registry published
//! several times) are offered as one delivery per session, after the hub has read every
//! message waiting for it: a session's bounded mailbox then holds one delivery per turn of
//! its worker, not one per publish, so a busy worker does not turn its sessions into slow
//! consumers. Bayeux lets one frame carry many messages.
//!
//! Order is kept because everything a hub hears comes from the registry, on one channel:
//! a subscription (with its snapshot) and every publish after it arrive in the order the
//! registry decided them, and an unsubscription cannot overtake the subscription it ends.
//! Publishes waiting to be offered are offered before a subscription or an unsubscription
//! takes effect.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::web::Bytes;

use super::subscribers::{Delivery, Subscribers};
use crate::metrics::Metrics;

thread_local! {
    /// This thread's hub, started on first use.
    static CURRENT: RefCell<Option<Addr<Hub>>> = const { RefCell::new(None) };
}

/// The notifications of one publish, in order, each with the feature a subscriber needs to
/// hear of it; shared by every hub.
pub type Notifications = Arc<[(Bytes, String)]>;

/// The subscribers of one thread.
#[derive(Default)]
pub struct Hub {
    subscribers: Subscribers,
    /// Publishes read but not yet offered, in order, with the metrics that count them.
    waiting: Vec<(Notifications, Arc<Metrics>)>,
}

impl Hub {
    /// The hub of the calling thread, started on its arbiter if it has none yet (or if the
    /// one it had stopped with its arbiter). Call it from an actor running on that thread.
    pub fn current() -> Addr<Hub> {
        CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            match &*current {
                Some(hub) if hub.connected() => hub.clone(),
                _ => {
                    let hub = Hub::default().start();
                    *current = Some(hub.clone());
                    hub
                }
            }
        })
    }
}

impl Actor for Hub {
    type Context = Context<Self>;
}

impl Hub {
    /// Offers the waiting publishes, as one delivery per subscriber.
    fn offer_waiting(&mut self) {
        let Some((_, metrics)) = self.waiting.last() else {
            return;
        };
        let metrics = metrics.clone();
        if let [(messages, _)] = &self.waiting[..] {
            self.subscribers.fan_out_all(messages, &metrics);
        } else {
            let all: Vec<(Bytes, String)> = self
                .waiting
                .iter()
                .flat_map(|(messages, _)| messages.iter().cloned())
                .collect();
            self.subscribers.fan_out_all(&all, &metrics);
        }
        self.waiting.clear();
    }
}

/// Offers the waiting publishes: sent to itself, so handled once the mailbox is read.
#[derive(Message)]
#[rtype(result = "()")]
struct Offer;

/// Subscribes a session of this hub's thread, offering it `snapshot` first (see
/// [`Subscribers::subscribe`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub client_id: Arc<str>,
    pub recipient: Recipient<Delivery>,
    pub features: Arc<BTreeSet<String>>,
    pub snapshot: Option<Vec<Bytes>>,
    pub metrics: Arc<Metrics>,
}

/// Forgets a session, if it is this hub's.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub client_id: Arc<str>,
}

/// What one publish tells subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub messages: Notifications,
    pub metrics: Arc<Metrics>,
}

impl Handler<Join> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Join, _ctx: &mut Self::Context) {
        // Those were published before the snapshot the session gets: not for it.
        self.offer_waiting();
        self.subscribers.subscribe(
            msg.client_id,
            msg.recipient,
            msg.features,
            msg.snapshot,
            &msg.metrics,
        );
    }
}

impl Handler<Leave> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) {
        self.offer_waiting();
        self.subscribers.unsubscribe(&msg.client_id);
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) {
        if self.waiting.is_empty() {
            // Handled after every message now in the mailbox (actix reads the mailbox
            // before the context's own items), so that they share one delivery.
            ctx.notify(Offer);
        }
        self.waiting.push((msg.messages, msg.metrics));
    }
}

impl Handler<Offer> for Hub {
    type Result = ();

    fn handle(&mut self, _msg: Offer, _ctx: &mut Self::Context) {
        self.offer_waiting();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::registry::tests::Heard;

    /// What a delivery carried, as the test compares it.
    fn text(delivery: Delivery) -> String {
        match delivery {
            Delivery::Message(m) => String::from_utf8_lossy(&m).into_owned(),
            Delivery::Messages(all) => all
                .iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect::<Vec<_>>()
                .join("+"),
            Delivery::Snapshot(all) => format!("snapshot of {}", all.len()),
            Delivery::SlowConsumer => "slow".into(),
        }
    }

    #[actix_rt::test]
    async fn one_hub_per_thread_and_a_joined_session_hears_in_order_in_one_delivery_per_turn() {
        let hub = Hub::current();
        assert_eq!(hub, Hub::current(), "the same hub for the same thread");
        let elsewhere =
            std::thread::spawn(|| actix_rt::System::new().block_on(async { Hub::current() }))
                .join()
                .unwrap();
        assert_ne!(hub, elsewhere, "another thread has a hub of its own");

        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        hub.do_send(Join {
            client_id: "c".into(),
            recipient: Heard(tx).start().recipient(),
            features: Arc::new(BTreeSet::from(["api-voice".to_string()])),
            snapshot: Some(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]),
            metrics: metrics.clone(),
        });
        let publish = |text: &'static str, feature: &str| Publish {
            messages: Arc::from([(Bytes::from_static(text.as_bytes()), feature.to_string())]),
            metrics: metrics.clone(),
        };
        // Read by the hub in one turn: offered as one delivery of what the session sees.
        hub.do_send(publish("voice", "api-voice"));
        hub.do_send(publish("media", "api-multimedia"));
        hub.do_send(publish("voice again", "api-voice"));
        hub.do_send(Leave {
            client_id: "c".into(),
        });
        hub.do_send(publish("after", "api-voice"));
        let mut heard = Vec::new();
        while heard.len() < 2 {
            heard.push(text(
                tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                    .await
                    .expect("the session hears")
                    .unwrap(),
            ));
        }
        assert_eq!(heard, ["snapshot of 2", "voice+voice again"]);
        // Nothing after leaving, and nothing it does not see (the stand-in ends once the
        // hub, holding its only address, forgets it: then the channel closes).
        let more = tokio::time::timeout(std::time::Duration::from_millis(100), rx.recv()).await;
        assert!(!matches!(more, Ok(Some(_))), "{more:?}");
    }
}
