//! Directory logins (`[ldap]`): a Basic login whose name is not a local `[[user]]` is checked
//! against an LDAP directory (OpenLDAP, Active Directory). Local users win: a name that is
//! both is always the local user, and never reaches the directory.
//!
//! One login is one short connection, each step bounded by `timeout`:
//! 1. connect (TLS from the start for `ldaps://`, else StartTLS before anything is sent);
//! 2. bind as `bind_dn` (the search bind), or stay anonymous without one;
//! 3. search `user_base` with `user_filter`, the login name escaped per RFC 4515
//!    ([`filter`]): exactly one entry must match, and its DN is the user's;
//! 4. read the user's groups: the `group_attribute` of that entry and/or the groups under
//!    `group_base` matching `group_filter` (still as the search bind, which may read them);
//! 5. bind as the user's DN with the password: the directory checks it.
//!
//! An empty password is refused before any of this: LDAP treats a bind with a DN and no
//! password as an anonymous bind, which "succeeds" (RFC 4513, 5.1.2).
//!
//! The groups give the roles and the one contact center ([`groups`]); the caller is then
//! like a local user's, remembered for `cache` in the same login cache (keyed MAC, wrong
//! passwords never cached), with the same cookie login and the same throttle on failures.
//!
//! A directory that cannot be reached (refused, timed out, a failed TLS handshake) refuses
//! directory logins with 503, fast, rather than as a wrong password: the user's password is
//! likely right, and a 401 would make the user retype it. Local users are not affected.
//!
//! TLS is rustls on ring, the stack the rest of servicewatch uses (ldap3's `tls-rustls-ring`
//! feature): no OpenSSL. The CA certificates are `ca_file`'s, else the system's.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::{AuthError, Authenticator, CachedLogin, Caller, Flight, Principal, User, lock};
use crate::config::auth::UserSpec;
use crate::config::ldap::{DN_PLACEHOLDER, LdapSettings, Transport, USER_PLACEHOLDER};
use crate::metrics::Metrics;

mod filter;
mod groups;

/// Network steps of one login (connect with TLS, search bind, user search, group search,
/// user bind): the whole exchange is bounded by this many `timeout`s.
const STEPS: u32 = 5;
/// At most one "unreachable" warning in this long: a directory down for an hour with
/// users retrying would otherwise fill the journal.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// LDAP's result code for a wrong DN or password (RFC 4511, appendix A).
const INVALID_CREDENTIALS: u32 = 49;

/// Gives each configuration of the directory its own number, so that the logins made
/// under a replaced one can be told apart.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// The directory as configured now, with what connecting needs.
struct Configured {
    settings: LdapSettings,
    generation: u64,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The directory side of the [`Authenticator`]: its settings, replaced by a reload, and
/// the state of the "unreachable" warnings.
pub(super) struct Directory {
    current: RwLock<Option<Arc<Configured>>>,
    metrics: Arc<Metrics>,
    /// When "unreachable" was last logged, and whether the directory was down then.
    warned: Mutex<(Option<Instant>, bool)>,
}

/// How one exchange with the directory ended, short of a login.
#[derive(Debug)]
enum Failure {
    /// The name or password is wrong (or the name is not unique); `why` is for the log.
    Rejected(&'static str),
    /// The directory could not be asked.
    Unreachable(String),
}

impl Directory {
    /// The directory of `settings`, if any.
    pub(super) fn new(settings: Option<&LdapSettings>, metrics: Arc<Metrics>) -> Self {
        let directory = Directory {
            current: RwLock::new(None),
            metrics,
            warned: Mutex::new((None, false)),
        };
        directory.replace(settings);
        directory
    }

    fn read(&self) -> RwLockReadGuard<'_, Option<Arc<Configured>>> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies new settings; returns whether they differ from the running ones.
    fn replace(&self, settings: Option<&LdapSettings>) -> bool {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().map(|c| &c.settings) == settings {
            return false;
        }
        *current = settings.map(|settings| {
            Arc::new(Configured {
                tls: tls_config(settings),
                settings: settings.clone(),
                generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            })
        });
        true
    }

    /// Whether a directory is configured.
    pub(super) fn is_configured(&self) -> bool {
        self.read().is_some()
    }

    /// Whether `user` is a directory user of the running configuration.
    pub(super) fn is_current(&self, user: &User) -> bool {
        let current = self.read();
        user.directory.is_some() && current.as_ref().map(|c| c.generation) == user.directory
    }

    /// How long a directory login is remembered.
    pub(super) fn cache(&self) -> Duration {
        self.read()
            .as_ref()
            .map_or(Duration::ZERO, |c| c.settings.cache)
    }

    /// Records the directory answering or not: the metrics, and a warning at most every
    /// [`WARN_EVERY`] while it does not (never with the password).
    fn record(&self, outcome: &str, failure: Option<&Failure>, url: &str) {
        self.metrics.auth.ldap_outcome(outcome);
        let mut warned = lock(&self.warned);
        match failure {
            Some(Failure::Unreachable(why)) => {
                self.metrics.auth.ldap_up.set(0);
                if warned.0.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(url, error = %why, "the directory is unreachable: directory logins are refused with 503 until it answers");
                    *warned = (Some(Instant::now()), true);
                }
            }
            _ => {
                self.metrics.auth.ldap_up.set(1);
                if std::mem::replace(&mut warned.1, false) {
                    tracing::info!(url, "the directory answers again");
                }
            }
        }
    }
}

impl Authenticator {
    /// Applies reloaded `[ldap]` settings. When they changed, the logins made under the
    /// previous ones end (their groups may map to other roles now); returns those users,
    /// whose notification sessions must end too.
    pub fn replace_directory(&self, settings: Option<&LdapSettings>) -> BTreeSet<Arc<str>> {
        if !self.directory.replace(settings) {
            return BTreeSet::new();
        }
        lock(&self.logins).retain(|_, login| login.user.directory.is_none());
        let revoked = std::cell::RefCell::new(BTreeSet::new());
        lock(&self.logins_by_cookie).retain(|principal| match principal {
            Principal::User(user) if user.directory.is_some() => {
                revoked.borrow_mut().insert(user.caller.user.clone());
                false
            }
            _ => true,
        });
        revoked.into_inner()
    }

    /// Verifies a name that is not a local user's against the directory; remembers a
    /// success like a local login. A wrong password counts against `from` for the
    /// throttle; an unreachable directory does not (it is no guess).
    pub(super) async fn by_directory(
        &self,
        name: &str,
        secret: String,
        key: &[u8],
        from: Option<IpAddr>,
    ) -> Result<Arc<User>, AuthError> {
        let flight = Flight::join(&self.verifying, key);
        let _turn = flight.gate.lock().await;
        if let Some(cached) = self.cached(key) {
            return Ok(cached);
        }
        let attempt = match from {
            Some(ip) => Some(
                self.throttle
                    .begin(ip, Instant::now())
                    .map_err(super::throttled)?,
            ),
            None => None,
        };
        let Some(configured) = self.directory.read().clone() else {
            return Err(AuthError::Rejected);
        };
        let url = configured.settings.url.clone();
        let outcome = if secret.is_empty() {
            Err(Failure::Rejected("empty password"))
        } else {
            exchange(configured.clone(), name.to_string(), secret).await
        };
        let groups = match outcome {
            Ok(groups) => groups,
            Err(failure) => {
                let refused = matches!(failure, Failure::Rejected(_));
                self.directory.record(
                    if refused { "rejected" } else { "unreachable" },
                    Some(&failure),
                    &url,
                );
                if let Failure::Rejected(why) = failure {
                    tracing::info!(user = name, why, "directory login refused");
                    self.metrics.auth.login_failures.inc();
                    self.failed_login(attempt, from);
                    return Err(AuthError::Rejected);
                }
                return Err(AuthError::DirectoryUnreachable);
            }
        };
        let settings = &configured.settings;
        let granted = groups::grant(&groups, &settings.roles, &settings.contact_centers);
        let (roles, center) = match granted {
            Ok(found) => found,
            Err(unmapped) => {
                self.directory.record("unmapped", None, &url);
                tracing::info!(user = name, groups = ?groups, why = ?unmapped, "directory login refused: its groups map to no single contact center");
                return Err(match unmapped {
                    groups::Unmapped::NoContactCenter => AuthError::NoContactCenter,
                    groups::Unmapped::Ambiguous(_) => AuthError::AmbiguousContactCenter,
                });
            }
        };
        self.directory.record("accepted", None, &url);
        let spec = UserSpec {
            name: name.to_string(),
            password_hash: String::new(),
            roles,
            contact_center: center.id.clone(),
            features: center.features.clone(),
        };
        let user = Arc::new(User {
            caller: Caller::new(
                name.into(),
                spec.roles.clone(),
                &spec.contact_center,
                spec.features.clone(),
            ),
            spec,
            directory: Some(configured.generation),
        });
        self.remember_directory_login(key, user)
    }

    /// Caches a directory login, unless a reload replaced the directory while it was
    /// being verified (the read lock keeps a reload out until it is cached).
    fn remember_directory_login(
        &self,
        key: &[u8],
        user: Arc<User>,
    ) -> Result<Arc<User>, AuthError> {
        let current = self.directory.read();
        if current.as_ref().map(|c| c.generation) != user.directory {
            return Err(AuthError::Rejected);
        }
        lock(&self.logins).insert(
            key.to_vec(),
            CachedLogin {
                user: user.clone(),
                at: Instant::now(),
                cookie: None,
            },
        );
        drop(current);
        Ok(user)
    }
}

/// The rustls client configuration for `settings`' TLS (`None` for a clear connection).
fn tls_config(settings: &LdapSettings) -> Option<Arc<rustls::ClientConfig>> {
    if settings.transport == Transport::Plain {
        return None;
    }
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca {
        Some(ca) => {
            roots.add_parsable_certificates(ca.certificates.iter().cloned());
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// Runs one login's exchange on its own task, bounded as a whole: a panic while reading
/// the directory's answer (ldap3 panics on a malformed entry) ends that task only.
async fn exchange(
    configured: Arc<Configured>,
    name: String,
    password: String,
) -> Result<Vec<String>, Failure> {
    let bound = configured.settings.timeout * STEPS;
    let task = tokio::spawn(async move {
        tokio::time::timeout(bound, ask(&configured, &name, &password)).await
    });
    match task.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(Failure::Unreachable(format!("no answer within {bound:?}"))),
        Err(_) => Err(Failure::Unreachable("its answer could not be read".into())),
    }
}

/// Connects to the directory and starts the connection's driver task.
async fn connect(configured: &Configured) -> Result<ldap3::Ldap, Failure> {
    let settings = &configured.settings;
    let timeout = settings.timeout;
    let mut conn = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_starttls(settings.transport == Transport::StartTls);
    if let Some(tls) = &configured.tls {
        conn = conn.set_config(tls.clone());
    }
    // The connect timeout covers TCP only; this one covers TLS and StartTLS too.
    let (driver, ldap) =
        tokio::time::timeout(timeout, LdapConnAsync::with_settings(conn, &settings.url))
            .await
            .map_err(|_| Failure::Unreachable(format!("no connection within {timeout:?}")))?
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
    ldap3::drive!(driver);
    Ok(ldap)
}

/// The steps of the module doc; returns the user's groups (DNs).
async fn ask(configured: &Configured, name: &str, password: &str) -> Result<Vec<String>, Failure> {
    let settings = &configured.settings;
    let timeout = settings.timeout;
    let unreachable = |e: ldap3::LdapError| Failure::Unreachable(e.to_string());
    let mut ldap = connect(configured).await?;
    if let Some(bind) = &settings.bind {
        let result = ldap
            .with_timeout(timeout)
            .simple_bind(&bind.dn, bind.password.expose())
            .await
            .map_err(unreachable)?;
        if result.rc != 0 {
            return Err(Failure::Unreachable(format!(
                "the search bind as {} was refused (result code {}: {})",
                bind.dn, result.rc, result.text
            )));
        }
    }
    let user_filter = filter::with_value(&settings.user_filter, USER_PLACEHOLDER, name);
    let attributes: Vec<&str> = settings
        .group_attribute
        .as_deref()
        .map_or(vec!["1.1"], |a| vec![a]);
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search(
            &settings.user_base,
            Scope::Subtree,
            &user_filter,
            attributes,
        )
        .await
        .and_then(|r| r.success())
        .map_err(unreachable)?;
    let user = match <[_; 1]>::try_from(entries) {
        Ok([entry]) => SearchEntry::construct(entry),
        Err(entries) if entries.is_empty() => return Err(Failure::Rejected("no such user")),
        Err(_) => {
            return Err(Failure::Rejected(
                "the name matches several directory entries",
            ));
        }
    };
    let mut groups: Vec<String> = settings
        .group_attribute
        .as_deref()
        .and_then(|a| user.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(a)))
        .map(|(_, values)| values.clone())
        .unwrap_or_default();
    if let Some(search) = &settings.group_search {
        let group_filter = filter::with_value(&search.filter, DN_PLACEHOLDER, &user.dn);
        let (entries, _) = ldap
            .with_timeout(timeout)
            .search(&search.base, Scope::Subtree, &group_filter, vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(unreachable)?;
        groups.extend(entries.into_iter().map(|e| SearchEntry::construct(e).dn));
    }
    let result = ldap
        .with_timeout(timeout)
        .simple_bind(&user.dn, password)
        .await
        .map_err(unreachable)?;
    let _ = ldap.unbind().await;
    match result.rc {
        0 => Ok(groups),
        INVALID_CREDENTIALS => Err(Failure::Rejected("wrong password")),
        _ => Err(Failure::Rejected("the directory refused the user's bind")),
    }
}
