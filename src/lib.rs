#![warn(missing_docs)]

//! servicewatch supervises the backend servers of a contact center and serves their state the
//! way Genesys Web Services does.
//!
//! # Map
//!
//! Data enters in two places: the configuration file (read by [`config`]) and the probes'
//! sockets and processes ([`probe`]). It leaves through the HTTP API ([`api`]).
//!
//! - [`domain`]: the pure rules (rise/fall, pairing, service state).
//!   Architecture invariant: no I/O, no clock, no actor.
//! - [`probe`]: one file per check kind; each looks at one instance once.
//! - [`monitor`]: the `ServerMonitor` actor, one per backend server. It owns its probe
//!   schedule and its server's smoothed health, and reports when that health changes.
//! - [`registry`]: the `Registry` actor, the only writer of service state. It assesses each
//!   service from its servers' reports and publishes an immutable [`snapshot::Snapshot`]
//!   that HTTP handlers read without messaging it.
//! - [`resource`]: the wire shape of a service (JSON), kept apart from domain types.
//! - [`api`]: HTTP handlers, the GWS envelope and error codes.
//! - [`daemon`]: wires the pieces together and runs them.
//! - [`lifecycle`]: readiness, status, watchdog, reload and stop under systemd.

mod admin;
pub mod api;
mod auth;
pub mod bayeux;
mod client_errors;
// Built without the `cluster` feature, the etcd session that reads and writes these types is
// left out, and the rest only declares them.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod domain;
mod history;
mod instances;
pub mod lifecycle;
pub mod logging;
mod metrics;
mod monitor;
mod notify;
pub mod password;
mod pem;
pub mod probe;
// `ReloadSummary`, the one public item (what `Daemon::reload` answers), gets its field docs
// with the registry's rework, which owns that file.
#[allow(missing_docs)]
pub mod registry;
mod resource;
mod snapshot;
pub mod standin;
mod throttle;
pub mod tls;

pub use config::Settings;
pub use daemon::Daemon;
