#![cfg(feature = "cluster")]
//! Several nodes on etcd: a real etcd member started by the test, three servicewatch
//! binaries on loopback, real backends that fail, WebSocket subscribers on every node that
//! move to another node (presenting the last revision they saw) when theirs dies.
//!
//! `CLUSTER_KILLS` sets the number of leader kills (CI runs a few; the figures in
//! docs/cluster.md come from a longer run).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bayeux::WsClient;
use common::cluster::*;
use common::etcd::Etcd;
use common::{Backend, Mode, PASSWORD, TestDaemon, USER, eventually};
use serde_json::{Value, json};

#[test]
fn three_nodes_agree_and_a_killed_leader_is_replaced_without_a_gap() {
    if !common::etcd::available() {
        return;
    }
    let kills: usize = std::env::var("CLUSTER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut etcd = Etcd::start();
    let mut primary = runtime.block_on(Backend::start(Mode::Accept));
    let mut backup = runtime.block_on(Backend::start(Mode::Accept));
    let mut single = runtime.block_on(Backend::start(Mode::Accept));
    let services = format!(
        "[[service]]\nid = \"sip\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\n\n[[service]]\nid = \"stat\"\ntype = \"Reporting\"\nprimary = {}\ncheck = {{ {FAST} }}\n",
        primary.toml(),
        backup.toml(),
        single.toml()
    );
    let mut nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["sw1", "sw2", "sw3"], &services);
    let live = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|n| n.process.addr.clone())
            .collect::<Vec<_>>(),
    ));
    let first = runtime.block_on(async {
        leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await
    });
    assert_eq!(state_of(&first, "sip"), ("Active".into(), json!("primary")));
    assert_eq!(state_of(&first, "stat").0, "Active");

    let stop = Arc::new(AtomicBool::new(false));
    let subscribers: Vec<Subscriber> = (0..6)
        .map(|i| {
            let addr = nodes[i % nodes.len()].process.addr.clone();
            let backoff = Duration::from_millis(20 + 800 * i as u64);
            Subscriber::start(&runtime, live.clone(), addr, backoff, stop.clone())
        })
        .collect();
    // Every subscriber follows before the kills begin: each sees a first change.
    runtime.block_on(async {
        single.close().await;
        eventually(
            Duration::from_secs(10),
            "every subscriber to see a first change",
            || async {
                subscribers
                    .iter()
                    .all(|s| {
                        s.seen()
                            .last()
                            .is_some_and(|c| c.id == "stat" && c.state == "Inactive")
                    })
                    .then_some(())
            },
        )
        .await;
    });

    let mut to_leader = Vec::new();
    let mut to_ui = Vec::new();
    for kill in 0..kills {
        runtime.block_on(async {
            let lead = leader(&nodes, Duration::from_secs(15)).await;
            // A change while all nodes run: the serving instance fails.
            let before = agreed(&nodes, Duration::from_secs(10)).await;
            let (_, serving) = state_of(&before, "sip");
            if serving == json!("primary") {
                primary.close().await;
                backup.reopen().await;
            } else {
                backup.close().await;
                primary.reopen().await;
            }
            let changed = eventually(
                Duration::from_secs(10),
                "the switchover on every node",
                || async {
                    // Done when the other instance serves: closing the serving one
                    // first may show the service Inactive for a probe interval.
                    let now = agreed(&nodes, Duration::from_secs(10)).await;
                    let (state, now_serving) = state_of(&now, "sip");
                    (state == "Active" && now_serving != serving).then_some(now)
                },
            )
            .await;
            let expected_stat = if state_of(&changed, "stat").0 == "Active" {
                "Inactive"
            } else {
                "Active"
            };

            // The leader dies; at the same moment a backend changes, which only the next
            // leader can see.
            let killed_at = Instant::now();
            let seen_before: Vec<usize> = subscribers.iter().map(|s| s.seen().len()).collect();
            let dead = nodes.remove(lead);
            drop(dead.process);
            live.lock()
                .unwrap()
                .retain(|a| nodes.iter().any(|n| &n.process.addr == a));
            if expected_stat == "Inactive" {
                single.close().await;
            } else {
                single.reopen().await;
            }
            let new = leader(&nodes, Duration::from_secs(15)).await;
            to_leader.push(killed_at.elapsed());
            eventually(
                Duration::from_secs(15),
                "a UI on another node to see the change",
                || async {
                    // Any change seen since the kill, not the last one: the new leader
                    // may publish another service's change right after.
                    subscribers
                        .iter()
                        .zip(&seen_before)
                        .any(|(s, &before)| {
                            s.seen()
                                .iter()
                                .skip(before)
                                .any(|c| c.id == "stat" && c.state == expected_stat)
                        })
                        .then_some(())
                },
            )
            .await;
            to_ui.push(killed_at.elapsed());
            eprintln!(
                "kill {kill}: {} killed, {} leads after {:?}; a UI saw the next change after {:?}",
                dead.name,
                nodes[new].name,
                to_leader.last().unwrap(),
                to_ui.last().unwrap()
            );
            // The dead node comes back, as systemd would restart it.
            let back = Node::start(&dead.name, dead.toml);
            live.lock().unwrap().push(back.process.addr.clone());
            nodes.push(back);
            agreed(&nodes, Duration::from_secs(15)).await;
        });
    }
    runtime.block_on(async {
        // The leader paused past its lease while a backend fails: another node takes over
        // and publishes the change; the paused node, resumed, steps down and its
        // subscribers (still connected to it) get what it missed.
        let lead = leader(&nodes, Duration::from_secs(15)).await;
        nodes[lead].pause();
        eventually(Duration::from_secs(10), "another node to lead", || async {
            for (i, node) in nodes.iter().enumerate() {
                if i != lead && node.leads().await {
                    return Some(());
                }
            }
            None
        })
        .await;
        flip_stat(&mut single, &nodes, Some(lead), Duration::from_secs(10)).await;
        nodes[lead].resume();
        agreed(&nodes, Duration::from_secs(15)).await;

        // etcd dies and comes back: the nodes serve their last states meanwhile, then
        // resume by themselves; a change made after flows to every subscriber.
        etcd.kill();
        eventually(Duration::from_secs(10), "every node stale", || async {
            for node in &nodes {
                node.services().await?.1.as_ref()?;
            }
            Some(())
        })
        .await;
        etcd.resume();
        leader(&nodes, Duration::from_secs(20)).await;
        flip_stat(&mut single, &nodes, None, Duration::from_secs(20)).await;
    });
    // Everyone settles, then the sequences are compared.
    runtime.block_on(async {
        let end = agreed(&nodes, Duration::from_secs(15)).await;
        let last_revision = eventually(
            Duration::from_secs(10),
            "every subscriber to reach the end",
            || async {
                let lasts: Vec<Option<i64>> = subscribers
                    .iter()
                    .map(|s| s.seen().last().map(|c| c.revision))
                    .collect();
                (lasts.iter().all(|l| l.is_some() && *l == lasts[0])).then(|| lasts[0].unwrap())
            },
        )
        .await;
        assert!(last_revision > 0, "{end}");
    });
    stop.store(true, Ordering::Release);
    let changes = check_sequences(&subscribers);
    // And against the authority: etcd's own history of the services' keys.
    let history = runtime.block_on(etcd_history(&etcd.endpoint()));
    let recorded = check_against_etcd(&subscribers, &history, &["sip", "stat"]);
    assert!(
        recorded >= changes,
        "{recorded} changes in etcd, {changes} seen"
    );
    let moves: usize = subscribers.iter().map(|s| *s.moves.lock().unwrap()).sum();
    to_leader.sort();
    to_ui.sort();
    eprintln!(
        "{kills} kills, {changes} changes, {} subscribers, {moves} moves to another node, 0 gaps, 0 contradictions; leader killed to new leader: p50 {:?} max {:?}; to a UI on another node: p50 {:?} max {:?}",
        subscribers.len(),
        percentile(&to_leader, 0.5),
        to_leader.last().unwrap(),
        percentile(&to_ui, 0.5),
        to_ui.last().unwrap()
    );
    assert!(changes >= 2 * kills, "{changes} changes for {kills} kills");
    // How many subscribers sit on the leader when it is killed is up to chance (they move
    // at random); that they move, resume and miss nothing is what counts.
    assert!(
        moves >= 2,
        "subscribers of the killed nodes moved ({moves})"
    );
}

#[test]
fn a_paused_leader_is_replaced_and_steps_down_when_it_resumes() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let mut primary = runtime.block_on(Backend::start(Mode::Accept));
    let backup = runtime.block_on(Backend::start(Mode::Accept));
    let services = format!(
        "[[service]]\nid = \"sip\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\n",
        primary.toml(),
        backup.toml()
    );
    let nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["a", "b"], &services);
    runtime.block_on(async {
        let old = leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        nodes[old].pause();
        // Past its lease (2 s): the other node takes over, and sees the primary fail.
        let other = 1 - old;
        eventually(
            Duration::from_secs(10),
            "the other node to lead",
            || async { nodes[other].leads().await.then_some(()) },
        )
        .await;
        primary.close().await;
        eventually(
            Duration::from_secs(10),
            "the switchover, from the new leader",
            || async {
                let (services, _) = nodes[other].services().await?;
                (state_of(&services, "sip").1 == json!("backup")).then_some(())
            },
        )
        .await;
        primary.reopen().await;
        nodes[old].resume();
        // The old leader finds itself deposed, and serves what the new one wrote: no
        // failback to the primary it would have decided on its own.
        let agreed_on = agreed(&nodes, Duration::from_secs(10)).await;
        assert_eq!(
            state_of(&agreed_on, "sip"),
            ("Active".into(), json!("backup"))
        );
        assert_eq!(leader(&nodes, Duration::from_secs(10)).await, other);
        assert!(
            !nodes[old].process.log_lines("no longer leads").is_empty(),
            "the resumed node says it stepped down"
        );
        // etcd was there all along: the node says what happened to it, not to etcd.
        assert!(
            !nodes[old]
                .process
                .log_lines("lease expired before it could renew it")
                .is_empty(),
            "the resumed node says its lease ran out"
        );
        assert!(
            nodes[old].process.log_lines("lost etcd").is_empty(),
            "{:?}",
            nodes[old].process.log_lines("lost etcd")
        );
    });
}

#[test]
fn a_node_that_loses_etcd_serves_its_last_states_marked_stale_and_recovers_by_itself() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut etcd = Etcd::start();
    let mut primary = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&primary);
    let nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["a", "b"], &services);
    runtime.block_on(async {
        leader(&nodes, Duration::from_secs(15)).await;
        let before = agreed(&nodes, Duration::from_secs(15)).await;
        assert_eq!(nodes[0].admin("/readyz").await.unwrap().0, 200);
        // A Bayeux client: its connect replies say when the node is stale.
        let mut ui = WsClient::subscribed(&TestDaemon::attach(&nodes[0].process.addr)).await;
        etcd.kill();
        for node in &nodes {
            let (services, warning) =
                eventually(Duration::from_secs(10), "a stale warning", || async {
                    let (services, warning) = node.services().await?;
                    warning.is_some().then_some((services, warning))
                })
                .await;
            assert_eq!(
                services, before,
                "{}: the last known states, still served",
                node.name
            );
            assert_eq!(warning.as_deref(), Some(r#"110 - "Response is Stale""#));
            let (status, body) = node.admin("/readyz").await.unwrap();
            assert_eq!(status, 503, "{body}");
            assert!(body.contains("etcd is out of reach"), "{body}");
            assert_eq!(node.metric("servicewatch_cluster_stale").await, Some(1.0));
            assert_eq!(
                node.metric("servicewatch_cluster_leader").await,
                Some(0.0),
                "nobody writes"
            );
            assert!(!node.process.log_lines("lost etcd").is_empty());
        }
        let connect = ui.connect().await;
        let connect = connect
            .iter()
            .find(|m| m["channel"] == "/meta/connect")
            .unwrap();
        assert_eq!(connect["ext"]["stale"], true, "{connect}");
        // A maintenance request cannot be stored: refused plainly, nothing half-done.
        let (status, body) = TestDaemon::attach(&nodes[0].process.addr)
            .call_as(
                common::ADMIN,
                reqwest::Method::PUT,
                "/api/v2/services/stat/maintenance",
                Some(json!({"reason": "upgrade"})),
            )
            .await;
        assert_eq!(
            (status, &body["statusMessage"]),
            (503, &json!("etcd is out of reach; try again"))
        );
        // etcd returns: the nodes resume by themselves, and a change flows again.
        etcd.resume();
        leader(&nodes, Duration::from_secs(20)).await;
        agreed(&nodes, Duration::from_secs(20)).await;
        // Each node says so once it has read etcd again (agreeing on a leader may come
        // first on a loaded machine).
        for node in &nodes {
            eventually(Duration::from_secs(20), "the node ready again", || async {
                let ready = node.admin("/readyz").await.is_some_and(|(s, _)| s == 200);
                let fresh = node.metric("servicewatch_cluster_stale").await == Some(0.0);
                (ready && fresh).then_some(())
            })
            .await;
        }
        let connect = ui.connect().await;
        let connect = connect
            .iter()
            .find(|m| m["channel"] == "/meta/connect")
            .unwrap();
        assert!(connect.get("ext").is_none(), "no longer stale: {connect}");
        primary.close().await;
        eventually(
            Duration::from_secs(10),
            "the outage on every node",
            || async {
                let now = agreed(&nodes, Duration::from_secs(10)).await;
                (state_of(&now, "stat").0 == "Inactive").then_some(())
            },
        )
        .await;
    });
}

#[test]
fn a_node_that_cannot_reach_etcd_at_start_says_so() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let node = Node::start(
        "lonely",
        node_toml(
            &endpoint,
            "lonely",
            "[[service]]\nid = \"stat\"\ntype = \"Reporting\"\nprimary = { host = \"127.0.0.1\", port = 9 }\n",
        ),
    );
    runtime.block_on(async {
        let line = eventually(Duration::from_secs(10), "a log line", || async {
            node.process.log_lines("cannot reach etcd").first().cloned()
        })
        .await;
        assert!(line.contains(&endpoint), "{line}");
        let (status, body) = node.admin("/readyz").await.unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("etcd is out of reach"), "{body}");
        // Nothing known, nothing invented: not an empty list (a site with no services), nor
        // "being probed" (nobody probes for this node), but why, and when to ask again.
        let api = TestDaemon::attach(&node.process.addr);
        for path in [
            "/api/v2/services",
            "/api/v2/services?fields=*",
            "/api/v2/services/stat",
        ] {
            let response = reqwest::Client::new()
                .get(api.url(path))
                .basic_auth(USER, Some(PASSWORD))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 503, "{path}");
            assert_eq!(response.headers()["retry-after"], "2", "{path}");
            assert!(response.headers().contains_key("warning"), "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["statusCode"], 4, "{path}: {body}");
            let message = body["statusMessage"].as_str().unwrap();
            assert!(
                message.contains("has not read the services' states from etcd"),
                "{path}: {message}"
            );
        }
        assert!(
            node.process.log_lines("starting monitors").is_empty(),
            "a node that does not lead starts no monitor and does not say it does"
        );
        assert_eq!(node.process.log_lines("waiting for etcd").len(), 1);
    });
}

#[test]
fn a_node_whose_services_differ_from_the_leaders_says_so_and_does_not_campaign() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let primary = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&primary);
    let first = Node::start("first", node_toml(&etcd.endpoint(), "first", &services));
    runtime.block_on(leader(
        std::slice::from_ref(&first),
        Duration::from_secs(15),
    ));
    let other = format!(
        "{services}\n[[service]]\nid = \"extra\"\ntype = \"Reporting\"\nprimary = {}\ncheck = {{ {FAST} }}\n",
        primary.toml()
    );
    let second = Node::start("second", node_toml(&etcd.endpoint(), "second", &other));
    runtime.block_on(async {
        let line = eventually(Duration::from_secs(10), "the mismatch said", || async {
            second
                .process
                .log_lines("differ from the leader's")
                .first()
                .cloned()
        })
        .await;
        assert!(line.contains("first"), "names the leader: {line}");
        assert_eq!(
            second.metric("servicewatch_cluster_config_mismatch").await,
            Some(1.0)
        );
        assert!(first.leads().await && !second.leads().await);
        // It still serves what the leader writes for the services they share.
        let (services, _) = eventually(Duration::from_secs(10), "the shared service", || async {
            second
                .services()
                .await
                .filter(|(s, _)| s.as_array().is_some_and(|a| !a.is_empty()))
        })
        .await;
        assert_eq!(state_of(&services, "stat").0, "Active");
    });
}

#[test]
fn maintenance_set_on_any_node_holds_on_every_node() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let primary = runtime.block_on(Backend::start(Mode::Accept));
    let backup = runtime.block_on(Backend::start(Mode::Accept));
    let mut services = format!(
        "[[service]]\nid = \"sip\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\n",
        primary.toml(),
        backup.toml()
    );
    // Enough services that a publish takes a few milliseconds, so that changes close
    // together share a publish a little later (the registry's coalescing).
    for n in 0..2000 {
        services.push_str(&format!(
            "[[service]]\nid = \"stat{n}\"\ntype = \"Reporting\"\nprimary = {}\ncheck = {{ interval = \"60s\" }}\n",
            primary.toml()
        ));
    }
    let nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["a", "b"], &services);
    runtime.block_on(async {
        let lead = leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        let follower = TestDaemon::attach(&nodes[1 - lead].process.addr);
        let path = "/api/v2/services/sip/instances/primary/maintenance";
        // Asked of the follower: stored in etcd, applied by every node, decided by the
        // leader (the primary stops serving at once).
        let (status, body) = follower
            .call_as(
                common::ADMIN,
                reqwest::Method::PUT,
                path,
                Some(json!({"reason": "upgrade"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let shown = eventually(
            Duration::from_secs(10),
            "the maintenance everywhere",
            || async {
                let now = agreed(&nodes, Duration::from_secs(10)).await;
                let sip = state_of_service(&now, "sip");
                (sip["servingInstance"] == "backup" && sip["maintenance"][0]["reason"] == "upgrade")
                    .then_some(sip)
            },
        )
        .await;
        assert_eq!(shown["maintenance"][0]["instance"], "primary", "{shown}");
        assert_eq!(shown["maintenance"][0]["by"], common::ADMIN);
        // Read your writes: a node answers 200 only once it shows the write itself, so
        // that a script that sets maintenance and reads it back on the same node agrees.
        let service = "/api/v2/services/sip/maintenance";
        for round in 0..20 {
            let reason = format!("check {round}");
            let (status, body) = follower
                .call_as(
                    common::ADMIN,
                    reqwest::Method::PUT,
                    service,
                    Some(json!({ "reason": reason })),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let sip = follower.service("sip").await;
            let reasons: Vec<&Value> = sip["maintenance"]
                .as_array()
                .map(|w| w.iter().map(|w| &w["reason"]).collect())
                .unwrap_or_default();
            assert!(
                reasons.contains(&&json!(reason)),
                "round {round}: read after the PUT's 200: {sip}"
            );
            let (status, body) = follower
                .call_as(common::ADMIN, reqwest::Method::DELETE, service, None)
                .await;
            assert_eq!(status, 200, "{body}");
            let sip = follower.service("sip").await;
            assert_eq!(
                sip["maintenance"].as_array().map(Vec::len),
                Some(1),
                "round {round}: read after the DELETE's 200: only the primary's window: {sip}"
            );
        }
        // A script that sets on one node and clears on the other at once: the second node
        // may not have applied the first write yet, and catches up instead of refusing.
        let leader_api = TestDaemon::attach(&nodes[lead].process.addr);
        for round in 0..10 {
            let (put_on, delete_on) = if round % 2 == 0 {
                (&follower, &leader_api)
            } else {
                (&leader_api, &follower)
            };
            let (status, body) = put_on
                .call_as(
                    common::ADMIN,
                    reqwest::Method::PUT,
                    service,
                    Some(json!({ "reason": "moving" })),
                )
                .await;
            assert_eq!(status, 200, "round {round}: {body}");
            let (status, body) = delete_on
                .call_as(common::ADMIN, reqwest::Method::DELETE, service, None)
                .await;
            assert_eq!(status, 200, "round {round}: {body}");
        }
        // Taken out on the leader: gone everywhere, and no failback.
        let (status, body) = leader_api
            .call_as(common::ADMIN, reqwest::Method::DELETE, path, None)
            .await;
        assert_eq!(status, 200, "{body}");
        eventually(
            Duration::from_secs(10),
            "the maintenance gone everywhere",
            || async {
                let now = agreed(&nodes, Duration::from_secs(10)).await;
                (state_of_service(&now, "sip").get("maintenance").is_none()).then_some(())
            },
        )
        .await;
        let now = agreed(&nodes, Duration::from_secs(10)).await;
        assert_eq!(state_of_service(&now, "sip")["servingInstance"], "backup");
        let (status, body) = follower
            .call_as(common::ADMIN, reqwest::Method::DELETE, path, None)
            .await;
        assert_eq!(
            (status, &body["statusMessage"]),
            (404, &json!("sip's primary is not in maintenance"))
        );
        // A window with an end: the leader ends it, every node shows it ended. Long enough
        // to be seen on both nodes by a test comparing 2,001 services on each, when the
        // machine runs the other cluster tests at the same time.
        let until =
            humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(4))
                .to_string();
        let (status, body) = follower
            .call_as(
                common::ADMIN,
                reqwest::Method::PUT,
                "/api/v2/services/sip/maintenance",
                Some(json!({"reason": "site move", "until": until})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        eventually(
            Duration::from_secs(10),
            "the window shown everywhere",
            || async {
                let now = agreed(&nodes, Duration::from_secs(10)).await;
                (state_of_service(&now, "sip")["maintenance"][0]["reason"] == "site move")
                    .then_some(())
            },
        )
        .await;
        eventually(
            Duration::from_secs(10),
            "the window over everywhere",
            || async {
                let now = agreed(&nodes, Duration::from_secs(10)).await;
                (state_of_service(&now, "sip").get("maintenance").is_none()).then_some(())
            },
        )
        .await;
    });
}

#[test]
fn a_leader_stopped_on_purpose_hands_over_at_once() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let primary = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&primary);
    let nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["a", "b"], &services);
    runtime.block_on(async {
        let old = leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        let stopped_at = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(nodes[old].process.child.id() as libc::pid_t, libc::SIGTERM) };
        eventually(
            Duration::from_secs(10),
            "the other node to lead",
            || async { nodes[1 - old].leads().await.then_some(()) },
        )
        .await;
        let handover = stopped_at.elapsed();
        // The lease is 2 s: a handover well within it was given, not waited for.
        assert!(handover < Duration::from_millis(1500), "took {handover:?}");
        assert!(!nodes[old].process.log_lines("gave up the lease").is_empty());
    });
}

#[test]
fn the_nodes_ride_out_the_loss_of_any_one_of_three_etcd_members() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut members = Etcd::members(3);
    let endpoints = members
        .iter()
        .map(Etcd::endpoint)
        .collect::<Vec<_>>()
        .join("\", \"");
    let mut single = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&single);
    let nodes = start_nodes(&endpoints, &["a", "b"], &services);
    runtime.block_on(async {
        leader(&nodes, Duration::from_secs(20)).await;
        agreed(&nodes, Duration::from_secs(20)).await;
        for member in &mut members {
            // One member dies (whichever the nodes' connections used): the nodes move to
            // the others by themselves, and a change still reaches every node.
            member.kill();
            flip_stat(&mut single, &nodes, None, Duration::from_secs(20)).await;
            leader(&nodes, Duration::from_secs(20)).await;
            member.resume();
        }
    });
}

#[test]
fn a_restarted_node_keeps_one_history_row_per_change() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let single = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&single);
    let toml = node_toml(&etcd.endpoint(), "a", &services).replace(
        "[history]\nenabled = false",
        &format!(
            "[history]\npath = \"{}\"",
            dir.path().join("h.sqlite").display()
        ),
    );
    let rows = |node: &Node| {
        let api = TestDaemon::attach(&node.process.addr);
        async move {
            api.history("stat", "").await["history"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    let mut node = Node::start("a", toml.clone());
    let before = runtime.block_on(async {
        leader(std::slice::from_ref(&node), Duration::from_secs(15)).await;
        agreed(std::slice::from_ref(&node), Duration::from_secs(15)).await;
        eventually(
            Duration::from_secs(5),
            "the first change recorded",
            || async { Some(rows(&node).await).filter(|n| *n > 0) },
        )
        .await
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(node.process.child.id() as libc::pid_t, libc::SIGTERM) };
    node.process.child.wait().unwrap();
    node = Node::start("a", toml);
    runtime.block_on(async {
        leader(std::slice::from_ref(&node), Duration::from_secs(15)).await;
        agreed(std::slice::from_ref(&node), Duration::from_secs(15)).await;
        assert_eq!(rows(&node).await, before, "reading etcd again is no change");
    });
}

/// The CometD JavaScript client, as a UI would use it in front of the cluster: it follows
/// the leader, which is killed; it moves to the other node with the last revision it saw and
/// gets the change it missed, once, then the live ones.
#[test]
fn the_cometd_client_moves_to_another_node_without_a_gap() {
    if !common::etcd::available() || !common::interop::ready() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let mut single = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&single);
    let mut nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["a", "b"], &services);
    let lead = runtime.block_on(async {
        let lead = leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        lead
    });
    let url = |n: &Node| format!("http://{}/api/v2/notifications", n.process.addr);
    let mut client = common::process::Reaped(
        std::process::Command::new("node")
            .arg(common::interop::root().join("tests/interop/cometd-cluster.mjs"))
            .arg(url(&nodes[lead]))
            .arg(url(&nodes[1 - lead]))
            .current_dir(common::interop::root().join("tests/interop"))
            .env("SW_USER", USER)
            .env("SW_PASSWORD", PASSWORD)
            // Past the failover (lease 2 s): the change is published before the client
            // comes back, and reaches it only through the revision it presents.
            .env("SW_MOVE_DELAY_MS", "5000")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node runs"),
    );
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = client.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |what: &str| -> String {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the client said nothing while waiting for {what}"));
        assert!(!line.starts_with("FAILED"), "{line}");
        line
    };
    assert_eq!(
        next("the subscription"),
        format!("SUBSCRIBED {}", url(&nodes[lead]))
    );
    runtime.block_on(single.close());
    let first = next("the first change");
    assert!(first.ends_with(" stat Inactive"), "{first}");
    let first_revision: i64 = first.split(' ').nth(1).unwrap().parse().unwrap();

    // The leader dies, and the backend comes back at that moment: the change is published
    // by the other node once it leads, whether the client is there yet or not.
    let dead = nodes.remove(lead);
    drop(dead.process);
    runtime.block_on(single.reopen());
    runtime.block_on(eventually(
        Duration::from_secs(10),
        "the other node to publish the change",
        || async {
            let (services, _) = nodes[0].services().await?;
            (state_of(&services, "stat").0 == "Active").then_some(())
        },
    ));
    assert!(
        lines.try_recv().is_err(),
        "the client is still away when the change is published"
    );
    let moved = next("the move");
    assert_eq!(moved, format!("SUBSCRIBED {}", url(&nodes[0])));
    let missed = next("the change made while moving");
    assert!(missed.ends_with(" stat Active"), "{missed}");
    let missed_revision: i64 = missed.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(missed_revision > first_revision);
    // Then the live stream, and nothing twice.
    runtime.block_on(single.close());
    let live = next("a live change after the move");
    assert!(live.ends_with(" stat Inactive"), "{live}");
    assert!(live.split(' ').nth(1).unwrap().parse::<i64>().unwrap() > missed_revision);
    assert!(
        lines.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing more, nothing twice"
    );
}

/// The status page on a wall screen, in headless Chromium: it says so when its node loses
/// etcd, and goes back to live by itself. The screenshot lands in
/// `target/status-page-stale.png`.
#[test]
fn the_status_page_says_when_its_node_is_stale() {
    if !common::etcd::available() || !common::interop::ready() {
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    let chromium = common::interop::chromium();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut etcd = Etcd::start();
    let single = runtime.block_on(Backend::start(Mode::Accept));
    let services = format!(
        "[[service]]\nid = \"stat\"\nname = \"StatServer\"\ntype = \"Reporting\"\nprimary = {}\ncheck = {{ {FAST} }}\n",
        single.toml()
    );
    let node = Node::start("wall", node_toml(&etcd.endpoint(), "wall", &services));
    runtime.block_on(async {
        leader(std::slice::from_ref(&node), Duration::from_secs(15)).await;
        agreed(std::slice::from_ref(&node), Duration::from_secs(15)).await;
    });
    let shot = common::interop::root().join("target/status-page-stale.png");
    let _ = std::fs::remove_file(&shot);
    let mut browser = common::process::Reaped(
        std::process::Command::new("node")
            .arg(common::interop::root().join("tests/interop/status-page.mjs"))
            .arg(format!("http://{}/", node.process.addr))
            .arg(USER)
            .arg(PASSWORD)
            .arg(&shot)
            .current_dir(common::interop::root().join("tests/interop"))
            .env("CHROMIUM", &chromium)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node runs"),
    );
    let mut ask = browser.0.stdin.take().unwrap();
    let (tx, said) = std::sync::mpsc::channel::<String>();
    let stdout = browser.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || {
        said.recv_timeout(Duration::from_secs(30))
            .expect("the page answers within 30 s")
    };
    assert_eq!(next(), "READY 1 live");
    etcd.kill();
    writeln!(ask, "LINK stale").unwrap();
    assert_eq!(
        next(),
        "LINK stale stale: this servicewatch has lost its cluster; states may be behind"
    );
    // Unmistakable from across the room: every tile dimmed and saying as of when.
    writeln!(ask, "DIMMED").unwrap();
    let dimmed = next();
    assert!(
        dimmed
            .to_lowercase()
            .starts_with("dimmed states may be behind this servicewatch has lost its cluster"),
        "{dimmed}"
    );
    assert!(dimmed.contains("| as of "), "{dimmed}");
    writeln!(ask, "SHOT").unwrap();
    assert!(next().starts_with("SHOT "));
    etcd.resume();
    writeln!(ask, "LINK live").unwrap();
    assert_eq!(next(), "LINK live live");
    writeln!(ask, "QUIT").unwrap();
    assert!(
        said.recv_timeout(Duration::from_secs(10)).is_err(),
        "no problem logged by the page"
    );
}

#[test]
fn nodes_reach_etcd_over_tls_with_client_certificates() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = common::certs::Ca::new(certs.path());
    ca.issue_files(&["127.0.0.1", "localhost"], certs.path(), "server");
    ca.client_files(certs.path());
    let etcd = Etcd::start_tls(certs.path());
    let single = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&single);
    let tls = format!(
        "ca_file = \"{0}/ca.pem\"\nclient_certificate = \"{0}/client.pem\"\nclient_key = \"{0}/client.key\"\n",
        certs.path().display()
    );
    let toml = |name: &str| {
        node_toml(&etcd.endpoint(), name, &services).replace(
            "timeout = \"500ms\"\n",
            &format!("timeout = \"500ms\"\n{tls}"),
        )
    };
    let nodes: Vec<Node> = ["a", "b"].iter().map(|n| Node::start(n, toml(n))).collect();
    runtime.block_on(async {
        leader(&nodes, Duration::from_secs(15)).await;
        let services = agreed(&nodes, Duration::from_secs(15)).await;
        assert_eq!(state_of(&services, "stat").0, "Active");
    });

    // A node that does not present the certificate etcd requires is refused, says so,
    // and serves nothing it cannot vouch for.
    let without_identity = toml("c")
        .replace(
            &format!(
                "client_certificate = \"{}/client.pem\"\n",
                certs.path().display()
            ),
            "",
        )
        .replace(
            &format!("client_key = \"{}/client.key\"\n", certs.path().display()),
            "",
        );
    let refused = Node::start("c", without_identity);
    runtime.block_on(async {
        let line = eventually(Duration::from_secs(10), "the refusal said", || async {
            refused
                .process
                .log_lines("cannot reach etcd")
                .first()
                .cloned()
        })
        .await;
        assert!(line.contains(&etcd.endpoint()), "{line}");
        assert_eq!(refused.admin("/readyz").await.unwrap().0, 503);
    });
}

#[test]
fn nodes_log_in_to_etcd_with_a_user_of_their_own() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    // etcd's authentication on, with a user that may use the servicewatch prefix only.
    runtime.block_on(async {
        let mut admin = etcd_client::Client::connect([etcd.endpoint()], None)
            .await
            .unwrap();
        admin.user_add("root", "root-password", None).await.unwrap();
        admin.user_grant_role("root", "root").await.unwrap();
        admin.role_add("servicewatch").await.unwrap();
        admin
            .role_grant_permission(
                "servicewatch",
                etcd_client::Permission::read_write("/servicewatch/").with_prefix(),
            )
            .await
            .unwrap();
        admin
            .user_add("servicewatch", "sw-password", None)
            .await
            .unwrap();
        admin
            .user_grant_role("servicewatch", "servicewatch")
            .await
            .unwrap();
        admin.auth_enable().await.unwrap();
    });
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("right"), "sw-password\n").unwrap();
    std::fs::write(secrets.path().join("wrong"), "guess\n").unwrap();
    let single = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&single);
    let toml = |name: &str, password: &str| {
        node_toml(&etcd.endpoint(), name, &services).replace(
            "timeout = \"500ms\"\n",
            &format!(
                "timeout = \"500ms\"\nuser = \"servicewatch\"\npassword_file = \"{}\"\n",
                secrets.path().join(password).display()
            ),
        )
    };
    let nodes: Vec<Node> = ["a", "b"]
        .iter()
        .map(|n| Node::start(n, toml(n, "right")))
        .collect();
    runtime.block_on(async {
        leader(&nodes, Duration::from_secs(15)).await;
        let services = agreed(&nodes, Duration::from_secs(15)).await;
        assert_eq!(state_of(&services, "stat").0, "Active");
    });
    let refused = Node::start("c", toml("c", "wrong"));
    runtime.block_on(async {
        let line = eventually(Duration::from_secs(10), "the refusal said", || async {
            refused
                .process
                .log_lines("cannot reach etcd")
                .first()
                .cloned()
        })
        .await;
        assert!(line.contains("authentication failed"), "{line}");
        assert_eq!(refused.admin("/readyz").await.unwrap().0, 503);
    });
}
