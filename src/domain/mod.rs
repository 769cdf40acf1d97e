//! The pure core: what a probe outcome means for an instance, which instance of a pair
//! serves, and what state the service is in.
//!
//! Architecture invariant: nothing in this module does I/O, reads a clock or spawns work.
//! Every function takes plain values and returns plain values, so each rule is unit-tested
//! byte for byte without actors, sockets or timers.

pub(crate) mod event_kind;
pub mod health;
pub(crate) mod maintenance;
pub(crate) mod pairing;
pub(crate) mod quorum;
pub(crate) mod redundancy;
pub(crate) mod roles;
pub(crate) mod service;
pub(crate) mod state;
pub(crate) mod switchover;
pub(crate) mod text;
