//! API tokens, for admins: `POST /tokens` creates one and shows it once, `GET /tokens`
//! lists them (never a token or its hash), `DELETE /tokens/{name}` revokes one at once,
//! with its cookie logins and notification sessions. Extensions beside the GWS resources,
//! in the same envelope; other callers get 403. Alone, tokens are kept in the history
//! database: without one, these answer 404. On a cluster node they are kept in etcd, for
//! every node (`cluster/tokens.rs`): a node that cannot reach etcd answers 503 and changes
//! nothing. See `auth/api_tokens.rs` for what a token is.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::audit::Trail;
use super::error::ApiError;
use crate::auth::{ApiTokenRecord, Authenticator, Caller, MAX_LIFETIME, NewApiToken, Scope};
use crate::cluster::tokens::TokenWriteError;
use crate::config::auth::is_display_name;
use crate::history::HistoryError;
use crate::history::audit::{Action, Outcome};
use crate::notify;
use crate::resource::{parse_timestamp, timestamp};

/// The body of a `POST`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Request {
    pub name: String,
    /// `read`, `maintenance` or `admin`.
    pub scope: String,
    /// RFC 3339, at most [`MAX_LIFETIME`] ahead.
    pub expires: String,
    /// Without it, the creator's contact center.
    pub contact_center: Option<String>,
}

/// What a valid request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    scope: Scope,
    contact_center: String,
    expires: SystemTime,
}

/// Checks a request at `now`; `default_center` is the creator's contact center.
fn check(body: &Request, default_center: &str, now: SystemTime) -> Result<Checked, ApiError> {
    let invalid = ApiError::InvalidParameter;
    if !is_display_name(&body.name) {
        return Err(invalid(
            "name: 1 to 64 of A-Z a-z 0-9 . _ - (it shows in the audit trail as token:NAME)".into(),
        ));
    }
    let scope = Scope::parse(&body.scope).ok_or_else(|| {
        invalid(format!(
            "scope: \"{}\" is not a scope; use read, maintenance or admin",
            crate::domain::text::one_line(&body.scope, 64)
        ))
    })?;
    let expires = parse_timestamp(&body.expires).ok_or_else(|| {
        invalid(format!(
            "expires: \"{}\" is not a time; use RFC 3339, such as 2027-06-30T00:00:00Z",
            crate::domain::text::one_line(&body.expires, 64)
        ))
    })?;
    if expires <= now {
        return Err(invalid(format!(
            "expires: {} has passed already",
            body.expires.trim()
        )));
    }
    if expires > now + MAX_LIFETIME {
        return Err(invalid(format!(
            "expires: at most {} days ahead (until {})",
            MAX_LIFETIME.as_secs() / 86_400,
            timestamp(now + MAX_LIFETIME)
        )));
    }
    Ok(Checked {
        scope,
        contact_center: body
            .contact_center
            .clone()
            .unwrap_or_else(|| default_center.to_string()),
        expires,
    })
}

/// `POST`: creates a token; 201 with the token, shown this once, and its record.
pub async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: web::Data<Arc<Authenticator>>,
    caller: web::ReqData<Caller>,
    body: web::Json<Request>,
) -> Result<HttpResponse, ApiError> {
    let trail = Trail::of(&state, &req, &caller);
    let name = body.name.as_str();
    let action = Action::TokenCreated;
    if !caller.is_admin() {
        return Err(trail.refused(action, name, "API tokens are created by admins only"));
    }
    kept(&state)?;
    let now = SystemTime::now();
    let checked =
        check(&body, &caller.contact_center, now).map_err(|e| trail.failed(action, name, e))?;
    if !auth.has_contact_center(&checked.contact_center) {
        let e = ApiError::InvalidParameter(format!(
            "contactCenter: no [[contact_center]] has the id \"{}\"",
            checked.contact_center
        ));
        return Err(trail.failed(action, name, e));
    }
    if auth.has_api_token(name) {
        return Err(trail.failed(action, name, duplicate(name)));
    }
    let token = NewApiToken::generate();
    let record = ApiTokenRecord {
        name: name.to_string(),
        scope: checked.scope,
        contact_center: checked.contact_center,
        expires: checked.expires,
        created_by: caller.user.to_string(),
        created: now,
        sha256: token.sha256(),
    };
    keep(&state, &auth, record.clone())
        .await
        .map_err(|e| trail.failed(action, name, e))?;
    let detail = format!(
        "scope {}, until {}",
        record.scope.as_str(),
        timestamp(record.expires)
    );
    trail.record(action, name, Outcome::Done, Some(detail));
    let body = json!({ "statusCode": 0, "token": token.token(), "apiToken": render(&record, now) });
    Ok(answer(StatusCode::CREATED, body))
}

/// `GET`: every token's record, by name.
pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: web::Data<Arc<Authenticator>>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    if !caller.is_admin() {
        return Err(Trail::of(&state, &req, &caller).refused(
            Action::TokensListed,
            "tokens",
            "API tokens are listed by admins only",
        ));
    }
    kept(&state)?;
    let now = SystemTime::now();
    let tokens: Vec<Value> = auth.api_tokens().iter().map(|r| render(r, now)).collect();
    Ok(answer(
        StatusCode::OK,
        json!({ "statusCode": 0, "apiTokens": tokens }),
    ))
}

/// `DELETE /tokens/{name}`: revokes a token at once; its notification sessions end.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: web::Data<Arc<Authenticator>>,
    sessions: web::Data<Arc<notify::Shared>>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let trail = Trail::of(&state, &req, &caller);
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    let action = Action::TokenRevoked;
    if !caller.is_admin() {
        return Err(trail.refused(action, &name, "API tokens are revoked by admins only"));
    }
    kept(&state)?;
    if let Some(shared) = &state.cluster_tokens {
        let written = shared
            .revoke(&name)
            .await
            .map_err(|e| trail.failed(action, &name, cluster_error(e)))?;
        trail.record(action, &name, Outcome::Done, None);
        let now = SystemTime::now();
        let shown = written
            .record
            .map_or_else(|| json!({ "name": name }), |r| render(&r, now));
        let body = json!({ "statusCode": 0, "apiToken": shown });
        return Ok(answer(StatusCode::OK, body));
    }
    let (record, user) = auth
        .revoke_api_token(&name)
        .map_err(|e| trail.failed(action, &name, ApiError::NotFound(e.to_string())))?;
    sessions.revoke(&BTreeSet::from([user]));
    if let Err(e) = state.history.delete_token(&name).await {
        let e = ApiError::Internal(format!(
            "the token is refused until servicewatch restarts, but the database could not be written, so it would be accepted again after a restart; revoke it again: {e}"
        ));
        return Err(trail.failed(action, &name, e));
    }
    trail.record(action, &name, Outcome::Done, None);
    let body = json!({ "statusCode": 0, "apiToken": render(&record, SystemTime::now()) });
    Ok(answer(StatusCode::OK, body))
}

/// 404 when nothing keeps tokens: alone, no history database.
fn kept(state: &ApiState) -> Result<(), ApiError> {
    match (&state.cluster_tokens, state.history.path()) {
        (Some(_), _) | (None, Some(_)) => Ok(()),
        (None, None) => Err(kept_error(HistoryError::Off)),
    }
}

/// Keeps a new token where this node keeps them (etcd on a cluster node, else the history
/// database), then lets it in.
async fn keep(
    state: &ApiState,
    auth: &Authenticator,
    record: ApiTokenRecord,
) -> Result<(), ApiError> {
    if let Some(shared) = &state.cluster_tokens {
        return shared.create(record).await.map_err(cluster_error);
    }
    let name = record.name.clone();
    match state.history.put_token(record.clone()).await {
        Ok(true) => {}
        Ok(false) => return Err(duplicate(&name)),
        Err(e) => return Err(kept_error(e)),
    }
    auth.add_api_token(record)
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))
}

/// The answer to a change the cluster did not make: 503 while etcd is out of reach.
fn cluster_error(e: TokenWriteError) -> ApiError {
    match e {
        TokenWriteError::Unreachable => ApiError::Unavailable(format!(
            "API tokens are kept in the cluster's etcd, and this node cannot reach it: {e}"
        )),
        TokenWriteError::Duplicate(name) => duplicate(&name),
        TokenWriteError::Unknown(_) => ApiError::NotFound(e.to_string()),
    }
}

/// The answer to a token store that cannot be used: 404 when there is none.
fn kept_error(e: HistoryError) -> ApiError {
    match e {
        HistoryError::Off => ApiError::NotFound(
            "no tokens can be kept: set [history] path, or run servicewatch under systemd with StateDirectory=".into(),
        ),
        other => ApiError::Internal(other.to_string()),
    }
}

fn duplicate(name: &str) -> ApiError {
    ApiError::InvalidParameter(format!(
        "name: an API token named \"{name}\" exists already; revoke it first, or choose another name"
    ))
}

/// A token's record as answers show it: never the token or its hash.
fn render(r: &ApiTokenRecord, now: SystemTime) -> Value {
    json!({
        "name": r.name,
        "scope": r.scope.as_str(),
        "contactCenter": r.contact_center,
        "expires": timestamp(r.expires),
        "expired": r.has_expired(now),
        "createdBy": r.created_by,
        "created": timestamp(r.created),
    })
}

fn answer(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(name: &str, scope: &str, expires: &str) -> Request {
        Request {
            name: name.into(),
            scope: scope.into(),
            expires: expires.into(),
            contact_center: None,
        }
    }

    #[test]
    fn requests_are_checked_with_clear_refusals() {
        let now = parse_timestamp("2026-12-01T00:00:00Z").unwrap();
        let ok = check(
            &request("ci", "maintenance", "2027-01-01T00:00:00Z"),
            "cc",
            now,
        );
        assert_eq!(
            ok.unwrap(),
            Checked {
                scope: Scope::Maintenance,
                contact_center: "cc".into(),
                expires: now + Duration::from_secs(31 * 86_400),
            }
        );
        let refused = |r: Request| check(&r, "cc", now).unwrap_err().to_string();
        assert!(refused(request("a b", "read", "2027-01-01T00:00:00Z")).starts_with("name:"));
        assert_eq!(
            refused(request("ci", "root", "2027-01-01T00:00:00Z")),
            "scope: \"root\" is not a scope; use read, maintenance or admin"
        );
        assert_eq!(
            refused(request("ci", "read", "2026-11-30T00:00:00Z")),
            "expires: 2026-11-30T00:00:00Z has passed already"
        );
        assert!(
            refused(request("ci", "read", "2028-12-01T00:00:00Z"))
                .starts_with("expires: at most 400 days ahead")
        );
        assert!(refused(request("ci", "read", "next year")).contains("is not a time"));
    }
}
