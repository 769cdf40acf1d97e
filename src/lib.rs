#![warn(missing_docs)]

//! servicewatch supervises the backend servers of a contact center and serves their state the
//! way Genesys Web Services does.
//!
//! # Map
//!
//! Data enters in two places: the configuration file (read by [`config`]) and the probes'
//! sockets and processes ([`probe`]). It leaves through the HTTP API ([`api`]), the Bayeux
//! notifications (`notify`), the admin listener (`admin`) and, on a cluster, etcd
//! ([`cluster`]). ARCHITECTURE.md has the diagram and the layers; bottom first:
//!
//! - Pure rules and formats. [`domain`]: rise/fall, pairing, roles, service state
//!   (architecture invariant: no I/O, no clock, no actor). [`bayeux`]: the protocol's
//!   messages and replies, without I/O. [`password`]: Argon2id hashes.
//! - Looking at one backend once. [`probe`]: one file per check kind. `pem`: certificates
//!   and keys read from PEM files.
//! - [`config`]: the file and the environment, validated into [`Settings`].
//! - Shared parts. `metrics`: the Prometheus metrics, one struct per subsystem. `resource`:
//!   the wire shape of a service (JSON), kept apart from domain types. `instances`: what each
//!   monitor last saw of its server. `throttle`: failed logins per address. [`tls`]: the
//!   HTTPS listener's configuration. [`logging`]: journald, text or JSON. `client_errors`:
//!   malformed requests, counted and summarised rather than logged one by one.
//! - Owners of state. `snapshot`: the immutable view HTTP handlers read. `monitor`: the
//!   `ServerMonitor` actor, one per backend server, owning its probe schedule and smoothed
//!   health. `auth`: logins (Basic, display and API tokens, cookies) and what each caller may see. `history`: the
//!   history database and its writer thread. [`cluster`]: several nodes on etcd, one leader.
//!   `alerts`: the dispatcher told of every committed change, which derives events, routes
//!   and groups them, and delivers them to receivers from a durable outbox.
//! - `registry`: the `Registry` actor, the only writer of service state. It assesses each
//!   service from its servers' reports and publishes a new snapshot.
//! - `notify`: Bayeux sessions and their transports (WebSocket, long-polling). `admin`:
//!   `/metrics`, `/healthz` and `/readyz` on their own listener.
//! - [`api`]: the HTTP application, its middleware and handlers, the GWS envelope and codes.
//!   `control`: the same application on a Unix socket, the caller decided by the peer's
//!   credentials. [`cli`]: the command line that asks a running daemon through it.
//! - [`daemon`]: wires the pieces together on a bound listener ([`Daemon`]). [`standin`]:
//!   stand-in backends for the demo and the tests.
//! - [`lifecycle`]: readiness, status, watchdog, reload and stop under systemd. [`demo`]: a
//!   failure scenario played against stand-ins.

mod admin;
pub mod alerts;
pub mod api;
mod auth;
pub mod bayeux;
mod client_errors;
// Built without the `cluster` feature, the etcd session that reads and writes these types is
// left out, and the rest only declares them.
pub mod cli;
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub mod cluster;
pub mod config;
mod control;
pub mod daemon;
pub mod demo;
pub mod domain;
// Public for benches/availability.rs, which builds a year of history through the store and
// reads it as the API does; its error variants are documented by their messages.
#[allow(missing_docs)]
pub mod history;
mod instances;
pub mod lifecycle;
pub mod logging;
mod metrics;
mod monitor;
mod notify;
pub mod password;
mod pem;
pub mod probe;
// `ReloadSummary`, its one public item (what `Daemon::reload` answers, public as
// `daemon::ReloadSummary`), gets its field docs with the registry's rework.
#[allow(missing_docs)]
mod registry;
mod resource;
mod snapshot;
pub mod standin;
mod throttle;
pub mod tls;

pub use auth::DisplayToken;
pub use config::Settings;
pub use config::auth::is_display_name;
pub use daemon::Daemon;
