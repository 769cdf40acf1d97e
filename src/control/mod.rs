//! The control socket: the Services API on a Unix socket, for the `servicewatch` command
//! line ([`crate`]'s binary, `src/cli/`) on the same machine.
//!
//! It serves the very application the TCP listener serves ([`crate::api::app::app`]), under
//! the same base path, over HTTP/1.1. Only the caller differs: no password, no token; the
//! kernel names the peer (`SO_PEERCRED`, read when the connection is accepted: [`peer`]),
//! and root, the daemon's user and the members of its group are admins of every contact
//! center ([`crate::api::socket_caller`]); anyone else is refused with 403. File permissions (0660, the
//! daemon's group; [`socket`]) are the first gate, the peer check the second, as with
//! HAProxy's stats socket.
//!
//! Architecture invariant: a request that came over the socket is never authenticated by
//! its credentials; `require_login` asks [`crate::api::socket_caller::established`] first.

pub(crate) mod peer;
pub(crate) mod socket;

use std::io;
use std::sync::Arc;

use actix_web::HttpServer;
use actix_web::dev::ServerHandle;
use tracing::info;

use crate::api::app::AppParts;
use crate::config::control::ControlSettings;
use peer::AdmissionRule;
use socket::SocketFile;

/// How long a stop waits for the command line's requests in flight: they are short.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

/// The running control socket.
pub(crate) struct ControlSocket {
    file: SocketFile,
    handle: ServerHandle,
}

impl ControlSocket {
    /// Binds the socket `settings` name (given systemd's `RUNTIME_DIRECTORY`) and serves
    /// the API on it in a task of its own; `None` when no socket is configured.
    pub fn start(settings: &ControlSettings, parts: AppParts) -> io::Result<Option<Self>> {
        let runtime_directory = std::env::var("RUNTIME_DIRECTORY").ok();
        let Some(path) = settings.socket_path(runtime_directory.as_deref()) else {
            info!(
                "no control socket: set [control] socket, or run under systemd with RuntimeDirectory="
            );
            return Ok(None);
        };
        let (listener, file) = socket::bind(&path)?;
        let rule = Arc::new(AdmissionRule::of_this_process());
        let server = HttpServer::new(move || crate::api::app::app(parts.clone()))
            .workers(1)
            .on_connect(move |connection, data| rule.on_connect(connection, data))
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
            .disable_signals()
            .listen_uds(listener)
            .inspect_err(|_| file.remove())?
            .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        info!(socket = %file.path().display(), "serving the Services API on the control socket");
        Ok(Some(ControlSocket { file, handle }))
    }

    /// Stops serving and removes the socket file.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
        self.file.remove();
    }
}
