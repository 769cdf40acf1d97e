//! A round's connection to one etcd member, and the calls that set the round up and keep
//! it going: the lease (asked after, granted, kept alive), the watch, the reads.

use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, LeaseKeepAliveStream, LeaseKeeper,
    SortOrder, SortTarget, TlsOptions, WatchOptions, WatchStream,
};

use super::effects::Effects;
use super::machine::{Action, Event};
use super::{Clock, RoundError};
use crate::cluster::credentials::Credentials;
use crate::config::cluster::ClusterSettings;

/// The connection of a round, and its streams once opened.
pub(super) struct Link {
    pub client: Client,
    keeper: Option<LeaseKeeper>,
    pub renewals: Option<LeaseKeepAliveStream>,
    pub watch: Option<WatchStream>,
}

/// How the client connects to a member: with a deadline, keep-alives that notice a dead
/// connection within the timeout, TLS and etcd's authentication as configured.
pub(super) fn options(settings: &ClusterSettings, credentials: &Credentials) -> ConnectOptions {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(settings.timeout)
        .with_keep_alive(settings.timeout, settings.timeout)
        .with_keep_alive_while_idle(true)
        // A member cut off from the others refuses at once instead of answering stale.
        .with_require_leader(true);
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

impl Link {
    pub fn new(client: Client) -> Self {
        Link {
            client,
            keeper: None,
            renewals: None,
            watch: None,
        }
    }

    /// Makes the call `action` asks for; the event it led to.
    pub async fn call(
        &mut self,
        action: Action,
        effects: &mut Effects,
        clock: &mut Clock<'_>,
    ) -> Result<Option<Event>, RoundError> {
        let client = &mut self.client;
        let asked = Instant::now();
        let event = match action {
            Action::Status => {
                let status = clock.run(effects, client.status()).await?;
                let member_id = status.header().map_or(0, |h| h.member_id());
                let leader = status.leader();
                Event::Status { member_id, leader }
            }
            Action::CheckLease { id } => {
                let ttl = clock
                    .run(effects, client.lease_time_to_live(id, None))
                    .await?
                    .ttl();
                if ttl > 0 {
                    let ttl = Duration::from_secs(ttl as u64);
                    Event::LeaseAlive { ttl, asked }
                } else {
                    Event::LeaseGone
                }
            }
            Action::GrantLease { ttl } => {
                let granted = clock
                    .run(effects, client.lease_grant(ttl.as_secs() as i64, None))
                    .await?;
                let ttl = Duration::from_secs(granted.ttl().max(0) as u64);
                Event::LeaseGranted {
                    id: granted.id(),
                    ttl,
                    asked,
                }
            }
            Action::KeepAlive { id } => {
                let (keeper, renewals) = clock.run(effects, client.lease_keep_alive(id)).await?;
                self.keeper = Some(keeper);
                self.renewals = Some(renewals);
                Event::KeepAliveOpened
            }
            Action::Renew => {
                if let Some(keeper) = self.keeper.as_mut() {
                    clock.run(effects, keeper.keep_alive()).await?;
                }
                return Ok(None);
            }
            Action::Watch { from } => self.watch(from, effects, clock).await?,
            Action::ReadNewest => Event::Newest {
                revision: newest_write(client, effects, clock).await?,
            },
            Action::ReadAll => read_all(client, effects, clock).await?,
            other => unreachable!("{other:?} is performed by the loop, not on the link"),
        };
        Ok(Some(event))
    }

    /// Creates the watch on the prefix from revision `from`, and waits for etcd to say it
    /// is created (a compaction of what it is to replay comes after, as a cancellation).
    async fn watch(
        &mut self,
        from: i64,
        effects: &mut Effects,
        clock: &mut Clock<'_>,
    ) -> Result<Event, RoundError> {
        self.watch = None;
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let prefix = effects.key("");
        let client = &mut self.client;
        let created = clock
            .run(effects, async {
                let mut watch = client.watch(prefix, Some(options)).await?;
                let first = watch.message().await?;
                Ok((watch, first))
            })
            .await?;
        match created {
            (watch, Some(first)) if first.created() && !first.canceled() => {
                self.watch = Some(watch);
                Ok(Event::WatchCreated)
            }
            (_, Some(refused)) => Err(RoundError::WatchEnded(format!(
                "not created: {}",
                refused.cancel_reason()
            ))),
            (_, None) => Err(RoundError::WatchEnded("closed by etcd".into())),
        }
    }
}

/// The mod revision of the newest key under the prefix (0: none): the last change a watch
/// replaying from before it must bring before the node is caught up.
async fn newest_write(
    client: &mut Client,
    effects: &mut Effects,
    clock: &mut Clock<'_>,
) -> Result<i64, RoundError> {
    let options = GetOptions::new()
        .with_prefix()
        .with_keys_only()
        .with_sort(SortTarget::Mod, SortOrder::Descend)
        .with_limit(1);
    let prefix = effects.key("");
    let newest = clock
        .run(effects, client.get(prefix, Some(options)))
        .await?;
    Ok(newest.kvs().first().map_or(0, |kv| kv.mod_revision()))
}

/// Reads every key under the prefix; what it holds waits in `effects` until the watch
/// from there exists and the registry is told.
async fn read_all(
    client: &mut Client,
    effects: &mut Effects,
    clock: &mut Clock<'_>,
) -> Result<Event, RoundError> {
    let prefix = effects.key("");
    let options = GetOptions::new().with_prefix();
    let mut stored = clock
        .run(effects, client.get(prefix, Some(options)))
        .await?;
    let revision = stored.header().map_or(0, |h| h.revision());
    effects.keep_read_tokens(stored.kvs());
    effects.read = stored
        .take_kvs()
        .into_iter()
        .filter_map(|kv| {
            let (id, stored) = effects.decode(kv.key(), kv.value())?;
            Some((id, stored, kv.mod_revision()))
        })
        .collect();
    Ok(Event::Read { revision })
}
