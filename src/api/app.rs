//! The HTTP application each worker runs: the shared state handlers read, the middleware
//! stack every request passes through, and the routes ([`super::configure`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};

use super::{ApiState, connections, counting, draining, error, head, staleness};
use crate::auth::Authenticator;
use crate::cluster::ClusterStatus;
use crate::metrics::Metrics;
use crate::notify;

/// What every worker's application is built from: cheap to clone, one clone per worker.
#[derive(Clone)]
pub struct AppParts {
    pub state: web::Data<ApiState>,
    pub notify: web::Data<Arc<notify::Shared>>,
    pub authenticator: web::Data<Arc<Authenticator>>,
    /// Where answers are counted (`http_requests_total`).
    pub metrics: Arc<Metrics>,
    /// Set when the daemon begins to stop.
    pub stopping: Arc<AtomicBool>,
    /// The node's place in a cluster: a stale node says so on every answer.
    pub cluster: Arc<ClusterStatus>,
}

/// The application with its middleware stack. A `.wrap` wraps everything listed before it,
/// so the last is outermost; a request passes them in this order, outermost first:
///
/// 1. request counting (`counting.rs`): every answer is counted in `http_requests_total`
///    by route and status, including the refusals of the layers inside it;
/// 2. the connection limit (`connections.rs`): a connection accepted over
///    `max_connections` is answered `503` and closed, before any other work;
/// 3. the stale warning (`staleness.rs`): a `Warning` header while a cluster node has lost
///    etcd;
/// 4. draining (`draining.rs`): `Connection: close` on answers once a stop has begun;
/// 5. the GWS envelope for the framework's own errors (unknown path, wrong method;
///    `error.rs`);
/// 6. the head-size limit (`head.rs`): `431` for a request head over `max_header_size`;
///
/// then per resource ([`super::configure`]) the origin check and the login.
pub fn app(
    parts: AppParts,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let base_path = parts.state.base_path.clone();
    App::new()
        .app_data(parts.state)
        .app_data(parts.notify)
        .app_data(parts.authenticator)
        .wrap(from_fn(head::limit_head))
        .wrap(error::framework_errors())
        .wrap_fn(draining::close_when_stopping(parts.stopping))
        .wrap_fn(staleness::warn_when_stale(parts.cluster))
        .wrap(from_fn(connections::refuse_over_limit))
        .wrap_fn(counting::count_requests(parts.metrics))
        .configure(move |cfg| super::configure(cfg, &base_path))
}
