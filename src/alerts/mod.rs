//! Alerts: who is told when a service changes, and how.
//!
//! Events are decided from what the ledger committed ([`crate::registry`]'s one path from
//! decision to publish), so that every node derives the same events with the same keys;
//! they are routed to receivers, grouped, kept in a durable outbox and delivered at least
//! once. docs/alerts.md describes it for operators.

//! What receivers are given is public ([`event`], [`notification`], [`receivers`]), for
//! the tests that drive each receiver against a real counterpart; the rest is the daemon's.

pub(crate) mod certificates;
pub(crate) mod derive;
pub(crate) mod dispatcher;
pub mod event;
pub(crate) mod flapping;
pub(crate) mod grouping;
pub(crate) mod node;
pub mod notification;
pub(crate) mod observe;
pub(crate) mod outbox;
pub mod receivers;
pub(crate) mod routing;
