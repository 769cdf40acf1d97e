//! `[cluster]`: several servicewatch nodes agreeing through etcd. Without the table a node
//! runs alone, as it always has.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::HumanDuration;
use super::rules::Invalid;
use crate::domain::quorum::Quorum;

/// The lease a leader holds by default: a dead leader is replaced within about this long.
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
/// etcd refuses leases shorter than about 1.5 s with its default election timeout.
const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
/// How long one call to etcd may take by default before the node counts it as failed.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// `[cluster] quorum = "leader"`: the leader alone probes and decides from its own view
/// (the followers' monitors stay stopped, and no node writes views).
const LEADER_ALONE: &str = "leader";
/// Where the nodes keep their keys by default.
const DEFAULT_PREFIX: &str = "/servicewatch/";

/// `[cluster]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub endpoints: Option<Vec<String>>,
    pub node: Option<String>,
    pub prefix: Option<String>,
    pub lease_ttl: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    pub ca_file: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
    pub server_name: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<String>,
    pub quorum: Option<String>,
}

/// How a node proves itself to etcd and checks etcd's certificate (`https://` endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// The CA that signed the members' certificates (PEM).
    pub ca_file: PathBuf,
    /// This node's certificate and key (PEM), for members that require client certificates.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name the members' certificates are checked against, if not the endpoint's host.
    pub server_name: Option<String>,
}

/// An etcd user (etcd's own authentication) and the file its password is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUser {
    pub name: String,
    pub password_file: PathBuf,
}

/// `[cluster]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The etcd members, as `http://host:port`.
    pub endpoints: Vec<String>,
    /// This node's name, unique among the nodes: logs, metrics and the leader key say it.
    pub node: String,
    /// Every key the nodes write begins with it; it ends with `/`.
    pub prefix: String,
    /// The leader's lease: how long a dead leader holds on.
    pub lease_ttl: Duration,
    /// How long one call to etcd may take before it counts as failed.
    pub timeout: Duration,
    /// TLS to the members, with `https://` endpoints.
    pub tls: Option<ClusterTls>,
    /// etcd's authentication, when the members have it enabled.
    pub user: Option<ClusterUser>,
    /// How the live nodes' views of a server make it down (by default `majority`); `None`
    /// (`"leader"`): the leader alone probes and decides from its own view.
    pub quorum: Option<Quorum>,
}

impl ClusterSettings {
    /// Makes the files it names relative to `base` (the configuration file's directory).
    pub(super) fn rebase(&mut self, base: &std::path::Path) {
        if let Some(tls) = &mut self.tls {
            tls.ca_file = base.join(&tls.ca_file);
            if let Some((certificate, key)) = &mut tls.identity {
                *certificate = base.join(&*certificate);
                *key = base.join(&*key);
            }
        }
        if let Some(user) = &mut self.user {
            user.password_file = base.join(&user.password_file);
        }
    }
}

/// Checks `[cluster]`; `hostname` is the default node name.
pub(super) fn validate_cluster(
    c: &ClusterSection,
    hostname: &str,
) -> Result<ClusterSettings, Invalid> {
    if !cfg!(feature = "cluster") {
        return Err((
            "cluster".into(),
            "this servicewatch was built without the `cluster` feature; build it with the default features to run several nodes".into(),
        ));
    }
    let endpoints = c.endpoints.clone().unwrap_or_default();
    if endpoints.is_empty() {
        return Err((
            "cluster.endpoints".into(),
            "names no etcd member; list them, such as [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]".into(),
        ));
    }
    for e in &endpoints {
        endpoint(e).map_err(|m| ("cluster.endpoints".to_string(), m))?;
    }
    let node = c.node.clone().unwrap_or_else(|| hostname.to_string());
    if node.is_empty()
        || !node
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        return Err((
            "cluster.node".into(),
            format!("\"{node}\" is not a node name; use letters, digits, '-', '_' and '.'"),
        ));
    }
    let mut prefix = c.prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.into());
    if !prefix.starts_with('/') || prefix.contains(char::is_whitespace) {
        return Err((
            "cluster.prefix".into(),
            format!(
                "\"{prefix}\" must begin with '/' and hold no space, such as \"/servicewatch/\""
            ),
        ));
    }
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    let lease_ttl = c.lease_ttl.map_or(DEFAULT_LEASE_TTL, |d| d.0);
    if lease_ttl < MIN_LEASE_TTL || lease_ttl.subsec_nanos() != 0 {
        return Err((
            "cluster.lease_ttl".into(),
            "must be a whole number of seconds, at least 2s (etcd leases count in seconds)".into(),
        ));
    }
    let timeout = c.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    if timeout.is_zero() || timeout >= lease_ttl {
        return Err((
            "cluster.timeout".into(),
            "must be longer than 0 and shorter than lease_ttl (a leader must renew its lease in time)".into(),
        ));
    }
    let tls = validate_tls(c, &endpoints)?;
    let user = match (&c.user, &c.password_file) {
        (None, None) => None,
        (Some(name), Some(file)) if !name.is_empty() && !file.is_empty() => Some(ClusterUser {
            name: name.clone(),
            password_file: PathBuf::from(file),
        }),
        _ => {
            return Err((
                "cluster.user".into(),
                "user and password_file go together (etcd's authentication), both not empty".into(),
            ));
        }
    };
    let quorum = match c.quorum.as_deref() {
        None => Some(Quorum::default()),
        Some(LEADER_ALONE) => None,
        Some(q) => Some(q.parse().map_err(|()| {
            (
                "cluster.quorum".to_string(),
                format!(
                    "\"{q}\" is not a quorum; use \"majority\", \"any\", \"all\" or \"{LEADER_ALONE}\""
                ),
            )
        })?),
    };
    Ok(ClusterSettings {
        endpoints,
        node,
        prefix,
        lease_ttl,
        timeout,
        tls,
        user,
        quorum,
    })
}

/// TLS settings: all endpoints `https://` with a CA file, or all `http://` without any.
fn validate_tls(c: &ClusterSection, endpoints: &[String]) -> Result<Option<ClusterTls>, Invalid> {
    let https = endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    let tls_keys =
        c.client_certificate.is_some() || c.client_key.is_some() || c.server_name.is_some();
    if https == 0 {
        if c.ca_file.is_some() || tls_keys {
            return Err((
                "cluster.ca_file".into(),
                "TLS settings need https:// endpoints".into(),
            ));
        }
        return Ok(None);
    }
    if https != endpoints.len() {
        return Err((
            "cluster.endpoints".into(),
            "mixes http:// and https://; use one scheme for every member".into(),
        ));
    }
    let Some(ca_file) = c.ca_file.clone().filter(|f| !f.is_empty()) else {
        return Err((
            "cluster.ca_file".into(),
            "https:// endpoints need the CA that signed the members' certificates (a PEM file)"
                .into(),
        ));
    };
    let identity = match (&c.client_certificate, &c.client_key) {
        (None, None) => None,
        (Some(certificate), Some(key)) => Some((PathBuf::from(certificate), PathBuf::from(key))),
        _ => {
            return Err((
                "cluster.client_certificate".into(),
                "client_certificate and client_key go together".into(),
            ));
        }
    };
    Ok(Some(ClusterTls {
        ca_file: PathBuf::from(ca_file),
        identity,
        server_name: c.server_name.clone(),
    }))
}

/// Checks one endpoint: `http://host:port`.
fn endpoint(e: &str) -> Result<(), String> {
    let Some(rest) = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
    else {
        return Err(format!(
            "\"{e}\" is not an endpoint; write it as http://host:port (or https://host:port)"
        ));
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!(
            "\"{e}\" has no host and port; write it as http://host:port"
        )),
    }
}

/// This machine's name, the default node name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(endpoints: &[&str]) -> ClusterSection {
        ClusterSection {
            endpoints: Some(endpoints.iter().map(|e| e.to_string()).collect()),
            ..ClusterSection::default()
        }
    }

    #[test]
    #[cfg(not(feature = "cluster"))]
    fn a_build_without_the_feature_refuses_the_table() {
        let (key, message) =
            validate_cluster(&section(&["http://127.0.0.1:2379"]), "h").unwrap_err();
        assert_eq!(key, "cluster");
        assert!(message.contains("`cluster` feature"), "{message}");
    }

    #[test]
    #[cfg(feature = "cluster")]
    fn defaults_fill_in_what_is_left_out() {
        let s = validate_cluster(&section(&["http://127.0.0.1:2379"]), "host1").unwrap();
        assert_eq!(s.node, "host1");
        assert_eq!(s.prefix, "/servicewatch/");
        assert_eq!(s.lease_ttl, Duration::from_secs(3));
        let mut c = section(&["http://etcd1:2379"]);
        c.prefix = Some("/sw/site-a".into());
        assert_eq!(validate_cluster(&c, "h").unwrap().prefix, "/sw/site-a/");
        assert_eq!(
            s.quorum,
            Some(Quorum::Majority),
            "every node probes by default"
        );
        c.quorum = Some("leader".into());
        assert_eq!(validate_cluster(&c, "h").unwrap().quorum, None);
        c.quorum = Some("all".into());
        assert_eq!(validate_cluster(&c, "h").unwrap().quorum, Some(Quorum::All));
        c.quorum = Some("most".into());
        assert_eq!(key_of(&c), "cluster.quorum");
    }

    #[cfg(feature = "cluster")]
    fn key_of(c: &ClusterSection) -> String {
        validate_cluster(c, "h").unwrap_err().0
    }

    #[test]
    #[cfg(feature = "cluster")]
    fn tls_and_a_user_are_read() {
        let mut c = section(&["https://e1:2379", "https://e2:2379"]);
        c.ca_file = Some("/etc/etcd/ca.pem".into());
        c.client_certificate = Some("/etc/servicewatch/etcd.pem".into());
        c.client_key = Some("/etc/servicewatch/etcd.key".into());
        c.user = Some("servicewatch".into());
        c.password_file = Some("/run/credentials/servicewatch.service/etcd".into());
        let s = validate_cluster(&c, "h").unwrap();
        let tls = s.tls.unwrap();
        assert_eq!(tls.ca_file, PathBuf::from("/etc/etcd/ca.pem"));
        assert!(tls.identity.is_some());
        assert_eq!(s.user.unwrap().name, "servicewatch");
    }

    #[test]
    #[cfg(feature = "cluster")]
    fn bad_values_are_refused_with_the_key() {
        let key = |c: &ClusterSection| validate_cluster(c, "h").unwrap_err().0;
        assert_eq!(key(&section(&[])), "cluster.endpoints");
        assert_eq!(key(&section(&["127.0.0.1:2379"])), "cluster.endpoints");
        assert_eq!(key(&section(&["http://127.0.0.1"])), "cluster.endpoints");
        let (refused, message) = validate_cluster(&section(&["https://e:2379"]), "h").unwrap_err();
        assert_eq!(refused, "cluster.ca_file", "https needs the CA: {message}");
        assert_eq!(
            key_of(&section(&["https://e:2379", "http://f:2379"])),
            "cluster.endpoints"
        );
        let mut c = section(&["http://e:2379"]);
        c.ca_file = Some("ca.pem".into());
        assert_eq!(key_of(&c), "cluster.ca_file", "TLS settings without https");
        let mut c = section(&["https://e:2379"]);
        c.ca_file = Some("ca.pem".into());
        c.client_key = Some("k.pem".into());
        assert_eq!(key_of(&c), "cluster.client_certificate");
        let mut c = section(&["http://e:2379"]);
        c.user = Some("servicewatch".into());
        assert_eq!(key_of(&c), "cluster.user");
        let mut c = section(&["http://e:2379"]);
        c.node = Some("a b".into());
        assert_eq!(key(&c), "cluster.node");
        let mut c = section(&["http://e:2379"]);
        c.lease_ttl = Some(HumanDuration(Duration::from_millis(1500)));
        assert_eq!(key(&c), "cluster.lease_ttl");
        let mut c = section(&["http://e:2379"]);
        c.timeout = Some(HumanDuration(Duration::from_secs(3)));
        assert_eq!(key(&c), "cluster.timeout");
        let mut c = section(&["http://e:2379"]);
        c.prefix = Some("servicewatch".into());
        assert_eq!(key(&c), "cluster.prefix");
    }
}
