//! `GET /alerts`: the alerts firing now (a service Inactive or ReadOnly, its redundancy
//! lost, flapping), for supervisors and admins; `POST /alerts/receivers/{name}/test`: a
//! test notification to one receiver, for admins, answered with its outcome. Extensions
//! beside the GWS resources, in the same envelope. Alerts of services hidden from the
//! caller are left out, as those services are everywhere. docs/alerts.md describes each
//! alert.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::ApiState;
use super::error::ApiError;
use crate::alerts::dispatcher::{ActiveAlerts, TestError, TestReceiver};
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
    Ok(super::fresh_json(&body))
}

/// Sends a test notification to the receiver the path names; 200 once it took it, 502 with
/// what went wrong otherwise.
pub async fn test(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    if !caller.roles.contains(&UserRole::Admin) {
        return Err(ApiError::PermissionDenied(
            "test notifications are sent by admins only".into(),
        ));
    }
    let receiver = req.match_info().get("name").unwrap_or_default().to_string();
    let key = state
        .alerts
        .send(TestReceiver {
            receiver: receiver.clone(),
            by: caller.user.to_string(),
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the alerts did not answer: {e}")))?
        .map_err(|e| match e {
            TestError::NoReceiver(_) => ApiError::NotFound(e.to_string()),
            TestError::Failed { .. } => ApiError::Upstream(e.to_string()),
        })?;
    let body = json!({ "statusCode": 0, "receiver": receiver, "delivered": true, "key": key });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body.to_string()))
}
