//! The changes a cluster node has published, by etcd revision, so that a client that comes
//! from another node (its node died) and presents the last revision it saw receives exactly
//! the changes after it. Every node publishes the same sequence, so any node's log serves.
//!
//! The log starts at the node's first read of etcd. A node that has just started fills it
//! from etcd's history before that read (the same watch replays it), rendering each past
//! change as the live nodes published it; until that is done, and for a client whose
//! revision is older than anything the log holds, the answer is `None` (the caller then
//! sends the current states instead).

use std::collections::{BTreeSet, HashMap, VecDeque};

use actix_web::web::Bytes;

use crate::cluster::ServiceRecord;
use crate::domain::maintenance::Window;
use crate::snapshot::PublishedService;

/// How many changes a node keeps: a mass outage of every service of a large site, with room
/// to spare (a few MB).
const LOG_LIMIT: usize = 20_000;

/// One change as published.
struct Logged {
    revision: i64,
    feature: String,
    notification: Bytes,
}

/// A service as the history replayed so far shows it.
#[derive(Default)]
pub(super) struct Replayed {
    pub record: Option<ServiceRecord>,
    pub windows: Vec<Window>,
    /// The resource last rendered from them: a past write that left it as it was is not a
    /// change anyone was told of.
    json: Bytes,
}

/// The log of one node.
pub(super) struct ChangeLog {
    log: VecDeque<Logged>,
    /// The log holds every change after this revision.
    from: i64,
    /// The revision of the last change announced, and of the last one published.
    announced: i64,
    published: i64,
    /// While the history before a read is replayed: where it starts, and the revision of
    /// its last write (the log is whole once that has arrived).
    filling: Option<(i64, i64)>,
    replayed: HashMap<String, Replayed>,
}

impl ChangeLog {
    pub fn new() -> Self {
        ChangeLog {
            log: VecDeque::new(),
            from: i64::MAX,
            announced: 0,
            published: 0,
            filling: None,
            replayed: HashMap::new(),
        }
    }

    /// Whether the log holds every change from its start on: the node's first read is
    /// done and the history before it, if etcd still had it, has been replayed. Until
    /// then a resuming client cannot be given exactly what it missed.
    pub fn is_whole(&self) -> bool {
        self.from != i64::MAX && self.filling.is_none()
    }

    /// The revision of the last change published.
    pub fn published_revision(&self) -> i64 {
        self.published
    }

    /// Every change announced so far goes out with this publish.
    pub fn published(&mut self) {
        self.published = self.announced;
    }

    /// The changes after `revision` that a client seeing `features` missed, as published;
    /// `None` when this node does not hold them all.
    pub fn missed(&self, revision: i64, features: &BTreeSet<String>) -> Option<Vec<Bytes>> {
        (revision >= self.from).then(|| {
            self.log
                .iter()
                .filter(|e| e.revision > revision && e.revision <= self.published)
                .filter(|e| features.contains(&e.feature))
                .map(|e| e.notification.clone())
                .collect()
        })
    }

    /// A change announced now.
    pub fn announce(&mut self, revision: i64, shown: &PublishedService) {
        self.announced = self.announced.max(revision);
        if self.from != i64::MAX {
            self.push(revision, shown);
        }
    }

    /// The node is about to apply a full read: what it publishes from it is not a change
    /// of the log.
    pub fn pause(&mut self) {
        self.log.clear();
        self.from = i64::MAX;
        self.filling = None;
        self.replayed.clear();
    }

    /// Everything stored was read at `revision`: the log starts afresh after it, and
    /// reaches back to `history_from` once the history up to `last_write` (the newest
    /// write read) has been replayed.
    pub fn restart(&mut self, revision: i64, history_from: Option<i64>, last_write: i64) {
        self.pause();
        self.from = revision;
        self.announced = self.announced.max(revision);
        match history_from {
            Some(from) if last_write >= from => self.filling = Some((from, last_write)),
            Some(from) => self.from = from - 1,
            None => {}
        }
    }

    /// The service `id` as replayed so far, to update with a past write; `None` when no
    /// history is being replayed.
    pub fn replaying(&mut self, id: &str) -> Option<&mut Replayed> {
        self.filling?;
        Some(self.replayed.entry(id.to_string()).or_default())
    }

    /// A past write at `revision` rendered as `shown` (`None`: not renderable, such as
    /// windows of a service with no record yet): logged if it changed the resource.
    pub fn replayed(&mut self, id: &str, revision: i64, shown: Option<PublishedService>) {
        let Some((from, last)) = self.filling else {
            return;
        };
        if let (Some(shown), Some(entry)) = (shown, self.replayed.get_mut(id))
            && shown.json != entry.json
        {
            entry.json = shown.json.clone();
            self.log.push_back(Logged {
                revision,
                feature: shown.feature,
                notification: shown.notification,
            });
        }
        if revision >= last {
            self.filling = None;
            self.replayed.clear();
            self.from = from - 1;
            self.trim();
        }
    }

    fn push(&mut self, revision: i64, shown: &PublishedService) {
        self.log.push_back(Logged {
            revision,
            feature: shown.feature.clone(),
            notification: shown.notification.clone(),
        });
        self.trim();
    }

    fn trim(&mut self) {
        while self.log.len() > LOG_LIMIT {
            if let Some(oldest) = self.log.pop_front() {
                self.from = oldest.revision;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::service::ServiceState;
    use serde_json::{Map, Value};

    fn shown(id: &str, state: ServiceState) -> PublishedService {
        let mut resource = Map::new();
        resource.insert("id".into(), Value::from(id));
        resource.insert("state".into(), Value::from(state.as_str()));
        PublishedService::new("api-voice", state, resource).at_revision(1)
    }

    fn features() -> BTreeSet<String> {
        BTreeSet::from(["api-voice".to_string()])
    }

    #[test]
    fn a_client_gets_the_changes_after_its_revision_once_published() {
        let mut log = ChangeLog::new();
        log.restart(10, None, 0);
        log.announce(11, &shown("a", ServiceState::Inactive));
        log.announce(12, &shown("b", ServiceState::Inactive));
        assert_eq!(
            log.missed(10, &features()).unwrap().len(),
            0,
            "not published yet"
        );
        log.published();
        assert_eq!(log.missed(10, &features()).unwrap().len(), 2);
        assert_eq!(log.missed(11, &features()).unwrap().len(), 1);
        assert_eq!(
            log.missed(9, &features()),
            None,
            "from before the node's read"
        );
        assert_eq!(
            log.missed(10, &BTreeSet::new()).unwrap().len(),
            0,
            "a client sees only its features"
        );
    }

    #[test]
    fn the_history_before_the_read_fills_the_log_without_repeats() {
        let mut log = ChangeLog::new();
        log.restart(20, Some(5), 15);
        assert_eq!(log.missed(8, &features()), None, "until the history is in");
        log.replaying("a");
        log.replayed("a", 7, Some(shown("a", ServiceState::Active)));
        log.replaying("a");
        log.replayed("a", 9, Some(shown("a", ServiceState::Active)));
        log.replaying("a");
        log.replayed("a", 15, Some(shown("a", ServiceState::Inactive)));
        log.published();
        let missed = log.missed(6, &features()).unwrap();
        assert_eq!(missed.len(), 2, "a write that changed nothing is no change");
        assert_eq!(log.missed(4, &features()), Some(missed), "whole from 5 on");
        assert_eq!(log.missed(3, &features()), None);
    }
}
