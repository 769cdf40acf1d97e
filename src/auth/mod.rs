//! Who is calling: HTTP Basic against Argon2 hashes, a wall screen's display token
//! (`Authorization: Bearer swd_...`, see [`displays`]), an API token (`Bearer swt_...`,
//! see [`api_tokens`]), and the login cookie each login sets (browsers cannot put an Authorization header on a WebSocket).
//!
//! A login is who the caller proved to be; a Bayeux client session
//! ([`crate::notify::session`]) is something else. Only the wire keeps the older word: the
//! cookie is named `SWSESSION`, and the 401 messages ([`AuthError`]) say "session cookie"
//! and "the session has expired", as clients have always seen them.
//!
//! Argon2 is slow on purpose, so a verified login is remembered for `login_cache`: the key is
//! a keyed BLAKE2b MAC of the name and password under a random per-process key, so the cache
//! holds no password and nothing an offline attacker could test guesses against. Wrong
//! passwords are never cached. Verification runs on the blocking pool, never on the executor,
//! a few at a time in reused memory ([`verifier`]), so a flood of wrong passwords costs
//! neither unbounded memory nor more than a few cores.
//! Comparisons of secrets go through the MAC and a hash-map lookup of its output, or through
//! Argon2's own verification, which compares in constant time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use blake2::Blake2bMac512;
use blake2::digest::{KeyInit, Mac};

use crate::config::auth::{AuthSettings, UserRole, UserSpec};
use crate::metrics::Metrics;
use crate::throttle::Attempt;
use crate::throttle::Throttle;

mod api_tokens;
mod authorization;
mod displays;
mod flight;
mod ldap;
mod logins;
mod verifier;

pub use api_tokens::{API_TOKEN_PREFIX, ApiTokenRecord, MAX_LIFETIME, NewApiToken, Scope};
use api_tokens::{ApiToken, ApiTokenTable};
use authorization::{Credentials, credentials};
pub use displays::DisplayToken;
use displays::{Display, DisplayTable};
use flight::{Flight, Gates};
pub use logins::LoginCookie;
use logins::LoginTable;
pub use verifier::Verifier;

/// The login cookie's name (the wire's name, kept as clients know it).
pub const LOGIN_COOKIE: &str = "SWSESSION";
/// Random bytes in a login token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Cached logins beyond which expired entries are swept on insert.
const CACHE_SWEEP_AT: usize = 1024;

/// An authenticated caller, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: Arc<str>,
    pub roles: Arc<BTreeSet<UserRole>>,
    /// The id of the caller's contact center.
    pub contact_center: Arc<str>,
    /// The features of the caller's contact center.
    pub features: Arc<BTreeSet<String>>,
    /// A fingerprint of `features`, computed once per user: callers who see the same
    /// services share it (what answers' `ETag`s are made of).
    pub features_tag: u64,
    /// Whether the caller may set and end maintenance: admins, and API tokens of the
    /// `maintenance` scope, which may do that and no other admin action.
    maintains: bool,
}

impl Caller {
    /// The caller `user`, with `roles`, of `contact_center` seeing `features`.
    pub(crate) fn new(
        user: Arc<str>,
        roles: BTreeSet<UserRole>,
        contact_center: &str,
        features: BTreeSet<String>,
    ) -> Self {
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        features.hash(&mut fingerprint);
        Caller {
            user,
            maintains: roles.contains(&UserRole::Admin),
            roles: Arc::new(roles),
            contact_center: contact_center.into(),
            features: Arc::new(features),
            features_tag: fingerprint.finish(),
        }
    }

    /// Whether the caller may set and end maintenance (admins; `maintenance` API tokens).
    pub fn may_set_maintenance(&self) -> bool {
        self.maintains
    }

    /// Whether the caller holds the admin role (every other admin action).
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&UserRole::Admin)
    }

    /// Whether a service needing `feature` is visible to this caller.
    pub fn sees(&self, feature: &str) -> bool {
        self.features.contains(feature)
    }

    /// Whether the caller holds a role that may read services (all three GWS roles may).
    pub fn may_read_services(&self) -> bool {
        !self.roles.is_empty()
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send HTTP Basic credentials or the session cookie")]
    Missing,
    #[error("the user name or password is wrong")]
    Rejected,
    #[error("the display token is unknown or was revoked")]
    UnknownDisplay,
    #[error(
        "the Bearer token is not a servicewatch token (display tokens start with swd_, API tokens with swt_ and 43 base64url characters)"
    )]
    NotOurToken,
    #[error("the API token is unknown or was revoked")]
    UnknownApiToken,
    #[error("the API token has expired; an admin can create another")]
    ExpiredApiToken,
    #[error("the session has expired; log in again")]
    Expired,
    #[error("too many failed logins from this address; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("the directory is unreachable; try again later")]
    DirectoryUnreachable,
    #[error(
        "your directory groups map to no contact center; ask an administrator to add you to one of the groups in [ldap] contact_centers"
    )]
    NoContactCenter,
    #[error(
        "your directory groups map to more than one contact center, so none was chosen; ask an administrator to keep you in one"
    )]
    AmbiguousContactCenter,
}

struct User {
    spec: UserSpec,
    caller: Caller,
    /// The generation of the `[ldap]` settings a directory user logged in under.
    directory: Option<u64>,
}

/// Who a cookie login belongs to: a user, a wall screen, or an API token.
#[derive(Clone)]
enum Principal {
    User(Arc<User>),
    Display(Arc<Display>),
    Token(Arc<ApiToken>),
}

impl Principal {
    fn caller(&self) -> &Caller {
        match self {
            Principal::User(user) => &user.caller,
            Principal::Display(display) => &display.caller,
            Principal::Token(token) => &token.caller,
        }
    }
}

/// A verified login: the user, when the password was checked, and the cookie login it opened,
/// which later Basic requests of the same login reuse instead of opening one each.
struct CachedLogin {
    user: Arc<User>,
    at: Instant,
    /// The cookie login it opened.
    cookie: Option<Arc<LoginCookie>>,
}

/// Authenticates requests against the configured users and displays.
pub struct Authenticator {
    realm: String,
    /// Replaced whole by a reload.
    users: std::sync::RwLock<HashMap<String, Arc<User>>>,
    /// Replaced by a reload (unchanged displays kept).
    displays: std::sync::RwLock<DisplayTable>,
    /// Loaded from the history database at start; changed by the token endpoints.
    api_tokens: std::sync::RwLock<ApiTokenTable>,
    /// The features of each contact center (replaced by a reload), for API tokens.
    contact_centers: std::sync::RwLock<Arc<BTreeMap<String, BTreeSet<String>>>>,
    /// BLAKE2b keyed with a random per-process key, its key block already absorbed: each
    /// MAC clones it and compresses only its own input.
    mac: Blake2bMac512,
    logins: Mutex<HashMap<Vec<u8>, CachedLogin>>,
    throttle: Throttle,
    verifier: Verifier,
    directory: ldap::Directory,
    /// Verifications in flight, by cache key: concurrent logins with the same credentials
    /// (a shared wallboard account reconnecting after a restart) wait for the first one
    /// instead of each paying for Argon2.
    verifying: Gates,
    metrics: Arc<Metrics>,
    logins_by_cookie: Mutex<LoginTable>,
    login_cache: Duration,
    login_idle: Duration,
    login_max: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one map operation: a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
    bytes
}

impl Authenticator {
    /// Counts verifications, failures and lockouts in `metrics`.
    pub fn new(settings: &AuthSettings, metrics: Arc<Metrics>) -> Self {
        Authenticator {
            realm: settings.realm.clone(),
            users: std::sync::RwLock::new(user_map(&settings.users)),
            displays: std::sync::RwLock::new(
                DisplayTable::replaced(&DisplayTable::default(), &settings.displays).0,
            ),
            api_tokens: std::sync::RwLock::new(ApiTokenTable::default()),
            contact_centers: std::sync::RwLock::new(Arc::new(settings.contact_centers.clone())),
            mac: <Blake2bMac512 as KeyInit>::new_from_slice(&random_bytes::<64>())
                .expect("a 64-byte key fits BLAKE2b"),
            logins: Mutex::new(HashMap::new()),
            throttle: Throttle::new(settings.throttle),
            verifier: Verifier::new(metrics.auth.password_memory_bytes.clone()),
            directory: ldap::Directory::new(settings.ldap.as_ref(), metrics.clone()),
            verifying: Mutex::new(HashMap::new()),
            metrics,
            logins_by_cookie: Mutex::new(LoginTable::default()),
            login_cache: settings.login_cache,
            login_idle: settings.login_idle,
            login_max: settings.login_max,
        }
    }

    /// Applies a reloaded list of users. Cached logins are forgotten (a password may have
    /// changed), and the cookie logins of users who were removed or changed end at once.
    /// Returns those users, whose notification sessions must end too.
    ///
    /// Everything happens under the users' write lock. Logins and cookies are only added
    /// under its read lock, after checking that their user is still current, so none of a
    /// removed user can slip in while a verification that began before the reload ends.
    pub fn replace_users(&self, users: &[UserSpec]) -> BTreeSet<Arc<str>> {
        let new = user_map(users);
        let mut current = self.users.write().unwrap_or_else(|p| p.into_inner());
        let revoked: BTreeSet<Arc<str>> = current
            .values()
            .filter(|old| new.get(&old.spec.name).is_none_or(|u| u.spec != old.spec))
            .map(|old| old.caller.user.clone())
            .collect();
        *current = new;
        lock(&self.logins).clear();
        lock(&self.logins_by_cookie).retain(|principal| match principal {
            Principal::User(user) => match user.directory {
                // A local user now of that name wins over the directory's.
                Some(_) => !current.contains_key(&user.spec.name),
                None => current
                    .get(&user.spec.name)
                    .is_some_and(|u| u.spec == user.spec),
            },
            Principal::Display(_) | Principal::Token(_) => true,
        });
        revoked
    }

    /// The realm for `WWW-Authenticate`.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Authenticates a request by its login cookie, else its Basic credentials or display
    /// token. Either login also returns its cookie; repeated requests of the same login (or
    /// display) share one cookie.
    pub async fn authenticate(
        &self,
        req: &HttpRequest,
    ) -> Result<(Caller, Option<Arc<LoginCookie>>), AuthError> {
        let cookie_result = req.cookie(LOGIN_COOKIE).map(|c| self.by_cookie(c.value()));
        if let Some(Ok(caller)) = cookie_result {
            return Ok((caller, None));
        }
        let from = req.peer_addr().map(|a| a.ip());
        match credentials(req) {
            Some(Credentials::Basic(name, secret)) => {
                let (user, key) = self.by_password(&name, secret, from).await?;
                let cookie = self
                    .cookie_for_login(&key, user.clone())
                    .ok_or(AuthError::Rejected)?;
                Ok((user.caller.clone(), Some(cookie)))
            }
            Some(Credentials::Bearer(token)) => self.by_bearer(&token, from),
            None => match cookie_result {
                Some(Err(e)) => Err(e),
                _ => Err(AuthError::Missing),
            },
        }
    }

    fn by_cookie(&self, token: &str) -> Result<Caller, AuthError> {
        self.by_cookie_key(&self.cookie_key(token))
    }

    /// The MAC a login token is looked up by.
    fn cookie_key(&self, token: &str) -> Vec<u8> {
        self.mac(b"cookie", token.as_bytes(), &[])
    }

    fn by_cookie_key(&self, key: &[u8]) -> Result<Caller, AuthError> {
        lock(&self.logins_by_cookie)
            .caller(key, Instant::now(), self.login_idle, self.login_max)
            .ok_or(AuthError::Expired)
    }

    /// The cookie of a verified login: the one it opened before if still alive, else a new
    /// one remembered with the login. Every client of the login gets its token: two
    /// browsers on a shared wallboard account both need the cookie for their WebSocket.
    /// `None` if a reload removed or changed the user meanwhile.
    fn cookie_for_login(&self, key: &[u8], user: Arc<User>) -> Option<Arc<LoginCookie>> {
        let previous = lock(&self.logins).get(key).and_then(|l| l.cookie.clone());
        let cookie = self.live_or_open(previous, Principal::User(user))?;
        if let Some(login) = lock(&self.logins).get_mut(key) {
            login.cookie = Some(cookie.clone());
        }
        Some(cookie)
    }

    /// `previous` if its cookie login is still alive, else a new cookie login of
    /// `principal` (`None` if a reload removed or changed it meanwhile).
    fn live_or_open(
        &self,
        previous: Option<Arc<LoginCookie>>,
        principal: Principal,
    ) -> Option<Arc<LoginCookie>> {
        if let Some(cookie) = previous
            && self.by_cookie_key(&cookie.key).is_ok()
        {
            return Some(cookie);
        }
        Some(Arc::new(self.open_login(principal)?))
    }

    /// Verifies a name and password (or finds them verified recently); returns the user and
    /// the login's cache key. A login verified recently passes even from a locked-out
    /// address (whoever sends it knows the password); any other is refused there without
    /// verifying, and a wrong one counts against its address.
    async fn by_password(
        &self,
        name: &str,
        secret: String,
        from: Option<IpAddr>,
    ) -> Result<(Arc<User>, Vec<u8>), AuthError> {
        let key = self.cache_key(name, &secret);
        if let Some(cached) = self.cached(&key) {
            return Ok((cached, key));
        }
        let user = self
            .users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(ip) = from {
            self.throttle.check(ip, Instant::now()).map_err(throttled)?;
        }
        if user.is_none() && self.directory.is_configured() {
            return Ok((self.by_directory(name, secret, &key, from).await?, key));
        }
        let verified = {
            let flight = Flight::join(&self.verifying, &key);
            let _turn = flight.gate.lock().await;
            match self.cached(&key) {
                Some(cached) => Ok(cached),
                None => self.check_password(user, &key, secret, from).await,
            }
        };
        Ok((verified?, key))
    }

    /// Checks a password not found in the cache. The check counts against its address
    /// while it runs (see [`Throttle::begin`]), and as a failure if the password is wrong.
    async fn check_password(
        &self,
        user: Option<Arc<User>>,
        key: &[u8],
        secret: String,
        from: Option<IpAddr>,
    ) -> Result<Arc<User>, AuthError> {
        let attempt = match from {
            Some(ip) => Some(self.throttle.begin(ip, Instant::now()).map_err(throttled)?),
            None => None,
        };
        let verified = self.verify(user, key, secret).await;
        if matches!(verified, Err(AuthError::Rejected)) {
            self.metrics.auth.login_failures.inc();
            self.failed_login(attempt, from);
        }
        verified
    }

    /// Counts a failed login (a wrong password or display token) against its address;
    /// warns when that locks the address out.
    fn failed_login(&self, attempt: Option<Attempt<'_>>, from: Option<IpAddr>) {
        let locked = attempt.is_some_and(|a| a.failed(Instant::now()));
        if let (true, Some(ip)) = (locked, from) {
            self.metrics.auth.login_lockouts.inc();
            tracing::warn!(
                address = %ip,
                failures = self.throttle.settings().max_failures,
                lockout = ?self.throttle.settings().lockout,
                "repeated failed logins: the address is refused for a while"
            );
        }
    }

    /// The user of a login verified less than `login_cache` ago.
    fn cached(&self, key: &[u8]) -> Option<Arc<User>> {
        let logins = lock(&self.logins);
        let login = logins.get(key)?;
        let ttl = match login.user.directory {
            Some(_) => self.directory.cache(),
            None => self.login_cache,
        };
        (login.at.elapsed() < ttl).then(|| login.user.clone())
    }

    /// Verifies a password with Argon2 (see [`Verifier`]); remembers a success.
    async fn verify(
        &self,
        user: Option<Arc<User>>,
        key: &[u8],
        secret: String,
    ) -> Result<Arc<User>, AuthError> {
        self.metrics.auth.password_verifications.inc();
        let Some(user) = user else {
            // Spend the time a real verification would, so that timing does not tell which
            // names exist.
            let _ = self.verifier.verify(secret, DECOY_HASH.into()).await;
            return Err(AuthError::Rejected);
        };
        let hash = user.spec.password_hash.as_str().into();
        if !matches!(self.verifier.verify(secret, hash).await, Ok(true)) {
            return Err(AuthError::Rejected);
        }
        // A reload may have removed or changed the user while Argon2 ran. Holding the users
        // lock until the login is cached means a reload either comes after (and clears the
        // cache) or came before (and this finds the user gone).
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        let Some(user) = users
            .get(&user.spec.name)
            .filter(|current| current.spec == user.spec)
            .cloned()
        else {
            return Err(AuthError::Rejected);
        };
        let mut logins = lock(&self.logins);
        if logins.len() >= CACHE_SWEEP_AT {
            let ttl = self.login_cache;
            logins.retain(|_, login| login.at.elapsed() < ttl);
        }
        logins.insert(
            key.to_vec(),
            CachedLogin {
                user: user.clone(),
                at: Instant::now(),
                cookie: None,
            },
        );
        Ok(user)
    }

    fn cache_key(&self, name: &str, secret: &str) -> Vec<u8> {
        self.mac(b"login", name.as_bytes(), secret.as_bytes())
    }

    /// The keyed BLAKE2b MAC of `a` and `b` for `purpose` (which separates the MACs of
    /// logins from those of login tokens).
    fn mac(&self, purpose: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        for part in [purpose, a, b] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// Opens a cookie login for `principal`, unless a reload removed or changed it (see
    /// [`Authenticator::replace_users`] for why the users and displays locks are held).
    fn open_login(&self, principal: Principal) -> Option<LoginCookie> {
        // Always in this order: a reload takes one of the two only.
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        let displays = self.displays.read().unwrap_or_else(|p| p.into_inner());
        let tokens = self.api_tokens.read().unwrap_or_else(|p| p.into_inner());
        // The user as configured now: a reload that kept it as it was (a new value, the same
        // spec) must not refuse a login verified just before it.
        let principal = match principal {
            Principal::User(user) if user.directory.is_some() => (self.directory.is_current(&user)
                && !users.contains_key(&user.spec.name))
            .then_some(Principal::User(user))?,
            Principal::User(user) => Principal::User(
                users
                    .get(&user.spec.name)
                    .filter(|current| current.spec == user.spec)?
                    .clone(),
            ),
            Principal::Display(display) => Principal::Display(
                displays
                    .find(&display.spec.token_sha256)
                    .filter(|current| current.spec == display.spec)?,
            ),
            Principal::Token(token) => Principal::Token(tokens.current(&token)?),
        };
        let token: String = random_bytes::<TOKEN_BYTES>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = self.cookie_key(&token);
        lock(&self.logins_by_cookie).open(key.clone(), principal, Instant::now());
        drop((users, displays, tokens));
        Some(LoginCookie::new(token, key))
    }
}

/// The refusal of a login from an address the throttle holds back for `wait`.
fn throttled(wait: Duration) -> AuthError {
    AuthError::Throttled {
        retry_after_secs: wait.as_secs() + 1,
    }
}

fn user_map(users: &[UserSpec]) -> HashMap<String, Arc<User>> {
    users
        .iter()
        .map(|spec| {
            let caller = Caller::new(
                spec.name.as_str().into(),
                spec.roles.clone(),
                &spec.contact_center,
                spec.features.clone(),
            );
            (
                spec.name.clone(),
                Arc::new(User {
                    spec: spec.clone(),
                    caller,
                    directory: None,
                }),
            )
        })
        .collect()
}

/// A valid Argon2 hash of a random string, verified against when the user does not exist.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2VydmljZXdhdGNoZGVjb3k$2o3mMEcX0Yo6s8wq7x3o1kSx5+Yf2d0b0ZQnDqvGk7U";

#[cfg(test)]
mod tests;
