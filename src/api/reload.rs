//! `POST /reload`: what SIGHUP does (`systemctl reload servicewatch`), asked over the API by
//! an admin (the command line's `servicewatch reload`). The handler does not reload itself:
//! the reload belongs to the daemon's lifecycle ([`crate::lifecycle`]), which owns the
//! running configuration; the handler asks it over a channel and answers what it says.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::ApiState;
use super::audit::Trail;
use super::error::ApiError;
use crate::auth::Caller;
use crate::config::auth::UserRole;
use crate::history::audit::{Action, Outcome};
use crate::registry::ReloadSummary;

/// What the audit trail names as reloaded.
const TARGET: &str = "configuration";
/// Reloads asked at once beyond which a request is told to retry: one runs at a time.
pub(crate) const QUEUED_RELOADS: usize = 4;
/// The longest a request waits for its reload (reading the file, applying the services).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a reload was not applied, as the lifecycle says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReloadRefusal {
    /// The new configuration was refused; the running one stays.
    Config(String),
    /// The daemon could not apply it.
    Failed(String),
}

/// A reload asked over the API, and where its outcome goes.
pub(crate) struct ReloadAsked(pub oneshot::Sender<Result<ReloadSummary, ReloadRefusal>>);

/// Where the API asks for reloads; the lifecycle holds the other end.
pub(crate) type ReloadRequests = mpsc::Sender<ReloadAsked>;

/// Reloads the configuration; 200 with what changed, 409 when the file is refused.
/// Each reload asked here is in the audit trail, with its caller and outcome (one by SIGHUP
/// is recorded by the lifecycle, as the signal's).
pub async fn reload(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let trail = Trail::of(&state, &req, &caller);
    if !caller.roles.contains(&UserRole::Admin) {
        return Err(trail.refused(
            Action::Reload,
            TARGET,
            "the configuration is reloaded by admins only",
        ));
    }
    let summary = ask(&state)
        .await
        .map_err(|e| trail.failed(Action::Reload, TARGET, e))?;
    trail.record(
        Action::Reload,
        TARGET,
        Outcome::Done,
        Some(format!(
            "{} added, {} changed, {} removed",
            summary.added.len(),
            summary.changed.len(),
            summary.removed.len()
        )),
    );
    let body = json!({
        "statusCode": 0,
        "added": summary.added,
        "changed": summary.changed,
        "removed": summary.removed,
        "unchanged": summary.unchanged,
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body.to_string()))
}

/// Asks the lifecycle for a reload and waits for its outcome.
async fn ask(state: &ApiState) -> Result<ReloadSummary, ApiError> {
    let (answer, outcome) = oneshot::channel();
    state.reloads.try_send(ReloadAsked(answer)).map_err(|_| {
        ApiError::Unavailable(
            "reloads are already waiting, or this daemon takes none; retry in 1 s".into(),
        )
    })?;
    match tokio::time::timeout(RELOAD_TIMEOUT, outcome).await {
        Ok(Ok(Ok(summary))) => Ok(summary),
        Ok(Ok(Err(ReloadRefusal::Config(e)))) => Err(ApiError::Conflict(format!(
            "reload refused, the running configuration stays: {e}"
        ))),
        Ok(Ok(Err(ReloadRefusal::Failed(e)))) => {
            Err(ApiError::Internal(format!("reload failed: {e}")))
        }
        Ok(Err(_)) | Err(_) => Err(ApiError::Unavailable(
            "the daemon did not answer the reload (it may be stopping); retry".into(),
        )),
    }
}
