#![cfg(feature = "cluster")]
//! A three-member etcd losing one member, the etcd (raft) leader or a follower, under three
//! servicewatch nodes: each node is stale for at most a second (most not at all), the
//! servicewatch leader keeps leading (no election, so no monitor restarted), and a change
//! made right after the loss reaches every node.
//!
//! Each node's `/readyz` is polled every 25 ms from just before the kill; the time it
//! answered anything but 200 is its stale time, printed for docs/cluster.md ("failover
//! figures"). `MEMBER_LOSSES` sets how many times each kind of member is lost (1 by default).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::etcd::{Etcd, raft_leader};
use common::{Backend, Mode, eventually};

/// How often each node's readiness is polled.
const POLL: Duration = Duration::from_millis(25);
/// The most staleness the loss of one member may cost a node.
const MOST: Duration = Duration::from_secs(1);
/// The longest a normal etcd election takes: two election timeouts (1 s each by default),
/// and a little for a busy machine. When a vote splits, it takes longer, and no node can be
/// back before etcd is; the test then checks that each node is back within a second of it.
const NORMAL_ELECTION: Duration = Duration::from_millis(2300);
/// How long each loss is watched: past the lease (3 s), so that a node that only notices at
/// a renewal, or a leader whose lease would run out, shows up in the figures.
const WINDOW: Duration = Duration::from_secs(5);

/// How stale a node was while it was watched.
struct Staleness {
    /// The time its `/readyz` answered anything but 200 (or nothing within the poll's
    /// timeout), each answer counting until the next one.
    total: Duration,
    /// When its last stale spell ended.
    back: Option<Instant>,
}

async fn stale_time(admin: String, stop: Arc<AtomicBool>) -> Staleness {
    let client = reqwest::Client::new();
    let mut stale_since: Option<Instant> = None;
    let mut total = Duration::ZERO;
    let mut back = None;
    while !stop.load(Ordering::Acquire) {
        let ready = client
            .get(format!("http://{admin}/readyz"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        let now = Instant::now();
        match (ready, stale_since) {
            (false, None) => stale_since = Some(now),
            (true, Some(since)) => {
                total += now - since;
                stale_since = None;
                back = Some(now);
            }
            _ => {}
        }
        tokio::time::sleep(POLL).await;
    }
    Staleness {
        total: total + stale_since.map_or(Duration::ZERO, |since| since.elapsed()),
        back,
    }
}

/// The member `node` last said it caught up on.
fn member_of(node: &Node) -> String {
    let lines = node.process.log_lines("connected to etcd");
    let line = lines.last().map(String::as_str).unwrap_or_default();
    line.split("member=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_string()
}

async fn elections_won(nodes: &[Node]) -> Vec<Option<f64>> {
    let mut won = Vec::new();
    for node in nodes {
        won.push(
            node.metric("servicewatch_cluster_elections_won_total")
                .await,
        );
    }
    won
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lost {
    RaftLeader,
    Follower,
}

/// One member's loss, as measured.
struct Loss {
    lost: Lost,
    /// How long etcd itself had no leader.
    elected: Duration,
    /// Each node's stale time.
    stale: Vec<Duration>,
    /// Whether the leader was deposed and took over again (after a split vote only).
    reelected: bool,
}

/// Kills one member of the kind `lost` and flips the backend right after; checks that the
/// change reaches every node, that each node's staleness stays within a second (of the kill,
/// or of etcd's new leader after a split vote), and that the same node leads, without an
/// election after a normal one.
async fn lose_one(members: &mut [Etcd], nodes: &[Node], single: &mut Backend, lost: Lost) -> Loss {
    let lead = leader(nodes, Duration::from_secs(20)).await;
    agreed(nodes, Duration::from_secs(20)).await;
    let won = elections_won(nodes).await;
    let raft = eventually(Duration::from_secs(10), "an etcd leader", || {
        raft_leader(members)
    })
    .await;
    let on: Vec<String> = nodes.iter().map(member_of).collect();
    // A follower some node uses, if any does.
    let follower = (0..members.len())
        .filter(|&i| i != raft)
        .max_by_key(|&i| on.contains(&members[i].endpoint()));
    let victim = match lost {
        Lost::RaftLeader => raft,
        Lost::Follower => follower.expect("a follower member"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let admin = node.process.admin.clone().expect("an admin listener");
            tokio::spawn(stale_time(admin, stop.clone()))
        })
        .collect();
    let killed = Instant::now();
    members[victim].kill();
    // How long etcd itself had no leader, for comparison.
    let survivors: &[Etcd] = members;
    let elected = async {
        eventually(Duration::from_secs(10), "a new etcd leader", || async {
            raft_leader(survivors).await.map(|_| killed.elapsed())
        })
        .await
    };
    // A change right after the loss reaches every node: nothing decided meanwhile is lost.
    let flipped = async {
        flip_stat(single, nodes, None, Duration::from_secs(15)).await;
        killed.elapsed()
    };
    let (elected, changed) = tokio::join!(elected, flipped);
    // The observation window, not a wait for a state: a node on a surviving member may
    // only notice the loss at its next call.
    while killed.elapsed() < WINDOW {
        tokio::time::sleep(POLL).await;
    }
    stop.store(true, Ordering::Release);
    let mut stale = Vec::new();
    for watcher in watchers {
        stale.push(watcher.await.unwrap());
    }
    eprintln!(
        "{lost:?} member lost ({}): etcd had a leader again after {elected:?}; the change reached every node after {changed:?}",
        members[victim].endpoint()
    );
    for ((node, stale), on) in nodes.iter().zip(&stale).zip(&on) {
        eprintln!("  node {} (on {on}): stale {:?}", node.name, stale.total);
    }
    assert_eq!(leader(nodes, Duration::from_secs(10)).await, lead);
    let split_vote = elected > NORMAL_ELECTION;
    let reelected = elections_won(nodes).await != won;
    if split_vote {
        eprintln!(
            "  (a split vote: etcd took longer than two election timeouts; the leader {})",
            if reelected {
                "outlived what it could prove of its lease and took over again"
            } else {
                "kept its term"
            }
        );
    } else {
        assert!(!reelected, "no election");
    }
    for (node, stale) in nodes.iter().zip(&stale) {
        let back_after_etcd = stale
            .back
            .map_or(Duration::ZERO, |back| back - killed)
            .saturating_sub(elected);
        assert!(
            stale.total <= MOST || (split_vote && back_after_etcd <= MOST),
            "{lost:?}: node {} was stale for {:?}, back {back_after_etcd:?} after etcd",
            node.name,
            stale.total
        );
    }
    members[victim].resume();
    agreed(nodes, Duration::from_secs(20)).await;
    Loss {
        lost,
        elected,
        stale: stale.iter().map(|s| s.total).collect(),
        reelected,
    }
}

#[test]
fn losing_any_one_of_three_etcd_members_costs_a_node_at_most_a_second_of_staleness() {
    if !common::etcd::available() {
        return;
    }
    let losses: usize = std::env::var("MEMBER_LOSSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut members = Etcd::members(3);
    let endpoints = members
        .iter()
        .map(Etcd::endpoint)
        .collect::<Vec<_>>()
        .join("\", \"");
    let mut single = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&single);
    // The default lease (3 s): an etcd election takes one to two election timeouts (1 s
    // each by default), and a leader must prove its lease across it to keep leading.
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let toml = node_toml(&endpoints, name, &services)
                .replace("lease_ttl = \"2s\"", "lease_ttl = \"3s\"");
            Node::start(name, toml)
        })
        .collect();
    runtime.block_on(async {
        let mut figures = Vec::new();
        for _ in 0..losses {
            for lost in [Lost::RaftLeader, Lost::Follower] {
                figures.push(lose_one(&mut members, &nodes, &mut single, lost).await);
            }
        }
        for lost in [Lost::RaftLeader, Lost::Follower] {
            let of: Vec<&Loss> = figures.iter().filter(|l| l.lost == lost).collect();
            let mut stale: Vec<Duration> = of.iter().flat_map(|l| l.stale.clone()).collect();
            stale.sort();
            let mut elected: Vec<Duration> = of.iter().map(|l| l.elected).collect();
            elected.sort();
            eprintln!(
                "{lost:?} member lost {} times ({} re-elections): etcd without a leader p50 {:?} max {:?}; node stale time over {} node-losses: {} stale at all, p50 {:?}, max {:?}",
                of.len(),
                of.iter().filter(|l| l.reelected).count(),
                percentile(&elected, 0.5),
                elected.last().unwrap(),
                stale.len(),
                stale.iter().filter(|s| !s.is_zero()).count(),
                percentile(&stale, 0.5),
                stale.last().unwrap()
            );
        }
    });
}
