//! The metrics of the notification side: the Bayeux sessions and their transports, and what
//! reaches them or is dropped because a client does not keep up.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PrometheusRegistry;

/// The notification metrics.
#[derive(Default)]
pub struct NotificationMetrics {
    /// Bayeux client sessions alive.
    pub sessions: Gauge,
    /// WebSocket connections open on the notification endpoint.
    pub websocket_connections: Gauge,
    /// Long-polling connects held open, waiting for a message.
    pub long_polls_held: Gauge,
    /// Notifications handed to client sessions.
    pub messages_delivered: Counter,
    /// Sessions dropped because a queue toward them was full.
    pub slow_consumers: Counter,
}

impl NotificationMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register(
            "bayeux_sessions",
            "Bayeux client sessions alive",
            self.sessions.clone(),
        );
        registry.register(
            "websocket_connections",
            "WebSocket connections open on the notification endpoint",
            self.websocket_connections.clone(),
        );
        registry.register(
            "long_polls_held",
            "Long-polling connects held open, waiting for a message to deliver",
            self.long_polls_held.clone(),
        );
        registry.register(
            "messages_delivered",
            "Notifications handed to client sessions",
            self.messages_delivered.clone(),
        );
        registry.register(
            "slow_consumers",
            "Client sessions dropped because a queue toward them was full (the session's mailbox, its WebSocket's, or its long-polling backlog)",
            self.slow_consumers.clone(),
        );
    }
}
