//! `GET /alerts`: the alerts firing now (a service Inactive or ReadOnly, its redundancy
//! lost, flapping), for supervisors and admins; an extension beside the GWS resources, in
//! the same envelope. Alerts of services hidden from the caller are left out, as those
//! services are everywhere. docs/alerts.md describes each alert.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiState;
use super::error::ApiError;
use crate::alerts::dispatcher::ActiveAlerts;
use crate::auth::Caller;
use crate::config::auth::UserRole;

/// Serves the alerts firing, oldest first.
pub async fn active(
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    if !caller
        .roles
        .iter()
        .any(|r| matches!(r, UserRole::Supervisor | UserRole::Admin))
    {
        return Err(ApiError::PermissionDenied(
            "alerts are shown to supervisors and admins".into(),
        ));
    }
    let mut alerts = state
        .alerts
        .send(ActiveAlerts)
        .await
        .map_err(|e| ApiError::Internal(format!("the alerts did not answer: {e}")))?;
    let snapshot = state.snapshot.load();
    alerts.retain(|a| {
        snapshot
            .get(&a.service)
            .or_else(|| snapshot.pending(&a.service).map(|p| &*p.service))
            .is_some_and(|s| caller.sees(&s.feature))
    });
    alerts.sort_by(|a, b| {
        a.starts_at
            .cmp(&b.starts_at)
            .then(a.service.cmp(&b.service))
    });
    let body = json!({ "statusCode": 0, "alerts": alerts });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
        .body(body.to_string()))
}
