//! The login middleware in front of the Services resources and the notification endpoint.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::error::ApiError;
use crate::auth::Authenticator;

/// Lets a request through only with credentials (Basic or the login cookie) of a user
/// who holds a role; puts the [`Caller`] in the request for the handlers, and sets the
/// login cookie after a Basic login. A request over the control socket has its caller
/// from the socket ([`super::socket_caller`]), whatever credentials it carries.
pub async fn require_login(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match super::socket_caller::established(&req) {
        Some(Ok(caller)) => {
            req.extensions_mut().insert(caller);
            return Ok(next.call(req).await?.map_into_left_body());
        }
        Some(Err(refusal)) => return Ok(req.error_response(refusal).map_into_right_body()),
        None => {}
    }
    let Some(auth) = req.app_data::<web::Data<Arc<Authenticator>>>().cloned() else {
        return Err(ApiError::Internal("no authenticator".into()).into());
    };
    let (caller, cookie) = match auth.authenticate(req.request()).await {
        Ok(found) => found,
        Err(e) => {
            let refusal = ApiError::from_auth(e, auth.realm());
            let mut response = req.error_response(refusal);
            // A page's script handles a refusal itself (the status page shows its login
            // form): without the challenge, the browser does not open its own dialog.
            if asked_by_script(response.request()) {
                response.headers_mut().remove(header::WWW_AUTHENTICATE);
            }
            return Ok(response.map_into_right_body());
        }
    };
    if !caller.may_read_services() {
        let refusal = ApiError::PermissionDenied(format!(
            "user {} has no role that may read services",
            caller.user
        ));
        return Ok(req.error_response(refusal).map_into_right_body());
    }
    req.extensions_mut().insert(caller);
    let secure = cookie.is_some() && req.connection_info().scheme() == "https";
    let mut response = next.call(req).await?;
    if let Some(cookie) = cookie {
        response
            .response_mut()
            .headers_mut()
            .append(header::SET_COOKIE, cookie.header(secure).clone());
    }
    Ok(response.map_into_left_body())
}

/// Whether the request says it comes from a page's script (`X-Requested-With:
/// XMLHttpRequest`, the header libraries and the status page send).
fn asked_by_script(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"XMLHttpRequest"))
}
