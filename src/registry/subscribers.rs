//! The sessions subscribed to service changes, and how a change is offered to them.
//!
//! A plain type, so its rules are tested without actors: each change is offered with
//! `try_send` to the subscribers whose contact center sees the service; a subscriber whose
//! mailbox is full is a slow consumer, told so once and forgotten, and never allowed to stall
//! the registry or make it buffer without bound.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use actix_web::web::Bytes;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// What the registry sends a subscribed session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Delivery {
    /// One Bayeux message as a batch of one (see [`crate::bayeux::frame`]), serialized once
    /// and shared by every session.
    Message(Bytes),
    /// The messages of several changes published together, in order: one delivery, so that
    /// a burst of changes takes one place in the session's bounded mailbox, not one each.
    Messages(Vec<Bytes>),
    /// The current state of every service, on subscribing with a snapshot: one delivery, so
    /// that a snapshot of a large site takes one place in the session's bounded mailbox.
    Snapshot(Vec<Bytes>),
    /// The session's mailbox was full: it no longer receives changes and should end.
    SlowConsumer,
}

/// A subscribed session.
struct Subscriber {
    recipient: Recipient<Delivery>,
    features: Arc<BTreeSet<String>>,
}

/// Every subscribed session, by clientId.
#[derive(Default)]
pub struct Subscribers {
    by_client: HashMap<Arc<str>, Subscriber>,
}

impl Subscribers {
    /// Subscribes `client_id`, which hears of services needing one of `features`. With a
    /// `snapshot`, that is offered first; `false` if the session could not take it (it is
    /// then not subscribed).
    pub fn subscribe(
        &mut self,
        client_id: Arc<str>,
        recipient: Recipient<Delivery>,
        features: Arc<BTreeSet<String>>,
        snapshot: Option<Vec<Bytes>>,
        metrics: &Metrics,
    ) -> bool {
        if let Some(messages) = snapshot
            && !offer(
                &client_id,
                &recipient,
                Delivery::Snapshot(messages),
                metrics,
            )
        {
            return false;
        }
        self.by_client.insert(
            client_id,
            Subscriber {
                recipient,
                features,
            },
        );
        true
    }

    pub fn unsubscribe(&mut self, client_id: &str) {
        self.by_client.remove(client_id);
    }

    /// Subscribers now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Offers one message about a service needing `feature` to every subscriber that sees
    /// it, forgetting those that cannot take it.
    #[cfg(test)]
    pub fn fan_out(&mut self, message: &Bytes, feature: &str, metrics: &Metrics) {
        self.fan_out_all(&[(message.clone(), feature.to_string())], metrics);
    }

    /// Offers the messages of changes published together, each with the feature a
    /// subscriber needs to hear of it, as one delivery per subscriber holding the ones it
    /// sees (in their order; a service's messages keep theirs). Subscribers that cannot take
    /// it are forgotten.
    pub fn fan_out_all(&mut self, messages: &[(Bytes, String)], metrics: &Metrics) {
        if messages.is_empty() || self.by_client.is_empty() {
            return;
        }
        // Few features, many messages: sort once by feature, then each subscriber takes the
        // groups it sees.
        let mut groups: Vec<(&str, Vec<Bytes>)> = Vec::new();
        for (message, feature) in messages {
            match groups.iter_mut().find(|(f, _)| f == feature) {
                Some((_, group)) => group.push(message.clone()),
                None => groups.push((feature, vec![message.clone()])),
            }
        }
        let every: Vec<Bytes> = messages.iter().map(|(m, _)| m.clone()).collect();
        self.by_client.retain(|client_id, subscriber| {
            let seen = groups
                .iter()
                .filter(|(feature, _)| subscriber.features.contains(*feature))
                .count();
            let delivery = if seen == groups.len() {
                every.clone()
            } else {
                groups
                    .iter()
                    .filter(|(feature, _)| subscriber.features.contains(*feature))
                    .flat_map(|(_, group)| group.iter().cloned())
                    .collect()
            };
            let delivery = match <[Bytes; 1]>::try_from(delivery) {
                Ok([one]) => Delivery::Message(one),
                Err(none) if none.is_empty() => return true,
                Err(many) => Delivery::Messages(many),
            };
            offer(client_id, &subscriber.recipient, delivery, metrics)
        });
    }
}

/// Offers `delivery` without waiting; whether the subscriber stays subscribed.
fn offer(
    client_id: &str,
    recipient: &Recipient<Delivery>,
    delivery: Delivery,
    metrics: &Metrics,
) -> bool {
    let messages = match &delivery {
        Delivery::Message(_) => 1,
        Delivery::Messages(all) | Delivery::Snapshot(all) => all.len() as u64,
        Delivery::SlowConsumer => 0,
    };
    match recipient.try_send(delivery) {
        Ok(()) => {
            metrics.notifications.messages_delivered.inc_by(messages);
            true
        }
        Err(SendError::Full(_)) => {
            // Counted by the session as it ends, once, whichever side noticed first.
            warn!(client = %client_id, "slow consumer: its queue is full; dropping it");
            // `do_send` ignores the mailbox bound on purpose: this one message tells the
            // session to end, and it is the last the registry ever sends it.
            recipient.do_send(Delivery::SlowConsumer);
            false
        }
        Err(SendError::Closed(_)) => {
            debug!(client = %client_id, "subscriber gone");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session stand-in with a mailbox of `capacity` that never reads it until asked.
    struct Sink {
        capacity: usize,
        got: Vec<Delivery>,
    }

    impl Actor for Sink {
        type Context = Context<Self>;

        fn started(&mut self, ctx: &mut Self::Context) {
            ctx.set_mailbox_capacity(self.capacity);
        }
    }

    impl Handler<Delivery> for Sink {
        type Result = ();

        fn handle(&mut self, msg: Delivery, _ctx: &mut Self::Context) {
            self.got.push(msg);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<String>")]
    struct Taken;

    impl Handler<Taken> for Sink {
        type Result = Vec<String>;

        fn handle(&mut self, _msg: Taken, _ctx: &mut Self::Context) -> Vec<String> {
            self.got
                .drain(..)
                .map(|d| match d {
                    Delivery::Message(m) => String::from_utf8(m.to_vec()).unwrap(),
                    Delivery::Messages(all) => all
                        .iter()
                        .map(|m| String::from_utf8(m.to_vec()).unwrap())
                        .collect::<Vec<_>>()
                        .join("+"),
                    Delivery::Snapshot(all) => format!("snapshot of {}", all.len()),
                    Delivery::SlowConsumer => "slow".to_string(),
                })
                .collect()
        }
    }

    fn features(names: &[&str]) -> Arc<BTreeSet<String>> {
        Arc::new(names.iter().map(|n| n.to_string()).collect())
    }

    /// A started sink with a mailbox of `capacity`.
    fn sink(capacity: usize) -> Addr<Sink> {
        Sink {
            capacity,
            got: vec![],
        }
        .start()
    }

    /// Subscribes `sink` as `client_id` to the services needing one of `names`, without a
    /// snapshot.
    fn join(subscribers: &mut Subscribers, client_id: &str, sink: &Addr<Sink>, names: &[&str]) {
        let metrics = Metrics::new();
        assert!(subscribers.subscribe(
            client_id.into(),
            sink.clone().recipient(),
            features(names),
            None,
            &metrics
        ));
    }

    #[actix_rt::test]
    async fn changes_reach_only_those_who_see_the_service() {
        let metrics = Metrics::new();
        let mut subscribers = Subscribers::default();
        let voice = sink(16);
        let media = sink(16);
        let snapshot = Some(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        assert!(subscribers.subscribe(
            "v".into(),
            voice.clone().recipient(),
            features(&["api-voice"]),
            snapshot,
            &metrics
        ));
        join(&mut subscribers, "m", &media, &["api-multimedia"]);
        subscribers.fan_out(&Bytes::from_static(b"sips1"), "api-voice", &metrics);
        subscribers.fan_out(&Bytes::from_static(b"ixn1"), "api-multimedia", &metrics);
        assert_eq!(voice.send(Taken).await.unwrap(), ["snapshot of 2", "sips1"]);
        assert_eq!(media.send(Taken).await.unwrap(), ["ixn1"]);
        assert_eq!(
            metrics.notifications.messages_delivered.get(),
            4,
            "the snapshot counts its messages"
        );
        subscribers.unsubscribe("v");
        subscribers.fan_out(&Bytes::from_static(b"sips1"), "api-voice", &metrics);
        assert!(voice.send(Taken).await.unwrap().is_empty());
        assert_eq!(subscribers.len(), 1);
    }

    #[actix_rt::test]
    async fn changes_published_together_make_one_delivery_of_what_each_sees() {
        let metrics = Metrics::new();
        let mut subscribers = Subscribers::default();
        let voice = sink(16);
        let both = sink(16);
        let media = sink(16);
        join(&mut subscribers, "v", &voice, &["api-voice"]);
        join(
            &mut subscribers,
            "b",
            &both,
            &["api-voice", "api-multimedia"],
        );
        join(&mut subscribers, "m", &media, &["api-multimedia"]);
        let burst = [
            (Bytes::from_static(b"sips1 down"), "api-voice".to_string()),
            (
                Bytes::from_static(b"ixn1 down"),
                "api-multimedia".to_string(),
            ),
            (Bytes::from_static(b"sips1 up"), "api-voice".to_string()),
        ];
        subscribers.fan_out_all(&burst, &metrics);
        assert_eq!(voice.send(Taken).await.unwrap(), ["sips1 down+sips1 up"]);
        assert_eq!(
            both.send(Taken).await.unwrap(),
            ["sips1 down+ixn1 down+sips1 up"]
        );
        assert_eq!(media.send(Taken).await.unwrap(), ["ixn1 down"]);
        subscribers.fan_out_all(&burst[1..2], &metrics);
        assert!(
            voice.send(Taken).await.unwrap().is_empty(),
            "nothing it sees"
        );
        assert_eq!(
            metrics.notifications.messages_delivered.get(),
            8,
            "messages, not deliveries"
        );
    }

    #[actix_rt::test]
    async fn a_full_mailbox_makes_a_slow_consumer_that_is_told_once_and_forgotten() {
        let metrics = Metrics::new();
        let mut subscribers = Subscribers::default();
        let slow = sink(1);
        let quick = sink(64);
        join(&mut subscribers, "slow", &slow, &["f"]);
        join(&mut subscribers, "quick", &quick, &["f"]);
        // Both started, with their mailbox bounds set.
        assert!(slow.send(Taken).await.unwrap().is_empty());
        assert!(quick.send(Taken).await.unwrap().is_empty());
        // Offered without yielding, so the slow sink cannot read between them.
        for n in 0..8 {
            subscribers.fan_out(&Bytes::from(format!("m{n}")), "f", &metrics);
        }
        assert_eq!(subscribers.len(), 1, "the slow one is forgotten");
        let slow_got = slow.send(Taken).await.unwrap();
        assert_eq!(
            slow_got.last().map(String::as_str),
            Some("slow"),
            "{slow_got:?}"
        );
        assert_eq!(
            quick.send(Taken).await.unwrap().len(),
            8,
            "the others lose nothing"
        );
    }
}
