//! The cluster's API tokens in the session (see `cluster/tokens.rs`): the writes an admin
//! asked on this node, and what the read and the watch bring, applied to the node's book.
//! Token keys are not the registry's: they never reach it.

use std::time::Instant;

use etcd_client::{Compare, CompareOp, DeleteOptions, KeyValue, Txn, TxnOp};
use tracing::warn;

use super::effects::Effects;
use super::machine::{Delivery, Event};
use super::{Clock, RoundError, Session};
use crate::auth::ApiTokenRecord;
use crate::cluster::tokens::{
    TokenAnswer, TokenChange, TokenWriteError, TokenWritten, token_from_json, token_to_json,
};

impl Effects {
    pub fn tokens_prefix(&self) -> String {
        self.key("tokens/")
    }

    /// The token stored at `key`, if it is a token key: `Some(None)` for one that does not
    /// hold a readable record (said, and skipped).
    fn token_at(&self, key: &[u8], value: &[u8]) -> Option<Option<ApiTokenRecord>> {
        let key = String::from_utf8_lossy(key);
        let name = key.strip_prefix(&self.tokens_prefix())?;
        match token_from_json(name, value) {
            Ok(record) => Some(Some(record)),
            Err(e) => {
                warn!(key = %key, error = %e, "skipping a stored value that is not an API token");
                Some(None)
            }
        }
    }

    /// Keeps the tokens a full read found, until the registry is told of the read.
    pub fn keep_read_tokens(&mut self, kvs: &[KeyValue]) {
        self.read_tokens = kvs
            .iter()
            .filter_map(|kv| self.token_at(kv.key(), kv.value()).flatten())
            .collect();
    }

    /// The read is told: its tokens are the node's whole set.
    pub fn replace_tokens(&mut self, revision: i64) {
        let read = std::mem::take(&mut self.read_tokens);
        if let Some(book) = &self.tokens {
            book.replace(read, revision);
        }
    }

    /// Applies a watched change if it is a token key's (what happened before the read is
    /// in the read already); whether it was one.
    pub fn token_watched(&self, kv: &KeyValue, deleted: bool, delivery: Delivery) -> bool {
        let key = String::from_utf8_lossy(kv.key());
        let Some(name) = key.strip_prefix(&self.tokens_prefix()) else {
            return false;
        };
        let (Some(book), Delivery::Changed) = (&self.tokens, delivery) else {
            return true;
        };
        let revision = kv.mod_revision();
        if deleted {
            book.delete(name, revision);
        } else if let Some(Some(record)) = self.token_at(kv.key(), kv.value()) {
            book.put(record, revision);
        }
        true
    }
}

impl Session {
    /// Makes the token change an admin asked for, unless its caller has given up; the
    /// answer goes to `done`, the event (a failed call) to the machine.
    pub(super) async fn write_token(
        &mut self,
        change: TokenChange,
        deadline: Instant,
        done: TokenAnswer,
        clock: &mut Clock<'_>,
    ) -> Option<Event> {
        if Instant::now() >= deadline {
            let _ = done.send(Err(TokenWriteError::Unreachable));
            return None;
        }
        let outcome = match change {
            TokenChange::Create(record) => self.create_token(record, clock).await,
            TokenChange::Revoke(name) => self.revoke_token(&name, clock).await,
        };
        match outcome {
            Ok(answer) => {
                let _ = done.send(answer);
                None
            }
            Err(e) => {
                let _ = done.send(Err(TokenWriteError::Unreachable));
                Some(e.event())
            }
        }
    }

    /// Puts the token's key if it is absent.
    async fn create_token(
        &mut self,
        record: ApiTokenRecord,
        clock: &mut Clock<'_>,
    ) -> Result<Result<TokenWritten, TokenWriteError>, RoundError> {
        let key = format!("{}{}", self.effects.tokens_prefix(), record.name);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, token_to_json(&record), None)]);
        let link = self.link.as_mut().ok_or(RoundError::NotConnected)?;
        let response = clock.run(&mut self.effects, link.client.txn(txn)).await?;
        if !response.succeeded() {
            return Ok(Err(TokenWriteError::Duplicate(record.name)));
        }
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(Ok(TokenWritten {
            revision,
            record: Some(record),
        }))
    }

    /// Deletes the token's key; what it held.
    async fn revoke_token(
        &mut self,
        name: &str,
        clock: &mut Clock<'_>,
    ) -> Result<Result<TokenWritten, TokenWriteError>, RoundError> {
        let key = format!("{}{name}", self.effects.tokens_prefix());
        let options = DeleteOptions::new().with_prev_key();
        let link = self.link.as_mut().ok_or(RoundError::NotConnected)?;
        let mut response = clock
            .run(&mut self.effects, link.client.delete(key, Some(options)))
            .await?;
        if response.deleted() == 0 {
            return Ok(Err(TokenWriteError::Unknown(name.to_string())));
        }
        let revision = response.header().map_or(0, |h| h.revision());
        let record = response
            .take_prev_kvs()
            .first()
            .and_then(|kv| self.effects.token_at(kv.key(), kv.value()).flatten());
        Ok(Ok(TokenWritten { revision, record }))
    }
}
