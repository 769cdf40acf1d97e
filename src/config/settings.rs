//! Validated configuration: what the daemon runs on. [`validate`] turns the file as written
//! into these types, section by section (each section's types and rules live in a module of
//! their own), naming the key of the first mistake.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::ConfigError;
use super::alerts::{AlertSettings, validate_alerts};
use super::auth::{AuthSettings, validate_auth};
use super::cluster::{ClusterSettings, hostname, validate_cluster};
use super::control::{ControlSettings, validate_control};
use super::file::{CheckKindName, FileConfig};
use super::history::{HistorySettings, validate_history};
use super::notifications::{NotificationSettings, validate_notifications};
use super::server::{
    Limits, LogSettings, ServerSettings, TlsSettings, validate_admin, validate_limits,
    validate_log, validate_server, validate_tls,
};
use super::services::{ServiceSpec, validate_service};

/// Everything the daemon runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `[server]`: the HTTP listener and how the API names itself.
    pub server: ServerSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[auth]`, the contact centers and the users.
    pub auth: AuthSettings,
    /// Where `/metrics`, `/healthz` and `/readyz` listen; `None`: disabled.
    pub admin_listen: Option<SocketAddr>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[notifications]`: the Bayeux sessions.
    pub notifications: NotificationSettings,
    /// The HTTPS listener, when configured.
    pub tls: Option<TlsSettings>,
    /// `[history]`: the history database, off unless configured.
    pub history: HistorySettings,
    /// `[control]`: the command line's Unix socket.
    pub control: ControlSettings,
    /// The nodes this one agrees with, when it is one of several.
    pub cluster: Option<ClusterSettings>,
    /// `[alerts]`: who is told of what.
    pub alerts: AlertSettings,
    /// The services watched, in the file's order.
    pub services: Vec<ServiceSpec>,
}

impl Settings {
    /// The parts of `new` that differ from these running settings and that a reload
    /// cannot apply: they take effect at the next restart. A reload applies the services,
    /// the users and the alerts; everything else is bound at start (listeners, worker
    /// threads, bounds sized once, the log subscriber).
    pub fn needing_restart(&self, new: &Settings) -> Vec<&'static str> {
        let auth_besides_users = |a: &AuthSettings| {
            (
                a.realm.clone(),
                a.login_cache,
                a.login_idle,
                a.login_max,
                a.throttle,
            )
        };
        [
            ("[server]", self.server != new.server),
            ("[tls]", self.tls != new.tls),
            ("[history]", self.history != new.history),
            ("[cluster]", self.cluster != new.cluster),
            ("[control]", self.control != new.control),
            ("[admin]", self.admin_listen != new.admin_listen),
            ("[log]", self.log != new.log),
            ("[notifications]", self.notifications != new.notifications),
            ("[limits]", self.limits != new.limits),
            (
                "[auth] (other than users)",
                auth_besides_users(&self.auth) != auth_besides_users(&new.auth),
            ),
        ]
        .into_iter()
        .filter_map(|(section, changed)| changed.then_some(section))
        .collect()
    }
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
    file.checks
        .resolve(CheckKindName::Tcp)
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
    let admin_listen = validate_admin(&file).map_err(|(k, m)| invalid(k, m))?;
    let log = validate_log(&file).map_err(|(k, m)| invalid(k, m))?;
    let auth = validate_auth(&file).map_err(|(k, m)| invalid(k, m))?;
    let history = validate_history(&file.history).map_err(|(k, m)| invalid(k, m))?;
    let alerts = validate_alerts(&file.alerts).map_err(|(k, m)| invalid(k, m))?;
    let control = validate_control(&file.control).map_err(|(k, m)| invalid(k, m))?;
    let cluster = file
        .cluster
        .as_ref()
        .map(|c| validate_cluster(c, &hostname()))
        .transpose()
        .map_err(|(k, m)| invalid(k, m))?;
    Ok(Settings {
        alerts,
        cluster,
        control,
        history,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::super::checks::DEFAULT_FALL;
    use super::super::server::DEFAULT_LISTEN;
    use super::*;
    use crate::domain::pairing::Failback;
    use crate::probe::{CheckKind, Target};
    use std::time::Duration;

    pub(crate) fn load(text: &str) -> Result<Settings, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(file, "test.toml").map_err(|e| e.to_string())
    }

    pub(crate) const PAIR: &str = r#"
[[service]]
id = "sips1"
name = "SIPS1"
type = "Voice"
attributes = { sipPort = 5060, publicHost = "sip.example.com" }
primary = { host = "10.0.0.5", port = 5001 }
backup  = { host = "10.0.0.6", port = 5001, check = { timeout = "3s" } }
check = { kind = "tcp", interval = "1s" }
"#;

    pub(crate) fn refused(text: &str) -> String {
        load(text).expect_err("must be refused")
    }

    #[test]
    fn layers_check_settings() {
        let text = format!("[checks]\nrise = 4\ntimeout = \"2s\"\nwatch = true\n{PAIR}");
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
        assert!(primary.watch, "the default layer's watch applies");
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

    #[test]
    fn what_a_reload_cannot_apply_is_named() {
        let running = load(PAIR).unwrap();
        let same = load(&format!("{PAIR}\n[[contact_center]]\nid = \"cc\"\n")).unwrap();
        assert!(
            running.needing_restart(&same).is_empty(),
            "services and users reload"
        );
        let moved = load(&format!("[server]\nlisten = \"127.0.0.1:9\"\n[auth]\nlockout = \"5m\"\n[log]\nformat = \"json\"\n{PAIR}")).unwrap();
        assert_eq!(
            running.needing_restart(&moved),
            ["[server]", "[log]", "[auth] (other than users)"]
        );
    }

    #[test]
    fn refuses_connection_bounds_out_of_range() {
        assert_eq!(
            refused(&format!("[server]\nsend_buffer = 100\n{PAIR}")),
            "test.toml: server.send_buffer: 100 bytes: must be between 4096 and 67108864"
        );
        assert_eq!(
            refused(&format!("[limits]\nrequest_timeout = \"0s\"\n{PAIR}")),
            "test.toml: limits.request_timeout: must be longer than 0"
        );
        let ok = load(&format!(
            "[server]\nsend_buffer = 65536\n[limits]\nrequest_timeout = \"2s\"\n{PAIR}"
        ))
        .unwrap();
        assert_eq!(ok.server.send_buffer, Some(65536));
        assert_eq!(ok.limits.request_timeout, Duration::from_secs(2));
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
}
