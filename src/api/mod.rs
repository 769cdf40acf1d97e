//! The HTTP API: routes, the shared state handlers read, and the GWS error envelope for every
//! answer that is not a success, including the framework's own (unknown path, wrong method).

pub mod error;
pub mod origin;
pub mod query;
pub mod services;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse, web};

use error::{ApiError, code_for_status, error_response};

use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest};

use actix_web::HttpMessage;
use actix_web::middleware::Next;

use crate::auth::{AuthError, Authenticator};
use crate::metrics::{HttpLabels, Metrics};
use crate::notify;
use crate::registry::SharedSnapshot;

/// What every handler reads.
pub struct ApiState {
    pub snapshot: SharedSnapshot,
    /// Configured base of absolute URIs; `None`: from the request.
    pub public_url: Option<String>,
    pub base_path: String,
    /// The origin of `public_url`, which counts as this server's own.
    pub public_origin: Option<String>,
    /// Other web origins whose pages may use the API with credentials.
    pub allowed_origins: Vec<String>,
    /// Largest request head accepted, in bytes.
    pub max_header_size: usize,
}

impl ApiState {
    /// The absolute URL of the services collection, as a client should use it.
    pub fn services_url(&self, req: &HttpRequest) -> String {
        match &self.public_url {
            Some(base) => format!("{base}{}/services", self.base_path),
            None => {
                let info = req.connection_info();
                format!(
                    "{}://{}{}/services",
                    info.scheme(),
                    info.host(),
                    self.base_path
                )
            }
        }
    }
}

/// Registers the API under `base_path`: the Services resources, and the Bayeux endpoint
/// whose bodies may be `max_message_size` bytes.
pub fn configure(cfg: &mut web::ServiceConfig, base_path: &str, max_message_size: usize) {
    cfg.service(
        web::scope(base_path)
            .wrap(actix_web::middleware::from_fn(origin::check_origin))
            // The Services resources first: they are the hot path, and matching them
            // before the notification patterns spares each request a regex.
            .service(
                web::resource("/services")
                    .wrap(actix_web::middleware::from_fn(require_login))
                    .route(web::get().to(services::list))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/services/{id}")
                    .wrap(actix_web::middleware::from_fn(require_login))
                    .route(web::get().to(services::one))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/notifications")
                    .app_data(web::PayloadConfig::new(max_message_size))
                    .wrap(actix_web::middleware::from_fn(require_login))
                    .route(web::get().to(notify::websocket::upgrade))
                    .route(web::post().to(notify::long_polling::handle))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/notifications/{transport_path:.*}")
                    .app_data(web::PayloadConfig::new(max_message_size))
                    .wrap(actix_web::middleware::from_fn(require_login))
                    .route(web::post().to(notify::long_polling::handle))
                    .default_service(web::to(method_not_allowed)),
            )
            // Anything else under the base path: credentials first, so that an anonymous
            // caller learns nothing, not even which paths exist.
            .service(
                web::resource("/{unknown:.*}")
                    .wrap(actix_web::middleware::from_fn(require_login))
                    .to(not_found),
            ),
    )
    .default_service(web::to(not_found));
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_string(),
        allowed: if req.path().ends_with("/notifications") {
            "GET, POST"
        } else if req.path().contains("/notifications/") {
            "POST"
        } else {
            "GET"
        },
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no resource at {}", req.path())))
}

/// The future of a counted request.
pub type Counted<B> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>,
>;

/// Lets a request through only with credentials (Basic or the session cookie) of a user
/// who holds a role; puts the [`Caller`] in the request for the handlers, and sets the
/// session cookie after a Basic login.
pub async fn require_login(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(auth) = req.app_data::<web::Data<Arc<Authenticator>>>().cloned() else {
        return Err(ApiError::Internal("no authenticator".into()).into());
    };
    let (caller, session) = match auth.authenticate(req.request()).await {
        Ok(found) => found,
        Err(e) => {
            let refusal = match e {
                AuthError::Throttled { retry_after_secs } => ApiError::Throttled {
                    message: e.to_string(),
                    retry_after_secs,
                },
                _ => ApiError::NotAuthenticated {
                    message: e.to_string(),
                    realm: auth.realm().to_string(),
                },
            };
            return Ok(req.error_response(refusal).map_into_right_body());
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
    let secure = session.is_some() && req.connection_info().scheme() == "https";
    let mut response = next.call(req).await?;
    if let Some(session) = session {
        response
            .response_mut()
            .headers_mut()
            .append(header::SET_COOKIE, session.header(secure).clone());
    }
    Ok(response.map_into_left_body())
}

/// Refuses a request whose head (request line and headers, as sent) is larger than
/// `[limits] max_header_size`, with 431 and the GWS envelope.
pub async fn limit_head(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<ApiState>>()
        .map_or(usize::MAX, |s| s.max_header_size);
    let target = req.uri().path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let size = line + headers;
    if size > limit {
        let response = error_response(
            actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            error::GwsCode::InvalidParameter,
            &format!("the request head is {size} bytes; at most {limit} are accepted"),
        );
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Counts every answer by route pattern and status.
pub fn count_requests<S, B>(
    metrics: Arc<Metrics>,
) -> impl Fn(ServiceRequest, &S) -> Counted<B> + Clone
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    move |req, service| {
        let metrics = metrics.clone();
        let response = service.call(req);
        Box::pin(async move {
            let response = response.await?;
            let route = response
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_string());
            metrics
                .http_requests
                .get_or_create(&HttpLabels {
                    route,
                    status: response.status().as_u16(),
                })
                .inc();
            Ok(response)
        })
    }
}

/// Gives every error answer the framework builds by itself (a malformed request, a payload
/// error) the GWS envelope, so that clients never see a body that is not JSON.
pub fn gws_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
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
