//! A committed change of a service, as the alerts are told of it: built from the service's
//! spec, the record the ledger committed (with every server's health) and its maintenance
//! windows, alike on every node.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::derive::{Observed, View};
use super::event::ServiceRef;
use crate::cluster::ServiceRecord;
use crate::config::services::ServiceSpec;
use crate::domain::health::Health;
use crate::domain::maintenance::{Window, effective};
use crate::domain::redundancy::redundancy;
use crate::domain::service::Part;

/// The observation of `spec`'s service as `record` says, with `windows` holding, committed
/// at `revision`, `at`, for `reason`.
pub fn observed(
    spec: &ServiceSpec,
    record: &ServiceRecord,
    windows: &[Window],
    revision: i64,
    at: SystemTime,
    reason: &str,
) -> Observed {
    let in_window = |label: &str| windows.iter().any(|w| w.instance.as_deref() == Some(label));
    let servers: Vec<(Part, Health)> = spec
        .servers()
        .map(|(part, _)| {
            let label = part.metric_label();
            let health = record
                .servers
                .iter()
                .find(|s| s.part == label)
                .map_or(Health::Unknown, |s| s.health);
            (part, effective(health, in_window(&label)))
        })
        .collect();
    let quorum = spec.cassandra.as_ref().map(|c| c.quorum);
    let attributes: BTreeMap<String, String> = spec
        .attributes
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    Observed {
        service: ServiceRef {
            id: spec.id.clone(),
            name: spec.name.clone(),
            service_type: spec.service_type.as_str().to_string(),
        },
        attributes,
        revision,
        at,
        reason: reason.to_string(),
        switchover: record.switchover,
        view: View {
            state: record.assessment.state,
            since: record.since,
            serving: record.assessment.serving,
            redundant: redundancy(&servers, quorum),
            redundant_since: at,
            service_maintenance: windows.iter().any(|w| w.instance.is_none()),
            instance_maintenance: windows.iter().any(|w| w.instance.is_some()),
            flapping: false,
        },
    }
}
