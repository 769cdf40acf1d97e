//! The GWS error envelope: every error answer is `{"statusCode":N,"statusMessage":"..."}`
//! with the HTTP status that goes with N. This is the one place that mapping lives.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use thiserror::Error;

use crate::auth::AuthError;

/// GWS status codes (the "Return Values" of the GWS API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GwsCode {
    InvalidParameter = 2,
    Forbidden = 3,
    Internal = 4,
    PermissionDenied = 5,
    NotFound = 6,
    NotAuthenticated = 20,
}

/// Why an API request failed; each variant's text is the `statusMessage`.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{method} is not allowed on {path} (allowed: {allowed})")]
    MethodNotAllowed {
        method: String,
        path: String,
        /// The value of the `Allow` header.
        allowed: &'static str,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{message}")]
    NotAuthenticated {
        message: String,
        /// For `WWW-Authenticate: Basic realm="..."`.
        realm: String,
    },
    #[error("{0}")]
    PermissionDenied(String),
    /// The request head is larger than `[limits] max_header_size`.
    #[error("the request head is {size} bytes; at most {limit} are accepted")]
    HeadTooLarge { size: usize, limit: usize },
    /// The service's servers have not all been probed since servicewatch started (or since
    /// a reload added it): its state is not known yet.
    #[error(
        "the state of service \"{id}\" is not known yet: its servers are being probed for the first time; retry in {retry_after_secs} s"
    )]
    NotProbedYet { id: String, retry_after_secs: u64 },
    /// The node has no state to serve at all yet (a cluster node that has not read etcd
    /// since it started): said instead of answering an empty list.
    #[error("{reason}; retry in {retry_after_secs} s")]
    NotServingYet {
        reason: String,
        retry_after_secs: u64,
    },
    /// `[limits] max_connections` other connections were open when this one was accepted.
    #[error("too many connections are open (at most {limit}); retry in 1 s")]
    TooManyConnections { limit: usize },
    /// Something the request needs is out of reach for now (etcd, on a cluster node).
    #[error("{0}")]
    Unavailable(String),
    /// The request conflicts with a change made meanwhile (on another cluster node).
    #[error("{0}")]
    Conflict(String),
    /// A server servicewatch asked on the caller's behalf (an alert receiver) refused or
    /// did not answer.
    #[error("{0}")]
    Upstream(String),
    /// Too many failed logins from the caller's address.
    #[error("{message}")]
    Throttled {
        message: String,
        /// For `Retry-After`.
        retry_after_secs: u64,
    },
}

impl ApiError {
    /// The refusal of a request whose credentials did not pass; `realm` is for
    /// `WWW-Authenticate`.
    pub fn from_auth(e: AuthError, realm: &str) -> ApiError {
        match e {
            AuthError::Throttled { retry_after_secs } => ApiError::Throttled {
                message: e.to_string(),
                retry_after_secs,
            },
            AuthError::DirectoryUnreachable => ApiError::Unavailable(e.to_string()),
            AuthError::NoContactCenter | AuthError::AmbiguousContactCenter => {
                ApiError::PermissionDenied(e.to_string())
            }
            AuthError::Missing
            | AuthError::Rejected
            | AuthError::Expired
            | AuthError::UnknownDisplay
            | AuthError::NotOurToken
            | AuthError::UnknownApiToken
            | AuthError::ExpiredApiToken => ApiError::NotAuthenticated {
                message: e.to_string(),
                realm: realm.to_string(),
            },
        }
    }

    /// The GWS code of this error.
    pub fn code(&self) -> GwsCode {
        match self {
            ApiError::InvalidParameter(_) | ApiError::HeadTooLarge { .. } => {
                GwsCode::InvalidParameter
            }
            ApiError::MethodNotAllowed { .. } | ApiError::Conflict(_) => GwsCode::Forbidden,
            ApiError::NotFound(_) => GwsCode::NotFound,
            ApiError::Internal(_)
            | ApiError::Upstream(_)
            | ApiError::Unavailable(_)
            | ApiError::NotProbedYet { .. }
            | ApiError::NotServingYet { .. }
            | ApiError::TooManyConnections { .. } => GwsCode::Internal,
            ApiError::NotAuthenticated { .. } | ApiError::Throttled { .. } => {
                GwsCode::NotAuthenticated
            }
            ApiError::PermissionDenied(_) => GwsCode::PermissionDenied,
        }
    }
}

/// The body of every error answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    status_code: u8,
    status_message: &'a str,
}

/// Renders an error answer.
pub fn error_response(status: StatusCode, code: GwsCode, message: &str) -> HttpResponse {
    error_response_allowing(status, code, message, "GET")
}

/// Renders an error answer; a 405 names the methods `allowed`.
fn error_response_allowing(
    status: StatusCode,
    code: GwsCode,
    message: &str,
    allowed: &str,
) -> HttpResponse {
    let body = ErrorBody {
        status_code: code as u8,
        status_message: message,
    };
    let mut response = HttpResponse::build(status);
    response.insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.insert_header((header::ALLOW, allowed));
    }
    response.json(body)
}

/// The GWS code for an HTTP error status produced outside the handlers (by the framework).
pub fn code_for_status(status: StatusCode) -> GwsCode {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS => GwsCode::NotAuthenticated,
        StatusCode::FORBIDDEN => GwsCode::PermissionDenied,
        StatusCode::NOT_FOUND => GwsCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => GwsCode::Forbidden,
        s if s.is_server_error() => GwsCode::Internal,
        _ => GwsCode::InvalidParameter,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotAuthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotProbedYet { .. }
            | ApiError::NotServingYet { .. }
            | ApiError::TooManyConnections { .. }
            | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let allowed = match self {
            ApiError::MethodNotAllowed { allowed, .. } => allowed,
            _ => "GET",
        };
        let mut response =
            error_response_allowing(self.status_code(), self.code(), &self.to_string(), allowed);
        if let ApiError::NotAuthenticated { realm, .. } = self
            && let Ok(value) = header::HeaderValue::from_str(&format!(
                "Basic realm=\"{realm}\", charset=\"UTF-8\""
            ))
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        let retry_after_secs = match self {
            ApiError::Throttled {
                retry_after_secs, ..
            }
            | ApiError::NotProbedYet {
                retry_after_secs, ..
            }
            | ApiError::NotServingYet {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::TooManyConnections { .. } => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

/// Gives every error answer the framework builds by itself (a malformed request, a payload
/// error) the GWS envelope, so that clients never see a body that is not JSON.
pub fn framework_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        let is_json = res
            .response()
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let message = res
            .response()
            .error()
            .map(|e| e.to_string())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        let (req, _) = res.into_parts();
        let response: HttpResponse<BoxBody> =
            error_response(status, code_for_status(status), &message);
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, response).map_into_right_body::<B>(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_rt::test]
    async fn errors_carry_code_and_message_only() {
        let e = ApiError::NotFound("no service \"x\"".into());
        let response = e.error_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = to_bytes(response.into_body()).await.unwrap();
        assert_eq!(
            &body[..],
            br#"{"statusCode":6,"statusMessage":"no service \"x\""}"#
        );
    }

    #[test]
    fn codes_follow_the_spec() {
        assert_eq!(ApiError::InvalidParameter(String::new()).code() as u8, 2);
        let e = ApiError::MethodNotAllowed {
            method: "POST".into(),
            path: "/p".into(),
            allowed: "GET",
        };
        assert_eq!(
            (e.code() as u8, e.status_code()),
            (3, StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            ApiError::Internal(String::new()).status_code(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            code_for_status(StatusCode::PAYLOAD_TOO_LARGE),
            GwsCode::InvalidParameter
        );
        assert_eq!(code_for_status(StatusCode::BAD_GATEWAY), GwsCode::Internal);
    }
}
