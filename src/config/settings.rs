//! Validated configuration: what the daemon runs on. `validate` turns the file as written
//! into these types, layering check defaults and naming the key of the first mistake.

use crate::throttle::ThrottleSettings;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::ConfigError;
use super::file::{
    CassandraSection, CheckKindName, CheckSection, FileConfig, InstanceSection, PairSection,
    ServiceSection,
};
use crate::domain::health::Schedule;
use crate::domain::pairing::Failback;
use crate::domain::service::ServiceType;
use crate::probe::exec::ExecCheck;
use crate::probe::http::HttpCheck;
use crate::probe::{Check, CheckKind, Target};

/// Where the API listens when the configuration does not say.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where metrics and health listen when the configuration does not say: loopback only, for
/// a local Prometheus agent or a load balancer's health check through a local proxy.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9180";
/// The API prefix; GWS calls it `externalApiUrlV2`.
pub const DEFAULT_BASE_PATH: &str = "/api/v2";
/// Probes running at once, across all services. Enough for thousands of checks at their
/// default intervals; it exists so that a network outage (every probe waiting for its
/// timeout) cannot open an unbounded number of sockets.
pub const DEFAULT_PROBES_IN_FLIGHT: usize = 256;
/// The port of a Cassandra node written without one.
pub const DEFAULT_CQL_PORT: u16 = 9042;

const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Well within systemd's default `TimeoutStopSec` of 90 s.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The HTTP layer's own default: long enough for a UI's next request, short enough that
/// a restart does not wait long on idle connections.
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Sessions at once: each costs a few kilobytes, so this bounds memory, not throughput.
const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Sessions one user may hold: room for a shared wallboard account on many screens, while
/// one leaked password cannot take every session of the daemon.
const DEFAULT_MAX_SESSIONS_PER_USER: usize = 256;
const DEFAULT_MAX_SUBSCRIPTIONS: usize = 64;
/// A burst of changes to every service of a large site fits; a client that falls this far
/// behind is not reading.
const DEFAULT_SESSION_QUEUE: usize = 1_000;
const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;
const DEFAULT_JITTER: f64 = 0.1;
const MAX_JITTER: f64 = 0.5;

/// Attribute names that the resource itself uses, or that a query parameter uses, and that
/// operator attributes therefore may not take.
pub const RESERVED_ATTRIBUTES: [&str; 7] = [
    "id",
    "name",
    "type",
    "state",
    "servingInstance",
    "stateSince",
    "fields",
];

/// Everything the daemon runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    /// Where `/metrics`, `/healthz` and `/readyz` listen; `None`: disabled.
    pub admin_listen: Option<SocketAddr>,
    pub limits: Limits,
    pub notifications: NotificationSettings,
    /// The HTTPS listener, when configured.
    pub tls: Option<TlsSettings>,
    pub services: Vec<ServiceSpec>,
}

/// The HTTPS listener. The files are read when the daemon starts (see [`crate::tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    /// Relative paths are taken from the configuration file's directory.
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Who may call the API, and how long a proof of identity lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The realm of `WWW-Authenticate: Basic realm="..."`.
    pub realm: String,
    /// How long a verified Basic login is remembered, so that a client sending Basic on
    /// every request does not pay for Argon2 each time.
    pub login_cache: Duration,
    /// A session cookie unused this long expires.
    pub session_idle: Duration,
    /// A session cookie expires this long after the login, used or not.
    pub session_max: Duration,
    /// When repeated failed logins lock an address out.
    pub throttle: ThrottleSettings,
    pub users: Vec<UserSpec>,
}

/// One user.
/// `Debug` leaves the hash out, so that no log or panic message can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    pub roles: BTreeSet<UserRole>,
    pub contact_center: String,
    /// The features of the user's contact center.
    pub features: BTreeSet<String>,
}

impl std::fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("roles", &self.roles)
            .field("contact_center", &self.contact_center)
            .field("features", &self.features)
            .finish()
    }
}

/// GWS roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserRole {
    Agent,
    Supervisor,
    Admin,
}

impl UserRole {
    fn parse(name: &str) -> Option<UserRole> {
        match name {
            "agent" => Some(UserRole::Agent),
            "supervisor" => Some(UserRole::Supervisor),
            "admin" => Some(UserRole::Admin),
            _ => None,
        }
    }
}

const DEFAULT_REALM: &str = "servicewatch";
const DEFAULT_LOGIN_CACHE: Duration = Duration::from_secs(300);
/// Request heads of browsers with a few cookies fit many times over.
const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;
/// The HTTP layer never buffers a larger head; it answers 431 itself beyond it.
const TRANSPORT_MAX_HEADER_SIZE: usize = 128 * 1024;
/// Every Bayeux session at the default `max_sessions` with room for REST clients, well
/// inside the unit's 65536 open files.
const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Ten wrong passwords a minute is more than a person mistyping and far too few to guess.
const DEFAULT_MAX_FAILURES: u32 = 10;
const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_LOCKOUT: Duration = Duration::from_secs(60);
const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
const DEFAULT_SESSION_MAX: Duration = Duration::from_secs(12 * 3600);

/// How logs are written (outside the journal, which has its own format).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `RUST_LOG`-style filter, such as `info` or `info,servicewatch=debug`.
    pub level: Option<String>,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The HTTP listener and how the API names itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Base of the absolute URIs in list answers, without a trailing slash; `None`: taken
    /// from each request's scheme and Host.
    pub public_url: Option<String>,
    /// Web origins (`https://host[:port]`) besides this server's own whose pages may use
    /// the API and the notifications with the user's credentials.
    pub allowed_origins: Vec<String>,
    /// The API prefix, starting with `/` and without a trailing slash.
    pub base_path: String,
    pub workers: usize,
    /// How long data written to a client may stay unacknowledged before the connection is
    /// dropped (`TCP_USER_TIMEOUT`): what frees a client that stopped reading.
    pub send_timeout: Duration,
    /// How long a stop waits for requests in flight before closing what is left.
    pub shutdown_timeout: Duration,
    /// How long an idle HTTP connection is kept open for the client's next request. A
    /// stop waits for idle connections too, so this also bounds how long one takes.
    pub keep_alive: Duration,
}

/// The Bayeux endpoint's timing and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettings {
    /// How long a `/meta/connect` is held when there is nothing to deliver (`advice.timeout`).
    pub connect_timeout: Duration,
    /// How long after a connect reply the next connect must come before the client is
    /// forgotten (CometD's `maxInterval`); also the time a new session has to connect.
    pub session_timeout: Duration,
    /// How often a WebSocket is pinged; a peer silent for three intervals is dropped.
    pub ping_interval: Duration,
    pub max_sessions: usize,
    /// Sessions one user may hold at once, so that one account cannot take them all.
    pub max_sessions_per_user: usize,
    pub max_subscriptions: usize,
    /// Messages waiting for one client before it counts as a slow consumer and is dropped.
    pub session_queue: usize,
    /// Largest WebSocket message or long-polling body, in bytes.
    pub max_message_size: usize,
}

/// Global bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub probes_in_flight: usize,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    pub max_header_size: usize,
    /// Client connections open at once, over all workers; beyond it new connections wait
    /// in the listen backlog until one closes.
    pub max_connections: usize,
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub id: String,
    pub name: String,
    pub service_type: ServiceType,
    /// The contact-center feature that makes the service visible.
    pub feature: String,
    /// Operator attributes, shown as extra top-level attributes of the resource.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The server pair; for Provisioning, its Configuration Server pair.
    pub pair: PairSpec,
    /// Provisioning only.
    pub cassandra: Option<CassandraSpec>,
}

/// A primary and, usually, a backup.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSpec {
    pub primary: InstanceSpec,
    pub backup: Option<InstanceSpec>,
    pub failback: Failback,
}

/// Cassandra nodes and how many must answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CassandraSpec {
    pub nodes: Vec<InstanceSpec>,
    pub quorum: usize,
}

/// One process to probe.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// The application name, when configured; for logs.
    pub name: Option<String>,
    pub target: Target,
    pub check: Check,
}

/// Validates the file as written. `source` names the file in errors.
pub fn validate(file: FileConfig, source: &str) -> Result<Settings, ConfigError> {
    let invalid = |key: String, message: String| ConfigError::Invalid {
        file: source.to_string(),
        key,
        message,
    };
    let server = validate_server(&file).map_err(|(k, m)| invalid(k, m))?;
    let tls = validate_tls(&file, &server).map_err(|(k, m)| invalid(k, m))?;
    let limits = validate_limits(&file).map_err(|(k, m)| invalid(k, m))?;
    if file.checks.kind.is_some() {
        return Err(invalid(
            "checks.kind".into(),
            "[checks] holds defaults for timing only; set `kind` in a service's `check`".into(),
        ));
    }
    // The defaults are checked on their own too, so that a bad one is reported as
    // `checks.x` even when no service uses it.
    resolve_check(&file.checks, CheckKindName::Tcp)
        .map_err(|(k, m)| invalid(format!("checks.{k}"), m))?;
    let mut seen = HashSet::new();
    let mut services = Vec::with_capacity(file.services.len());
    for (i, section) in file.services.iter().enumerate() {
        let at = format!("service[{i}]");
        let spec = validate_service(section, &file.checks)
            .map_err(|(k, m)| invalid(format!("{at}.{k}").replace(".(", " ("), m))?;
        if !seen.insert(spec.id.clone()) {
            return Err(invalid(
                format!("{at}.id"),
                format!("duplicate service id \"{}\"; ids must be unique", spec.id),
            ));
        }
        services.push(spec);
    }
    let notifications = validate_notifications(&file).map_err(|(k, m)| invalid(k, m))?;
    let admin_listen = match file.admin.enabled {
        Some(false) => None,
        _ => {
            let text = file.admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
            Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "admin.listen".into(),
                    format!(
                        "\"{text}\" is not an address; expected IP:port such as \"127.0.0.1:9180\""
                    ),
                )
            })?)
        }
    };
    if let Some(level) = &file.log.level {
        if !is_log_filter(level) {
            return Err(invalid(
                "log.level".into(),
                format!(
                    "\"{level}\" is not a level or filter; use error, warn, info, debug or trace (or a filter such as \"info,servicewatch=debug\")"
                ),
            ));
        }
    }
    let log = LogSettings {
        format: match file.log.format {
            Some(super::file::LogFormatName::Json) => LogFormat::Json,
            _ => LogFormat::Text,
        },
        level: file.log.level.clone(),
    };
    let auth = validate_auth(&file).map_err(|(k, m)| invalid(k, m))?;
    Ok(Settings {
        server,
        log,
        auth,
        admin_listen,
        notifications,
        tls,
        limits,
        services,
    })
}

type Invalid = (String, String);

fn validate_tls(
    file: &FileConfig,
    server: &ServerSettings,
) -> Result<Option<TlsSettings>, Invalid> {
    let Some(t) = &file.tls else {
        return Ok(None);
    };
    let listen = t.listen.parse::<SocketAddr>().map_err(|_| {
        (
            "tls.listen".to_string(),
            format!(
                "\"{}\" is not an address; expected IP:port such as \"[::]:8443\"",
                t.listen
            ),
        )
    })?;
    if listen == server.listen && listen.port() != 0 {
        return Err((
            "tls.listen".into(),
            format!("{listen} is server.listen too; HTTP and HTTPS need different ports"),
        ));
    }
    for (key, value) in [("certificate", &t.certificate), ("key", &t.key)] {
        if value.trim().is_empty() {
            return Err((format!("tls.{key}"), "must name a PEM file".into()));
        }
    }
    Ok(Some(TlsSettings {
        listen,
        certificate: t.certificate.clone().into(),
        key: t.key.clone().into(),
    }))
}

fn validate_limits(file: &FileConfig) -> Result<Limits, Invalid> {
    let l = &file.limits;
    let at_least_one = |key: &str, value: usize| {
        if value == 0 {
            Err((format!("limits.{key}"), "must be at least 1".to_string()))
        } else {
            Ok(value)
        }
    };
    let probes_in_flight = at_least_one(
        "probes_in_flight",
        l.probes_in_flight.unwrap_or(DEFAULT_PROBES_IN_FLIGHT),
    )?;
    let max_connections = at_least_one(
        "max_connections",
        l.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
    )?;
    let max_header_size = l.max_header_size.unwrap_or(DEFAULT_MAX_HEADER_SIZE);
    if !(1024..=TRANSPORT_MAX_HEADER_SIZE).contains(&max_header_size) {
        return Err((
            "limits.max_header_size".into(),
            format!(
                "{max_header_size} bytes: must be between 1024 and {TRANSPORT_MAX_HEADER_SIZE}"
            ),
        ));
    }
    Ok(Limits {
        probes_in_flight,
        max_header_size,
        max_connections,
    })
}

fn validate_auth(file: &FileConfig) -> Result<AuthSettings, Invalid> {
    let a = &file.auth;
    let duration = |key: &str, d: Option<super::duration::HumanDuration>, default: Duration| {
        let value = d.map_or(default, |d| d.0);
        if value.is_zero() {
            Err((format!("auth.{key}"), "must be longer than 0".to_string()))
        } else {
            Ok(value)
        }
    };
    let realm = a.realm.clone().unwrap_or_else(|| DEFAULT_REALM.to_string());
    if realm.is_empty() || realm.contains('"') || realm.chars().any(char::is_control) {
        return Err((
            "auth.realm".into(),
            "must be a non-empty name without quotes".into(),
        ));
    }
    let mut centers: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for (i, cc) in file.contact_centers.iter().enumerate() {
        if cc.id.trim().is_empty() {
            return Err((
                format!("contact_center[{i}].id"),
                "must not be empty".into(),
            ));
        }
        if centers
            .insert(cc.id.as_str(), cc.features.iter().cloned().collect())
            .is_some()
        {
            return Err((
                format!("contact_center[{i}].id"),
                format!("duplicate contact center \"{}\"", cc.id),
            ));
        }
    }
    let mut names = HashSet::new();
    let mut users = Vec::with_capacity(file.users.len());
    for (i, u) in file.users.iter().enumerate() {
        let at = |key: &str| format!("user[{i}] ({}).{key}", u.name);
        if u.name.is_empty() || u.name.contains(':') || u.name.chars().any(char::is_control) {
            return Err((format!("user[{i}].name"), "must be non-empty, without ':' (HTTP Basic separates the name from the password with it)".into()));
        }
        if !names.insert(u.name.as_str()) {
            return Err((
                format!("user[{i}].name"),
                format!("duplicate user \"{}\"", u.name),
            ));
        }
        if !crate::password::is_hash(&u.password) {
            // Never echo what was written: it may be a real password.
            return Err((at("password"), "is not an Argon2 hash; plain-text passwords are refused. Generate one with: servicewatch hash-password".into()));
        }
        let mut roles = BTreeSet::new();
        for role in &u.roles {
            roles.insert(UserRole::parse(role).ok_or_else(|| {
                (
                    at("roles"),
                    format!("\"{role}\" is not a role; use agent, supervisor or admin"),
                )
            })?);
        }
        let features = centers
            .get(u.contact_center.as_str())
            .cloned()
            .ok_or_else(|| {
                (
                    at("contact_center"),
                    format!("no [[contact_center]] with id \"{}\"", u.contact_center),
                )
            })?;
        users.push(UserSpec {
            name: u.name.clone(),
            password_hash: u.password.clone(),
            roles,
            contact_center: u.contact_center.clone(),
            features,
        });
    }
    Ok(AuthSettings {
        realm,
        login_cache: duration("login_cache", a.login_cache, DEFAULT_LOGIN_CACHE)?,
        session_idle: duration("session_idle", a.session_idle, DEFAULT_SESSION_IDLE)?,
        session_max: duration("session_max", a.session_max, DEFAULT_SESSION_MAX)?,
        throttle: ThrottleSettings {
            max_failures: a.max_failures.unwrap_or(DEFAULT_MAX_FAILURES),
            failure_window: duration("failure_window", a.failure_window, DEFAULT_FAILURE_WINDOW)?,
            lockout: duration("lockout", a.lockout, DEFAULT_LOCKOUT)?,
        },
        users,
    })
}

/// Whether `filter` is a level (`info`) or comma-separated directives whose levels are all
/// known (`info,servicewatch::monitor=debug`). A bare word that is not a level would be taken
/// by `tracing` as a target name and silently log nothing more; refuse it instead.
fn is_log_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    !filter.trim().is_empty()
        && filter
            .split(',')
            .all(|directive| match directive.rsplit_once('=') {
                Some((target, level)) => !target.trim().is_empty() && is_level(level),
                None => is_level(directive),
            })
}

fn validate_notifications(file: &FileConfig) -> Result<NotificationSettings, Invalid> {
    let n = &file.notifications;
    let duration = |key: &str, d: Option<super::duration::HumanDuration>, default: Duration| {
        let value = d.map_or(default, |d| d.0);
        if value.is_zero() {
            Err((
                format!("notifications.{key}"),
                "must be longer than 0".to_string(),
            ))
        } else {
            Ok(value)
        }
    };
    let count = |key: &str, v: Option<usize>, default: usize| match v {
        Some(0) => Err((
            format!("notifications.{key}"),
            "must be at least 1".to_string(),
        )),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let max_message_size = count(
        "max_message_size",
        n.max_message_size,
        DEFAULT_MAX_MESSAGE_SIZE,
    )?;
    if max_message_size < 1024 {
        return Err((
            "notifications.max_message_size".into(),
            format!("{max_message_size} bytes cannot hold a handshake; use at least 1024"),
        ));
    }
    Ok(NotificationSettings {
        connect_timeout: duration(
            "connect_timeout",
            n.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        session_timeout: duration(
            "session_timeout",
            n.session_timeout,
            DEFAULT_SESSION_TIMEOUT,
        )?,
        ping_interval: duration("ping_interval", n.ping_interval, DEFAULT_PING_INTERVAL)?,
        max_sessions: count("max_sessions", n.max_sessions, DEFAULT_MAX_SESSIONS)?,
        max_sessions_per_user: count(
            "max_sessions_per_user",
            n.max_sessions_per_user,
            DEFAULT_MAX_SESSIONS_PER_USER,
        )?,
        max_subscriptions: count(
            "max_subscriptions",
            n.max_subscriptions,
            DEFAULT_MAX_SUBSCRIPTIONS,
        )?,
        session_queue: count("session_queue", n.session_queue, DEFAULT_SESSION_QUEUE)?,
        max_message_size,
    })
}

fn validate_server(file: &FileConfig) -> Result<ServerSettings, Invalid> {
    let s = &file.server;
    let listen_text = s.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        (
            "server.listen".to_string(),
            format!("\"{listen_text}\" is not an address; expected IP:port such as \"127.0.0.1:8080\" or \"[::]:8080\""),
        )
    })?;
    let public_url = match &s.public_url {
        None => None,
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(url.trim_end_matches('/').to_string())
        }
        Some(url) => {
            return Err((
                "server.public_url".into(),
                format!("\"{url}\" must start with http:// or https://"),
            ));
        }
    };
    let mut allowed_origins = Vec::new();
    for (i, origin) in s.allowed_origins.iter().flatten().enumerate() {
        let origin = origin.trim_end_matches('/');
        if !crate::api::origin::is_origin(origin) {
            return Err((
                format!("server.allowed_origins[{i}]"),
                format!(
                    "\"{origin}\" is not an origin; expected scheme://host[:port] such as \"https://ui.example.com\" (no path, no wildcard)"
                ),
            ));
        }
        allowed_origins.push(origin.to_string());
    }
    let base_path = s
        .base_path
        .as_deref()
        .unwrap_or(DEFAULT_BASE_PATH)
        .trim_end_matches('/')
        .to_string();
    if !base_path.starts_with('/') {
        return Err((
            "server.base_path".into(),
            format!("\"{base_path}\" must start with /, such as \"/api/v2\""),
        ));
    }
    let workers = match s.workers {
        Some(0) => return Err(("server.workers".into(), "must be at least 1".into())),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let send_timeout = s.send_timeout.map_or(DEFAULT_SEND_TIMEOUT, |d| d.0);
    if send_timeout.is_zero() {
        return Err(("server.send_timeout".into(), "must be longer than 0".into()));
    }
    let shutdown_timeout = s.shutdown_timeout.map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.0);
    let keep_alive = s.keep_alive.map_or(DEFAULT_KEEP_ALIVE, |d| d.0);
    Ok(ServerSettings {
        listen,
        public_url,
        allowed_origins,
        base_path,
        workers,
        send_timeout,
        shutdown_timeout,
        keep_alive,
    })
}

fn validate_service(s: &ServiceSection, defaults: &CheckSection) -> Result<ServiceSpec, Invalid> {
    let id = s.id.trim();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    {
        return Err((
            "id".into(),
            format!(
                "\"{}\" is not a usable id; use letters, digits, '-', '_', '.' or '~' (it becomes part of a URL)",
                s.id
            ),
        ));
    }
    let named = |key: &str| format!("({id}).{key}");
    let name = match (s.service_type, &s.name) {
        (ServiceType::Provisioning, Some(n)) if n != "Provisioning" => {
            return Err((
                named("name"),
                format!(
                    "a Provisioning service is always named \"Provisioning\"; remove name = \"{n}\""
                ),
            ));
        }
        (ServiceType::Provisioning, _) => "Provisioning".to_string(),
        (_, Some(n)) if n.trim().is_empty() => {
            return Err((named("name"), "must not be empty".into()));
        }
        (_, Some(n)) => n.clone(),
        (_, None) => id.to_string(),
    };
    for key in s.attributes.keys() {
        if RESERVED_ATTRIBUTES.contains(&key.as_str()) || key.is_empty() {
            return Err((
                named(&format!("attributes.{key}")),
                format!(
                    "\"{key}\" is reserved by the service resource; choose another attribute name (reserved: {})",
                    RESERVED_ATTRIBUTES.join(", ")
                ),
            ));
        }
    }
    let feature = s
        .feature
        .clone()
        .unwrap_or_else(|| s.service_type.default_feature().to_string());

    let (pair, cassandra) = if s.service_type == ServiceType::Provisioning {
        for (present, key) in [
            (s.primary.is_some(), "primary"),
            (s.backup.is_some(), "backup"),
            (s.check.is_some(), "check"),
            (s.failback.is_some(), "failback"),
        ] {
            if present {
                return Err((
                    named(key),
                    format!("a Provisioning service has no `{key}`; put it in `config_server`"),
                ));
            }
        }
        let pair = s.config_server.as_ref().ok_or_else(|| {
            (named("config_server"), "a Provisioning service needs config_server = { primary = { host = ..., port = ... }, backup = ... }".to_string())
        })?;
        let cassandra = s.cassandra.as_ref().ok_or_else(|| {
            (
                named("cassandra"),
                "a Provisioning service needs cassandra = { nodes = [\"host:9042\", ...] }"
                    .to_string(),
            )
        })?;
        let pair = validate_pair(pair, defaults)
            .map_err(|(k, m)| (named(&format!("config_server.{k}")), m))?;
        let cassandra = validate_cassandra(cassandra, defaults)
            .map_err(|(k, m)| (named(&format!("cassandra.{k}")), m))?;
        (pair, Some(cassandra))
    } else {
        for (present, key) in [
            (s.config_server.is_some(), "config_server"),
            (s.cassandra.is_some(), "cassandra"),
        ] {
            if present {
                return Err((
                    named(key),
                    format!("only a Provisioning service has `{key}`"),
                ));
            }
        }
        let primary = s.primary.clone().ok_or_else(|| {
            (
                named("primary"),
                "needs primary = { host = ..., port = ... }".to_string(),
            )
        })?;
        let pair = PairSection {
            primary,
            backup: s.backup.clone(),
            check: s.check.clone(),
            failback: s.failback,
        };
        (
            validate_pair(&pair, defaults).map_err(|(k, m)| (named(&k), m))?,
            None,
        )
    };
    Ok(ServiceSpec {
        id: id.to_string(),
        name,
        service_type: s.service_type,
        feature,
        attributes: s.attributes.clone(),
        pair,
        cassandra,
    })
}

fn validate_pair(p: &PairSection, defaults: &CheckSection) -> Result<PairSpec, Invalid> {
    let layered = p.check.clone().unwrap_or_default().over(defaults);
    let instance = |role: &str, i: &InstanceSection| {
        validate_instance(i, &layered, CheckKindName::Tcp)
            .map_err(|(k, m)| (format!("{role}.{k}"), m))
    };
    Ok(PairSpec {
        primary: instance("primary", &p.primary)?,
        backup: p
            .backup
            .as_ref()
            .map(|b| instance("backup", b))
            .transpose()?,
        failback: if p.failback.unwrap_or(false) {
            Failback::ToPrimary
        } else {
            Failback::Stay
        },
    })
}

fn validate_cassandra(
    c: &CassandraSection,
    defaults: &CheckSection,
) -> Result<CassandraSpec, Invalid> {
    if c.nodes.is_empty() {
        return Err((
            "nodes".into(),
            "needs at least one node, such as [\"10.0.0.7:9042\"]".into(),
        ));
    }
    let layered = c.check.clone().unwrap_or_default().over(defaults);
    let mut nodes = Vec::with_capacity(c.nodes.len());
    for (i, text) in c.nodes.iter().enumerate() {
        let (host, port) =
            parse_host_port(text, DEFAULT_CQL_PORT).map_err(|m| (format!("nodes[{i}]"), m))?;
        let section = InstanceSection {
            host,
            port,
            name: None,
            check: None,
        };
        nodes.push(
            validate_instance(&section, &layered, CheckKindName::Cql)
                .map_err(|(k, m)| (format!("nodes[{i}].{k}"), m))?,
        );
    }
    let majority = nodes.len() / 2 + 1;
    let quorum = c.quorum.unwrap_or(majority);
    if quorum == 0 || quorum > nodes.len() {
        return Err((
            "quorum".into(),
            format!(
                "must be between 1 and the number of nodes ({}), not {quorum}",
                nodes.len()
            ),
        ));
    }
    Ok(CassandraSpec { nodes, quorum })
}

/// Reads `host:port`, `[v6]:port`, or a bare host (with `default_port`).
fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("\"{text}\" is not host:port, such as \"10.0.0.7:9042\"");
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse::<u16>().map_err(|_| bad())?),
        Some(_) => return Err(bad()),
        None => (text, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn validate_instance(
    i: &InstanceSection,
    layered: &CheckSection,
    default_kind: CheckKindName,
) -> Result<InstanceSpec, Invalid> {
    if i.host.trim().is_empty() {
        return Err(("host".into(), "must not be empty".into()));
    }
    if i.port == 0 {
        return Err(("port".into(), "must be between 1 and 65535".into()));
    }
    let section = i.check.clone().unwrap_or_default().over(layered);
    let check =
        resolve_check(&section, default_kind).map_err(|(k, m)| (format!("check.{k}"), m))?;
    Ok(InstanceSpec {
        name: i.name.clone(),
        target: Target {
            host: i.host.trim().to_string(),
            port: i.port,
        },
        check,
    })
}

/// Turns a fully layered check section into a `Check`, with built-in defaults for the rest.
fn resolve_check(c: &CheckSection, default_kind: CheckKindName) -> Result<Check, Invalid> {
    let positive = |key: &str, d: Option<super::duration::HumanDuration>, default: Duration| {
        let value = d.map_or(default, |d| d.0);
        if value.is_zero() {
            Err((key.to_string(), "must be longer than 0".to_string()))
        } else {
            Ok(value)
        }
    };
    let interval = positive("interval", c.interval, DEFAULT_INTERVAL)?;
    let timeout = positive("timeout", c.timeout, DEFAULT_TIMEOUT)?;
    let fast_interval = positive(
        "fast_interval",
        c.fast_interval,
        (interval / 2).max(Duration::from_millis(10)),
    )?;
    let down_interval = positive("down_interval", c.down_interval, interval)?;
    let jitter = c.jitter.unwrap_or(DEFAULT_JITTER);
    if !(0.0..=MAX_JITTER).contains(&jitter) {
        return Err((
            "jitter".into(),
            format!("must be a fraction between 0 and {MAX_JITTER}, such as 0.1, not {jitter}"),
        ));
    }
    let rise = c.rise.unwrap_or(DEFAULT_RISE);
    let fall = c.fall.unwrap_or(DEFAULT_FALL);
    for (key, value) in [("rise", rise), ("fall", fall)] {
        if value == 0 {
            return Err((key.into(), "must be at least 1".into()));
        }
    }
    let kind_name = c.kind.unwrap_or(default_kind);
    let refuse_unless = |applies: bool, key: &str, present: bool| {
        if present && !applies {
            Err((
                key.to_string(),
                format!("does not apply to a {:?} check", kind_name).to_lowercase(),
            ))
        } else {
            Ok(())
        }
    };
    let is_http = kind_name == CheckKindName::Http;
    refuse_unless(is_http, "method", c.method.is_some())?;
    refuse_unless(is_http, "path", c.path.is_some())?;
    refuse_unless(is_http, "expect_status", c.expect_status.is_some())?;
    refuse_unless(is_http, "expect_body", c.expect_body.is_some())?;
    refuse_unless(
        kind_name == CheckKindName::Exec,
        "command",
        c.command.is_some(),
    )?;
    let kind = match kind_name {
        CheckKindName::Tcp => CheckKind::Tcp,
        CheckKindName::Cql => CheckKind::Cql,
        CheckKindName::Http => {
            let method = c.method.clone().unwrap_or_else(|| "GET".into());
            if method.is_empty() || !method.chars().all(|ch| ch.is_ascii_uppercase()) {
                return Err((
                    "method".into(),
                    format!("\"{method}\" is not an HTTP method such as \"GET\" or \"HEAD\""),
                ));
            }
            let path = c.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/')
                || path.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            {
                return Err((
                    "path".into(),
                    format!("\"{path}\" must start with / and hold no spaces"),
                ));
            }
            let expect_status = c.expect_status.clone().unwrap_or_default();
            if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
                return Err((
                    "expect_status".into(),
                    format!("{bad} is not an HTTP status (100-599)"),
                ));
            }
            CheckKind::Http(HttpCheck {
                method,
                path,
                expect_status,
                expect_body: c.expect_body.clone(),
            })
        }
        CheckKindName::Exec => {
            let command = c.command.clone().unwrap_or_default();
            if command.first().is_none_or(|p| p.trim().is_empty()) {
                return Err((
                    "command".into(),
                    "an exec check needs command = [\"/path/to/program\", \"arg\", ...]".into(),
                ));
            }
            CheckKind::Exec(ExecCheck { command })
        }
    };
    Ok(Check {
        kind,
        timeout,
        rise,
        fall,
        schedule: Schedule {
            interval,
            fast_interval,
            down_interval,
            jitter,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(file, "test.toml").map_err(|e| e.to_string())
    }

    const PAIR: &str = r#"
[[service]]
id = "sips1"
name = "SIPS1"
type = "Voice"
attributes = { sipPort = 5060, publicHost = "sip.example.com" }
primary = { host = "10.0.0.5", port = 5001 }
backup  = { host = "10.0.0.6", port = 5001, check = { timeout = "3s" } }
check = { kind = "tcp", interval = "1s" }
"#;

    #[test]
    fn layers_check_settings() {
        let text = format!("[checks]\nrise = 4\ntimeout = \"2s\"\n{PAIR}");
        let s = load(&text).unwrap();
        let svc = &s.services[0];
        assert_eq!(svc.name, "SIPS1");
        assert_eq!(svc.feature, "api-voice");
        let primary = &svc.pair.primary.check;
        assert_eq!(
            primary.schedule.interval,
            Duration::from_secs(1),
            "service overrides default"
        );
        assert_eq!(primary.timeout, Duration::from_secs(2), "default applies");
        assert_eq!(primary.rise, 4);
        assert_eq!(primary.fall, DEFAULT_FALL);
        assert_eq!(primary.schedule.fast_interval, Duration::from_millis(500));
        let backup = &svc.pair.backup.as_ref().unwrap().check;
        assert_eq!(
            backup.timeout,
            Duration::from_secs(3),
            "instance overrides service"
        );
        assert_eq!(backup.schedule.interval, Duration::from_secs(1));
        assert_eq!(svc.pair.failback, Failback::Stay);
        let keys: Vec<_> = svc.attributes.keys().collect();
        assert_eq!(keys, ["sipPort", "publicHost"], "attribute order is kept");
    }

    #[test]
    fn provisioning_defaults() {
        let s = load(r#"
[[service]]
id = "provisioning"
type = "Provisioning"
config_server = { primary = { host = "10.0.0.8", port = 2020 }, backup = { host = "10.0.0.9", port = 2020 } }
cassandra = { nodes = ["10.0.0.7:9042", "10.0.0.10", "[::1]:9043"] }
"#).unwrap();
        let svc = &s.services[0];
        assert_eq!(svc.name, "Provisioning");
        let c = svc.cassandra.as_ref().unwrap();
        assert_eq!(c.quorum, 2, "majority of three");
        assert_eq!(
            c.nodes[1].target,
            Target {
                host: "10.0.0.10".into(),
                port: 9042
            }
        );
        assert_eq!(
            c.nodes[2].target,
            Target {
                host: "::1".into(),
                port: 9043
            }
        );
        assert_eq!(c.nodes[0].check.kind, CheckKind::Cql);
        assert_eq!(svc.pair.primary.check.kind, CheckKind::Tcp);
    }

    #[test]
    fn defaults_without_a_server_section() {
        let s = load("").unwrap();
        assert_eq!(s.server.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(s.server.base_path, "/api/v2");
        assert!(s.services.is_empty());
    }

    fn refused(text: &str) -> String {
        load(text).expect_err("must be refused")
    }

    #[test]
    fn refuses_mistakes_naming_the_key() {
        let dup = format!("{PAIR}{PAIR}");
        assert_eq!(
            refused(&dup),
            "test.toml: service[1].id: duplicate service id \"sips1\"; ids must be unique"
        );
        let collide = PAIR.replace("sipPort = 5060", "state = \"x\"");
        assert!(
            refused(&collide).starts_with(
                "test.toml: service[0] (sips1).attributes.state: \"state\" is reserved"
            )
        );
        let zero = PAIR.replace("interval = \"1s\"", "interval = \"0s\"");
        assert_eq!(
            refused(&zero),
            "test.toml: service[0] (sips1).primary.check.interval: must be longer than 0"
        );
        let http_only = PAIR.replace("kind = \"tcp\"", "kind = \"tcp\", path = \"/x\"");
        assert_eq!(
            refused(&http_only),
            "test.toml: service[0] (sips1).primary.check.path: does not apply to a tcp check"
        );
        let no_cmd = PAIR.replace("kind = \"tcp\"", "kind = \"exec\"");
        assert!(refused(&no_cmd).contains("primary.check.command: an exec check needs command"));
        assert!(
            refused("[server]\nlisten = \"localhost\"")
                .starts_with("test.toml: server.listen: \"localhost\" is not an address")
        );
        assert!(refused("[checks]\nkind = \"http\"").contains("checks.kind"));
        assert!(
            refused("[server]\nallowed_origins = [\"https://ok.example\", \"*.example\"]")
                .starts_with(
                    "test.toml: server.allowed_origins[1]: \"*.example\" is not an origin"
                )
        );
        assert_eq!(
            refused("[checks]\njitter = 0.9"),
            "test.toml: checks.jitter: must be a fraction between 0 and 0.5, such as 0.1, not 0.9"
        );
        let bad_id = PAIR.replace("id = \"sips1\"", "id = \"a b\"");
        assert!(
            refused(&bad_id).starts_with("test.toml: service[0].id: \"a b\" is not a usable id")
        );
    }

    #[test]
    fn refuses_misplaced_provisioning_parts() {
        let named = PAIR.replace("type = \"Voice\"", "type = \"Provisioning\"");
        assert!(refused(&named).contains("always named \"Provisioning\""));
        let no_cassandra = r#"
[[service]]
id = "p"
type = "Provisioning"
config_server = { primary = { host = "h", port = 1 } }
"#;
        assert!(
            refused(no_cassandra)
                .contains("service[0] (p).cassandra: a Provisioning service needs cassandra")
        );
        let quorum = format!("{no_cassandra}cassandra = {{ nodes = [\"h:1\"], quorum = 2 }}\n");
        assert!(
            refused(&quorum)
                .contains("cassandra.quorum: must be between 1 and the number of nodes (1), not 2")
        );
        let voice_cassandra = format!("{PAIR}cassandra = {{ nodes = [\"h:1\"] }}\n");
        assert!(refused(&voice_cassandra).contains("only a Provisioning service has `cassandra`"));
    }

    #[test]
    fn users_and_contact_centers() {
        let hash = crate::password::hash("pw").unwrap();
        let base = format!(
            "[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[user]]\nname = \"a\"\npassword = \"{hash}\"\nroles = [\"agent\", \"admin\"]\ncontact_center = \"cc\"\n"
        );
        let s = load(&base).unwrap();
        assert_eq!(
            s.auth.users[0].roles,
            [UserRole::Agent, UserRole::Admin].into()
        );
        assert!(s.auth.users[0].features.contains("api-voice"));
        let plain = base.replace(&hash, "hunter2");
        let refused_plain = refused(&plain);
        assert_eq!(
            refused_plain,
            "test.toml: user[0] (a).password: is not an Argon2 hash; plain-text passwords are refused. Generate one with: servicewatch hash-password"
        );
        assert!(
            !refused_plain.contains("hunter2"),
            "the password is never echoed"
        );
        assert!(refused(&base.replace("\"admin\"", "\"root\"")).contains("\"root\" is not a role"));
        assert!(
            refused(&base.replace("contact_center = \"cc\"", "contact_center = \"zz\""))
                .contains("no [[contact_center]] with id \"zz\"")
        );
        assert!(
            refused(&format!(
                "{base}{}",
                &base[base.find("[[user]]").unwrap()..]
            ))
            .contains("duplicate user \"a\"")
        );
    }

    #[test]
    fn log_filters() {
        assert!(is_log_filter("info"));
        assert!(is_log_filter("WARN"));
        assert!(is_log_filter("info,servicewatch::monitor=debug"));
        assert!(!is_log_filter("loud"));
        assert!(!is_log_filter("servicewatch=loud"));
        assert!(!is_log_filter(""));
        assert!(
            refused("[log]\nlevel = \"loud\"")
                .starts_with("test.toml: log.level: \"loud\" is not a level")
        );
    }

    #[test]
    fn parses_host_port_forms() {
        assert_eq!(parse_host_port("db1:9142", 9042), Ok(("db1".into(), 9142)));
        assert_eq!(parse_host_port("db1", 9042), Ok(("db1".into(), 9042)));
        assert_eq!(
            parse_host_port("[fe80::1]:9000", 9042),
            Ok(("fe80::1".into(), 9000))
        );
        assert!(parse_host_port("db1:99999", 9042).is_err());
        assert!(parse_host_port("db1:0", 9042).is_err());
        assert!(parse_host_port(":9042", 9042).is_err());
    }
}
