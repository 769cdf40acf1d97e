//! The etcd session: one task per node that connects, holds the node's lease, campaigns for
//! leadership, writes the leader's records (and anyone's maintenance windows) behind their
//! fences, writes the API tokens created or revoked on this node (`tokens.rs`), and watches
//! the prefix.
//!
//! Every decision is the state machine's (`machine/`, pure and tested event by event): when
//! to connect and to which member, whether the lease is reused, where the watch resumes,
//! when the node is stale or fresh, when it campaigns, leads or is deposed. This loop only
//! performs its actions (the calls in `link.rs` and `leadership.rs`, the effects in
//! `effects.rs`) and feeds it what came of them, with the time.
//!
//! etcd's client is a thin gRPC layer: a lease keep-alive or watch stream does not move to
//! another member when its member dies, calls can hang on a dead connection, and a client
//! given several endpoints spreads its calls and streams over all of them, dead ones
//! included. So a round talks to one member only, every call has a deadline, and any failure
//! ends the round; the next round goes to the next member. A leader keeps leading across it
//! while its lease holds, and the node is marked stale only if it is not back within a short
//! grace (see `machine/`).
//!
//! Leadership is a key (`{prefix}leader`) created only if absent and bound to the node's
//! lease: it disappears when the lease does (the leader died, or lost etcd for longer than
//! the lease TTL). Its create revision is the leader's term; every write compares it, so a
//! deposed leader (paused, cut off) can never overwrite its successor's records.

mod effects;
mod leadership;
mod link;
mod machine;
mod tokens;
mod views;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use etcd_client::{EventType, WatchResponse};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::{ClusterEvent, Inbox, Stored, Write};
use crate::metrics::Metrics;
use effects::Effects;
use link::Link;
use machine::{Action, Delivery, Event, Failure, Machine};

/// Why a call to etcd failed.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the watch ended ({0})")]
    WatchEnded(String),
    #[error("no connection to etcd")]
    NotConnected,
}

impl RoundError {
    /// The machine's event for this failure: an etcd member that answers it has no leader
    /// is electing one, which the machine retries sooner; a member whose connection is
    /// refused or broken is down (if it led etcd, the others will elect another).
    fn event(&self) -> Event {
        let detail = self.to_string();
        let down = [
            "tcp connect error",
            "h2 protocol error",
            "connection reset",
            "broken pipe",
        ];
        let failure = if detail.contains("no leader") {
            Failure::NoLeader
        } else if down.iter().any(|words| detail.contains(words)) {
            Failure::Down
        } else {
            Failure::Other
        };
        Event::Failed { failure, detail }
    }
}

/// What the leader key holds: who leads, and with which services.
#[derive(Serialize, Deserialize)]
struct LeaderValue {
    node: String,
    /// Random per process: tells this process's own key from a namesake's.
    token: String,
    digest: String,
}

/// The loop's state: the round's connection and the world the actions act on.
struct Session {
    effects: Effects,
    credentials: super::credentials::Credentials,
    writes: mpsc::UnboundedReceiver<Write>,
    digest: Arc<std::sync::Mutex<String>>,
    token: String,
    link: Option<Link>,
    /// A record whose write failed with its round: written first when the next round works,
    /// so that a decision made while a member died is not lost.
    unsent: Option<(String, crate::cluster::ServiceRecord)>,
    /// Where the registry leaves this node's views (see `views.rs`).
    lane: Arc<super::ViewLane>,
    /// This node's views and round, as written to etcd (see `views.rs`).
    out: views::Outgoing,
}

/// The machine and what its clock decides while a call is in flight: effects are applied
/// at once (a slow member does not hold back the staleness flag or the lease's deadline),
/// calls wait in `later` until the call in flight has returned.
struct Clock<'a> {
    machine: &'a mut Machine,
    later: Vec<Action>,
    limit: Duration,
}

impl Clock<'_> {
    /// Runs `call` within the configured timeout, ticking the machine meanwhile.
    async fn run<T, F>(&mut self, effects: &mut Effects, call: F) -> Result<T, RoundError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let call = timeout(self.limit, call);
        tokio::pin!(call);
        loop {
            tokio::select! {
                done = &mut call => {
                    return done.map_err(|_| RoundError::Timeout(self.limit))?.map_err(RoundError::Etcd);
                }
                () = sleep_until(self.machine.wake_at()) => {
                    for action in self.machine.handle(Instant::now(), Event::Tick) {
                        if action.is_effect() {
                            effects.apply(action);
                        } else {
                            self.later.push(action);
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What woke the loop between calls.
enum Woken {
    Event(Event),
    Write(Write),
    /// This node has views to write, and no other write waits.
    Views,
    Stopping,
}

/// What the wait ended with, before it is made sense of.
enum Raw {
    Watch(Result<Option<WatchResponse>, etcd_client::Error>),
    /// A renewal's TTL (0: etcd no longer has the lease; `None`: the stream ended).
    Renewal(Result<Option<i64>, etcd_client::Error>),
    Write(Option<Write>),
    Views,
    Tick,
}

/// Runs the session for as long as the daemon does.
pub(super) async fn run(inbox: Inbox, registry: Recipient<ClusterEvent>, metrics: Arc<Metrics>) {
    let Inbox {
        settings,
        credentials,
        writes,
        views,
        digest,
        status,
        tokens,
    } = inbox;
    let mut machine = Machine::new(
        settings.lease_ttl,
        settings.endpoints.len(),
        fastrand::usize(..),
        Instant::now(),
    );
    let mut session = Session {
        effects: Effects {
            settings,
            status,
            registry,
            metrics,
            mismatch: false,
            read: Vec::new(),
            tokens,
            read_tokens: Vec::new(),
            leading: false,
            stale: true,
        },
        credentials,
        writes,
        digest,
        token: format!("{:016x}", fastrand::u64(..)),
        link: None,
        unsent: None,
        lane: views,
        out: Default::default(),
    };
    let mut pending: Vec<Action> = machine.handle(Instant::now(), Event::Tick);
    loop {
        while !pending.is_empty() {
            let action = pending.remove(0);
            let mut clock = session.clock(&mut machine);
            let event = session.perform(action, &mut clock).await;
            let later = clock.later;
            session.settle(&mut machine, &mut pending, later, event);
        }
        if !session.effects.registry.connected() {
            return;
        }
        if machine.working()
            && let Some((id, record)) = session.unsent.take()
        {
            let mut clock = session.clock(&mut machine);
            let event = session.write_record(id, record, true, &mut clock).await;
            let later = clock.later;
            session.settle(&mut machine, &mut pending, later, event);
            continue;
        }
        session.rebind_views(&machine);
        match session.wait(&mut machine).await {
            Woken::Event(event) => pending = machine.handle(Instant::now(), event),
            Woken::Write(write) => {
                let mut clock = session.clock(&mut machine);
                let event = session.write(write, &mut clock).await;
                let later = clock.later;
                session.settle(&mut machine, &mut pending, later, event);
            }
            Woken::Views => {
                let mut clock = session.clock(&mut machine);
                let event = session.write_views(&mut clock).await;
                let later = clock.later;
                session.settle(&mut machine, &mut pending, later, event);
            }
            Woken::Stopping => return,
        }
    }
}

impl Session {
    fn clock<'a>(&self, machine: &'a mut Machine) -> Clock<'a> {
        Clock {
            machine,
            later: Vec::new(),
            limit: self.effects.settings.timeout,
        }
    }

    /// Queues what follows a call: what the clock decided meanwhile, then what its outcome
    /// leads to. A failed call drops the rest of its round's actions; a round the clock
    /// ended meanwhile (the lease lapsed) drops the call's outcome.
    fn settle(
        &mut self,
        machine: &mut Machine,
        pending: &mut Vec<Action>,
        later: Vec<Action>,
        event: Option<Event>,
    ) {
        if later.contains(&Action::Disconnect) {
            pending.clear();
            pending.extend(later);
            return;
        }
        match event {
            Some(failed @ Event::Failed { .. }) => {
                pending.clear();
                pending.extend(machine.handle(Instant::now(), failed));
            }
            event => {
                pending.extend(later);
                if let Some(event) = event {
                    pending.extend(machine.handle(Instant::now(), event));
                }
            }
        }
    }

    /// Does `action`: a call answers with the event it led to (or its failure), an effect
    /// with nothing.
    async fn perform(&mut self, action: Action, clock: &mut Clock<'_>) -> Option<Event> {
        if action.is_effect() {
            self.effects.apply(action);
            return None;
        }
        let outcome = match action {
            Action::Connect { member } => self.connect(member, clock).await,
            Action::Disconnect => {
                self.link = None;
                return None;
            }
            Action::Revoke { lease } => {
                self.revoke(lease, clock).await;
                return None;
            }
            Action::Campaign { lease } => self.campaign(lease, clock).await,
            call => match self.link.as_mut() {
                Some(link) => link.call(call, &mut self.effects, clock).await,
                None => Err(RoundError::NotConnected),
            },
        };
        match outcome {
            Ok(event) => event,
            Err(e) => Some(e.event()),
        }
    }

    async fn connect(
        &mut self,
        member: usize,
        clock: &mut Clock<'_>,
    ) -> Result<Option<Event>, RoundError> {
        self.link = None;
        let settings = &self.effects.settings;
        let endpoint = settings.endpoints[member % settings.endpoints.len()].clone();
        let options = link::options(settings, &self.credentials);
        let client = clock
            .run(
                &mut self.effects,
                etcd_client::Client::connect([endpoint], Some(options)),
            )
            .await?;
        self.link = Some(Link::new(client));
        Ok(Some(Event::Connected))
    }

    /// Waits for what comes next: a watch response, a renewal, a write (while the round
    /// works; they wait in the channel meanwhile), the clock, or views to write (last:
    /// only when none of the others is ready, so that views never hold back a record).
    async fn wait(&mut self, machine: &mut Machine) -> Woken {
        let working = machine.working();
        let views_writable = working && machine.lease().is_some();
        let views_due = !self.out.due.is_empty() || self.out.round.1;
        let lane = self.lane.clone();
        let wake = machine.wake_at();
        let (watch, renewals) = match self.link.as_mut() {
            Some(link) if working => (link.watch.as_mut(), link.renewals.as_mut()),
            _ => (None, None),
        };
        let woke = tokio::select! {
            biased;
            message = async move {
                match watch {
                    Some(watch) => watch.message().await,
                    None => std::future::pending().await,
                }
            } => Raw::Watch(message),
            renewal = async move {
                match renewals {
                    Some(renewals) => renewals.message().await,
                    None => std::future::pending().await,
                }
            } => Raw::Renewal(renewal.map(|r| r.map(|r| r.ttl()))),
            write = self.writes.recv(), if working => Raw::Write(write),
            () = sleep_until(wake) => Raw::Tick,
            () = async move {
                if !views_due {
                    lane.arrived.notified().await;
                }
            }, if views_writable => Raw::Views,
        };
        match woke {
            Raw::Watch(message) => Woken::Event(self.watched(machine, message)),
            Raw::Renewal(Ok(Some(ttl))) if ttl > 0 => {
                self.effects.renewed();
                let ttl = Duration::from_secs(ttl as u64);
                Woken::Event(Event::Renewed { ttl })
            }
            Raw::Renewal(Ok(Some(_))) => Woken::Event(Event::LeaseGone),
            Raw::Renewal(Ok(None)) => {
                // The stream ended: it has nothing more to say (and polling it again would
                // only say so again).
                if let Some(link) = self.link.as_mut() {
                    link.renewals = None;
                }
                Woken::Event(Event::LeaseGone)
            }
            Raw::Renewal(Err(e)) => Woken::Event(RoundError::Etcd(e).event()),
            Raw::Write(Some(write)) => Woken::Write(write),
            Raw::Write(None) => Woken::Stopping,
            Raw::Views => Woken::Views,
            Raw::Tick => Woken::Event(Event::Tick),
        }
    }

    /// Tells the registry what a watch response brought, as the machine classes each
    /// change; the event for the machine once they are told.
    fn watched(
        &mut self,
        machine: &mut Machine,
        message: Result<Option<WatchResponse>, etcd_client::Error>,
    ) -> Event {
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return RoundError::WatchEnded("closed by etcd".into()).event(),
            Err(e) => return RoundError::Etcd(e).event(),
        };
        if response.canceled() {
            return Event::WatchCanceled {
                compacted: response.compact_revision(),
            };
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let revision = kv.mod_revision();
            let delivery = machine.watched(revision);
            let deleted = event.event_type() == EventType::Delete;
            if delivery == Delivery::Ignored || self.effects.token_watched(kv, deleted, delivery) {
                continue;
            }
            if event.event_type() != EventType::Put {
                self.ended(kv.key(), revision, delivery);
                continue;
            }
            let Some((id, stored)) = self.effects.decode(kv.key(), kv.value()) else {
                continue;
            };
            if delivery == Delivery::Past {
                self.effects.tell(ClusterEvent::Past {
                    id,
                    stored,
                    revision,
                });
                continue;
            }
            if let Stored::Record(record) = &stored {
                self.effects.lag(record);
            }
            self.effects.tell(ClusterEvent::Changed {
                id,
                stored,
                revision,
            });
        }
        Event::WatchBatchEnd
    }

    /// A key was deleted: if it was a node's view, that node no longer votes (its lease
    /// ended).
    fn ended(&self, key: &[u8], revision: i64, delivery: Delivery) {
        let key = String::from_utf8_lossy(key);
        if delivery != Delivery::Changed {
            return;
        }
        if let Some((node, id)) = self.effects.view_key(&key) {
            self.effects.tell(ClusterEvent::Changed {
                id: id.to_string(),
                stored: Stored::ViewEnded {
                    node: node.to_string(),
                },
                revision,
            });
        } else if let Some(node) = key.strip_prefix(&self.effects.rounds_prefix()) {
            let (node, round) = (node.to_string(), None);
            self.effects.tell(ClusterEvent::Changed {
                id: node.clone(),
                stored: Stored::Round { node, round },
                revision,
            });
        }
    }
}
