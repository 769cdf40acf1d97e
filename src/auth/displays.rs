//! Display tokens: the credential of a wall screen, a second kind of principal beside users.
//!
//! A wall screen has no keyboard. Its page keeps a token and sends it as
//! `Authorization: Bearer swd_...` whenever its login cookie is unknown (after a restart, or
//! on another node of a cluster), so that no one has to type a password at the screen.
//!
//! A token is 256 random bits, so the configuration stores its SHA-256 alone: nobody can
//! search for a preimage of it, and a fast hash costs a request nothing (Argon2 is for
//! passwords, which people choose and attackers can guess). A presented token is hashed and
//! the digest looked up in a hash map: the secret itself is never compared byte by byte.
//!
//! A display reads as the least GWS role that reads services (agent), in its own contact
//! center only. Its caller name is `display:NAME`, which no user can have (user names hold
//! no `:`), so a reload revokes its cookie logins and notification sessions by that name.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64ct::{Base64UrlUnpadded, Encoding};

use super::{AuthError, Authenticator, Caller, LoginCookie, Principal, lock, random_bytes};
use crate::config::auth::{DisplaySpec, UserRole};

/// What every display token starts with: it tells a servicewatch token from another
/// system's Bearer token, and makes a leaked one easy to recognize (and to scan for).
pub const TOKEN_PREFIX: &str = "swd_";
/// Random bytes in a display token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// What a display's caller name starts with (user names cannot hold a `:`).
const CALLER_PREFIX: &str = "display:";

/// A configured display, as the authenticator holds it.
pub(super) struct Display {
    pub(super) spec: DisplaySpec,
    pub(super) caller: Caller,
    /// The cookie login its last Bearer login opened: repeated Bearer requests of a
    /// display (a page that lost its cookie, several tabs) share it instead of each
    /// opening one.
    cookie: Mutex<Option<Arc<LoginCookie>>>,
}

impl Display {
    fn new(spec: DisplaySpec) -> Self {
        let caller = Caller::new(
            format!("{CALLER_PREFIX}{}", spec.name).into(),
            [UserRole::Agent].into(),
            &spec.contact_center,
            spec.features.clone(),
        );
        Display {
            spec,
            caller,
            cookie: Mutex::new(None),
        }
    }
}

/// The configured displays, by the SHA-256 of their token.
#[derive(Default)]
pub(super) struct DisplayTable {
    by_digest: HashMap<[u8; 32], Arc<Display>>,
}

impl DisplayTable {
    /// The table of `specs`, keeping the displays of `old` whose spec is unchanged (and
    /// with them the cookie login they share); also returns the caller names of the
    /// displays of `old` that were removed or changed, whose logins must end.
    pub(super) fn replaced(
        old: &DisplayTable,
        specs: &[DisplaySpec],
    ) -> (DisplayTable, BTreeSet<Arc<str>>) {
        let by_digest: HashMap<[u8; 32], Arc<Display>> = specs
            .iter()
            .map(|spec| {
                let display = old
                    .by_digest
                    .get(&spec.token_sha256)
                    .filter(|d| d.spec == *spec)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Display::new(spec.clone())));
                (spec.token_sha256, display)
            })
            .collect();
        let new = DisplayTable { by_digest };
        let revoked = old
            .by_digest
            .values()
            .filter(|d| !new.is_current(d))
            .map(|d| d.caller.user.clone())
            .collect();
        (new, revoked)
    }

    /// The display whose token has SHA-256 `digest`.
    pub(super) fn find(&self, digest: &[u8; 32]) -> Option<Arc<Display>> {
        self.by_digest.get(digest).cloned()
    }

    /// Whether `display` is configured as it is (a reload neither removed nor changed it).
    pub(super) fn is_current(&self, display: &Display) -> bool {
        self.by_digest
            .get(&display.spec.token_sha256)
            .is_some_and(|d| d.spec == display.spec)
    }
}

/// The SHA-256 of a presented Bearer token, to be looked up; a token without the
/// [`TOKEN_PREFIX`] is not one of ours. A malformed token of ours is simply unknown.
pub(super) fn token_digest(token: &str) -> Result<[u8; 32], AuthError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(AuthError::NotOurToken);
    }
    Ok(sha256(token))
}

/// The token of an `Authorization: Bearer` header value.
pub(super) fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(super) fn sha256(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `prefix` and 43 base64url characters of 256 random bits: a display or API token.
pub(super) fn random_token(prefix: &str) -> String {
    let bytes: [u8; TOKEN_BYTES] = random_bytes();
    format!("{prefix}{}", Base64UrlUnpadded::encode_string(&bytes))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new display token, as `servicewatch display-token` gives it to an operator.
pub struct DisplayToken {
    token: String,
}

impl DisplayToken {
    /// A fresh token: [`TOKEN_PREFIX`] and 43 base64url characters of 32 random bytes.
    pub fn generate() -> Self {
        DisplayToken {
            token: random_token(TOKEN_PREFIX),
        }
    }

    /// The token itself, for the kiosk.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The `token_sha256` of the configuration: 64 lowercase hex digits.
    pub fn sha256_hex(&self) -> String {
        hex(&sha256(&self.token))
    }

    /// The `[[auth.display]]` entry to paste into the configuration.
    pub fn config_entry(&self, name: &str, contact_center: &str) -> String {
        // As TOML strings: a contact center's id may hold a quote or a backslash.
        let quoted = |text: &str| {
            let mut out = String::from('"');
            for c in text.chars() {
                match c {
                    '"' | '\\' => out.extend(['\\', c]),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
            out + "\""
        };
        format!(
            "[[auth.display]]\nname = {}\ncontact_center = {}\ntoken_sha256 = \"{}\"\n",
            quoted(name),
            quoted(contact_center),
            self.sha256_hex()
        )
    }

    /// The address for a kiosk's browser: the token rides in the fragment, which a browser
    /// sends to no server, proxy or `Referer`.
    pub fn kiosk_url(&self, base: &str) -> String {
        format!("{}/#display={}", base.trim_end_matches('/'), self.token)
    }
}

impl Authenticator {
    /// Applies a reloaded list of displays: those removed or changed (another token or
    /// contact center) lose their cookie logins at once. Returns their caller names, whose
    /// notification sessions must end too. Same locking as [`Authenticator::replace_users`].
    pub fn replace_displays(&self, specs: &[DisplaySpec]) -> BTreeSet<Arc<str>> {
        let mut current = self.displays.write().unwrap_or_else(|p| p.into_inner());
        let (new, revoked) = DisplayTable::replaced(&current, specs);
        *current = new;
        lock(&self.logins_by_cookie).retain(|principal| match principal {
            Principal::Display(display) => current.is_current(display),
            Principal::User(_) | Principal::Token(_) => true,
        });
        revoked
    }

    /// The display whose token was presented. A wrong token counts as a failed login
    /// against its address, like a wrong password, so that guessing is throttled too; a
    /// locked-out address is refused before the lookup. The token is never logged.
    pub(super) fn by_display_token(
        &self,
        token: &str,
        from: Option<IpAddr>,
    ) -> Result<Arc<Display>, AuthError> {
        let digest = token_digest(token)?;
        let found = self.throttled_lookup(from, || {
            self.displays
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .find(&digest)
        })?;
        match found {
            Some(display) => {
                self.metrics.auth.display_logins.inc();
                Ok(display)
            }
            None => {
                self.metrics.auth.display_login_failures.inc();
                Err(AuthError::UnknownDisplay)
            }
        }
    }

    /// What `find` finds, looked up as a guess of a secret: refused at once from a
    /// locked-out address, and counted as a failed login against its address (like a
    /// wrong password) when nothing is found, so that guessing tokens is throttled too.
    pub(super) fn throttled_lookup<T>(
        &self,
        from: Option<IpAddr>,
        find: impl FnOnce() -> Option<T>,
    ) -> Result<Option<T>, AuthError> {
        let attempt = match from {
            Some(ip) => Some(
                self.throttle
                    .begin(ip, Instant::now())
                    .map_err(super::throttled)?,
            ),
            None => None,
        };
        let found = find();
        if found.is_none() {
            self.failed_login(attempt, from);
        }
        Ok(found)
    }

    /// A Bearer login: an API token (`swt_`) or a display token. Either shares one cookie
    /// login between its requests.
    pub(super) fn by_bearer(
        &self,
        token: &str,
        from: Option<IpAddr>,
    ) -> Result<(Caller, Option<Arc<LoginCookie>>), AuthError> {
        if token.starts_with(super::API_TOKEN_PREFIX) {
            return self.by_api_token_login(token, from);
        }
        let display = self.by_display_token(token, from)?;
        let caller = display.caller.clone();
        let cookie = self
            .cookie_for_display(display)
            .ok_or(AuthError::UnknownDisplay)?;
        Ok((caller, Some(cookie)))
    }

    /// The cookie of a display's Bearer login: the one it opened before if still alive,
    /// else a new one. `None` if a reload removed or changed the display meanwhile.
    pub(super) fn cookie_for_display(&self, display: Arc<Display>) -> Option<Arc<LoginCookie>> {
        let previous = lock(&display.cookie).clone();
        let cookie = self.live_or_open(previous, Principal::Display(display.clone()))?;
        *lock(&display.cookie) = Some(cookie.clone());
        Some(cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, token: &DisplayToken, cc: &str) -> DisplaySpec {
        DisplaySpec {
            name: name.into(),
            contact_center: cc.into(),
            features: [format!("feature-of-{cc}")].into(),
            token_sha256: sha256(token.token()),
        }
    }

    #[test]
    fn tokens_are_prefixed_base64url_of_256_bits() {
        let a = DisplayToken::generate();
        let b = DisplayToken::generate();
        assert_ne!(a.token(), b.token());
        let body = a.token().strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(body.len(), 43);
        assert_eq!(Base64UrlUnpadded::decode_vec(body).unwrap().len(), 32);
        assert_eq!(a.sha256_hex().len(), 64);
        assert!(
            a.sha256_hex()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn known_sha256() {
        assert_eq!(
            hex(&sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn config_entry_and_kiosk_url() {
        let t = DisplayToken::generate();
        let entry = t.config_entry("lobby", "cc");
        assert_eq!(
            entry,
            format!(
                "[[auth.display]]\nname = \"lobby\"\ncontact_center = \"cc\"\ntoken_sha256 = \"{}\"\n",
                t.sha256_hex()
            )
        );
        assert!(
            t.config_entry("lobby", "say \"hi\"")
                .contains("contact_center = \"say \\\"hi\\\"\"\n")
        );
        assert_eq!(
            t.kiosk_url("https://sw.example/"),
            format!("https://sw.example/#display={}", t.token())
        );
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer_token("Bearer swd_x"), Some("swd_x"));
        assert_eq!(bearer_token("bearer  swd_x "), Some("swd_x"));
        assert_eq!(bearer_token("Basic swd_x"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn only_our_tokens_are_looked_up() {
        assert_eq!(token_digest("eyJhbGciOi"), Err(AuthError::NotOurToken));
        assert_eq!(token_digest("swd_"), Ok(sha256("swd_")));
    }

    #[test]
    fn lookup_by_digest_and_replacement() {
        let lobby = DisplayToken::generate();
        let hall = DisplayToken::generate();
        let (table, revoked) = DisplayTable::replaced(
            &DisplayTable::default(),
            &[spec("lobby", &lobby, "a"), spec("hall", &hall, "a")],
        );
        assert!(revoked.is_empty());
        let found = table.find(&token_digest(lobby.token()).unwrap()).unwrap();
        assert_eq!(&*found.caller.user, "display:lobby");
        assert_eq!(*found.caller.roles, [UserRole::Agent].into());
        assert!(found.caller.sees("feature-of-a") && !found.caller.sees("feature-of-b"));
        assert!(table.find(&sha256("swd_guess")).is_none());

        // The hall moves to another center; the lobby is kept as it was.
        let (next, revoked) = DisplayTable::replaced(
            &table,
            &[spec("lobby", &lobby, "a"), spec("hall", &hall, "b")],
        );
        assert_eq!(revoked, ["display:hall".into()].into());
        let kept = next.find(&sha256(lobby.token())).unwrap();
        assert!(Arc::ptr_eq(&kept, &found), "an unchanged display is kept");
        assert!(next.is_current(&found));
        let old_hall = table.find(&sha256(hall.token())).unwrap();
        assert!(!next.is_current(&old_hall));

        // A new token for the lobby: the old one is unknown from then on.
        let renewed = DisplayToken::generate();
        let (last, revoked) = DisplayTable::replaced(
            &next,
            &[spec("lobby", &renewed, "a"), spec("hall", &hall, "b")],
        );
        assert_eq!(revoked, ["display:lobby".into()].into());
        assert!(last.find(&sha256(lobby.token())).is_none());
        assert!(last.find(&sha256(renewed.token())).is_some());
    }
}
