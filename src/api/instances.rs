//! `GET /services/{id}/instances`: the servers behind one service, as their monitors last
//! saw them ([`crate::instances`]): for an admin asking why a service is in its state.
//!
//! A sub-resource rather than an attribute, so that `fields=*` keeps the seed's shape and
//! a wallboard polling the list never pays for it. It names internal hosts and ports, so
//! only supervisors and admins may read it; an agent gets 403. A service hidden from the
//! caller answers 404 as everywhere; one still pending its first probe round is shown
//! (what its probes have seen so far is exactly what an admin wants then).

use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::ApiState;
use super::error::ApiError;
use super::services::visible;
use crate::auth::Caller;
use crate::config::auth::UserRole;

/// Serves the instance detail of one service.
pub async fn detail(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot.load();
    let id = req.match_info().get("id").unwrap_or_default();
    let service = visible(&snapshot, &caller, id)?;
    if !caller
        .roles
        .iter()
        .any(|r| matches!(r, UserRole::Supervisor | UserRole::Admin))
    {
        return Err(ApiError::PermissionDenied(
            "the instances behind a service are shown to supervisors and admins only".into(),
        ));
    }
    let body = service.instances.render(service.serving, SystemTime::now());
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        // What a probe saw a moment ago: never worth caching.
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body.to_string()))
}
