//! The metric of configuration reloads (SIGHUP), by whether each was applied.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry as PrometheusRegistry;

/// How a reload ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied` or `refused`.
    pub result: String,
}

/// The reload metric.
#[derive(Default)]
pub struct ReloadMetrics {
    results: Family<ReloadLabels, Counter>,
}

impl ReloadMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            self.results.clone(),
        );
    }

    /// Counts a reload.
    pub fn count(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.results
            .get_or_create(&ReloadLabels {
                result: result.to_string(),
            })
            .inc();
    }
}
