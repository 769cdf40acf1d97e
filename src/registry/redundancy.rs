//! A service's redundancy gauge (`servicewatch_service_redundant`), set wherever this node
//! learns a server's health or a window: from its own monitors' reports (alone, or leading),
//! from the leader's records (a follower, which adopts every server's health from them), and
//! from maintenance windows (every node). Each node so shows what its own resource shows.

use super::Registry;
use crate::domain::redundancy::{has_spare, redundancy};

impl Registry {
    /// Sets the redundancy gauge of the service at `index` from each of its servers' health,
    /// an instance in maintenance counting as down (it is no spare). A service with no spare
    /// by configuration has no series: nothing to lose, no alert to hold back. While a
    /// server's health is unknown (at start, no series yet; after a reload restarted its
    /// monitors, or a follower not told yet) the last value stands: a monitor restarting
    /// is no news of the service, and an alert on 0 neither resolves nor fires on it.
    pub(super) fn show_redundancy(&self, index: usize) {
        let tracked = &self.services[index];
        let id = &tracked.spec.id;
        let quorum = tracked.quorum();
        let healths = tracked.healths();
        if !has_spare(healths.iter().map(|(part, _)| *part), quorum) {
            self.metrics.services.forget_redundant(id);
            return;
        }
        // With a spare, `None` only while a server's health is unknown.
        if let Some(redundant) = redundancy(&healths, quorum) {
            self.metrics.services.set_redundant(id, redundant);
        }
    }
}
