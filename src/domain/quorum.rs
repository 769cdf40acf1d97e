//! Many eyes: one server's health as the cluster sees it, from each live node's view.
//!
//! On a cluster every node probes every server and publishes what it sees (its *view*);
//! the leader combines the views of the nodes that are alive into the one health the
//! decision rules ([`super::state`]) take. A single host's network path then cannot flip a
//! service: with the default rule a server counts as down only when a majority of the nodes
//! that see it at all see it down.
//!
//! Who votes: each live node's view of the server, the leader's own included. A node that
//! has not probed the server yet (`Unknown`) abstains: it has seen nothing either way, and
//! counting it would make a starting node tip a decision. A node that is gone (its lease
//! ended, so its view left etcd) is not among the views at all.
//!
//! Ties: with an even number of voters split evenly, `majority` keeps the server healthy.
//! Down is the claim that moves a service (a switchover, an Inactive state); it needs more
//! than half the voters. Two nodes that disagree so leave the service where it is, which is
//! what the issue asks of one node's broken path. (`any` or `all` say otherwise, by choice.)
//!
//! A healthy result is `Degraded` when at least half the healthy voters see the server
//! degraded: it serves like `Up` either way, and an impairment half the nodes see is worth
//! showing.

use std::fmt;
use std::str::FromStr;

use super::health::Health;

/// How the views of the live nodes make a server down (`[cluster] quorum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// Down when more than half of the voters see it down (the default).
    #[default]
    Majority,
    /// Down when any voter sees it down: the fastest to react, and the most exposed to one
    /// node's network path.
    Any,
    /// Down only when every voter sees it down: the most tolerant of a node's broken path,
    /// and the slowest to notice a partial outage.
    All,
}

impl Quorum {
    pub fn as_str(self) -> &'static str {
        match self {
            Quorum::Majority => "majority",
            Quorum::Any => "any",
            Quorum::All => "all",
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Quorum {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        [Quorum::Majority, Quorum::Any, Quorum::All]
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or(())
    }
}

/// The server's health from the `votes` of the live nodes (one each), by `rule`. `Unknown`
/// when no voter has seen the server yet.
pub fn combine(rule: Quorum, votes: &[Health]) -> Health {
    let count = |wanted: Health| votes.iter().filter(|v| **v == wanted).count();
    let (up, degraded, down) = (
        count(Health::Up),
        count(Health::Degraded),
        count(Health::Down),
    );
    let voters = up + degraded + down;
    if voters == 0 {
        return Health::Unknown;
    }
    let is_down = match rule {
        Quorum::Majority => down * 2 > voters,
        Quorum::Any => down > 0,
        Quorum::All => down == voters,
    };
    if is_down {
        Health::Down
    } else if degraded * 2 >= up + degraded {
        Health::Degraded
    } else {
        Health::Up
    }
}

/// Whether the voters disagree about the server: some see it healthy and some see it down
/// (an impairment seen by some only is no disagreement about whether it serves).
pub fn disagree(votes: &[Health]) -> bool {
    votes.contains(&Health::Down) && votes.iter().any(|v| v.is_healthy())
}

#[cfg(test)]
mod tests {
    use super::Quorum::{All, Any, Majority};
    use super::*;
    use Health::{Degraded as G, Down as D, Unknown as U, Up as P};

    #[test]
    fn one_voter_decides_alone_whatever_the_rule() {
        for rule in [Majority, Any, All] {
            assert_eq!(combine(rule, &[P]), P, "{rule}");
            assert_eq!(combine(rule, &[D]), D, "{rule}");
            assert_eq!(combine(rule, &[G]), G, "{rule}");
        }
    }

    #[test]
    fn a_tie_of_two_keeps_the_server_healthy_under_majority() {
        assert_eq!(combine(Majority, &[P, D]), P);
        assert_eq!(combine(Majority, &[D, P]), P, "order does not matter");
        assert_eq!(combine(Majority, &[D, D]), D);
        assert_eq!(combine(Majority, &[P, P]), P);
        assert_eq!(combine(Any, &[P, D]), D);
        assert_eq!(combine(All, &[P, D]), P);
        assert_eq!(combine(All, &[D, D]), D);
    }

    #[test]
    fn three_voters_need_two_to_see_it_down() {
        assert_eq!(combine(Majority, &[P, P, D]), P, "one node's path");
        assert_eq!(combine(Majority, &[P, D, D]), D);
        assert_eq!(combine(Majority, &[D, D, D]), D);
        assert_eq!(combine(Any, &[P, P, D]), D);
        assert_eq!(combine(All, &[P, D, D]), P);
    }

    #[test]
    fn five_voters_need_three() {
        assert_eq!(combine(Majority, &[P, P, P, D, D]), P);
        assert_eq!(combine(Majority, &[P, P, D, D, D]), D);
        assert_eq!(combine(Any, &[P, P, P, P, D]), D);
        assert_eq!(combine(All, &[D, D, D, D, P]), P);
        assert_eq!(combine(All, &[D; 5]), D);
    }

    #[test]
    fn a_node_that_has_not_probed_yet_abstains() {
        assert_eq!(combine(Majority, &[U, U, U]), U, "nobody has seen it");
        assert_eq!(combine(Majority, &[]), U);
        assert_eq!(combine(Majority, &[U, D]), D, "the one voter decides");
        assert_eq!(combine(Majority, &[U, P, D]), P, "a tie of the two voters");
        assert_eq!(combine(Majority, &[U, D, D]), D);
        assert_eq!(
            combine(All, &[U, D]),
            D,
            "an abstention is not a healthy vote"
        );
        assert_eq!(combine(Any, &[U, U, P]), P);
    }

    #[test]
    fn degraded_counts_as_healthy_and_shows_when_half_the_healthy_see_it() {
        assert_eq!(combine(Majority, &[G, G, D]), G, "degraded is not down");
        assert_eq!(
            combine(Majority, &[P, G, D]),
            G,
            "one of two healthy voters"
        );
        assert_eq!(combine(Majority, &[P, P, G]), P);
        assert_eq!(combine(Majority, &[G, D, D]), D);
        assert_eq!(combine(All, &[G, D, D]), G);
    }

    #[test]
    fn disagreement_is_about_down_or_not() {
        assert!(disagree(&[P, D]));
        assert!(disagree(&[G, D, D]));
        assert!(!disagree(&[P, G]));
        assert!(!disagree(&[D, D, U]));
        assert!(!disagree(&[P]));
        assert!(!disagree(&[]));
    }

    #[test]
    fn the_rule_is_named_as_configured() {
        for rule in [Majority, Any, All] {
            assert_eq!(rule.as_str().parse::<Quorum>(), Ok(rule));
        }
        assert_eq!("most".parse::<Quorum>(), Err(()));
        assert_eq!(Quorum::default(), Majority);
    }
}
