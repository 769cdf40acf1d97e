//! The etcd session: one task per node that connects, holds the node's lease, campaigns for
//! leadership, writes the leader's records (and anyone's maintenance windows) behind their
//! fences, and watches the prefix.
//!
//! etcd's client is a thin gRPC layer: a lease keep-alive or watch stream does not move to
//! another member when its member dies, calls can hang on a dead connection, and a client
//! given several endpoints spreads its calls and streams over all of them, dead ones
//! included. So a round talks to one member only, every call has a deadline, and any failure
//! ends the round: the node marks itself stale, drops its leadership (the leader stops
//! writing at once rather than when its lease runs out), and after a short backoff starts a
//! new round on the next member. The lease is kept across rounds while etcd still has it,
//! so a leader that blinked keeps leading. A round resumes the watch from the revision
//! after the last one seen, so nothing written while the node was away is lost; the first
//! round (or one after etcd compacted that far) reads everything instead, and replays the
//! history before the read into the node's change log.
//!
//! Leadership is a key (`{prefix}leader`) created only if absent and bound to the node's
//! lease: it disappears when the lease does (the leader died, or lost etcd for longer than
//! the lease TTL). Its create revision is the leader's term; every write compares it, so a
//! deposed leader (paused, cut off) can never overwrite its successor's records.

mod leadership;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::Recipient;
use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, SortOrder, SortTarget,
    TlsOptions, WatchOptions,
};
use serde::{Deserialize, Serialize};
use tokio::time::{MissedTickBehavior, interval, sleep, timeout};
use tracing::{debug, error, info, warn};

use super::credentials::Credentials;
use super::record::windows_from_json;
use super::{ClusterEvent, Inbox, ServiceRecord, Stored};
use crate::metrics::Metrics;

/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a follower tries to become leader: a dead leader's key is gone within the lease
/// TTL, and a follower notices within this much more.
const CAMPAIGN_INTERVAL: Duration = Duration::from_millis(250);
/// How far back a full read replays etcd's history into the node's log of changes (in
/// revisions, which count every write under the prefix and the leader key).
const HISTORY_REVISIONS: i64 = 20_000;

/// Why a round with etcd ended.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the watch ended ({0})")]
    WatchEnded(String),
    #[error("the lease expired (the node could not renew it in time)")]
    LeaseExpired,
}

/// What the leader key holds: who leads, and with which services.
#[derive(Serialize, Deserialize)]
struct LeaderValue {
    node: String,
    /// Random per process: tells this process's own key from a namesake's.
    token: String,
    digest: String,
}

struct Session {
    inbox: Inbox,
    registry: Recipient<ClusterEvent>,
    metrics: Arc<Metrics>,
    token: String,
    /// The lease this process holds, kept across reconnections while etcd still has it.
    lease: Option<i64>,
    /// The create revision of the leader key while this node leads.
    term: Option<i64>,
    /// The last revision the watch delivered: after an outage, the watch replays from the
    /// one after it.
    last_revision: Option<i64>,
    /// The revision of the last full read: changes up to it are history.
    read_at: i64,
    /// Whether a full read replays the history before it (until etcd says it has
    /// compacted it away).
    history: bool,
    /// Whether the last campaign found a leader with other services (said once).
    mismatch: bool,
    /// When the current outage began, if one is going on.
    outage: Option<Instant>,
    /// Whether the current outage has been logged.
    reported: bool,
    /// Whether this process has ever reached etcd.
    ever_reached: bool,
    /// The daemon stops: no more campaigns.
    resigned: bool,
    /// The revision at which the watch, replaying after an outage, reached the newest
    /// change stored when the round began (set and taken within one watch response).
    caught_up_at: Option<i64>,
    /// Which endpoint the next round uses (modulo their number), and the one in use.
    endpoint: usize,
    member: String,
}

/// Runs the session for as long as the daemon does.
pub(super) async fn run(inbox: Inbox, registry: Recipient<ClusterEvent>, metrics: Arc<Metrics>) {
    let mut session = Session {
        inbox,
        registry,
        metrics,
        token: format!("{:016x}", fastrand::u64(..)),
        lease: None,
        term: None,
        last_revision: None,
        read_at: 0,
        history: true,
        mismatch: false,
        outage: Some(Instant::now()),
        reported: false,
        ever_reached: false,
        resigned: false,
        caught_up_at: None,
        endpoint: fastrand::usize(..),
        member: String::new(),
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let error = session.round().await;
        session.lost(&error);
        session.endpoint = session.endpoint.wrapping_add(1);
        if started.elapsed() > MAX_BACKOFF * 2 {
            backoff = FIRST_BACKOFF;
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if !session.registry.connected() {
            return;
        }
    }
}

/// `options` with TLS to the members and etcd's authentication, as configured.
fn with_credentials(options: ConnectOptions, credentials: &Credentials) -> ConnectOptions {
    let mut options = options;
    if let Some(tls) = &credentials.tls {
        let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca));
        if let Some((certificate, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(certificate, key));
        }
        if let Some(name) = &tls.server_name {
            config = config.domain_name(name.clone());
        }
        options = options.with_tls(config);
    }
    if let Some((user, password)) = &credentials.user {
        options = options
            .with_user(user.clone(), password.clone())
            .with_auto_token_refresh(true);
    }
    options
}

impl Session {
    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.inbox.settings.prefix)
    }

    fn services_prefix(&self) -> String {
        self.key("services/")
    }

    fn maintenance_prefix(&self) -> String {
        self.key("maintenance/")
    }

    /// Waits for `call` for at most the configured timeout.
    async fn deadline<T, F>(&self, call: F) -> Result<T, RoundError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let limit = self.inbox.settings.timeout;
        timeout(limit, call)
            .await
            .map_err(|_| RoundError::Timeout(limit))?
            .map_err(RoundError::Etcd)
    }

    /// One connection to etcd, from connecting to the first failure.
    async fn round(&mut self) -> RoundError {
        match self.connected().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn connected(&mut self) -> Result<std::convert::Infallible, RoundError> {
        let settings = &self.inbox.settings;
        let options = ConnectOptions::new()
            .with_connect_timeout(settings.timeout)
            .with_keep_alive(settings.timeout, settings.timeout)
            .with_keep_alive_while_idle(true)
            // A member cut off from the others refuses at once instead of answering stale.
            .with_require_leader(true);
        let options = with_credentials(options, &self.inbox.credentials);
        // One member per round, the next one after a failure: every call and stream of a
        // round goes to the same member, so none is left on a dead one (the client balances
        // calls over every endpoint it is given, streams included).
        let endpoint = settings.endpoints[self.endpoint % settings.endpoints.len()].clone();
        self.member = endpoint.clone();
        let mut client = self
            .deadline(Client::connect([endpoint], Some(options)))
            .await?;
        let ttl = settings.lease_ttl.as_secs() as i64;
        // The lease: the one held before a short outage if etcd still has it, so that a
        // leader that blinked keeps its leadership.
        let mut lease = None;
        if let Some(id) = self.lease {
            let alive = self
                .deadline(client.lease_time_to_live(id, None))
                .await?
                .ttl();
            if alive > 0 {
                lease = Some(id);
            }
        }
        let lease = match lease {
            Some(id) => id,
            None => {
                self.term = None;
                self.deadline(client.lease_grant(ttl, None)).await?.id()
            }
        };
        self.lease = Some(lease);
        let (mut keeper, mut renewals) = self.deadline(client.lease_keep_alive(lease)).await?;

        // After an outage, the watch replays every change missed, from the revision after
        // the last one seen (the node's sequence then has no gap); the first time, or when
        // etcd has compacted that far back, everything stored is read first instead.
        let prefix = self.key("");
        let mut watch = None;
        if let Some(last) = self.last_revision {
            let mut replay = self
                .deadline(
                    client.watch(
                        prefix.clone(),
                        Some(
                            WatchOptions::new()
                                .with_prefix()
                                .with_start_revision(last + 1),
                        ),
                    ),
                )
                .await?;
            // etcd answers a watch's creation first, or its cancellation if compacted.
            match self.deadline(replay.message()).await? {
                Some(created) if !created.canceled() => watch = Some(replay),
                Some(canceled) => info!(
                    last,
                    compacted = canceled.compact_revision(),
                    "etcd has compacted the changes missed; reading every service again"
                ),
                None => return Err(RoundError::WatchEnded("closed by etcd".into())),
            }
        }
        // Caught up once the watch has brought every change stored now: until then the
        // node is still stale (its states are behind), and does not campaign (a paused
        // leader would otherwise lead again from what it knew before its pause).
        let mut catch_up_to = None;
        let mut watch = match watch {
            Some(watch) => {
                let newest = self.newest_write(&mut client, &prefix).await?;
                let last = self.last_revision.unwrap_or_default();
                if newest <= last {
                    self.reached(last);
                } else {
                    debug!(
                        last,
                        newest, "replaying the changes missed before serving again"
                    );
                    catch_up_to = Some(newest);
                }
                watch
            }
            None => {
                let mut stored = self
                    .deadline(client.get(prefix.clone(), Some(GetOptions::new().with_prefix())))
                    .await?;
                let revision = stored.header().map_or(0, |h| h.revision());
                // The changes before the read, replayed into the node's log (not
                // published again), so that a client that saw them on another node can
                // resume here: back to as many revisions as the log keeps.
                let history_from = self.history.then(|| (revision - HISTORY_REVISIONS).max(1));
                let records = stored
                    .take_kvs()
                    .into_iter()
                    .filter_map(|kv| {
                        let (id, stored) = self.decode(kv.key(), kv.value())?;
                        Some((id, stored, kv.mod_revision()))
                    })
                    .collect();
                let watch = self
                    .deadline(
                        client.watch(
                            prefix,
                            Some(
                                WatchOptions::new()
                                    .with_prefix()
                                    .with_start_revision(history_from.unwrap_or(revision + 1)),
                            ),
                        ),
                    )
                    .await?;
                self.read_at = revision;
                self.tell(ClusterEvent::Synced {
                    stored: records,
                    revision,
                    history_from,
                });
                self.last_revision = Some(revision);
                self.reached(revision);
                watch
            }
        };

        let mut renew = interval(self.inbox.settings.lease_ttl / 3);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut campaign = interval(CAMPAIGN_INTERVAL);
        campaign.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // etcd keeps the lease until this instant, as far as this node can know.
        let mut lease_until = Instant::now() + self.inbox.settings.lease_ttl;
        self.inbox.status.lease_until(lease_until);
        loop {
            tokio::select! {
                message = watch.message() => {
                    let Some(response) = message? else {
                        return Err(RoundError::WatchEnded("closed by etcd".into()));
                    };
                    if response.canceled() {
                        if response.compact_revision() > 0 {
                            // The changes missed are gone: the next round reads every
                            // service instead of replaying, and without the history
                            // before the read if that was what etcd no longer had.
                            if self.last_revision <= Some(self.read_at) {
                                self.history = false;
                            }
                            self.last_revision = None;
                        }
                        return Err(RoundError::WatchEnded(format!(
                            "canceled: {} (compacted at {})",
                            response.cancel_reason(),
                            response.compact_revision()
                        )));
                    }
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        let revision = kv.mod_revision();
                        if catch_up_to.is_some_and(|newest| revision >= newest) {
                            catch_up_to = None;
                            self.caught_up_at = Some(revision);
                        }
                        if event.event_type() != EventType::Put {
                            continue;
                        }
                        let Some((id, stored)) = self.decode(kv.key(), kv.value()) else {
                            continue;
                        };
                        if revision <= self.read_at {
                            self.tell(ClusterEvent::Past { id, stored, revision });
                            continue;
                        }
                        if let Stored::Record(record) = &stored {
                            self.lag(record);
                        }
                        self.tell(ClusterEvent::Changed { id, stored, revision });
                        self.last_revision = Some(revision);
                    }
                    if let Some(revision) = self.caught_up_at.take() {
                        // After the events of this response: the registry has them first.
                        self.reached(revision);
                    }
                }
                _ = renew.tick() => {
                    if Instant::now() >= lease_until {
                        self.lease = None;
                        return Err(RoundError::LeaseExpired);
                    }
                    self.deadline(keeper.keep_alive()).await?;
                }
                renewal = renewals.message() => {
                    match renewal? {
                        Some(r) if r.ttl() > 0 => {
                            lease_until = Instant::now() + Duration::from_secs(r.ttl() as u64);
                            self.inbox.status.lease_until(lease_until);
                            self.metrics.cluster.lease_renewals.inc();
                        }
                        _ => {
                            self.lease = None;
                            return Err(RoundError::LeaseExpired);
                        }
                    }
                }
                _ = campaign.tick(), if self.term.is_none() && !self.resigned && catch_up_to.is_none() => {
                    self.campaign(&mut client, lease).await?;
                }
                write = self.inbox.writes.recv() => {
                    let Some(write) = write else {
                        return Err(RoundError::WatchEnded("the daemon is stopping".into()));
                    };
                    self.write(&mut client, write).await?;
                }
            }
        }
    }

    /// The mod revision of the newest key under `prefix` (0: none): the last change a
    /// watch replaying from before it must bring before the node is caught up.
    async fn newest_write(&self, client: &mut Client, prefix: &str) -> Result<i64, RoundError> {
        let newest = self
            .deadline(
                client.get(
                    prefix,
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_keys_only()
                            .with_sort(SortTarget::Mod, SortOrder::Descend)
                            .with_limit(1),
                    ),
                ),
            )
            .await?;
        Ok(newest.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// The round works and the node is caught up: no longer stale.
    fn reached(&mut self, revision: i64) {
        self.metrics.cluster.revision.set(revision);
        self.inbox.status.set_stale(false);
        self.metrics.cluster.stale.set(0);
        let outage = self.outage.take().map(|t| t.elapsed());
        self.reported = false;
        self.ever_reached = true;
        info!(member = %self.member, revision, ?outage, "connected to etcd; serving the cluster's states");
    }

    /// The round failed: stale, and no longer leading. Said once per outage; the retries
    /// of an outage only at debug level.
    fn lost(&mut self, error: &RoundError) {
        self.depose();
        self.inbox.status.set_stale(true);
        self.metrics.cluster.stale.set(1);
        if self.outage.is_none() {
            self.outage = Some(Instant::now());
        }
        if self.reported {
            debug!(%error, "etcd still unreachable; retrying");
            return;
        }
        self.reported = true;
        if matches!(error, RoundError::LeaseExpired) {
            // etcd itself may well be reachable: it is this process that fell behind.
            warn!(member = %self.member, "this node's lease expired before it could renew it (was the process paused, or starved of CPU?): it no longer leads, serves the states it last knew marked stale, and rejoins with a new lease");
        } else if self.ever_reached {
            error!(member = %self.member, %error, "lost etcd: this node serves the states it last knew, marked stale, and retries (the next member, if there are several)");
        } else {
            error!(member = %self.member, endpoints = ?self.inbox.settings.endpoints, %error, "cannot reach etcd: this node serves nothing until it does, and retries every member in turn (check [cluster] endpoints and that etcd runs)");
        }
    }

    /// What is stored at `key`, if it is a record or maintenance windows; otherwise says
    /// why, and skips it. The leader key is neither, and skipped silently.
    fn decode(&self, key: &[u8], value: &[u8]) -> Option<(String, Stored)> {
        let key = String::from_utf8_lossy(key);
        let decoded = if let Some(id) = key.strip_prefix(&self.services_prefix()) {
            ServiceRecord::from_json(value).map(|r| (id.to_string(), Stored::Record(r)))
        } else if let Some(id) = key.strip_prefix(&self.maintenance_prefix()) {
            windows_from_json(id, value).map(|w| (id.to_string(), Stored::Windows(w)))
        } else {
            return None;
        };
        match decoded {
            Ok(stored) => Some(stored),
            Err(e) => {
                warn!(key = %key, error = %e, "skipping a stored value that is not a service record");
                None
            }
        }
    }

    fn lag(&self, record: &ServiceRecord) {
        let lag = SystemTime::now()
            .duration_since(record.written)
            .unwrap_or_default();
        self.metrics
            .cluster
            .watch_lag_seconds
            .set(lag.as_secs_f64());
    }

    fn tell(&self, event: ClusterEvent) {
        if let ClusterEvent::Changed { revision, .. } = &event {
            self.metrics.cluster.revision.set(*revision);
        }
        self.registry.do_send(event);
    }
}
