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

pub mod admin;
pub mod api;
pub mod auth;
pub mod bayeux;
pub mod client_errors;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod history;
pub mod instances;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod password;
pub mod pem;
pub mod probe;
pub mod registry;
pub mod resource;
pub mod snapshot;
pub mod standin;
pub mod throttle;
pub mod tls;

pub use config::Settings;
pub use daemon::Daemon;
