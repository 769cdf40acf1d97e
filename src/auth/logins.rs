//! Cookie logins: what a Basic login opens, and what the login cookie (`SWSESSION`)
//! carries from then on (browsers cannot put an Authorization header on a WebSocket).
//!
//! Not to be confused with a Bayeux client session ([`crate::notify::session`]): a cookie
//! login proves who the caller is; a client session is one Bayeux clientId.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::HeaderValue;

use super::{Caller, LOGIN_COOKIE, Principal};

/// Cookie logins one user (or display) may hold; a new one beyond it ends the oldest. A
/// client sending Basic on every request without keeping the cookie opens one each time the
/// login cache expires: this bound keeps that from growing memory.
pub(super) const LOGINS_PER_USER: usize = 16;

/// A cookie login as its client holds it: the MAC of its token, which it is looked up by,
/// and the `Set-Cookie` values carrying the token, rendered once (a client sending Basic
/// every time gets the cookie with every answer).
#[derive(Debug)]
pub struct LoginCookie {
    pub(super) key: Vec<u8>,
    plain: HeaderValue,
    secure: HeaderValue,
}

impl LoginCookie {
    pub(super) fn new(token: String, key: Vec<u8>) -> Self {
        let render = |secure: bool| {
            let cookie = Cookie::build(LOGIN_COOKIE, token.clone())
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(secure)
                .finish();
            HeaderValue::from_str(&cookie.to_string())
                .expect("a hex token makes a valid header value")
        };
        LoginCookie {
            plain: render(false),
            secure: render(true),
            key,
        }
    }

    /// The `Set-Cookie` value; `secure` over HTTPS.
    pub fn header(&self, secure: bool) -> &HeaderValue {
        if secure { &self.secure } else { &self.plain }
    }
}

struct Login {
    principal: Principal,
    created: Instant,
    last_used: Instant,
}

/// Live cookie logins, by the MAC of their token and, oldest first, by caller name. Keying by the
/// MAC means a lookup compares MACs, never the secret token itself, so its timing tells an
/// attacker nothing about any token.
#[derive(Default)]
pub(super) struct LoginTable {
    by_key: HashMap<Vec<u8>, Login>,
    by_user: HashMap<Arc<str>, VecDeque<Vec<u8>>>,
}

impl LoginTable {
    /// The caller of the login with token MAC `key`, if it is alive at `now`: used within
    /// `idle` of its last use and within `max` of its opening. A use renews the idle time;
    /// an expired login is forgotten.
    pub fn caller(
        &mut self,
        key: &[u8],
        now: Instant,
        idle: Duration,
        max: Duration,
    ) -> Option<Caller> {
        let login = self.by_key.get_mut(key)?;
        if now.duration_since(login.last_used) > idle
            || now.duration_since(login.created) > max
            || login.principal.has_expired()
        {
            self.by_key.remove(key);
            return None;
        }
        login.last_used = now;
        Some(login.principal.caller().clone())
    }

    /// Opens a login of `principal` with token MAC `key`, ending its oldest beyond
    /// [`LOGINS_PER_USER`].
    pub fn open(&mut self, key: Vec<u8>, principal: Principal, now: Instant) {
        let LoginTable { by_key, by_user } = self;
        let keys = by_user.entry(principal.caller().user.clone()).or_default();
        keys.retain(|k| by_key.contains_key(k));
        while keys.len() >= LOGINS_PER_USER {
            if let Some(oldest) = keys.pop_front() {
                by_key.remove(&oldest);
            }
        }
        keys.push_back(key.clone());
        by_key.insert(
            key,
            Login {
                principal,
                created: now,
                last_used: now,
            },
        );
    }

    /// Keeps only the logins whose user or display `keep` accepts (a reload removed or
    /// changed the others).
    pub fn retain(&mut self, keep: impl Fn(&Principal) -> bool) {
        let LoginTable { by_key, by_user } = self;
        by_key.retain(|_, login| keep(&login.principal));
        by_user.retain(|_, keys| {
            keys.retain(|k| by_key.contains_key(k));
            !keys.is_empty()
        });
    }

    /// Live logins (expired ones not yet looked up included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}
