//! The metrics of the history database: whether it is written, and the changes it kept or
//! lost.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PrometheusRegistry;

/// The history metrics.
#[derive(Default)]
pub struct HistoryMetrics {
    /// 1 while the history database is written, 0 while off or failing.
    pub writing: Gauge,
    /// Changes written to the history database.
    pub changes: Counter,
    /// Changes the history could not keep (its disk refused, or its queue was full).
    pub lost: Counter,
    /// Audit entries written.
    pub audit_entries: Counter,
    /// Audit entries the history could not keep (its disk refused, or its queue was full).
    pub audit_lost: Counter,
}

impl HistoryMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register(
            "history_writing",
            "1 while the history database is written; 0 while it is off, or its disk refuses writes",
            self.writing.clone(),
        );
        registry.register(
            "history_changes",
            "Changes written to the history database",
            self.changes.clone(),
        );
        registry.register(
            "history_lost",
            "Changes the history could not keep (its disk refused writes, or its queue was full)",
            self.lost.clone(),
        );
        registry.register(
            "audit_entries",
            "Audit trail entries written to the history database",
            self.audit_entries.clone(),
        );
        registry.register(
            "audit_lost",
            "Audit trail entries the history could not keep (its disk refused writes, or its queue was full)",
            self.audit_lost.clone(),
        );
    }
}
