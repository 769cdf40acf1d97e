//! The HTTP API: routes, the shared state handlers read, and the GWS error envelope for every
//! answer that is not a success, including the framework's own (unknown path, wrong method).

pub(crate) mod alerts;
pub(crate) mod app;
pub(crate) mod audit;
pub(crate) mod availability;
pub(crate) mod connections;
pub(crate) mod counting;
pub(crate) mod draining;
pub(crate) mod error;
pub(crate) mod head;
pub(crate) mod history;
pub(crate) mod instances;
pub(crate) mod login;
pub(crate) mod maintenance;
pub(crate) mod openapi;
pub(crate) mod origin;
pub mod query;
pub(crate) mod redundancy;
pub(crate) mod reload;
pub(crate) mod services;
pub(crate) mod socket_caller;
pub(crate) mod staleness;
pub(crate) mod status_page;
pub(crate) mod token_book;
pub(crate) mod tokens;

use actix_web::{HttpRequest, HttpResponse, web};

use error::ApiError;

use crate::notify;
use actix::Addr;

use crate::alerts::dispatcher::Dispatcher;
use crate::history::History;
use crate::registry::{Registry, SharedSnapshot};

/// The future of a request passed through one of the `wrap_fn` middlewares that look at the
/// answer ([`counting`], [`draining`]).
pub(crate) type Wrapped<B> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
            >,
    >,
>;

/// What every handler reads.
pub(crate) struct ApiState {
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
    /// Where the history of changes is read.
    pub history: History,
    /// Where maintenance requests go.
    pub registry: Addr<Registry>,
    /// Where the alerts firing are asked.
    pub alerts: Addr<Dispatcher>,
    /// Where reloads are asked (`POST /reload`).
    pub reloads: reload::ReloadRequests,
    /// On a cluster node, where API tokens are kept (etcd) instead of the history database.
    pub cluster_tokens: Option<token_book::ClusterTokens>,
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

/// Registers the API under `base_path`: the Services resources, and the Bayeux endpoint.
/// Each resource states its own methods and
/// its origin policy (middleware listed last runs first: origin, then login). HEAD is served
/// wherever a resource is (the HTTP layer sends the head of the GET answer without its
/// body), so `curl -I` and link checkers work.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, base_path: &str) {
    use actix_web::middleware::from_fn;
    cfg.service(
        web::scope(base_path)
            // The hot paths first, each spared the patterns (regexes) after it.
            .service(readable("/services", services::list))
            .configure(notification_suffixes)
            .service(readable("/services/{id}", services::one))
            .service(readable("/services/{id}/instances", instances::detail))
            .service(readable("/services/{id}/history", history::changes))
            .service(readable("/services/{id}/availability", availability::one))
            .service(readable("/availability", availability::list))
            .service(readable("/alerts", alerts::active))
            .service(readable("/redundancy", redundancy::list))
            .service(readable("/audit", audit::list))
            .service(tokens_resource("/tokens"))
            .service(
                web::resource("/tokens/{name}")
                    .route(web::delete().to(tokens::revoke))
                    .default_service(web::to(|req| not_allowed(req, "DELETE")))
                    .wrap(from_fn(login::require_login))
                    .wrap(from_fn(origin::guard_origin)),
            )
            .service(
                web::resource("/alerts/receivers/{name}/test")
                    .route(web::post().to(alerts::test))
                    .default_service(web::to(|req| not_allowed(req, "POST")))
                    .wrap(from_fn(login::require_login))
                    .wrap(from_fn(origin::guard_origin)),
            )
            .service(
                web::resource("/reload")
                    .route(web::post().to(reload::reload))
                    .default_service(web::to(|req| not_allowed(req, "POST")))
                    .wrap(from_fn(login::require_login))
                    .wrap(from_fn(origin::guard_origin)),
            )
            .service(maintenance_resource("/services/{id}/maintenance"))
            .service(maintenance_resource(
                "/services/{id}/instances/{instance}/maintenance",
            ))
            .service(
                web::resource("/notifications")
                    .route(web::get().to(notify::websocket::upgrade))
                    .route(web::post().to(notify::long_polling::handle))
                    .default_service(web::to(|req| not_allowed(req, "GET, POST")))
                    .wrap(from_fn(login::require_login))
                    .wrap(from_fn(origin::guard_origin)),
            )
            .service(
                web::resource("/notifications/{transport_path:.*}")
                    .route(web::post().to(notify::long_polling::handle))
                    .default_service(web::to(|req| not_allowed(req, "POST")))
                    .wrap(from_fn(login::require_login))
                    .wrap(from_fn(origin::guard_origin)),
            )
            .service(
                web::resource("/openapi.json")
                    .app_data(web::Data::new(openapi::OpenApi::for_base(base_path)))
                    .route(web::get().to(openapi::document))
                    .default_service(web::to(|req| not_allowed(req, "GET")))
                    .wrap(from_fn(login::require_login))
                    .wrap(from_fn(origin::check_origin)),
            )
            // Anything else under the base path: credentials first, so that an anonymous
            // caller learns nothing, not even which paths exist.
            .service(
                web::resource("/{unknown:.*}")
                    .to(not_found)
                    .wrap(from_fn(login::require_login))
                    .wrap(from_fn(origin::check_origin)),
            ),
    )
    // The status page, at the root: what a wall screen opens.
    .service(web::resource("/").route(web::get().to(status_page::index)))
    .service(web::resource("/status.js").route(web::get().to(status_page::script)))
    .service(web::resource("/status.css").route(web::get().to(status_page::style)))
    .service(web::resource("/favicon.svg").route(web::get().to(status_page::icon)))
    .default_service(web::to(not_found));
}

/// The paths CometD's long-polling transport posts to (`<base>/notifications` followed by
/// the channel of the batch's first message), each a static path of its own: registered
/// right after `/services`, a held connect, which comes back after every delivery to every
/// long-polling client, is matched by a string comparison instead of trying each pattern
/// before `/notifications/{transport_path:.*}`; and each is counted under its own route.
fn notification_suffixes(cfg: &mut web::ServiceConfig) {
    use actix_web::middleware::from_fn;
    for channel in [
        "connect",
        "handshake",
        "subscribe",
        "unsubscribe",
        "disconnect",
    ] {
        cfg.service(
            web::resource(format!("/notifications/{channel}"))
                .route(web::post().to(notify::long_polling::handle))
                .default_service(web::to(|req| not_allowed(req, "POST")))
                .wrap(from_fn(login::require_login))
                .wrap(from_fn(origin::guard_origin)),
        );
    }
}

/// A resource that a caller who logged in reads (GET, and HEAD: the head of the GET
/// answer), which pages of other origins may read with CORS (`check_origin`).
fn readable<F, Args>(path: &str, handler: F) -> impl actix_web::dev::HttpServiceFactory + 'static
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    use actix_web::middleware::from_fn;
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|req| not_allowed(req, "GET, HEAD")))
        .wrap(from_fn(login::require_login))
        .wrap(from_fn(origin::check_origin))
}

/// A maintenance resource: `PUT` sets, `DELETE` ends; a page of a foreign origin is
/// refused (403) as on the notification endpoint, since these change state.
fn maintenance_resource(path: &str) -> impl actix_web::dev::HttpServiceFactory + 'static {
    use actix_web::middleware::from_fn;
    web::resource(path)
        .app_data(json_body(
            r#"{"reason": "upgrade", "until": "2026-11-28T06:00:00Z"}"#,
        ))
        .route(web::put().to(maintenance::put))
        .route(web::delete().to(maintenance::delete))
        .default_service(web::to(|req| not_allowed(req, "PUT, DELETE")))
        .wrap(from_fn(login::require_login))
        .wrap(from_fn(origin::guard_origin))
}

/// The API tokens' collection: `GET` lists, `POST` creates; a page of a foreign origin
/// is refused (403), since a token is a credential.
fn tokens_resource(path: &str) -> impl actix_web::dev::HttpServiceFactory + 'static {
    use actix_web::middleware::from_fn;
    web::resource(path)
        .app_data(json_body(
            r#"{"name": "ci", "scope": "maintenance", "expires": "2027-06-30T00:00:00Z"}"#,
        ))
        .route(web::get().to(tokens::list))
        .route(web::post().to(tokens::create))
        .default_service(web::to(|req| not_allowed(req, "GET, POST")))
        .wrap(from_fn(login::require_login))
        .wrap(from_fn(origin::guard_origin))
}

/// A 200 JSON answer a client must not reuse without asking again (`no-cache`): what it
/// says changes with every probe, alert or change.
pub(crate) fn fresh_json(body: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CONTENT_TYPE, "application/json"))
        .insert_header(actix_web::http::header::CacheControl(vec![
            actix_web::http::header::CacheDirective::NoCache,
        ]))
        .body(body.to_string())
}

/// A JSON body of at most 4 KiB; one that cannot be read is refused (400) with `example`
/// of a good one.
fn json_body(example: &'static str) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(4096)
        .error_handler(move |e, _req| {
            ApiError::InvalidParameter(format!("the body must be JSON such as {example}: {e}"))
                .into()
        })
}

/// 405, naming the methods the resource `allowed` (as `Allow` lists them).
async fn not_allowed(req: HttpRequest, allowed: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_string(),
        allowed,
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no resource at {}", req.path())))
}
