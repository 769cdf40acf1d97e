//! The service model the daemon runs on (a service, its primary/backup pair, its Cassandra
//! nodes, each instance to probe), and its validation from the `[[service]]` sections.

use std::net::SocketAddr;

use super::file::{
    CassandraSection, CheckKindName, CheckSection, InstanceSection, PairSection, ServiceSection,
};
use super::rules::Invalid;
use crate::domain::pairing::Failback;
use crate::domain::service::{Part, Role, ServiceType};
use crate::probe::role::RoleCheck;
use crate::probe::{Check, Target};

/// The port of a Cassandra node written without one.
pub const DEFAULT_CQL_PORT: u16 = 9042;

/// Attribute names that the resource itself uses, or that a query parameter uses, and that
/// operator attributes therefore may not take.
pub const RESERVED_ATTRIBUTES: [&str; 10] = [
    "id",
    "name",
    "type",
    "state",
    "servingInstance",
    "stateSince",
    "servingInstanceSource",
    "roleConflict",
    "maintenance",
    "fields",
];

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

impl ServiceSpec {
    /// Each server of the service with the part it plays: the pair, then the Cassandra
    /// nodes.
    pub fn servers(&self) -> impl Iterator<Item = (Part, &InstanceSpec)> {
        let pair = std::iter::once((Part::Pair(Role::Primary), &self.pair.primary)).chain(
            self.pair
                .backup
                .iter()
                .map(|backup| (Part::Pair(Role::Backup), backup)),
        );
        let nodes = self
            .cassandra
            .iter()
            .flat_map(|c| c.nodes.iter())
            .enumerate()
            .map(|(i, node)| (Part::CassandraNode(i), node));
        pair.chain(nodes)
    }
}

/// A primary and, usually, a backup.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSpec {
    pub primary: InstanceSpec,
    pub backup: Option<InstanceSpec>,
    pub failback: Failback,
}

impl PairSpec {
    /// Whether the instances are asked their roles ([`crate::domain::roles`]).
    pub fn asks_roles(&self) -> bool {
        self.primary.role.is_some()
    }
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
    /// How to ask it its role; instances of a pair have one or neither.
    pub role: Option<RoleCheck>,
}

pub(super) fn validate_service(
    s: &ServiceSection,
    defaults: &CheckSection,
) -> Result<ServiceSpec, Invalid> {
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
            (s.role.is_some(), "role"),
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
            role: s.role.clone(),
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
        let mut spec = validate_instance(i, &layered, CheckKindName::Tcp)
            .map_err(|(k, m)| (format!("{role}.{k}"), m))?;
        spec.role = match (&i.role, &p.role) {
            (None, None) => None,
            (Some(_), None) => {
                return Err((
                    format!("{role}.role"),
                    "a role check is asked of both instances of a pair: write it beside the pair's check (role = { ... }), and here only what differs for this instance".to_string(),
                ));
            }
            (mine, Some(pair)) => Some(
                mine.clone()
                    .unwrap_or_default()
                    .over(pair)
                    .resolve(spec.target.port, spec.check.timeout)
                    .map_err(|(k, m)| (format!("{role}.role.{k}"), m))?,
            ),
        };
        Ok::<_, Invalid>(spec)
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
            role: None,
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
    let check = section
        .resolve(default_kind)
        .map_err(|(k, m)| (format!("check.{k}"), m))?;
    Ok(InstanceSpec {
        name: i.name.clone(),
        target: Target {
            host: i.host.trim().to_string(),
            port: i.port,
        },
        check,
        role: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
