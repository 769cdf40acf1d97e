//! The metrics of the HTTP layer: answers by route and status, connections open and refused,
//! and the malformed requests refused before routing.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PrometheusRegistry;

/// One HTTP answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route pattern (`/api/v2/services/{id}`), or `unmatched`.
    pub route: String,
    /// The answer's status code.
    pub status: u16,
}

/// The HTTP metrics.
#[derive(Default)]
pub struct HttpMetrics {
    /// HTTP answers, by route and status.
    pub requests: Family<HttpLabels, Counter>,
    /// Connections refused for malformed input before routing.
    pub client_errors: Counter,
    /// Client connections open (every listener, REST and notifications alike).
    pub connections: Gauge,
    /// Connections answered 503 because `[limits] max_connections` were already open.
    pub connections_refused: Counter,
}

impl HttpMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register(
            "http_client_errors",
            "Connections the HTTP layer refused for malformed input (bad request line or header, reset mid-request) before routing",
            self.client_errors.clone(),
        );
        registry.register(
            "http_connections",
            "Client connections open, on every listener",
            self.connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections answered 503 and closed because [limits] max_connections were open",
            self.connections_refused.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP answers, by route and status",
            self.requests.clone(),
        );
    }
}
