//! The cluster's API tokens as this node applies them (see `cluster/tokens.rs`): each change
//! etcd orders, whether this node wrote it or the watch brought it, is applied to the
//! authenticator, and a revoked or replaced token's notification sessions end here too.
//!
//! A change may be heard twice (this node's write, then its watch) or late (a write's
//! answer after the watch brought a newer change of the same name, or after a re-read):
//! each name remembers the revision of its last change, and a read the revision it was made
//! at, so that only a newer change applies and a revoked token never comes back.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::auth::{ApiTokenRecord, Authenticator};
use actix::Addr;

use crate::cluster::tokens::{TokenBook, TokenWriteError, TokenWritten};
use crate::cluster::{Cluster, Inbox};
use crate::metrics::Metrics;
use crate::notify;
use crate::registry::Registry;

/// This node's view of the cluster's tokens.
pub(crate) struct NodeTokens {
    auth: Arc<Authenticator>,
    sessions: Arc<notify::Shared>,
    applied: Mutex<Applied>,
}

/// The revisions of what was applied.
#[derive(Default)]
struct Applied {
    /// The revision of the last full read: no change before it applies.
    read_at: i64,
    /// The revision of each name's last change since (a revoked name's too).
    by_name: HashMap<String, i64>,
}

impl Applied {
    /// Whether a change of `name` at `revision` is newer than what was applied; if so, it
    /// is from now on.
    fn newer(&mut self, name: &str, revision: i64) -> bool {
        let last = self.by_name.get(name).copied().unwrap_or(self.read_at);
        if revision <= last {
            return false;
        }
        self.by_name.insert(name.to_string(), revision);
        true
    }
}

impl NodeTokens {
    pub fn new(auth: Arc<Authenticator>, sessions: Arc<notify::Shared>) -> Self {
        NodeTokens {
            auth,
            sessions,
            applied: Mutex::new(Applied::default()),
        }
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Revokes the token named `name` here, if this node knows it; its caller name, whose
    /// sessions must end.
    fn forget(&self, name: &str) -> Option<Arc<str>> {
        self.auth.revoke_api_token(name).ok().map(|(_, user)| user)
    }

    /// Makes `record` this node's token of its name; the caller name of a different token
    /// it replaced.
    fn install(&self, record: ApiTokenRecord) -> Option<Arc<str>> {
        let replaced = match self.auth.api_token(&record.name) {
            Some(known) if known == record => return None,
            Some(_) => self.forget(&record.name),
            None => None,
        };
        if let Err(e) = self.auth.add_api_token(record) {
            warn!(error = %e, "an API token stored in etcd is left out on this node");
        }
        replaced
    }
}

impl TokenBook for NodeTokens {
    fn replace(&self, tokens: Vec<ApiTokenRecord>, revision: i64) {
        let mut applied = self.applied();
        applied.read_at = revision;
        applied.by_name.clear();
        let wanted: HashMap<&str, &ApiTokenRecord> =
            tokens.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut ended = BTreeSet::new();
        for known in self.auth.api_tokens() {
            if wanted.get(known.name.as_str()) != Some(&&known) {
                ended.extend(self.forget(&known.name));
                info!(token = %known.name, revision, "API token revoked or replaced in the cluster while this node was away: refused here from now on");
            }
        }
        for record in tokens {
            ended.extend(self.install(record));
        }
        drop(applied);
        self.sessions.revoke(&ended);
    }

    fn put(&self, record: ApiTokenRecord, revision: i64) {
        let mut applied = self.applied();
        if !applied.newer(&record.name, revision) {
            return;
        }
        let replaced = self.install(record);
        drop(applied);
        if let Some(user) = replaced {
            self.sessions.revoke(&BTreeSet::from([user]));
        }
    }

    fn delete(&self, name: &str, revision: i64) {
        let mut applied = self.applied();
        if !applied.newer(name, revision) {
            return;
        }
        let revoked = self.forget(name);
        drop(applied);
        if let Some(user) = revoked {
            info!(token = %name, revision, "API token revoked in the cluster: refused on this node from now on");
            self.sessions.revoke(&BTreeSet::from([user]));
        }
    }
}

/// What the token endpoints of a cluster node use: etcd through the node's link, and the
/// node's book, which each change is applied to as soon as etcd has confirmed it (the
/// watch brings it again, and it is not applied twice).
#[derive(Clone)]
pub(crate) struct ClusterTokens {
    pub cluster: Cluster,
    pub book: Arc<NodeTokens>,
}

/// What [`ClusterTokens::start`] applies tokens to, and what the session tells.
pub(crate) type NodeParts<'a> = (
    (&'a Arc<Authenticator>, &'a Arc<notify::Shared>),
    (&'a Addr<Registry>, &'a Arc<Metrics>),
);

impl ClusterTokens {
    /// Starts the node's etcd session from `inbox`, applying the cluster's tokens to the
    /// node's authenticator and sessions; the handle the token endpoints use.
    pub fn start(
        (cluster, inbox): (Cluster, Inbox),
        ((auth, sessions), (registry, metrics)): NodeParts<'_>,
    ) -> ClusterTokens {
        let book = Arc::new(NodeTokens::new(auth.clone(), sessions.clone()));
        inbox
            .with_tokens(book.clone())
            .start(registry.clone().recipient(), metrics.clone());
        ClusterTokens { cluster, book }
    }

    /// Stores `record` in etcd, then applies it here.
    pub async fn create(&self, record: ApiTokenRecord) -> Result<(), TokenWriteError> {
        let written = self.cluster.create_token(record.clone()).await?;
        self.book.put(record, written.revision);
        Ok(())
    }

    /// Deletes the token from etcd, then revokes it here (its sessions end).
    pub async fn revoke(&self, name: &str) -> Result<TokenWritten, TokenWriteError> {
        let written = self.cluster.revoke_token(name).await?;
        self.book.delete(name, written.revision);
        Ok(written)
    }
}

/// The API tokens of the history database, used by a node alone. A cluster node's are
/// etcd's, for every node: the history database's are left out, said if there are any.
pub(crate) fn alone_tokens(
    clustered: bool,
    tokens: Vec<crate::auth::ApiTokenRecord>,
) -> Vec<crate::auth::ApiTokenRecord> {
    if clustered && !tokens.is_empty() {
        tracing::warn!(
            left_out = tokens.len(),
            "the history database holds API tokens from running alone; a cluster node uses the tokens kept in etcd (create them again on the cluster)"
        );
        return Vec::new();
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_change_of_a_name_applies() {
        let mut applied = Applied::default();
        assert!(applied.newer("ci", 5), "written here");
        assert!(!applied.newer("ci", 5), "the watch brings it again");
        assert!(applied.newer("ci", 7), "revoked on another node");
        assert!(
            !applied.newer("ci", 6),
            "a late answer does not bring it back"
        );
        assert!(applied.newer("dash", 6), "names are apart");
        applied.read_at = 10;
        applied.by_name.clear();
        assert!(!applied.newer("ci", 9), "before the read");
        assert!(applied.newer("ci", 11));
    }
}
