//! `[ldap]`: directory logins (OpenLDAP, Active Directory). A Basic login whose name is not a
//! local `[[user]]` is checked against the directory; its groups give its roles and its
//! contact center (see [`crate::auth`]'s `ldap` module for the exchange).
//!
//! Everything a login needs is checked here, so that `check-config` and a reload refuse a
//! mistake with its key rather than every directory login failing later: the URL and its
//! transport security, the filters, the roles, the contact centers, and the bind password
//! file, which is read now (and again at each reload) and must not be readable by everyone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::auth::UserRole;
use super::duration::HumanDuration;
use super::receivers::files::{self, CaCertificates, Secret};
use super::rules::{Invalid, positive};

/// The placeholder of `user_filter` that the escaped login name replaces.
pub const USER_PLACEHOLDER: &str = "{user}";
/// The placeholder of `group_filter` that the escaped DN of the user replaces.
pub const DN_PLACEHOLDER: &str = "{dn}";
/// People in an OpenLDAP tree; Active Directory sites set `(sAMAccountName={user})`.
const DEFAULT_USER_FILTER: &str = "(&(objectClass=person)(uid={user}))";
/// The attribute that lists a user's groups on OpenLDAP (`memberof` overlay) and AD alike.
const DEFAULT_GROUP_ATTRIBUTE: &str = "memberOf";
/// Groups that list their members by DN (`groupOfNames`, AD groups).
const DEFAULT_GROUP_FILTER: &str = "(member={dn})";
/// Each network step (connect, TLS, a bind, a search) waits at most this long by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `[ldap]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSection {
    pub url: Option<String>,
    pub starttls: Option<bool>,
    pub insecure: Option<bool>,
    pub ca_file: Option<String>,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<String>,
    pub user_base: Option<String>,
    pub user_filter: Option<String>,
    pub group_attribute: Option<String>,
    pub group_base: Option<String>,
    pub group_filter: Option<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub contact_centers: BTreeMap<String, String>,
    pub timeout: Option<HumanDuration>,
    pub cache: Option<HumanDuration>,
}

impl LdapSection {
    /// Makes the relative file paths (`ca_file`, `bind_password_file`) relative to `base`,
    /// the directory of the configuration file.
    pub fn rebase(&mut self, base: &Path) {
        for file in [&mut self.ca_file, &mut self.bind_password_file]
            .into_iter()
            .flatten()
        {
            *file = base.join(&*file).display().to_string();
        }
    }
}

/// How the connection to the directory is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before anything is sent.
    StartTls,
    /// `ldap://` in clear: only to a loopback address, and only with `insecure = true`.
    Plain,
}

/// The search bind: who servicewatch is when it looks users up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindLogin {
    pub dn: String,
    pub password: Secret,
}

/// A group search: groups under `base` matching `filter` (`{dn}` is the user's DN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSearch {
    pub base: String,
    pub filter: String,
}

/// A contact center a group maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CenterRef {
    pub id: String,
    /// The features of the contact center.
    pub features: BTreeSet<String>,
}

/// `[ldap]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    /// As written, for ldap3 and for logs.
    pub url: String,
    pub transport: Transport,
    /// `None`: the system's CA certificates.
    pub ca: Option<CaCertificates>,
    /// `None`: an anonymous search.
    pub bind: Option<BindLogin>,
    pub user_base: String,
    /// With [`USER_PLACEHOLDER`].
    pub user_filter: String,
    /// `None` when set to `""`: groups come from the group search only.
    pub group_attribute: Option<String>,
    pub group_search: Option<GroupSearch>,
    /// Roles by group DN, normalized (see [`normalize_dn`]).
    pub roles: BTreeMap<String, BTreeSet<UserRole>>,
    /// Contact centers by group DN, normalized.
    pub contact_centers: BTreeMap<String, CenterRef>,
    /// The bound of each network step.
    pub timeout: Duration,
    /// How long a verified directory login is remembered.
    pub cache: Duration,
}

/// A DN as compared here: lower case, without spaces around `,` and `=`. Directories compare
/// DNs without regard to case; a DN copied from `ldapsearch` output or typed by hand should
/// match either way.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// Checks `[ldap]`; `centers` are the contact centers and their features; `login_cache` is
/// the default of `cache`.
pub(super) fn validate_ldap(
    section: &LdapSection,
    centers: &HashMap<&str, BTreeSet<String>>,
    login_cache: Duration,
) -> Result<LdapSettings, Invalid> {
    let key = |k: &str| format!("ldap.{k}");
    let required = |k: &str, v: &Option<String>| {
        v.clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| (key(k), "is required".to_string()))
    };
    let url = required("url", &section.url)?;
    let transport = transport(&url, section.starttls, section.insecure)?;
    let ca = section
        .ca_file
        .as_deref()
        .map(|file| files::ca("ldap.ca_file", file))
        .transpose()?;
    let bind = bind_login(section)?;
    let user_base = required("user_base", &section.user_base)?;
    let user_filter = filter(
        "user_filter",
        section.user_filter.as_deref(),
        DEFAULT_USER_FILTER,
        USER_PLACEHOLDER,
    )?;
    let group_attribute = match section.group_attribute.as_deref() {
        None => Some(DEFAULT_GROUP_ATTRIBUTE.to_string()),
        Some("") => None,
        Some(name) => Some(name.to_string()),
    };
    let group_search = match &section.group_base {
        Some(base) => Some(GroupSearch {
            base: base.clone(),
            filter: filter(
                "group_filter",
                section.group_filter.as_deref(),
                DEFAULT_GROUP_FILTER,
                DN_PLACEHOLDER,
            )?,
        }),
        None if section.group_filter.is_some() => {
            return Err((
                key("group_base"),
                "a group_filter needs its group_base".into(),
            ));
        }
        None => None,
    };
    if group_attribute.is_none() && group_search.is_none() {
        return Err((
            key("group_attribute"),
            "is empty and no group_base is set: there would be no way to read a user's groups"
                .into(),
        ));
    }
    Ok(LdapSettings {
        url,
        transport,
        ca,
        bind,
        user_base,
        user_filter,
        group_attribute,
        group_search,
        roles: roles(&section.roles)?,
        contact_centers: contact_centers(&section.contact_centers, centers)?,
        timeout: positive("ldap.timeout", section.timeout, DEFAULT_TIMEOUT)?,
        cache: positive("ldap.cache", section.cache, login_cache)?,
    })
}

/// The transport of `url`: passwords cross it, so a clear connection is only accepted to
/// this machine, and only when asked for by name.
fn transport(
    url: &str,
    starttls: Option<bool>,
    insecure: Option<bool>,
) -> Result<Transport, Invalid> {
    let parsed = Url::parse(url).map_err(|e| {
        (
            "ldap.url".to_string(),
            format!("\"{url}\" is not a URL ({e}); write ldaps://host:636 or ldap://host:389"),
        )
    })?;
    let Some(host) = parsed.host() else {
        return Err(("ldap.url".into(), format!("\"{url}\" names no host")));
    };
    if parsed.path().len() > 1 || parsed.query().is_some() {
        return Err((
            "ldap.url".into(),
            "takes a scheme, host and port only; set the bases with user_base and group_base"
                .into(),
        ));
    }
    let loopback = match host {
        // ldap:// is not a "special" scheme to the URL standard: its host stays text.
        url::Host::Domain(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match (parsed.scheme(), starttls.unwrap_or(false)) {
        ("ldaps", false) => Ok(Transport::Ldaps),
        ("ldaps", true) => Err((
            "ldap.starttls".into(),
            "is for ldap:// URLs; an ldaps:// connection is encrypted from the start".into(),
        )),
        ("ldap", true) => Ok(Transport::StartTls),
        ("ldap", false) if loopback && insecure == Some(true) => Ok(Transport::Plain),
        ("ldap", false) => Err((
            "ldap.url".into(),
            "is ldap:// without StartTLS: passwords would cross the network in clear. Use ldaps://, or set starttls = true; a clear connection is only accepted to a loopback address with insecure = true".into(),
        )),
        (scheme, _) => Err((
            "ldap.url".into(),
            format!("has scheme \"{scheme}\"; use ldaps:// or ldap:// with starttls = true"),
        )),
    }
}

/// `bind_dn` and `bind_password_file`, which go together; the file is read now and must
/// not be readable by everyone.
fn bind_login(section: &LdapSection) -> Result<Option<BindLogin>, Invalid> {
    match (&section.bind_dn, &section.bind_password_file) {
        (None, None) => Ok(None),
        (Some(dn), Some(file)) if !dn.trim().is_empty() => Ok(Some(BindLogin {
            dn: dn.clone(),
            password: password_file(Path::new(file))
                .map_err(|why| ("ldap.bind_password_file".to_string(), why))?,
        })),
        (Some(_), None) => Err((
            "ldap.bind_password_file".into(),
            "a bind_dn needs its bind_password_file".into(),
        )),
        _ => Err((
            "ldap.bind_dn".into(),
            "a bind_password_file needs its bind_dn (not empty)".into(),
        )),
    }
}

/// The password in `path`, refused if everyone may read it.
fn password_file(path: &Path) -> Result<Secret, String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if metadata.permissions().mode() & 0o004 != 0 {
        return Err(format!(
            "{} is readable by everyone; restrict it (chmod 600, or 640 with the servicewatch group)",
            path.display()
        ));
    }
    Secret::read(&PathBuf::from(path))
}

/// A search filter: `default` when unset; it must hold `placeholder` and look like a filter.
fn filter(
    name: &str,
    value: Option<&str>,
    default: &str,
    placeholder: &str,
) -> Result<String, Invalid> {
    let filter = value.unwrap_or(default).trim();
    let key = format!("ldap.{name}");
    if !filter.contains(placeholder) {
        return Err((
            key,
            format!("must contain {placeholder}, which the escaped value replaces"),
        ));
    }
    let balanced = filter.starts_with('(')
        && filter.ends_with(')')
        && filter.chars().try_fold(0i32, |depth, c| {
            let depth = depth + i32::from(c == '(') - i32::from(c == ')');
            (depth >= 0).then_some(depth)
        }) == Some(0);
    if !balanced {
        return Err((
            key,
            format!(
                "\"{filter}\" is not an LDAP filter: write it in balanced parentheses, such as (uid={{user}})"
            ),
        ));
    }
    Ok(filter.to_string())
}

/// `roles`: group DN to roles.
fn roles(
    section: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, BTreeSet<UserRole>>, Invalid> {
    let mut out = BTreeMap::new();
    for (dn, names) in section {
        let mut roles = BTreeSet::new();
        for name in names {
            roles.insert(UserRole::parse(name).ok_or_else(|| {
                (
                    format!("ldap.roles.\"{dn}\""),
                    format!("\"{name}\" is not a role; use agent, supervisor or admin"),
                )
            })?);
        }
        out.entry(normalize_dn(dn))
            .or_insert_with(BTreeSet::new)
            .extend(roles);
    }
    Ok(out)
}

/// `contact_centers`: group DN to the id of a `[[contact_center]]`.
fn contact_centers(
    section: &BTreeMap<String, String>,
    centers: &HashMap<&str, BTreeSet<String>>,
) -> Result<BTreeMap<String, CenterRef>, Invalid> {
    if section.is_empty() {
        return Err((
            "ldap.contact_centers".into(),
            "maps no group to a contact center: every directory login would be refused".into(),
        ));
    }
    let mut out = BTreeMap::new();
    for (dn, id) in section {
        let features = centers.get(id.as_str()).cloned().ok_or_else(|| {
            (
                format!("ldap.contact_centers.\"{dn}\""),
                format!("no [[contact_center]] with id \"{id}\""),
            )
        })?;
        let center = CenterRef {
            id: id.clone(),
            features,
        };
        if let Some(other) = out.insert(normalize_dn(dn), center)
            && other.id != *id
        {
            return Err((
                format!("ldap.contact_centers.\"{dn}\""),
                format!("the group is given twice, to \"{}\" and \"{id}\"", other.id),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
