//! The audit trail, from the API's side: [`Trail`] records what a caller did (or was
//! refused) through the history's writer thread, and `GET /audit` serves the trail to
//! admins, newest first, with the history's parameters (`since`, `until`, `limit`).
//!
//! The address recorded is the TCP peer's: servicewatch reads no `X-Forwarded-For`, which
//! anyone can write, so behind a proxy the proxy's address is what is kept.

use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::ApiState;
use super::error::ApiError;
use super::history::{parse_for, read_error};
use crate::auth::Caller;
use crate::history::History;
use crate::history::audit::{Action, Entry, Outcome};
use crate::resource::timestamp;

/// Who is acting and from where, for the entries of one request.
pub struct Trail<'a> {
    history: &'a History,
    who: String,
    from: Option<String>,
}

impl<'a> Trail<'a> {
    /// The trail of `caller`'s request `req`.
    pub fn of(state: &'a ApiState, req: &HttpRequest, caller: &Caller) -> Self {
        Trail {
            history: &state.history,
            who: caller.user.to_string(),
            from: req.peer_addr().map(|a| a.ip().to_string()),
        }
    }

    /// Records `action` on `target`, ended as `outcome`; never waits.
    pub fn record(&self, action: Action, target: &str, outcome: Outcome, detail: Option<String>) {
        self.history.audit(Entry {
            at: SystemTime::now(),
            who: self.who.clone(),
            from: self.from.clone(),
            action,
            target: target.to_string(),
            outcome,
            detail,
        });
    }

    /// Records `action` on `target` as refused, and returns the 403 that says `why`.
    pub fn refused(&self, action: Action, target: &str, why: &str) -> ApiError {
        self.record(action, target, Outcome::Refused, None);
        ApiError::PermissionDenied(why.to_string())
    }

    /// Records `action` on `target` as failed with `e`'s message, and returns `e`.
    pub fn failed(&self, action: Action, target: &str, e: ApiError) -> ApiError {
        self.record(action, target, Outcome::Failed, Some(e.to_string()));
        e
    }
}

/// Serves the audit trail, to admins.
pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    if !caller.is_admin() {
        return Err(Trail::of(&state, &req, &caller).refused(
            Action::AuditRead,
            "audit",
            "the audit trail is shown to admins only",
        ));
    }
    let query = parse_for(req.query_string(), "the audit trail")?;
    let entries = state
        .history
        .audit_entries(query)
        .await
        .map_err(read_error)?;
    let body = json!({
        "statusCode": 0,
        "audit": entries.iter().map(render).collect::<Vec<_>>(),
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body.to_string()))
}

/// One entry as the answer shows it.
fn render(e: &Entry) -> Value {
    let mut map = Map::new();
    map.insert("at".into(), Value::from(timestamp(e.at)));
    map.insert("who".into(), Value::from(e.who.as_str()));
    if let Some(from) = &e.from {
        map.insert("from".into(), Value::from(from.as_str()));
    }
    map.insert("action".into(), Value::from(e.action.as_str()));
    map.insert("target".into(), Value::from(e.target.as_str()));
    map.insert("outcome".into(), Value::from(e.outcome.as_str()));
    if let Some(detail) = &e.detail {
        map.insert("detail".into(), Value::from(detail.as_str()));
    }
    Value::Object(map)
}
