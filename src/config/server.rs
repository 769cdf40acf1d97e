//! The listeners and global bounds: `[server]`, `[tls]`, `[admin]`, `[limits]` and `[log]`.

use std::net::SocketAddr;
use std::time::Duration;

use super::file::{FileConfig, LogFormatName};
use super::rules::{Invalid, address, at_least_one, positive};

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

const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Well within systemd's default `TimeoutStopSec` of 90 s.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The HTTP layer's own default: long enough for a UI's next request, short enough that
/// a restart does not wait long on idle connections.
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Request heads of browsers with a few cookies fit many times over.
const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;
/// The HTTP layer never buffers a larger head; it answers 431 itself beyond it.
const TRANSPORT_MAX_HEADER_SIZE: usize = 128 * 1024;
/// Every Bayeux session at the default `max_sessions` with room for REST clients, well
/// inside the unit's 65536 open files.
const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// The HTTP layer's own default for a request head, now bounding the body as well: ample
/// for the few hundred bytes a Bayeux batch is, short for a client that stalls on purpose.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP listener and how the API names itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// The address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Base of the absolute URIs in list answers, without a trailing slash; `None`: taken
    /// from each request's scheme and Host.
    pub public_url: Option<String>,
    /// Web origins (`https://host[:port]`) besides this server's own whose pages may use
    /// the API and the notifications with the user's credentials.
    pub allowed_origins: Vec<String>,
    /// The API prefix, starting with `/` and without a trailing slash.
    pub base_path: String,
    /// HTTP worker threads (each holds its share of connections and Bayeux sessions).
    pub workers: usize,
    /// How long data written to a client may stay unacknowledged before the connection is
    /// dropped (`TCP_USER_TIMEOUT`): what frees a client that stopped reading.
    pub send_timeout: Duration,
    /// The kernel send buffer of each client connection, in bytes (`SO_SNDBUF`); `None`:
    /// the kernel sizes it (up to `net.ipv4.tcp_wmem`'s maximum, 4 MiB by default).
    pub send_buffer: Option<usize>,
    /// How long a stop waits for requests in flight before closing what is left.
    pub shutdown_timeout: Duration,
    /// How long an idle HTTP connection is kept open for the client's next request. A
    /// stop waits for idle connections too, so this also bounds how long one takes.
    pub keep_alive: Duration,
}

/// The HTTPS listener. The files are read when the daemon starts (see [`crate::tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The address the HTTPS API listens on.
    pub listen: SocketAddr,
    /// Relative paths are taken from the configuration file's directory.
    pub certificate: std::path::PathBuf,
    /// The certificate's private key (PEM), taken as `certificate` is.
    pub key: std::path::PathBuf,
}

/// Global bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Probes running at once over every monitor; a probe past it waits for a slot.
    pub probes_in_flight: usize,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    pub max_header_size: usize,
    /// Client connections open at once, over all workers; a connection accepted beyond it
    /// is answered 503 and closed.
    pub max_connections: usize,
    /// How long a client may take to send a whole request, head and body; past it the
    /// request is answered 408 and its connection closed.
    pub request_timeout: Duration,
}

/// How logs are written (outside the journal, which has its own format).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSettings {
    /// Text or JSON lines.
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

pub(super) fn validate_server(file: &FileConfig) -> Result<ServerSettings, Invalid> {
    let s = &file.server;
    let listen = address(
        "server.listen",
        s.listen.as_deref().unwrap_or(DEFAULT_LISTEN),
        "\"127.0.0.1:8080\" or \"[::]:8080\"",
    )?;
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
        if !is_origin(origin) {
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = at_least_one("server.workers", s.workers, cores)?;
    let send_timeout = positive("server.send_timeout", s.send_timeout, DEFAULT_SEND_TIMEOUT)?;
    let send_buffer = match s.send_buffer {
        Some(n) if !(4096..=64 * 1024 * 1024).contains(&n) => {
            return Err((
                "server.send_buffer".into(),
                format!("{n} bytes: must be between 4096 and 67108864"),
            ));
        }
        other => other,
    };
    let shutdown_timeout = s.shutdown_timeout.map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.0);
    let keep_alive = s.keep_alive.map_or(DEFAULT_KEEP_ALIVE, |d| d.0);
    Ok(ServerSettings {
        listen,
        public_url,
        allowed_origins,
        base_path,
        workers,
        send_timeout,
        send_buffer,
        shutdown_timeout,
        keep_alive,
    })
}

pub(super) fn validate_tls(
    file: &FileConfig,
    server: &ServerSettings,
) -> Result<Option<TlsSettings>, Invalid> {
    let Some(t) = &file.tls else {
        return Ok(None);
    };
    let listen = address("tls.listen", &t.listen, "\"[::]:8443\"")?;
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

pub(super) fn validate_limits(file: &FileConfig) -> Result<Limits, Invalid> {
    let l = &file.limits;
    let probes_in_flight = at_least_one(
        "limits.probes_in_flight",
        l.probes_in_flight,
        DEFAULT_PROBES_IN_FLIGHT,
    )?;
    let max_connections = at_least_one(
        "limits.max_connections",
        l.max_connections,
        DEFAULT_MAX_CONNECTIONS,
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
    let request_timeout = positive(
        "limits.request_timeout",
        l.request_timeout,
        DEFAULT_REQUEST_TIMEOUT,
    )?;
    Ok(Limits {
        probes_in_flight,
        max_header_size,
        max_connections,
        request_timeout,
    })
}

/// `[admin]`: where `/metrics`, `/healthz` and `/readyz` listen; `None` when disabled.
pub(super) fn validate_admin(file: &FileConfig) -> Result<Option<SocketAddr>, Invalid> {
    if file.admin.enabled == Some(false) {
        return Ok(None);
    }
    let listen = file.admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    address("admin.listen", listen, "\"127.0.0.1:9180\"").map(Some)
}

/// `[log]`: the format, and a level or filter checked here rather than by `tracing`, which
/// would take a misspelt level for a target and log less without a word.
pub(super) fn validate_log(file: &FileConfig) -> Result<LogSettings, Invalid> {
    if let Some(level) = &file.log.level
        && !is_log_filter(level)
    {
        return Err((
            "log.level".into(),
            format!(
                "\"{level}\" is not a level or filter; use error, warn, info, debug or trace (or a filter such as \"info,servicewatch=debug\")"
            ),
        ));
    }
    Ok(LogSettings {
        format: match file.log.format {
            Some(LogFormatName::Json) => LogFormat::Json,
            _ => LogFormat::Text,
        },
        level: file.log.level.clone(),
    })
}

/// Whether `filter` is a level (`info`) or comma-separated directives whose levels are all
/// known (`info,servicewatch::monitor=debug`). A bare word that is not a level would be taken
/// by `tracing` as a target name and silently log nothing more; refuse it instead.
pub(super) fn is_log_filter(filter: &str) -> bool {
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

/// Whether `value` is an origin as `allowed_origins` must list it: `http(s)://host[:port]`,
/// without a path.
pub fn is_origin(value: &str) -> bool {
    let Some((scheme, authority)) = value.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', '*', ' ', '@'])
}

#[cfg(test)]
mod tests {
    use super::super::settings::tests::{load, refused};
    use super::*;

    #[test]
    fn admin_listens_on_loopback_unless_moved_or_disabled() {
        let listen = |text: &str| load(text).unwrap().admin_listen;
        assert_eq!(listen(""), Some(DEFAULT_ADMIN_LISTEN.parse().unwrap()));
        assert_eq!(
            listen("[admin]\nlisten = \"0.0.0.0:9100\""),
            Some("0.0.0.0:9100".parse().unwrap())
        );
        assert_eq!(
            listen("[admin]\nenabled = false\nlisten = \"nowhere\""),
            None
        );
        assert!(refused("[admin]\nlisten = \"nowhere\"").starts_with("test.toml: admin.listen:"));
    }

    #[test]
    fn log_format_and_level() {
        let log = |text: &str| load(text).unwrap().log;
        assert_eq!(log(""), LogSettings::default());
        let json = log("[log]\nformat = \"json\"\nlevel = \"info,servicewatch=debug\"");
        assert_eq!(json.format, LogFormat::Json);
        assert_eq!(json.level.as_deref(), Some("info,servicewatch=debug"));
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
    fn what_counts_as_an_origin() {
        assert!(is_origin("https://ui.example.com"));
        assert!(is_origin("http://10.0.0.5:3000"));
        assert!(!is_origin("https://ui.example.com/"));
        assert!(!is_origin("https://*.example.com"));
        assert!(!is_origin("ui.example.com"));
        assert!(!is_origin("ftp://ui.example.com"));
        assert!(!is_origin("*"));
    }
}
