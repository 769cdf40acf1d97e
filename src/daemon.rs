//! Wires the registry, its monitors, the notification sessions and the HTTP server together.
//!
//! [`Daemon::start`] must run inside an actix `System`; the binary runs one on its main
//! thread, and tests run one per daemon on a thread of their own. The listener is handed in
//! already bound, so a test can bind port 0 and read the port without a race.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, MailboxError};
use actix_rt::task::JoinHandle;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::{HttpServer, web};
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tracing::{error, info};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::admin::{self, AdminState};
use tokio::sync::mpsc;

use crate::alerts::dispatcher::{Dispatcher, Reconfigure};
use crate::alerts::outbox::Outbox;
use crate::alerts::receivers::Receiver;
use crate::api::app::AppParts;
use crate::api::connections::ConnectionLimit;
use crate::api::reload::{QUEUED_RELOADS, ReloadAsked, ReloadRequests};
use crate::api::token_book::{ClusterTokens, alone_tokens};
use crate::api::{self, ApiState};
use crate::auth::Authenticator;
use crate::cluster::credentials::Credentials;
use crate::cluster::{Cluster, ClusterStatus, Inbox};
use crate::config::Settings;
use crate::config::server::TlsSettings;
use crate::config::services::ServiceSpec;
use crate::control::ControlSocket;
use crate::history::{History, Opened};
use crate::metrics::Metrics;
use crate::notify;
/// What a reload changed, by service id: what [`Daemon::reload`] answers.
pub use crate::registry::ReloadSummary;
use crate::registry::{ApplyServices, Ping, Registry, SharedSnapshot, WhenReady};
use crate::snapshot::Snapshot;

/// What an operator who configured no user is told at start: nobody can log in yet, and how
/// to change that.
const NO_USERS: &str = "no [[user]] is configured: every API request will be refused with 401. To log in, add a [[contact_center]] and a [[user]] whose password is the hash `servicewatch hash-password` prints (the shipped configuration has both, commented; see docs/configuration.md, [auth]), then reload";

/// How long a stopping leader waits for etcd to take its resignation.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stop waits for the sessions to answer their held long-polls.
const SESSIONS_TOLD: Duration = Duration::from_millis(500);

/// Why a reload was not applied; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration was refused.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The registry stopped before it took the new services.
    #[error("the registry did not answer: {0}")]
    Registry(#[from] MailboxError),
}

/// A running servicewatch.
pub struct Daemon {
    /// The HTTP server runs in a task of its own from the start, so that the daemon can be
    /// reloaded and stopped while it serves.
    server: JoinHandle<io::Result<()>>,
    handle: ServerHandle,
    /// The admin listener's address and server, when enabled.
    admin: Option<(SocketAddr, ServerHandle)>,
    local_addr: SocketAddr,
    /// The HTTPS listener's address, when configured.
    tls_addr: Option<SocketAddr>,
    snapshot: SharedSnapshot,
    registry: Addr<Registry>,
    /// Told of a reload that changes `[alerts]`.
    alerts: Addr<Dispatcher>,
    notify: Arc<notify::Shared>,
    metrics: Arc<Metrics>,
    authenticator: Arc<Authenticator>,
    /// Written to until the stop, then flushed.
    history: History,
    /// Set when a stop begins; `/readyz` then answers 503 whatever else holds.
    stopping: Arc<AtomicBool>,
    /// The node's place in a cluster (alone: never stale, always leading).
    cluster: Arc<ClusterStatus>,
    /// On a cluster node, the link to etcd: a stop gives up the leadership at once.
    cluster_link: Option<Cluster>,
    /// The command line's Unix socket, when configured.
    control: Option<ControlSocket>,
    /// Reloads asked over the API (`POST /reload`), until the lifecycle takes them.
    reload_requests: Option<mpsc::Receiver<ReloadAsked>>,
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

    /// Starts on an already bound listener; `settings.server.listen` is not used. Only
    /// wires: each part is built by a function of its own.
    pub fn start_on(settings: Settings, listener: TcpListener) -> io::Result<Daemon> {
        let local_addr = listener.local_addr()?;
        let tls = bind_tls(settings.tls.as_ref())?;
        let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let metrics = Arc::new(Metrics::new());
        let mut past = History::open_configured(&settings.history, metrics.clone());
        let api_tokens = std::mem::take(&mut past.tokens);
        let history = past.history.clone();
        let (cluster, inbox, cluster_status) = link_cluster(&settings)?;
        let alerts = start_alerts(&settings, (&history, &snapshot), &metrics, cluster.clone());
        let registry = start_registry(
            &settings,
            (&snapshot, &metrics),
            past,
            cluster.clone(),
            alerts.clone(),
        );
        let notify = start_notify(&settings, &registry, &metrics, &cluster_status);
        let ready = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let admin_state = AdminState {
            metrics: metrics.clone(),
            registry: registry.clone(),
            ready: ready.clone(),
            stopping: stopping.clone(),
            cluster: cluster_status.clone(),
        };
        let admin = (settings.admin_listen)
            .map(|addr| admin::start(addr, admin_state))
            .transpose()?;
        actix_rt::spawn(mark_ready(registry.clone(), ready));
        actix_rt::spawn(crate::client_errors::report_periodically(metrics.clone()));
        let authenticator = authenticator(&settings, &metrics, api_tokens);
        let with = ((&authenticator, &notify), (&registry, &metrics));
        let etcd = cluster.clone().zip(inbox);
        let tokens = etcd.map(|link| ClusterTokens::start(link, with));
        let (reloads, reload_requests) = mpsc::channel(QUEUED_RELOADS);
        let parts = AppParts {
            state: web::Data::new(api_state(
                &settings,
                (snapshot.clone(), &history),
                (&registry, &alerts),
                reloads,
                tokens,
            )),
            notify: web::Data::new(notify.clone()),
            authenticator: web::Data::new(authenticator.clone()),
            metrics: metrics.clone(),
            stopping: stopping.clone(),
            cluster: cluster_status.clone(),
        };
        let control = ControlSocket::start(&settings.control, parts.clone())?;
        let server = serve(&settings, listener, tls, parts)?;
        info!(listen = %local_addr, "serving the Services API");
        if let Some(addr) = tls_addr {
            info!(listen_tls = %addr, "serving the Services API over HTTPS");
        }
        let handle = server.handle();
        Ok(Daemon {
            server: actix_rt::spawn(server),
            handle,
            admin,
            local_addr,
            tls_addr,
            snapshot,
            registry,
            alerts,
            notify,
            metrics,
            authenticator,
            stopping,
            cluster: cluster_status,
            cluster_link: cluster,
            history,
            control,
            reload_requests: Some(reload_requests),
        })
    }

    /// Reloads asked over the API; whoever runs the daemon's life answers them (once).
    pub(crate) fn take_reload_requests(&mut self) -> Option<mpsc::Receiver<ReloadAsked>> {
        self.reload_requests.take()
    }

    /// The address the API listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The HTTPS listener's address, when configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The daemon's metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where changes and the audit trail are written.
    pub(crate) fn history(&self) -> &History {
        &self.history
    }

    /// The admin listener's address, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(addr, _)| *addr)
    }

    /// A handle that stops the HTTP server (gracefully or not) from any thread.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The state the API serves now.
    /// A cluster node's place, as `STATUS=` says it: leader, follower, or stale.
    pub(crate) fn cluster_place(&self) -> Option<&'static str> {
        let c = &self.cluster;
        c.is_clustered().then(|| {
            if c.is_stale() {
                "stale: etcd is out of reach"
            } else if c.is_leading() {
                "cluster leader"
            } else {
                "cluster follower"
            }
        })
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Resolves once every monitor has finished its first probe round.
    pub async fn when_ready(&self) {
        if let Ok(ready) = self.registry.send(WhenReady).await {
            let _ = ready.await;
        }
    }

    /// Whether the registry answers within `within`: the actor system is alive.
    pub(crate) async fn is_responsive(&self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.registry.send(Ping)).await,
            Ok(Ok(()))
        )
    }

    /// Replaces the supervised services (a reload).
    pub(crate) async fn apply(
        &self,
        services: Vec<ServiceSpec>,
    ) -> Result<ReloadSummary, MailboxError> {
        self.registry.send(ApplyServices(services)).await
    }

    /// Replaces the users and displays (a reload): the cookie logins and notification
    /// sessions of those removed or changed (a display's token or contact center) end.
    pub(crate) fn apply_logins(&self, auth: &crate::config::auth::AuthSettings) {
        let users = self.authenticator.replace_users(&auth.users);
        let displays = self.authenticator.replace_displays(&auth.displays);
        let tokens = (self.authenticator).replace_contact_centers(&auth.contact_centers);
        let directory = self.authenticator.replace_directory(auth.ldap.as_ref());
        let revoked: std::collections::BTreeSet<Arc<str>> = users
            .into_iter()
            .chain(displays)
            .chain(tokens)
            .chain(directory)
            .collect();
        if !revoked.is_empty() {
            info!(logins = ?revoked, "users or displays removed or changed: their sessions end");
            self.notify.revoke(&revoked);
        }
    }

    /// Re-reads the configuration at `path` and applies what a reload can change: the
    /// services, the users, the displays and the alerts. Other sections take effect at the
    /// next restart; each one that changed is logged as such. `running` becomes the applied
    /// configuration.
    pub async fn reload(
        &self,
        path: &std::path::Path,
        running: &mut Settings,
    ) -> Result<ReloadSummary, ReloadError> {
        let new = crate::config::load(path)?;
        for section in running.needing_restart(&new) {
            tracing::warn!(
                section,
                "changed; it takes effect at the next restart, not on reload"
            );
        }
        let summary = self.apply(new.services.clone()).await?;
        self.apply_logins(&new.auth);
        if running.alerts != new.alerts {
            self.alerts.send(Reconfigure(new.alerts.clone())).await?;
        }
        running.services = new.services;
        running.auth.users = new.auth.users;
        running.auth.displays = new.auth.displays;
        running.auth.contact_centers = new.auth.contact_centers;
        running.auth.ldap = new.auth.ldap;
        running.alerts = new.alerts;
        Ok(summary)
    }

    /// Stops: clients are told (WebSocket close 1001, long-polling advice to reconnect),
    /// requests in flight finish within the shutdown timeout, then the server ends.
    pub(crate) async fn stop(&self) {
        // First of all, so that a load balancer stops sending clients here while the
        // requests in flight drain.
        self.stopping.store(true, Ordering::Release);
        // A leader hands over before it drains: another node probes from now on.
        if let Some(cluster) = &self.cluster_link {
            cluster.resign(RESIGN_TIMEOUT).await;
        }
        self.notify.shutdown();
        // Each session answers its held long-poll on its worker's thread: the server stops
        // once they have (or after a moment), so that no answer is cut off by the stop.
        let told = tokio::time::Instant::now() + SESSIONS_TOLD;
        while self.metrics.notifications.long_polls_held.get() > 0
            && tokio::time::Instant::now() < told
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.handle.stop(true).await;
        if let Some(control) = &self.control {
            control.stop().await;
        }
        if let Some((_, admin)) = &self.admin {
            // Scrapes and health checks are short and retried: nothing to wait for.
            admin.stop(false).await;
        }
        // The last changes reach the disk before the process ends.
        let history = self.history.clone();
        let _ = tokio::task::spawn_blocking(move || history.flush(HISTORY_FLUSH)).await;
    }

    /// Runs until the HTTP server stops.
    pub(crate) async fn wait(self) -> io::Result<()> {
        self.server.await.unwrap_or_else(|e| {
            Err(io::Error::other(format!(
                "the HTTP server task failed: {e}"
            )))
        })
    }
}

/// The HTTPS listener and its rustls configuration, when `[tls]` is configured: bound and
/// read at start, so that a bad certificate or a taken port is a start-up error.
fn bind_tls(tls: Option<&TlsSettings>) -> io::Result<Option<(TcpListener, ServerConfig)>> {
    let Some(t) = tls else {
        return Ok(None);
    };
    let config = crate::tls::server_config(t).map_err(io::Error::other)?;
    let listener = TcpListener::bind(t.listen).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {} (TLS): {e}", t.listen),
        )
    })?;
    Ok(Some((listener, config)))
}

/// The link to etcd and the inbox of its events, on a cluster node (`[cluster]`), and the
/// node's place (alone: never stale, always leading).
fn link_cluster(settings: &Settings) -> io::Result<ClusterLink> {
    let Some(c) = &settings.cluster else {
        return Ok((None, None, Arc::new(ClusterStatus::alone())));
    };
    let credentials = Credentials::load(c).map_err(io::Error::other)?;
    let digest = crate::cluster::digest(&settings.services);
    let (cluster, inbox) = Cluster::link(c, credentials, digest);
    let status = cluster.status.clone();
    Ok((Some(cluster), Some(inbox), status))
}

/// What [`link_cluster`] gives.
type ClusterLink = (Option<Cluster>, Option<Inbox>, Arc<ClusterStatus>);

/// Starts the registry, telling `alerts` of every committed change (on a cluster node, the
/// task feeding it etcd's events starts once the API tokens have somewhere to go).
fn start_registry(
    settings: &Settings,
    (snapshot, metrics): (&SharedSnapshot, &Arc<Metrics>),
    past: Opened,
    cluster: Option<Cluster>,
    alerts: Addr<Dispatcher>,
) -> Addr<Registry> {
    Registry::new(
        settings.services.clone(),
        settings.limits.probes_in_flight,
        snapshot.clone(),
        metrics.clone(),
        past,
        cluster,
    )
    .alerting(alerts)
    .start()
}

/// Starts the alerts' dispatcher on a thread of its own (its outbox writes synchronously;
/// see [`crate::alerts::dispatcher`]), its memory in the history database when there is
/// one.
fn start_alerts(
    settings: &Settings,
    (history, snapshot): (&History, &SharedSnapshot),
    metrics: &Arc<Metrics>,
    cluster: Option<Cluster>,
) -> Addr<Dispatcher> {
    let outbox = match Outbox::open(history.path()) {
        Ok(outbox) => outbox,
        Err(e) => {
            error!("{e}; alerts are kept in memory until restarted with a usable file");
            Outbox::open(None).expect("an in-memory database opens")
        }
    };
    let alerts = settings.alerts.clone();
    let node = settings
        .cluster
        .as_ref()
        .map_or_else(crate::config::cluster::hostname, |c| c.node.clone());
    let metrics = metrics.clone();
    let snapshot = snapshot.clone();
    let arbiter = Arbiter::new();
    Dispatcher::start_in_arbiter(&arbiter.handle(), move |_| {
        // Receivers are set up on the dispatcher's thread: an HTTP client is bound to the
        // thread it runs on.
        let receivers = alerts
            .receivers
            .iter()
            .filter_map(|spec| {
                Receiver::new(spec.clone())
                    .map_err(|e| error!("{e}; this receiver is left out until restarted"))
                    .ok()
            })
            .collect();
        Dispatcher::new(
            alerts,
            receivers,
            node,
            outbox,
            metrics,
            cluster,
            Some(snapshot),
        )
    })
}

/// What the Bayeux sessions share: their settings, the registry they subscribe to.
fn start_notify(
    settings: &Settings,
    registry: &Addr<Registry>,
    metrics: &Arc<Metrics>,
    cluster: &Arc<ClusterStatus>,
) -> Arc<notify::Shared> {
    Arc::new(notify::Shared::new(
        settings.notifications.clone(),
        settings.limits.request_timeout,
        registry.clone(),
        metrics.clone(),
        cluster.clone(),
    ))
}

/// Sets `ready` once every monitor has finished its first probe round (`/readyz`).
async fn mark_ready(registry: Addr<Registry>, ready: Arc<AtomicBool>) {
    if let Ok(rx) = registry.send(WhenReady).await
        && rx.await.is_ok()
    {
        ready.store(true, Ordering::Release);
    }
}

/// Who may call, with the API tokens kept; warns when nobody may (no users).
fn authenticator(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    api_tokens: Vec<crate::auth::ApiTokenRecord>,
) -> Arc<Authenticator> {
    if settings.auth.users.is_empty() {
        tracing::warn!("{NO_USERS}");
    }
    let api_tokens = alone_tokens(settings.cluster.is_some(), api_tokens);
    Arc::new(Authenticator::new(&settings.auth, metrics.clone()).with_api_tokens(api_tokens))
}

/// What the API's handlers read.
fn api_state(
    settings: &Settings,
    (snapshot, history): (SharedSnapshot, &History),
    (registry, alerts): (&Addr<Registry>, &Addr<Dispatcher>),
    reloads: ReloadRequests,
    cluster_tokens: Option<ClusterTokens>,
) -> ApiState {
    let server = &settings.server;
    ApiState {
        snapshot,
        public_origin: server
            .public_url
            .as_deref()
            .and_then(api::origin::origin_of),
        public_url: server.public_url.clone(),
        base_path: server.base_path.clone(),
        allowed_origins: server.allowed_origins.clone(),
        max_header_size: settings.limits.max_header_size,
        history: history.clone(),
        registry: registry.clone(),
        alerts: alerts.clone(),
        reloads,
        cluster_tokens,
    }
}

/// The API's HTTP server on `listener` (and the HTTPS listener), each worker running
/// [`api::app::app`]: the workers, the connection limit and its backstop, the timeouts and
/// keep-alive of `[server]` and `[limits]`. Signals are the daemon's to handle.
fn serve(
    settings: &Settings,
    listener: TcpListener,
    tls: Option<(TcpListener, ServerConfig)>,
    parts: AppParts,
) -> io::Result<Server> {
    let (server, limits) = (&settings.server, &settings.limits);
    let connections = ConnectionLimit::new(limits.max_connections, parts.metrics.clone());
    set_client_socket_options(&listener, server.send_timeout, server.send_buffer);
    let mut http = HttpServer::new(move || api::app::app(parts.clone()))
        .workers(server.workers)
        .on_connect(move |connection, data| connections.on_connect(connection, data))
        .max_connections(ConnectionLimit::backstop_per_worker(
            limits.max_connections,
            server.workers,
        ))
        .client_request_timeout(limits.request_timeout)
        .shutdown_timeout(server.shutdown_timeout.as_secs().max(1))
        .keep_alive(if server.keep_alive.is_zero() {
            KeepAlive::Disabled
        } else {
            KeepAlive::Timeout(server.keep_alive)
        })
        .disable_signals()
        .listen(listener)?;
    if let Some((listener, config)) = tls {
        set_client_socket_options(&listener, server.send_timeout, server.send_buffer);
        http = http.listen_rustls_0_23(listener, config)?;
    }
    Ok(http.run())
}

/// Options set on a listener, which the connections it accepts inherit (Linux copies them
/// from the listening socket to each accepted one, TLS or not):
/// - `TCP_USER_TIMEOUT` bounds how long written data may stay unacknowledged, so that a
///   client that stopped reading is eventually disconnected by the kernel even while its
///   WebSocket actor is not being polled;
/// - `TCP_NODELAY`: a notification goes out at once, instead of waiting for the client's
///   delayed acknowledgement of the previous one (Nagle's algorithm: about 40 ms with a
///   Linux client, up to 200 ms with a Windows one), whenever two changes follow closely.
fn set_client_socket_options(listener: &TcpListener, timeout: Duration, buffer: Option<usize>) {
    let socket = socket2::SockRef::from(listener);
    if let Err(e) = socket.set_tcp_nodelay(true) {
        tracing::warn!(error = %e, "cannot set TCP_NODELAY; a change right after another may wait for the client's acknowledgement");
    }
    if let Err(e) = socket.set_tcp_user_timeout(Some(timeout)) {
        tracing::warn!(error = %e, "cannot set TCP_USER_TIMEOUT; frozen clients will hold their sockets longer");
    }
    if let Some(bytes) = buffer
        && let Err(e) = socket.set_send_buffer_size(bytes)
    {
        tracing::warn!(error = %e, "cannot set the send buffer; the kernel sizes it");
    }
}

/// The longest a stop waits for the history's last writes.
const HISTORY_FLUSH: Duration = Duration::from_secs(2);
