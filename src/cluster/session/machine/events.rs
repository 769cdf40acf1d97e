//! The machine's vocabulary: the events it is told, the actions it asks for, the notes the
//! log words. Plain values, so that a test can write down a whole exchange.

use std::time::{Duration, Instant};

/// How a failed call failed, as far as the backoff cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The member answered that it has no etcd leader: an election is going on (or the
    /// member is cut off from the others).
    NoLeader,
    /// The member itself is gone: the connection was refused, reset or broken.
    Down,
    /// Anything else: timed out, refused by etcd.
    Other,
}

/// What a campaign found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Campaign {
    /// The leader key was absent and is now this node's, created at `term`.
    Elected { term: i64 },
    /// The leader key is this process's own, on its lease, from before a reconnection.
    StillOurs { term: i64 },
    /// Another node leads (or the key is not servicewatch's).
    Lost,
}

/// What happened, as the loop saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Only time passed.
    Tick,
    /// The round's member accepted the connection.
    Connected,
    /// The member says who it is and which member it follows as etcd leader (0: none).
    Status {
        member_id: u64,
        leader: u64,
    },
    /// etcd still has the lease, for `ttl` more as of `asked` (when the question left).
    LeaseAlive {
        ttl: Duration,
        asked: Instant,
    },
    /// etcd no longer has the lease (asked at reconnection, or the keep-alive said so).
    LeaseGone,
    LeaseGranted {
        id: i64,
        ttl: Duration,
        asked: Instant,
    },
    KeepAliveOpened,
    /// The watch asked for was created.
    WatchCreated,
    /// The newest key under the prefix was written at `revision` (0: none).
    Newest {
        revision: i64,
    },
    /// Every key was read, as of `revision`.
    Read {
        revision: i64,
    },
    /// The events of one watch response were delivered (see [`Machine::watched`]).
    WatchBatchEnd,
    /// etcd canceled the watch; `compacted` > 0: the revisions it was to replay are gone.
    WatchCanceled {
        compacted: i64,
    },
    /// The keep-alive answered: the lease holds for `ttl` from the renewal asked for.
    Renewed {
        ttl: Duration,
    },
    Campaigned(Campaign),
    /// A fenced write was refused: another node leads.
    WriteRefused,
    /// The daemon stops: give up the lease and campaign no more.
    Resigning,
    /// A call or stream of the round failed.
    Failed {
        failure: Failure,
        detail: String,
    },
}

/// What the loop is to do, in order. Calls answer with an event (or fail); the rest are
/// effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a round on member `member` (an index into the endpoints).
    Connect {
        member: usize,
    },
    /// Ask the member who it is and whom it follows (answered locally, never forwarded).
    Status,
    CheckLease {
        id: i64,
    },
    GrantLease {
        ttl: Duration,
    },
    KeepAlive {
        id: i64,
    },
    /// Create the watch on the prefix from revision `from` (dropping any other).
    Watch {
        from: i64,
    },
    /// Read the revision of the newest key under the prefix.
    ReadNewest,
    /// Read every key under the prefix.
    ReadAll,
    Renew,
    Campaign {
        lease: i64,
    },
    Revoke {
        lease: i64,
    },
    /// End the round: drop the connection and its streams.
    Disconnect,
    /// Tell the registry every stored service (what [`Action::ReadAll`] read) as of
    /// `revision`, with the history from `history_from` to follow.
    Synced {
        revision: i64,
        history_from: Option<i64>,
    },
    /// The node has served everything up to `revision`.
    Reached {
        revision: i64,
    },
    /// The lease is known to hold until then.
    LeaseUntil(Instant),
    Stale(bool),
    /// This node leads at `term`; `again`: on its own key from before a reconnection.
    Lead {
        term: i64,
        again: bool,
    },
    Depose,
    Log(Note),
}

impl Action {
    /// Whether the action only acts on the node (status, registry, log), not on etcd:
    /// such actions are done at once, even while a call is in flight.
    pub fn is_effect(&self) -> bool {
        matches!(
            self,
            Action::Synced { .. }
                | Action::Reached { .. }
                | Action::LeaseUntil(_)
                | Action::Stale(_)
                | Action::Lead { .. }
                | Action::Depose
                | Action::Log(_)
        )
    }
}

/// What the log says; the loop words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Caught up on `member`: serving the cluster's states (after an outage this long).
    Connected {
        member: usize,
        revision: i64,
        outage: Option<Duration>,
    },
    /// A round on `member` failed; the next one starts in `retry_in`. `first`: the first
    /// failure since the node last caught up (worth a warning; later ones are debug).
    RoundFailed {
        member: usize,
        detail: String,
        retry_in: Duration,
        first: bool,
    },
    /// The node turned stale: it lost etcd.
    Lost { member: usize, detail: String },
    /// The node never reached etcd yet.
    CannotReach { member: usize, detail: String },
    /// This process's lease ran out before it could renew it.
    LeaseExpired { member: usize },
    /// etcd compacted the revisions the watch was to replay: everything is read again.
    Compacted { last: Option<i64>, compacted: i64 },
    /// The watch replays the changes missed before the node serves again.
    Replaying { last: i64, newest: i64 },
}

/// How a watch event is to be told to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A change before the last full read: for the node's log of changes only.
    Past,
    /// A change to publish.
    Changed,
    /// Not for this round (it ended).
    Ignored,
}
