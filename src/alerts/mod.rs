//! Alerts: who is told when a service changes, and how.
//!
//! Events are decided from what the ledger committed ([`crate::registry`]'s one path from
//! decision to publish), so that every node derives the same events with the same keys;
//! they are routed to receivers, grouped, kept in a durable outbox and delivered at least
//! once. docs/alerts.md describes it for operators.

pub mod derive;
pub mod dispatcher;
pub mod event;
pub mod flapping;
pub mod grouping;
pub mod notification;
pub mod observe;
pub mod outbox;
pub mod receivers;
pub mod routing;
