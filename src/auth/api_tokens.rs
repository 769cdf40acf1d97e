//! API tokens: the credential of a script or another system (a CI job that sets
//! maintenance, a dashboard, the command line), a third kind of principal beside users and
//! displays. Admins create, list and revoke them through the API (`api/tokens.rs`); the
//! history database keeps them (`history/tokens.rs`), and this module holds them in memory
//! and authenticates `Authorization: Bearer swt_...` against them.
//!
//! A token is 256 random bits, so only its SHA-256 is kept, as for display tokens: nobody
//! can search for a preimage of 256 random bits, so a fast hash protects a stolen database
//! as well as Argon2 would, and costs a request nothing (Argon2 is for passwords, which
//! people choose and attackers can guess). A presented token is hashed and the digest
//! looked up in a hash map; the secret itself is never compared byte by byte.
//!
//! A token's caller name is `token:NAME`, which no user can have (user names hold no `:`),
//! so that a revocation ends its cookie logins and notification sessions by that name.
//! Its scope gives it a role: `read` reads as an agent, `maintenance` as an agent that may
//! also set and end maintenance (and nothing else an admin may), `admin` as an admin.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::displays::{random_token, sha256};
use super::{AuthError, Authenticator, Caller, LoginCookie, Principal, lock};
use crate::config::auth::UserRole;

/// What every API token starts with: it tells an API token from a display token (`swd_`)
/// and from another system's Bearer token, and makes a leaked one easy to scan for.
pub const API_TOKEN_PREFIX: &str = "swt_";
/// The base64url characters of 256 bits, unpadded.
const TOKEN_CHARS: usize = 43;
/// What an API token's caller name starts with (user names cannot hold a `:`).
const CALLER_PREFIX: &str = "token:";
/// The longest a token may live: 400 days, a yearly rotation with a month to spare. A
/// token without an end would outlive whoever knew where it was kept.
pub const MAX_LIFETIME: Duration = Duration::from_secs(400 * 86_400);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Reads services, history, availability and notifications, as an agent.
    Read,
    /// Reads, and sets and ends maintenance.
    Maintenance,
    /// Everything an admin may.
    Admin,
}

impl Scope {
    /// Every scope, least first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Maintenance, Scope::Admin];

    /// The scope's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Maintenance => "maintenance",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`, if any.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One API token as stored and listed: everything but the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// Unique; 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    pub scope: Scope,
    /// The contact center whose services the token sees.
    pub contact_center: String,
    /// From then on, the token is refused.
    pub expires: SystemTime,
    /// The caller name of the admin who created it.
    pub created_by: String,
    pub created: SystemTime,
    /// The SHA-256 of the token.
    pub sha256: [u8; 32],
}

impl ApiTokenRecord {
    /// Whether the token is refused for having expired, at `now`.
    pub fn has_expired(&self, now: SystemTime) -> bool {
        now >= self.expires
    }
}

/// Why a token cannot be added or revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiTokenError {
    #[error("an API token named \"{0}\" exists already; revoke it first, or choose another name")]
    Duplicate(String),
    #[error("no API token is named \"{0}\"")]
    Unknown(String),
}

/// A token as the authenticator holds it.
pub(super) struct ApiToken {
    pub(super) record: ApiTokenRecord,
    pub(super) caller: Caller,
    /// The cookie login its last Bearer login opened, shared by its later requests (as a
    /// display's is).
    cookie: Mutex<Option<Arc<LoginCookie>>>,
}

impl ApiToken {
    /// The token of `record`, seeing the services of `features`.
    fn new(record: ApiTokenRecord, features: BTreeSet<String>) -> Self {
        let roles = match record.scope {
            Scope::Read | Scope::Maintenance => [UserRole::Agent].into(),
            Scope::Admin => [UserRole::Admin].into(),
        };
        let mut caller = Caller::new(
            format!("{CALLER_PREFIX}{}", record.name).into(),
            roles,
            &record.contact_center,
            features,
        );
        caller.maintains |= record.scope == Scope::Maintenance;
        ApiToken {
            record,
            caller,
            cookie: Mutex::new(None),
        }
    }
}

/// The tokens, by the SHA-256 of their token.
#[derive(Default)]
pub(super) struct ApiTokenTable {
    by_digest: HashMap<[u8; 32], Arc<ApiToken>>,
}

impl ApiTokenTable {
    /// The token `token` still is in the table (not revoked meanwhile).
    pub(super) fn current(&self, token: &Arc<ApiToken>) -> Option<Arc<ApiToken>> {
        self.by_digest
            .get(&token.record.sha256)
            .filter(|t| Arc::ptr_eq(t, token))
            .cloned()
    }

    fn named(&self, name: &str) -> Option<&Arc<ApiToken>> {
        self.by_digest.values().find(|t| t.record.name == name)
    }
}

/// The SHA-256 of a presented API token, to be looked up. A token that is not
/// [`API_TOKEN_PREFIX`] and 43 base64url characters cannot be one we made.
pub(super) fn api_token_digest(token: &str) -> Result<[u8; 32], AuthError> {
    let well_formed = token.strip_prefix(API_TOKEN_PREFIX).is_some_and(|body| {
        body.len() == TOKEN_CHARS
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !well_formed {
        return Err(AuthError::NotOurToken);
    }
    Ok(sha256(token))
}

/// A new API token, shown once to whoever created it.
pub struct NewApiToken {
    token: String,
}

impl NewApiToken {
    /// A fresh token: [`API_TOKEN_PREFIX`] and 43 base64url characters of 32 random bytes.
    pub fn generate() -> Self {
        NewApiToken {
            token: random_token(API_TOKEN_PREFIX),
        }
    }

    /// The token itself.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Its SHA-256, as stored.
    pub fn sha256(&self) -> [u8; 32] {
        sha256(&self.token)
    }
}

impl Principal {
    /// Whether the principal's credential has expired since it logged in (an API token's
    /// end): its cookie logins end with it.
    pub(super) fn has_expired(&self) -> bool {
        match self {
            Principal::Token(token) => token.record.has_expired(SystemTime::now()),
            Principal::User(_) | Principal::Display(_) => false,
        }
    }
}

impl Authenticator {
    /// Takes the tokens stored in the history database (at start).
    pub fn with_api_tokens(self, records: Vec<ApiTokenRecord>) -> Self {
        for record in records {
            if let Err(e) = self.add_api_token(record) {
                tracing::warn!(error = %e, "an API token of the history database is left out");
            }
        }
        self
    }

    /// Adds a token (created, or read at start). A token of a contact center that no longer
    /// exists is refused at creation; at start it sees nothing, and a warning says so.
    pub fn add_api_token(&self, record: ApiTokenRecord) -> Result<(), ApiTokenError> {
        let centers = self.contact_centers();
        let features = centers.get(&record.contact_center).cloned();
        let mut tokens = self.api_tokens.write().unwrap_or_else(|p| p.into_inner());
        if tokens.named(&record.name).is_some() || tokens.by_digest.contains_key(&record.sha256) {
            return Err(ApiTokenError::Duplicate(record.name));
        }
        let features = features.unwrap_or_else(|| {
            tracing::warn!(token = %record.name, contact_center = %record.contact_center, "the API token's contact center is not configured: the token sees no service");
            BTreeSet::new()
        });
        tokens
            .by_digest
            .insert(record.sha256, Arc::new(ApiToken::new(record, features)));
        Ok(())
    }

    /// The record of the token named `name`, if any.
    pub fn api_token(&self, name: &str) -> Option<ApiTokenRecord> {
        let tokens = self.api_tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.named(name).map(|t| t.record.clone())
    }

    /// Whether a token is named `name`.
    pub fn has_api_token(&self, name: &str) -> bool {
        let tokens = self.api_tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.named(name).is_some()
    }

    /// Revokes the token named `name`: it and its cookie logins are refused from now on.
    /// Returns its record and its caller name, whose notification sessions must end too.
    pub fn revoke_api_token(
        &self,
        name: &str,
    ) -> Result<(ApiTokenRecord, Arc<str>), ApiTokenError> {
        let mut tokens = self.api_tokens.write().unwrap_or_else(|p| p.into_inner());
        let token = tokens
            .named(name)
            .cloned()
            .ok_or_else(|| ApiTokenError::Unknown(name.to_string()))?;
        tokens.by_digest.remove(&token.record.sha256);
        lock(&self.logins_by_cookie).retain(|principal| match principal {
            Principal::Token(t) => !Arc::ptr_eq(t, &token),
            Principal::User(_) | Principal::Display(_) => true,
        });
        Ok((token.record.clone(), token.caller.user.clone()))
    }

    /// Every token, by name.
    pub fn api_tokens(&self) -> Vec<ApiTokenRecord> {
        let tokens = self.api_tokens.read().unwrap_or_else(|p| p.into_inner());
        let mut records: Vec<ApiTokenRecord> = tokens
            .by_digest
            .values()
            .map(|t| t.record.clone())
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        records
    }

    /// Whether a contact center has the id `id`.
    pub fn has_contact_center(&self, id: &str) -> bool {
        self.contact_centers().contains_key(id)
    }

    /// Applies reloaded contact centers: tokens whose center's features changed see the new
    /// ones, and lose their cookie logins (which hold the old). Returns their caller names,
    /// whose notification sessions must end too.
    pub fn replace_contact_centers(
        &self,
        centers: &BTreeMap<String, BTreeSet<String>>,
    ) -> BTreeSet<Arc<str>> {
        *self
            .contact_centers
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(centers.clone());
        let mut tokens = self.api_tokens.write().unwrap_or_else(|p| p.into_inner());
        let mut changed = BTreeSet::new();
        for token in tokens.by_digest.values_mut() {
            let features = centers
                .get(&token.record.contact_center)
                .cloned()
                .unwrap_or_default();
            if *token.caller.features != features {
                changed.insert(token.caller.user.clone());
                *token = Arc::new(ApiToken::new(token.record.clone(), features));
            }
        }
        lock(&self.logins_by_cookie).retain(|principal| match principal {
            Principal::Token(t) => tokens.current(t).is_some(),
            Principal::User(_) | Principal::Display(_) => true,
        });
        changed
    }

    fn contact_centers(&self) -> Arc<BTreeMap<String, BTreeSet<String>>> {
        self.contact_centers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The token presented, if known and not expired. A wrong token counts as a failed
    /// login against its address (see [`Authenticator::throttled_lookup`]); an expired one
    /// does not: whoever sends it held a real token. The token is never logged.
    fn by_api_token(&self, token: &str, from: Option<IpAddr>) -> Result<Arc<ApiToken>, AuthError> {
        let digest = api_token_digest(token)?;
        let found = self.throttled_lookup(from, || {
            self.api_tokens
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .by_digest
                .get(&digest)
                .cloned()
        })?;
        let token = found.ok_or(AuthError::UnknownApiToken)?;
        if token.record.has_expired(SystemTime::now()) {
            return Err(AuthError::ExpiredApiToken);
        }
        Ok(token)
    }

    /// A Bearer login with an API token: its caller, and the cookie login it shares.
    pub(super) fn by_api_token_login(
        &self,
        token: &str,
        from: Option<IpAddr>,
    ) -> Result<(Caller, Option<Arc<LoginCookie>>), AuthError> {
        let token = self.by_api_token(token, from)?;
        let caller = token.caller.clone();
        let previous = lock(&token.cookie).clone();
        let cookie = self
            .live_or_open(previous, Principal::Token(token.clone()))
            .ok_or(AuthError::UnknownApiToken)?;
        *lock(&token.cookie) = Some(cookie.clone());
        Ok((caller, Some(cookie)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::{AuthSettings, ThrottleSettings};
    use crate::metrics::Metrics;

    fn authenticator() -> Authenticator {
        let settings = AuthSettings {
            realm: "r".into(),
            login_cache: Duration::from_secs(60),
            login_idle: Duration::from_secs(60),
            login_max: Duration::from_secs(600),
            throttle: ThrottleSettings {
                max_failures: 3,
                failure_window: Duration::from_secs(60),
                lockout: Duration::from_secs(60),
            },
            users: Vec::new(),
            displays: Vec::new(),
            contact_centers: [("cc".to_string(), ["api-voice".to_string()].into())].into(),
            ldap: None,
        };
        Authenticator::new(&settings, Arc::new(Metrics::new()))
    }

    fn record(name: &str, scope: Scope, token: &NewApiToken, expires_in: i64) -> ApiTokenRecord {
        let now = SystemTime::now();
        ApiTokenRecord {
            name: name.into(),
            scope,
            contact_center: "cc".into(),
            expires: if expires_in >= 0 {
                now + Duration::from_secs(expires_in.unsigned_abs())
            } else {
                now - Duration::from_secs(expires_in.unsigned_abs())
            },
            created_by: "chief".into(),
            created: now,
            sha256: token.sha256(),
        }
    }

    #[test]
    fn tokens_are_prefixed_base64url_of_256_bits_and_checked_for_shape() {
        let token = NewApiToken::generate();
        assert!(token.token().starts_with("swt_"));
        assert_eq!(token.token().len(), 4 + 43);
        assert_eq!(api_token_digest(token.token()), Ok(sha256(token.token())));
        for malformed in ["swt_", "swt_short", "swd_x", &format!("{}!", token.token())] {
            assert_eq!(api_token_digest(malformed), Err(AuthError::NotOurToken));
        }
        assert_eq!(Scope::parse("maintenance"), Some(Scope::Maintenance));
        assert_eq!(Scope::parse("Admin"), None);
    }

    #[test]
    fn scopes_give_roles_and_the_maintenance_capability() {
        let auth = authenticator();
        let caller_of = |scope| {
            let token = NewApiToken::generate();
            let name = format!("t-{}", Scope::as_str(scope));
            auth.add_api_token(record(&name, scope, &token, 60))
                .unwrap();
            auth.by_api_token(token.token(), None)
                .unwrap()
                .caller
                .clone()
        };
        let read = caller_of(Scope::Read);
        assert_eq!(&*read.user, "token:t-read");
        assert!(read.may_read_services() && !read.may_set_maintenance() && !read.is_admin());
        assert!(read.sees("api-voice") && !read.sees("api-multimedia"));
        let maintenance = caller_of(Scope::Maintenance);
        assert!(maintenance.may_set_maintenance() && !maintenance.is_admin());
        let admin = caller_of(Scope::Admin);
        assert!(admin.may_set_maintenance() && admin.is_admin());
    }

    #[test]
    fn unknown_expired_and_revoked_tokens_are_refused_by_name() {
        let auth = authenticator();
        let live = NewApiToken::generate();
        let old = NewApiToken::generate();
        auth.add_api_token(record("live", Scope::Read, &live, 60))
            .unwrap();
        auth.add_api_token(record("old", Scope::Read, &old, -1))
            .unwrap();
        assert_eq!(
            auth.add_api_token(record("live", Scope::Read, &NewApiToken::generate(), 60)),
            Err(ApiTokenError::Duplicate("live".into()))
        );
        let guess = NewApiToken::generate();
        assert_eq!(
            auth.by_api_token(guess.token(), None).err(),
            Some(AuthError::UnknownApiToken)
        );
        assert_eq!(
            auth.by_api_token(old.token(), None).err(),
            Some(AuthError::ExpiredApiToken)
        );
        let (_, cookie) = auth.by_api_token_login(live.token(), None).unwrap();
        let cookie = cookie.unwrap();
        assert!(auth.by_cookie_key(&cookie.key).is_ok());
        let (revoked, caller) = auth.revoke_api_token("live").unwrap();
        assert_eq!((revoked.name.as_str(), &*caller), ("live", "token:live"));
        assert_eq!(
            auth.by_api_token(live.token(), None).err(),
            Some(AuthError::UnknownApiToken)
        );
        assert!(
            auth.by_cookie_key(&cookie.key).is_err(),
            "its cookie ends too"
        );
        assert_eq!(
            auth.revoke_api_token("live"),
            Err(ApiTokenError::Unknown("live".into()))
        );
        assert_eq!(
            auth.api_tokens()
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["old"]
        );
    }

    #[test]
    fn a_changed_contact_center_renews_its_tokens() {
        let auth = authenticator();
        let token = NewApiToken::generate();
        auth.add_api_token(record("t", Scope::Read, &token, 60))
            .unwrap();
        let unchanged = auth.replace_contact_centers(
            &[("cc".to_string(), ["api-voice".to_string()].into())].into(),
        );
        assert!(unchanged.is_empty());
        let changed = auth.replace_contact_centers(
            &[("cc".to_string(), ["api-multimedia".to_string()].into())].into(),
        );
        assert_eq!(changed, ["token:t".into()].into());
        let caller = auth
            .by_api_token(token.token(), None)
            .unwrap()
            .caller
            .clone();
        assert!(caller.sees("api-multimedia") && !caller.sees("api-voice"));
    }
}
