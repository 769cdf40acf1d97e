//! Maintenance, for admins and `maintenance` API tokens: `PUT` puts a whole service (`/services/{id}/maintenance`) or one
//! instance (`/services/{id}/instances/{instance}/maintenance`) into maintenance, with a
//! reason and an optional end; `DELETE` on the same path takes it out. An extension beside
//! the GWS resources, which stay read-only; same envelope, same authentication. Other roles
//! get 403; a service hidden from the caller answers 404, as everywhere.
//!
//! The window is kept in the history database, so it survives a restart; the service's
//! resource, its notifications and its history say so ([`crate::domain::maintenance`]).

use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::audit::Trail;
use super::error::ApiError;
use super::services::visible;
use crate::auth::Caller;
use crate::cluster::WindowsError;
use crate::domain::maintenance::Window;
use crate::history::audit::{Action, Outcome};
use crate::registry::{EndMaintenance, MaintenanceError, PutMaintenance};
use crate::resource::{parse_timestamp, timestamp};

/// The longest reason kept: a sentence, not a document.
pub const MAX_REASON_CHARS: usize = 500;

/// The body of a `PUT`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub reason: String,
    /// RFC 3339; without it, until taken out.
    pub until: Option<String>,
}

/// `PUT`: into maintenance.
pub async fn put(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
    body: web::Json<Request>,
) -> Result<HttpResponse, ApiError> {
    let trail = Trail::of(&state, &req, &caller);
    let (service, instance) = target(&req, &state, &caller, &trail, Action::MaintenanceSet)?;
    let what = target_name(&service, instance.as_deref());
    let now = SystemTime::now();
    let (reason, until) =
        check(&body, now).map_err(|e| trail.failed(Action::MaintenanceSet, &what, e))?;
    let window = Window {
        service,
        instance,
        reason: reason.clone(),
        until,
        by: caller.user.to_string(),
        since: now,
    };
    let set = state
        .registry
        .send(PutMaintenance(window))
        .await
        .map_err(|e| ApiError::Internal(format!("the registry did not answer: {e}")))
        .and_then(|set| set.map_err(refusal))
        .map_err(|e| trail.failed(Action::MaintenanceSet, &what, e))?;
    trail.record(Action::MaintenanceSet, &what, Outcome::Done, Some(reason));
    Ok(answer(&set))
}

/// The reason and end of a `PUT`, checked at `now`.
fn check(body: &Request, now: SystemTime) -> Result<(String, Option<SystemTime>), ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::InvalidParameter(format!(
            "reason: say why in 1 to {MAX_REASON_CHARS} characters"
        )));
    }
    let until = match &body.until {
        None => None,
        Some(text) => {
            let until = parse_timestamp(text).ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "until: \"{text}\" is not a time; use RFC 3339, such as 2026-11-28T06:00:00Z"
                ))
            })?;
            if until <= now {
                return Err(ApiError::InvalidParameter(format!(
                    "until: {text} has passed already"
                )));
            }
            Some(until)
        }
    };
    Ok((reason.to_string(), until))
}

/// How the audit trail names a maintenance target: `SERVICE` or `SERVICE/INSTANCE`.
fn target_name(service: &str, instance: Option<&str>) -> String {
    match instance {
        Some(instance) => format!("{service}/{instance}"),
        None => service.to_string(),
    }
}

/// `DELETE`: out of maintenance.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let trail = Trail::of(&state, &req, &caller);
    let (service, instance) = target(&req, &state, &caller, &trail, Action::MaintenanceEnded)?;
    let what = target_name(&service, instance.as_deref());
    let ended = state
        .registry
        .send(EndMaintenance {
            service,
            instance,
            by: caller.user.to_string(),
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the registry did not answer: {e}")))
        .and_then(|ended| ended.map_err(refusal))
        .map_err(|e| trail.failed(Action::MaintenanceEnded, &what, e))?;
    trail.record(Action::MaintenanceEnded, &what, Outcome::Done, None);
    Ok(answer(&ended))
}

/// The service and instance a request is about, once the caller may act on them; a
/// caller who may not is refused, and the refusal recorded as an attempt at `action`.
fn target(
    req: &HttpRequest,
    state: &ApiState,
    caller: &Caller,
    trail: &Trail<'_>,
    action: Action,
) -> Result<(String, Option<String>), ApiError> {
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    let instance = req.match_info().get("instance").map(str::to_string);
    visible(&state.snapshot.load(), caller, &id)?;
    if !caller.may_set_maintenance() {
        return Err(trail.refused(
            action,
            &target_name(&id, instance.as_deref()),
            "maintenance is set and ended by admins (and maintenance API tokens) only",
        ));
    }
    Ok((id, instance))
}

fn refusal(e: MaintenanceError) -> ApiError {
    match e {
        MaintenanceError::NoService(_) | MaintenanceError::NoInstance { .. } => {
            ApiError::NotFound(e.to_string())
        }
        MaintenanceError::NotInMaintenance(_) => ApiError::NotFound(e.to_string()),
        MaintenanceError::Cluster(WindowsError::Unreachable) => {
            ApiError::Unavailable(e.to_string())
        }
        MaintenanceError::Cluster(WindowsError::Changed { .. }) => {
            ApiError::Conflict(e.to_string())
        }
    }
}

fn answer(w: &Window) -> HttpResponse {
    let mut window = json!({
        "service": w.service,
        "reason": w.reason,
        "by": w.by,
        "since": timestamp(w.since),
    });
    if let Some(instance) = &w.instance {
        window["instance"] = json!(instance);
    }
    if let Some(until) = w.until {
        window["until"] = json!(timestamp(until));
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(json!({ "statusCode": 0, "maintenance": window }).to_string())
}
