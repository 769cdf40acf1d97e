//! The configuration file as written: serde structs that mirror the TOML and refuse unknown
//! keys. Nothing here is validated beyond types; `settings` turns these into checked values.

use serde::{Deserialize, Deserializer};

use super::duration::HumanDuration;
pub use super::history::HistorySection;
use crate::domain::service::ServiceType;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    /// Defaults for every check; services and instances override any of them.
    #[serde(default)]
    pub checks: CheckSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub notifications: NotificationsSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub auth: AuthSection,
    /// An HTTPS listener besides the HTTP one.
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub history: HistorySection,
    /// The control socket of the command line.
    #[serde(default)]
    pub control: super::control::ControlSection,
    /// Several nodes on etcd; absent: this node runs alone.
    pub cluster: Option<super::cluster::ClusterSection>,
    /// Directory logins (LDAP, Active Directory); absent: local users only.
    pub ldap: Option<super::ldap::LdapSection>,
    /// Receivers, routes and timing of alerts.
    #[serde(default)]
    pub alerts: super::alerts::AlertsSection,
    #[serde(default, rename = "contact_center")]
    pub contact_centers: Vec<ContactCenterSection>,
    #[serde(default, rename = "user")]
    pub users: Vec<UserSection>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSection>,
}

/// `[server]`: where the API listens and how it names itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub base_path: Option<String>,
    pub workers: Option<usize>,
    pub send_timeout: Option<HumanDuration>,
    pub send_buffer: Option<usize>,
    pub shutdown_timeout: Option<HumanDuration>,
    pub keep_alive: Option<HumanDuration>,
}

/// `[tls]`: the HTTPS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub listen: String,
    /// PEM certificate chain, leaf first.
    pub certificate: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// `[limits]`: global bounds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub probes_in_flight: Option<usize>,
    pub max_header_size: Option<usize>,
    pub max_connections: Option<usize>,
    pub request_timeout: Option<HumanDuration>,
}

/// `[auth]`: how callers prove who they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub realm: Option<String>,
    /// A separate file (may be kept 0600) holding `[[user]]` and `[[contact_center]]`.
    pub users_file: Option<String>,
    pub login_cache: Option<HumanDuration>,
    /// Also read as `session_idle`, its former name (a login is not a session).
    #[serde(alias = "session_idle")]
    pub login_idle: Option<HumanDuration>,
    /// Also read as `session_max`, its former name.
    #[serde(alias = "session_max")]
    pub login_max: Option<HumanDuration>,
    pub max_failures: Option<u32>,
    pub failure_window: Option<HumanDuration>,
    pub lockout: Option<HumanDuration>,
    /// `[[auth.display]]`: wall screens and their tokens.
    #[serde(default)]
    pub display: Vec<DisplaySection>,
}

/// One `[[auth.display]]`: a wall screen's read-only credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplaySection {
    pub name: String,
    pub contact_center: String,
    /// The SHA-256 of the token, in lowercase hex (the token itself is never stored).
    pub token_sha256: String,
}

/// One `[[contact_center]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactCenterSection {
    pub id: String,
    #[serde(default)]
    pub features: Vec<String>,
}

/// One `[[user]]`.
/// `Debug` leaves the password out, so that no log or panic message can carry it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub name: String,
    /// An Argon2 PHC string; plain text is refused.
    pub password: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub contact_center: String,
}

impl std::fmt::Debug for UserSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSection")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("roles", &self.roles)
            .field("contact_center", &self.contact_center)
            .finish()
    }
}

/// The users file: users and contact centers only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default, rename = "contact_center")]
    pub contact_centers: Vec<ContactCenterSection>,
    #[serde(default, rename = "user")]
    pub users: Vec<UserSection>,
}

/// `[log]`: where and how much.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<LogFormatName>,
    pub level: Option<String>,
}

/// Log formats, as written in `format = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatName {
    Text,
    Json,
}

/// `[admin]`: metrics and health, on a listener of their own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
}

/// `[notifications]`: the Bayeux endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsSection {
    pub connect_timeout: Option<HumanDuration>,
    pub session_timeout: Option<HumanDuration>,
    pub ping_interval: Option<HumanDuration>,
    pub max_sessions: Option<usize>,
    pub max_sessions_per_user: Option<usize>,
    pub max_subscriptions: Option<usize>,
    pub session_queue: Option<usize>,
    pub max_message_size: Option<usize>,
}

/// A check as written at any level (`[checks]`, a service, a pair, an instance); every key
/// is optional so that levels can be layered.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckSection {
    pub kind: Option<CheckKindName>,
    pub interval: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub fast_interval: Option<HumanDuration>,
    pub down_interval: Option<HumanDuration>,
    pub jitter: Option<f64>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub expect_status: Option<Vec<u16>>,
    pub expect_body: Option<String>,
    pub command: Option<Vec<String>>,
    pub watch: Option<bool>,
    pub server_name: Option<String>,
    pub ca_file: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
    pub tls_skip_verify: Option<bool>,
    pub certificate_min_days: Option<f64>,
    /// `sip`: `"udp"`, `"tcp"` or `"tls"`.
    pub transport: Option<String>,
    /// `sip`: the final answers counted as up.
    pub up: Option<Vec<SipStatus>>,
    /// `sip`: the final answers counted as degraded.
    pub degraded: Option<Vec<SipStatus>>,
}

/// One entry of a `sip` check's `up` or `degraded`, as written: a code (`503` or `"503"`)
/// or a class (`"5xx"`), kept as text for `checks` to read and refuse with the key named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipStatus(pub String);

impl<'de> Deserialize<'de> for SipStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;

        impl serde::de::Visitor<'_> for StatusVisitor {
            type Value = SipStatus;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a SIP status code such as 200, or a class such as "2xx""#)
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SipStatus, E> {
                Ok(SipStatus(s.to_string()))
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<SipStatus, E> {
                Ok(SipStatus(n.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<SipStatus, E> {
                Ok(SipStatus(n.to_string()))
            }
        }

        deserializer.deserialize_any(StatusVisitor)
    }
}

/// The check kinds, as written in `kind = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKindName {
    Tcp,
    Http,
    Https,
    Cql,
    Exec,
    Sip,
}

/// How to ask an instance its role, as written at a service (or `config_server`) and,
/// to override any key, at an instance.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleSection {
    pub kind: Option<RoleKindName>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub pointer: Option<String>,
    pub command: Option<Vec<String>>,
    pub primary: Option<String>,
    pub backup: Option<String>,
    pub timeout: Option<HumanDuration>,
}

/// The role check kinds, as written in `kind = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleKindName {
    Http,
    Exec,
}

/// One server process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSection {
    pub host: String,
    pub port: u16,
    /// The application's name in Configuration Server, for logs.
    pub name: Option<String>,
    pub check: Option<CheckSection>,
    pub role: Option<RoleSection>,
}

/// `config_server = { primary = ..., backup = ... }` of a Provisioning service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSection {
    pub primary: InstanceSection,
    pub backup: Option<InstanceSection>,
    pub check: Option<CheckSection>,
    pub role: Option<RoleSection>,
    pub failback: Option<bool>,
}

/// `cassandra = { nodes = [...], quorum = N }` of a Provisioning service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraSection {
    pub nodes: Vec<String>,
    pub quorum: Option<usize>,
    pub check: Option<CheckSection>,
}

/// One `[[service]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    pub id: String,
    pub name: Option<String>,
    #[serde(rename = "type", deserialize_with = "service_type")]
    pub service_type: ServiceType,
    pub feature: Option<String>,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub primary: Option<InstanceSection>,
    pub backup: Option<InstanceSection>,
    pub check: Option<CheckSection>,
    pub role: Option<RoleSection>,
    pub failback: Option<bool>,
    pub config_server: Option<PairSection>,
    pub cassandra: Option<CassandraSection>,
}

/// A service type by its wire name. The domain type does not derive the file format; the
/// refusal is serde's own, so it reads like every other unknown value.
fn service_type<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ServiceType, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse()
        .map_err(|()| serde::de::Error::unknown_variant(&name, &ServiceType::NAMES))
}
