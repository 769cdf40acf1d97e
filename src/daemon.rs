//! Wires the registry, its monitors and the HTTP server together.
//!
//! [`Daemon::start`] must run inside an actix `System`; the binary runs one on its main
//! thread, and tests run one per daemon on a thread of their own. The listener is handed in
//! already bound, so a test can bind port 0 and read the port without a race.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use arc_swap::ArcSwap;
use tracing::info;

use crate::api::{self, ApiState};
use crate::config::Settings;
use crate::notify;
use crate::registry::{Registry, SharedSnapshot};
use crate::snapshot::Snapshot;

/// A running servicewatch.
pub struct Daemon {
    server: Server,
    local_addr: SocketAddr,
    /// Kept so the registry (and with it every monitor) lives as long as the daemon.
    _registry: Addr<Registry>,
}

impl Daemon {
    /// Binds `settings.server.listen` and starts.
    pub fn start(settings: Settings) -> io::Result<Daemon> {
        let listener = TcpListener::bind(settings.server.listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", settings.server.listen),
            )
        })?;
        Daemon::start_on(settings, listener)
    }

    /// Starts on an already bound listener; `settings.server.listen` is not used.
    pub fn start_on(settings: Settings, listener: TcpListener) -> io::Result<Daemon> {
        let local_addr = listener.local_addr()?;
        let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let registry = Registry::new(
            settings.services,
            settings.limits.probes_in_flight,
            snapshot.clone(),
        )
        .start();
        let notify = web::Data::new(Arc::new(notify::Shared::new(
            settings.notifications.clone(),
            registry.clone(),
        )));
        let max_message_size = settings.notifications.max_message_size;
        let send_timeout = settings.server.send_timeout;
        let state = web::Data::new(ApiState {
            snapshot,
            public_url: settings.server.public_url,
            base_path: settings.server.base_path.clone(),
        });
        let base_path = settings.server.base_path;
        let server = HttpServer::new(move || {
            let base_path = base_path.clone();
            App::new()
                .app_data(state.clone())
                .app_data(notify.clone())
                .wrap(api::gws_errors())
                .configure(move |cfg| api::configure(cfg, &base_path, max_message_size))
        })
        .on_connect(move |connection, _| set_send_timeout(connection, send_timeout))
        .workers(settings.server.workers)
        .disable_signals()
        .listen(listener)?
        .run();
        info!(listen = %local_addr, "serving the Services API");
        Ok(Daemon {
            server,
            local_addr,
            _registry: registry,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the HTTP server (gracefully or not) from any thread.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until the HTTP server stops.
    pub async fn wait(self) -> io::Result<()> {
        self.server.await
    }
}

/// Bounds how long written data may stay unacknowledged on an accepted connection
/// (`TCP_USER_TIMEOUT`), so that a client that stopped reading is eventually disconnected by
/// the kernel even while its WebSocket actor is not being polled.
fn set_send_timeout(connection: &dyn std::any::Any, timeout: std::time::Duration) {
    if let Some(stream) = connection.downcast_ref::<actix_rt::net::TcpStream>() {
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
            tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
        }
    }
}
