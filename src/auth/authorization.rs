//! The credentials of an `Authorization` header, parsed without I/O: HTTP Basic (a user's
//! name and password) or a Bearer token (a display's or an API token, if one of ours).

use actix_web::HttpRequest;
use actix_web::http::header;
use base64ct::{Base64, Encoding};

use super::displays;

/// The credentials of an `Authorization` header.
pub(super) enum Credentials {
    /// HTTP Basic: a user's name and password.
    Basic(String, String),
    /// A Bearer token (a display's or an API token, if it is one of ours).
    Bearer(String),
}

/// The credentials of the `Authorization` header: Basic or Bearer.
pub(super) fn credentials(req: &HttpRequest) -> Option<Credentials> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = displays::bearer_token(value) {
        return Some(Credentials::Bearer(token.to_string()));
    }
    let (name, secret) = basic_credentials(value)?;
    Some(Credentials::Basic(name, secret))
}

/// The name and password of an `Authorization: Basic` header value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Base64::decode_vec(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, secret) = text.split_once(':')?;
    Some((name.to_string(), secret.to_string()))
}
