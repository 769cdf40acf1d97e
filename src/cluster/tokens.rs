//! API tokens on a cluster: one set for every node, kept in etcd at `{prefix}tokens/{name}`
//! (the record as JSON: name, scope, contact center, expiry, creator, creation, and the
//! SHA-256 of the token, never the token). The node that receives a creation or a
//! revocation writes the key itself; every node applies what its watch brings (a `put`
//! adds or replaces a token, a `delete` revokes it, with its cookie logins and notification
//! sessions) and takes the whole set from its read at start and after a re-sync.
//!
//! Any node writes, not the leader alone, and the writes are not fenced by a leadership:
//! fencing keeps a deposed leader from overwriting the decisions of its successor, which are
//! drawn from its monitors; a token is an admin's decision, taken on whichever node the
//! admin asked, and means the same whoever writes it. etcd orders the writes: a creation is
//! a transaction that puts the key only if it is absent, so that two admins on two nodes
//! cannot both create one name; a revocation deletes the key. Going through the leader would
//! only add a hop, and make tokens unmanageable while the cluster elects one.
//!
//! A node that cannot reach etcd writes nothing: creation and revocation are answered as
//! failed (503) rather than done later. Its logins keep working from its last view of the
//! tokens, and a revocation it missed applies when it is back (from the watch, or from its
//! read if etcd compacted the change).

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::record::{RecordError, millis};
use super::{Cluster, Write};
use crate::auth::{ApiTokenRecord, Scope};

/// How long a token request waits for its write to start before it is answered as failed
/// (the write is then dropped unwritten, never made later).
pub(crate) const TOKENS_DEADLINE: Duration = Duration::from_secs(3);

/// Where the tokens etcd holds are applied on this node. Each change carries the revision
/// that made it, so that a change heard twice (written here, then brought by the watch) or
/// late (a write's answer after a newer change) is applied once, in etcd's order.
pub(crate) trait TokenBook: Send + Sync {
    /// Every token etcd held at `revision` (its read): the others are revoked here.
    fn replace(&self, tokens: Vec<ApiTokenRecord>, revision: i64);
    /// A token was created (or replaced) at `revision`.
    fn put(&self, record: ApiTokenRecord, revision: i64);
    /// The token named `name` was revoked at `revision`.
    fn delete(&self, name: &str, revision: i64);
}

/// A node's handle on the book it applies changes to, shared with the etcd session.
pub(crate) type SharedBook = Arc<dyn TokenBook>;

/// A change of the cluster's tokens, asked by an admin on this node.
#[derive(Debug)]
pub(crate) enum TokenChange {
    /// Stores a new token, unless its name is taken.
    Create(ApiTokenRecord),
    /// Deletes the token of this name.
    Revoke(String),
}

/// What a change stored: the revision that made it, and the record created or revoked
/// (`None` for a revoked key that did not hold a record this version can read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenWritten {
    pub revision: i64,
    pub record: Option<ApiTokenRecord>,
}

/// Why a change of the cluster's tokens was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenWriteError {
    #[error(
        "etcd did not confirm the change (it is out of reach from this node, or too slow): nothing is known to be done; list the tokens and try again"
    )]
    Unreachable,
    #[error("an API token named \"{0}\" exists already; revoke it first, or choose another name")]
    Duplicate(String),
    #[error("no API token is named \"{0}\"")]
    Unknown(String),
}

/// A token request's answer, sent by the session.
pub(crate) type TokenAnswer = oneshot::Sender<Result<TokenWritten, TokenWriteError>>;

impl Cluster {
    /// Stores `record` as a new token of the cluster.
    pub async fn create_token(
        &self,
        record: ApiTokenRecord,
    ) -> Result<TokenWritten, TokenWriteError> {
        self.change_tokens(TokenChange::Create(record)).await
    }

    /// Revokes the cluster's token named `name`.
    pub async fn revoke_token(&self, name: &str) -> Result<TokenWritten, TokenWriteError> {
        self.change_tokens(TokenChange::Revoke(name.to_string()))
            .await
    }

    /// Asks the session for `change`: at once refused while the node has lost etcd; else
    /// waits for the write to be made (started within [`TOKENS_DEADLINE`], answered within
    /// the etcd call's timeout after it).
    async fn change_tokens(&self, change: TokenChange) -> Result<TokenWritten, TokenWriteError> {
        if self.status.is_stale() {
            return Err(TokenWriteError::Unreachable);
        }
        let (done, answer) = oneshot::channel();
        let deadline = Instant::now() + TOKENS_DEADLINE;
        let write = Write::Token {
            change,
            deadline,
            done,
        };
        if self.writes.send(write).is_err() {
            return Err(TokenWriteError::Unreachable);
        }
        match tokio::time::timeout(TOKENS_DEADLINE + self.call_timeout, answer).await {
            Ok(Ok(written)) => written,
            _ => Err(TokenWriteError::Unreachable),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireToken {
    name: String,
    scope: String,
    contact_center: String,
    /// Milliseconds since the Unix epoch.
    expires: u64,
    created_by: String,
    created: u64,
    /// Hexadecimal.
    sha256: String,
}

/// The JSON stored for a token: readable with `etcdctl get`, and never the token.
pub(crate) fn token_to_json(record: &ApiTokenRecord) -> Vec<u8> {
    let wire = WireToken {
        name: record.name.clone(),
        scope: record.scope.as_str().into(),
        contact_center: record.contact_center.clone(),
        expires: millis(record.expires),
        created_by: record.created_by.clone(),
        created: millis(record.created),
        sha256: record.sha256.iter().map(|b| format!("{b:02x}")).collect(),
    };
    serde_json::to_vec(&wire).expect("a token record serializes")
}

/// The token stored at `tokens/{name}`. A record that is not whole (a scope this version
/// does not know, a digest of the wrong size, another name than its key's) is refused: a
/// token must not be half-read.
pub(crate) fn token_from_json(name: &str, bytes: &[u8]) -> Result<ApiTokenRecord, RecordError> {
    let wire: WireToken =
        serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
    let unknown = |what, value: &str| RecordError::Unknown {
        what,
        value: value.to_string(),
    };
    if wire.name != name {
        return Err(unknown("token name for its key", &wire.name));
    }
    let scope = Scope::parse(&wire.scope).ok_or_else(|| unknown("scope", &wire.scope))?;
    let sha256 = hex_digest(&wire.sha256).ok_or_else(|| unknown("SHA-256", &wire.sha256))?;
    let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
    Ok(ApiTokenRecord {
        name: wire.name,
        scope,
        contact_center: wire.contact_center,
        expires: at(wire.expires),
        created_by: wire.created_by,
        created: at(wire.created),
        sha256,
    })
}

/// 64 hexadecimal digits as 32 bytes.
fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ApiTokenRecord {
        ApiTokenRecord {
            name: "ci".into(),
            scope: Scope::Maintenance,
            contact_center: "cc".into(),
            expires: UNIX_EPOCH + Duration::from_millis(1_800_000_000_000),
            created_by: "chief".into(),
            created: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            sha256: [0xab; 32],
        }
    }

    #[test]
    fn a_token_record_survives_the_trip_through_etcd_without_its_token() {
        let json = token_to_json(&record());
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains(r#""scope":"maintenance""#), "{text}");
        assert!(text.contains(&"ab".repeat(32)), "the digest in hex: {text}");
        assert_eq!(token_from_json("ci", &json).unwrap(), record());
    }

    #[test]
    fn a_record_that_is_not_whole_is_refused() {
        let json = String::from_utf8(token_to_json(&record())).unwrap();
        assert!(token_from_json("other", json.as_bytes()).is_err());
        let root = json.replace("maintenance", "root");
        assert_eq!(
            token_from_json("ci", root.as_bytes())
                .unwrap_err()
                .to_string(),
            "unknown scope \"root\""
        );
        let short = json.replace(&"ab".repeat(32), "abcd");
        assert!(token_from_json("ci", short.as_bytes()).is_err());
        let odd = json.replace(&"ab".repeat(32), &"zz".repeat(32));
        assert!(token_from_json("ci", odd.as_bytes()).is_err());
        assert!(token_from_json("ci", b"[]").is_err());
    }
}
