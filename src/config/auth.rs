//! Who may call the API: the `[auth]` table, the users and their contact centers, the
//! wall screens (`[[auth.display]]`), and the throttle's settings.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use super::file::{DisplaySection, FileConfig};
use super::ldap::{LdapSettings, validate_ldap};
use super::rules::{Invalid, positive};

/// Who may call the API, and how long a proof of identity lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The realm of `WWW-Authenticate: Basic realm="..."`.
    pub realm: String,
    /// How long a verified Basic login is remembered, so that a client sending Basic on
    /// every request does not pay for Argon2 each time.
    pub login_cache: Duration,
    /// A login cookie unused this long expires.
    pub login_idle: Duration,
    /// A login cookie expires this long after the login, used or not.
    pub login_max: Duration,
    /// When repeated failed logins lock an address out.
    pub throttle: ThrottleSettings,
    pub users: Vec<UserSpec>,
    /// Wall screens, each with a read-only token.
    pub displays: Vec<DisplaySpec>,
    /// The features of each contact center, by id: what an API token of that center
    /// sees (tokens are made at run time, so their center is looked up then).
    pub contact_centers: BTreeMap<String, BTreeSet<String>>,
    /// Directory logins, for names that are not local users.
    pub ldap: Option<LdapSettings>,
}

/// One wall screen (`[[auth.display]]`): it reads its contact center's services with the
/// least role that may, and proves itself with a token only its SHA-256 of is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplaySpec {
    pub name: String,
    pub contact_center: String,
    /// The features of the display's contact center.
    pub features: BTreeSet<String>,
    /// The SHA-256 of the token. A token is 256 random bits: no one can search for a
    /// preimage, so a fast hash is right here (Argon2 is for guessable passwords).
    pub token_sha256: [u8; 32],
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
    pub(super) fn parse(name: &str) -> Option<UserRole> {
        match name {
            "agent" => Some(UserRole::Agent),
            "supervisor" => Some(UserRole::Supervisor),
            "admin" => Some(UserRole::Admin),
            _ => None,
        }
    }
}

/// When the login throttle engages, and for how long (see [`crate::throttle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failed logins from one address that lock it out; 0 turns the throttle off.
    pub max_failures: u32,
    /// The period failures are counted over.
    pub failure_window: Duration,
    /// How long a locked-out address is refused.
    pub lockout: Duration,
}

const DEFAULT_REALM: &str = "servicewatch";
const DEFAULT_LOGIN_CACHE: Duration = Duration::from_secs(300);
/// Ten wrong passwords a minute is more than a person mistyping and far too few to guess.
const DEFAULT_MAX_FAILURES: u32 = 10;
const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_LOCKOUT: Duration = Duration::from_secs(60);
const DEFAULT_LOGIN_IDLE: Duration = Duration::from_secs(30 * 60);
const DEFAULT_LOGIN_MAX: Duration = Duration::from_secs(12 * 3600);

pub(super) fn validate_auth(file: &FileConfig) -> Result<AuthSettings, Invalid> {
    let a = &file.auth;
    let duration = |key: &str, value, default| positive(&format!("auth.{key}"), value, default);
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
    let displays = validate_displays(&a.display, &centers)?;
    let login_cache = duration("login_cache", a.login_cache, DEFAULT_LOGIN_CACHE)?;
    let ldap = file
        .ldap
        .as_ref()
        .map(|section| validate_ldap(section, &centers, login_cache))
        .transpose()?;
    Ok(AuthSettings {
        realm,
        login_cache,
        login_idle: duration("login_idle", a.login_idle, DEFAULT_LOGIN_IDLE)?,
        login_max: duration("login_max", a.login_max, DEFAULT_LOGIN_MAX)?,
        throttle: ThrottleSettings {
            max_failures: a.max_failures.unwrap_or(DEFAULT_MAX_FAILURES),
            failure_window: duration("failure_window", a.failure_window, DEFAULT_FAILURE_WINDOW)?,
            lockout: duration("lockout", a.lockout, DEFAULT_LOCKOUT)?,
        },
        users,
        displays,
        contact_centers: centers
            .into_iter()
            .map(|(id, features)| (id.to_string(), features))
            .collect(),
        ldap,
    })
}

/// Whether `name` may name a display: 1 to 64 of `A-Z a-z 0-9 . _ -` (it shows in logs
/// and in the caller's name, `display:NAME`).
pub fn is_display_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks the `[[auth.display]]` entries against the contact centers.
fn validate_displays(
    sections: &[DisplaySection],
    centers: &HashMap<&str, BTreeSet<String>>,
) -> Result<Vec<DisplaySpec>, Invalid> {
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut displays = Vec::with_capacity(sections.len());
    for (i, d) in sections.iter().enumerate() {
        let at = |key: &str| format!("auth.display[{i}].{key}");
        if !is_display_name(&d.name) {
            return Err((
                at("name"),
                "must be 1 to 64 letters, digits, '.', '_' or '-'".into(),
            ));
        }
        if !names.insert(d.name.as_str()) {
            return Err((at("name"), format!("duplicate display \"{}\"", d.name)));
        }
        let features = centers
            .get(d.contact_center.as_str())
            .cloned()
            .ok_or_else(|| {
                (
                    at("contact_center"),
                    format!("no [[contact_center]] with id \"{}\"", d.contact_center),
                )
            })?;
        let token_sha256 = parse_sha256(&d.token_sha256).ok_or_else(|| {
            (
                at("token_sha256"),
                "must be 64 lowercase hex digits, the SHA-256 of the token; generate a token with: servicewatch display-token NAME".to_string(),
            )
        })?;
        if !digests.insert(token_sha256) {
            return Err((
                at("token_sha256"),
                "is the token of another display; give each display its own token".into(),
            ));
        }
        displays.push(DisplaySpec {
            name: d.name.clone(),
            contact_center: d.contact_center.clone(),
            features,
            token_sha256,
        });
    }
    Ok(displays)
}

/// The 32 bytes written as 64 lowercase hex digits, or `None`.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::settings::tests::{load, refused};
    use super::*;

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
    fn displays_name_their_center_and_token_hash() {
        let sha = "ab".repeat(32);
        let base = format!(
            "[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[auth.display]]\nname = \"lobby-1\"\ncontact_center = \"cc\"\ntoken_sha256 = \"{sha}\"\n"
        );
        let s = load(&base).unwrap();
        let lobby = &s.auth.displays[0];
        assert_eq!(
            (lobby.name.as_str(), lobby.token_sha256),
            ("lobby-1", [0xab; 32])
        );
        assert!(lobby.features.contains("api-voice"));
        assert_eq!(
            refused(&base.replace(&sha, &"AB".repeat(32))),
            "test.toml: auth.display[0].token_sha256: must be 64 lowercase hex digits, the SHA-256 of the token; generate a token with: servicewatch display-token NAME"
        );
        assert!(refused(&base.replace(&sha, "swd_abc")).contains("auth.display[0].token_sha256"));
        assert!(
            refused(&base.replace("lobby-1", "lobby 1")).contains("auth.display[0].name: must be")
        );
        assert!(
            refused(&base.replace("= \"cc\"\ntoken", "= \"zz\"\ntoken"))
                .contains("auth.display[0].contact_center: no [[contact_center]] with id \"zz\"")
        );
        let entry = &base[base.find("[[auth.display]]").unwrap()..];
        assert!(refused(&format!("{base}{entry}")).contains("duplicate display \"lobby-1\""));
        let same_token = entry.replace("lobby-1", "lobby-2");
        assert!(refused(&format!("{base}{same_token}")).contains("the token of another display"));
    }

    #[test]
    fn display_names() {
        assert!(is_display_name("Lobby_2.east-wing"));
        assert!(is_display_name(&"a".repeat(64)));
        for bad in ["", "a b", "a:b", "é", &"a".repeat(65)] {
            assert!(!is_display_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn login_lifetimes_are_read_under_their_former_names_too() {
        let s = load("[auth]\nlogin_idle = \"10m\"\nlogin_max = \"2h\"\n").unwrap();
        assert_eq!(
            (s.auth.login_idle, s.auth.login_max),
            (Duration::from_secs(600), Duration::from_secs(7200))
        );
        let former = load("[auth]\nsession_idle = \"10m\"\nsession_max = \"2h\"\n").unwrap();
        assert_eq!(former.auth, s.auth);
        let defaults = load("").unwrap();
        assert_eq!(
            (defaults.auth.login_idle, defaults.auth.login_max),
            (DEFAULT_LOGIN_IDLE, DEFAULT_LOGIN_MAX)
        );
        assert!(
            refused("[auth]\nsession_idle = \"0s\"\n").contains("auth.login_idle"),
            "a mistake is named by the key's name now"
        );
    }
}
