//! A cluster node's own news: it lost etcd, and got it back. A node that lost etcd decides
//! nothing and commits nothing, so no leader can tell of it; the node tells it itself, once
//! it has been stale for [`STALE_TOLD_AFTER`] (an etcd election's hiccup is no news), and
//! again when it is fresh. Each node tells only of itself, so two nodes never tell the same.
//! A node still reaching etcd for the first time after its start is not stale news.

use std::time::{Duration, SystemTime};

use super::event::{Event, EventKind, Severity};
use crate::cluster::record::millis;

/// How long a node is stale before it says so.
pub const STALE_TOLD_AFTER: Duration = Duration::from_secs(10);

/// What a node has seen of its own staleness.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeWatch {
    /// It has been fresh since its start: staleness from now on is news.
    fresh_once: bool,
    stale_since: Option<SystemTime>,
    told: bool,
}

impl NodeWatch {
    /// The node is `stale` (or not) at `now`: what to tell, with since when it was stale.
    pub fn observe(&mut self, stale: bool, now: SystemTime) -> Option<(EventKind, SystemTime)> {
        if !stale {
            self.fresh_once = true;
            let since = self.stale_since.take();
            return std::mem::take(&mut self.told)
                .then(|| since.map(|since| (EventKind::NodeFresh, since)))
                .flatten();
        }
        if !self.fresh_once {
            return None;
        }
        let since = *self.stale_since.get_or_insert(now);
        let long = now.duration_since(since).unwrap_or_default() >= STALE_TOLD_AFTER;
        (long && !self.told).then(|| {
            self.told = true;
            (EventKind::NodeStale, since)
        })
    }
}

/// The event telling `kind` of node `node`, stale since `since`, at `now`.
pub fn event(node: &str, kind: EventKind, since: SystemTime, now: SystemTime) -> Event {
    let since_ms = millis(since);
    let lasted = now.duration_since(since).unwrap_or_default().as_secs();
    let (severity, summary) = match kind {
        EventKind::NodeStale => (
            Severity::Warning,
            format!(
                "node {node} lost etcd {lasted} s ago: it serves its last states, marked stale, and decides nothing"
            ),
        ),
        _ => (
            Severity::Info,
            format!("node {node} reaches etcd again, after {lasted} s"),
        ),
    };
    Event::of_no_service(
        format!("node/{node}/{}/{since_ms}", kind.as_str()),
        kind,
        now,
        severity,
        summary,
        "what this node's etcd session saw",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn stale_at_start_is_no_news() {
        let mut watch = NodeWatch::default();
        assert_eq!(watch.observe(true, at(0)), None);
        assert_eq!(watch.observe(true, at(60)), None);
        assert_eq!(watch.observe(false, at(61)), None, "nothing was told");
    }

    #[test]
    fn a_long_loss_is_told_once_and_its_end_too() {
        let mut watch = NodeWatch::default();
        watch.observe(false, at(0));
        assert_eq!(watch.observe(true, at(100)), None);
        assert_eq!(watch.observe(true, at(109)), None, "an election's hiccup");
        assert_eq!(
            watch.observe(true, at(110)),
            Some((EventKind::NodeStale, at(100)))
        );
        assert_eq!(watch.observe(true, at(200)), None, "told once");
        assert_eq!(
            watch.observe(false, at(201)),
            Some((EventKind::NodeFresh, at(100)))
        );
        assert_eq!(watch.observe(false, at(202)), None);
    }

    #[test]
    fn a_short_loss_tells_nothing() {
        let mut watch = NodeWatch::default();
        watch.observe(false, at(0));
        watch.observe(true, at(1));
        assert_eq!(watch.observe(false, at(5)), None);
        // The next loss counts from its own start.
        watch.observe(true, at(50));
        assert_eq!(watch.observe(true, at(59)), None);
    }

    #[test]
    fn events_name_the_node_and_how_long() {
        let e = event("sw2", EventKind::NodeStale, at(100), at(112));
        assert_eq!(e.key, "node/sw2/nodeStale/1800000100000");
        assert_eq!(e.severity, Severity::Warning);
        assert!(
            e.summary.starts_with("node sw2 lost etcd 12 s ago"),
            "{}",
            e.summary
        );
        assert!(e.service.is_none());
    }
}
