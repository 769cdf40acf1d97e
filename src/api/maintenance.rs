//! Maintenance, for admins: `PUT` puts a whole service (`/services/{id}/maintenance`) or one
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
use super::error::ApiError;
use super::services::visible;
use crate::auth::Caller;
use crate::cluster::WindowsError;
use crate::config::auth::UserRole;
use crate::domain::maintenance::Window;
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
    let (service, instance) = target(&req, &state, &caller)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::InvalidParameter(format!(
            "reason: say why in 1 to {MAX_REASON_CHARS} characters"
        )));
    }
    let now = SystemTime::now();
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
    let window = Window {
        service,
        instance,
        reason: reason.to_string(),
        until,
        by: caller.user.to_string(),
        since: now,
    };
    let set = state
        .registry
        .send(PutMaintenance(window))
        .await
        .map_err(|e| ApiError::Internal(format!("the registry did not answer: {e}")))?
        .map_err(refusal)?;
    Ok(answer(&set))
}

/// `DELETE`: out of maintenance.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let (service, instance) = target(&req, &state, &caller)?;
    let ended = state
        .registry
        .send(EndMaintenance {
            service,
            instance,
            by: caller.user.to_string(),
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the registry did not answer: {e}")))?
        .map_err(refusal)?;
    Ok(answer(&ended))
}

/// The service and instance a request is about, once the caller may act on them.
fn target(
    req: &HttpRequest,
    state: &ApiState,
    caller: &Caller,
) -> Result<(String, Option<String>), ApiError> {
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    let instance = req.match_info().get("instance").map(str::to_string);
    visible(&state.snapshot.load(), caller, &id)?;
    if !caller.roles.contains(&UserRole::Admin) {
        return Err(ApiError::PermissionDenied(
            "maintenance is set and ended by admins only".into(),
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
