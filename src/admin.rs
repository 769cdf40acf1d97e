//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the actor system answers),
//! `/readyz` (every monitor has probed once, and no stop has begun). It listens apart from the API (loopback by
//! default) so that metrics and probes of the daemon itself are not exposed to API clients.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{App, HttpResponse, HttpServer, web};
use tracing::info;

use crate::cluster::ClusterStatus;
use crate::metrics::Metrics;
use crate::registry::{Ping, Registry};

/// How long `/healthz` waits for the registry before calling the daemon unhealthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// What the admin handlers read.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub registry: Addr<Registry>,
    /// Every monitor has probed once.
    pub ready: Arc<AtomicBool>,
    /// A stop has begun: not ready any more, so a load balancer drains this node.
    pub stopping: Arc<AtomicBool>,
    /// A cluster node that has lost etcd is not ready: what it serves may be stale.
    pub cluster: Arc<ClusterStatus>,
}

/// Registers the admin routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .body(state.metrics.encode())
}

async fn healthz(state: web::Data<AdminState>) -> HttpResponse {
    match tokio::time::timeout(HEALTH_TIMEOUT, state.registry.send(Ping)).await {
        Ok(Ok(())) => HttpResponse::Ok().body("ok\n"),
        _ => HttpResponse::ServiceUnavailable().body("the registry does not answer\n"),
    }
}

async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    if state.stopping.load(Ordering::Acquire) {
        HttpResponse::ServiceUnavailable().body("not ready: stopping\n")
    } else if state.cluster.is_stale() {
        HttpResponse::ServiceUnavailable()
            .body("not ready: etcd is out of reach; what this node serves may be stale\n")
    } else if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().body("ready\n")
    } else if state.cluster.is_clustered() {
        HttpResponse::ServiceUnavailable().body("not ready: reading the cluster's states\n")
    } else {
        HttpResponse::ServiceUnavailable().body("not ready: probing for the first time\n")
    }
}

/// Starts the admin listener (one worker: it serves a scraper and a health checker).
pub(crate) fn start(addr: SocketAddr, state: AdminState) -> io::Result<(SocketAddr, ServerHandle)> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} (admin): {e}")))?;
    let bound = listener.local_addr()?;
    let state = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(configure))
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    info!(admin = %bound, "serving metrics and health");
    Ok((bound, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::Actor;

    #[actix_rt::test]
    async fn ready_once_probed_and_not_any_more_once_stopping() {
        let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(
            crate::snapshot::Snapshot::default(),
        ));
        let metrics = Arc::new(Metrics::new());
        let registry = Registry::new(
            Vec::new(),
            1,
            snapshot,
            metrics.clone(),
            crate::history::Opened::nothing(),
            None,
        )
        .start();
        let state = web::Data::new(AdminState {
            metrics,
            registry,
            ready: Arc::new(AtomicBool::new(false)),
            stopping: Arc::new(AtomicBool::new(false)),
            cluster: Arc::new(ClusterStatus::alone()),
        });
        let status = |state: &web::Data<AdminState>| {
            let state = state.clone();
            async move { readyz(state).await.status().as_u16() }
        };
        assert_eq!(status(&state).await, 503, "not probed yet");
        state.ready.store(true, Ordering::Release);
        assert_eq!(status(&state).await, 200);
        state.stopping.store(true, Ordering::Release);
        assert_eq!(status(&state).await, 503, "a stop has begun");
    }
}
