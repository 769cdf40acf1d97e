#![cfg(feature = "cluster")]
//! The cluster at its seams, checked against etcd's own record: a resume on a node that has
//! only just started, a resume from before what etcd still holds, a paused leader that
//! must lead again, and new leaders right after a server died or recovered. What the nodes
//! publish is compared with the history of the `services/` keys read back from etcd.

mod common;

use std::time::{Duration, Instant};

use common::bayeux::{Received, WsClient};
use common::cluster::*;
use common::etcd::Etcd;
use common::{Backend, Mode, TestDaemon, eventually};
use etcd_client::Client;
use serde_json::{Value, json};

/// One node on a fresh etcd whose "stat" service changed `flips` times after its first
/// state, with the service's visible changes as etcd records them.
struct Flipped {
    etcd: Etcd,
    services: String,
    changes: Vec<(i64, String, Value, Value)>,
    /// Kept alive as long as the value is: the node's leadership and the service's state
    /// must not change under the test.
    _backend: Backend,
    _node: Vec<Node>,
}

fn one_node_flipped(runtime: &tokio::runtime::Runtime, flips: usize) -> Flipped {
    let etcd = Etcd::start();
    let mut backend = runtime.block_on(Backend::start(Mode::Accept));
    let services = stat_toml(&backend);
    let node = vec![Node::start(
        "a",
        node_toml(&etcd.endpoint(), "a", &services),
    )];
    runtime.block_on(async {
        leader(&node, Duration::from_secs(15)).await;
        agreed(&node, Duration::from_secs(15)).await;
        for _ in 0..flips {
            flip_stat(&mut backend, &node, None, Duration::from_secs(10)).await;
        }
    });
    let history = runtime.block_on(etcd_history(&etcd.endpoint()));
    Flipped {
        changes: visible_changes(&history, "stat"),
        etcd,
        services,
        _backend: backend,
        _node: node,
    }
}

/// The WebSocket subscriber of `addr`, subscribed and connected.
async fn subscriber(addr: &str) -> WsClient {
    WsClient::subscribed(&TestDaemon::attach(addr)).await
}

/// Every service message `c` receives within `within`.
async fn drain(c: &mut WsClient, within: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(Received::Batch(batch)) = c.recv_within(Duration::from_millis(100)).await {
            for m in batch {
                if m["channel"] == SERVICES {
                    got.push(m);
                } else if m["channel"] == "/meta/connect" {
                    c.send(json!([{"channel":"/meta/connect","clientId":c.client_id,"connectionType":"websocket"}]))
                        .await;
                }
            }
        }
    }
    got
}

#[test]
fn a_resume_on_a_node_that_has_just_started_gets_every_change_it_missed() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Bound whole: its node and backend live as long as the test.
    let flipped = one_node_flipped(&runtime, 12);
    let (etcd, services, changes) = (&flipped.etcd, &flipped.services, &flipped.changes);
    assert!(changes.len() >= 13, "{changes:?}");
    // A UI that saw the first change elsewhere resumes on a node that has only just
    // started (it listens, but may not have read etcd, let alone its history): it must get
    // every change after the one it saw, exactly, as etcd has them. Three times over.
    let from = changes[0].0;
    let missed: Vec<(i64, String)> = changes[1..]
        .iter()
        .map(|(r, s, _, _)| (*r, s.clone()))
        .collect();
    for round in 0..3 {
        let name = format!("b{round}");
        let late = Node::start(&name, node_toml(&etcd.endpoint(), &name, services));
        let got = runtime.block_on(WsClient::resumed(
            &TestDaemon::attach(&late.process.addr),
            from,
            missed.len(),
            Duration::from_secs(10),
        ));
        let got: Vec<(i64, String)> = got
            .iter()
            .map(|m| {
                assert!(m["ext"].get("gap").is_none(), "not a gap: {m}");
                (
                    m["ext"]["revision"].as_i64().unwrap(),
                    m["data"]["service"]["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, missed, "round {round}");
    }
}

#[test]
fn a_resume_from_before_what_etcd_still_holds_says_it_has_a_gap() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Bound whole: its node and backend live as long as the test.
    let flipped = one_node_flipped(&runtime, 4);
    let (etcd, services, changes) = (&flipped.etcd, &flipped.services, &flipped.changes);
    let last = changes.last().unwrap().clone();
    // etcd forgets its history up to now: a node that starts now cannot replay it.
    runtime.block_on(async {
        let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
        let now = client
            .get("/", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        client.compact(now, None).await.unwrap();
    });
    let late = Node::start("b", node_toml(&etcd.endpoint(), "b", services));
    let got = runtime.block_on(WsClient::resumed(
        &TestDaemon::attach(&late.process.addr),
        changes[0].0,
        1,
        Duration::from_secs(10),
    ));
    assert_eq!(
        got.len(),
        1,
        "the current state of the one service: {got:?}"
    );
    let m = &got[0];
    assert_eq!(m["ext"]["gap"], true, "said, not silent: {m}");
    assert_eq!(m["ext"]["revision"], last.0, "{m}");
    assert_eq!(m["data"]["service"]["state"], json!(last.1), "{m}");
}

#[test]
fn a_paused_leader_whose_successor_died_leads_again_from_what_the_successor_wrote() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let mut primary = runtime.block_on(Backend::start(Mode::Accept));
    let mut backup = runtime.block_on(Backend::start(Mode::Accept));
    let services = format!(
        "[[service]]\nid = \"sip\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\n",
        primary.toml(),
        backup.toml()
    );
    let mut nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["a", "b"], &services);
    runtime.block_on(async {
        let old = leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        let other = 1 - old;
        let won = nodes[old]
            .metric("servicewatch_cluster_elections_won_total")
            .await
            .unwrap();
        nodes[old].pause();
        eventually(
            Duration::from_secs(10),
            "the other node to lead",
            || async { nodes[other].leads().await.then_some(()) },
        )
        .await;
        // The successor sees the primary fail (the backup takes over) and come back (no
        // failback); then it dies, and its leader key with its lease.
        primary.close().await;
        eventually(Duration::from_secs(10), "the switchover", || async {
            let (services, _) = nodes[other].services().await?;
            (state_of(&services, "sip").1 == json!("backup")).then_some(())
        })
        .await;
        primary.reopen().await;
        let since = eventually(Duration::from_secs(10), "the primary seen back", || async {
            let (services, _) = nodes[other].services().await?;
            let sip = state_of_service(&services, "sip");
            (sip["servingInstance"] == "backup").then(|| sip["stateSince"].clone())
        })
        .await;
        // The primary's recovery reaches etcd (a server's health is kept there).
        eventually(
            Duration::from_secs(10),
            "the primary's health stored",
            || async {
                (stored_health(&etcd.endpoint(), "sip", "primary").await? == "up").then_some(())
            },
        )
        .await;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(
                nodes[other].process.child.id() as libc::pid_t,
                libc::SIGKILL,
            )
        };
        let _ = nodes[other].process.child.wait();
        // Its leader key goes with its lease: nobody leads when the old leader resumes.
        eventually(
            Duration::from_secs(10),
            "the dead leader's key gone",
            || async {
                let mut client = Client::connect([etcd.endpoint()], None).await.ok()?;
                let leader = client.get("/servicewatch/leader", None).await.ok()?;
                leader.kvs().is_empty().then_some(())
            },
        )
        .await;
        nodes[old].resume();
        eventually(
            Duration::from_secs(15),
            "the resumed node to lead",
            || async {
                let again = nodes[old]
                    .metric("servicewatch_cluster_elections_won_total")
                    .await?;
                (again > won && nodes[old].leads().await).then_some(())
            },
        )
        .await;
        // It leads from what its successor wrote: the backup serves, since the same time.
        let (services, _) = eventually(Duration::from_secs(10), "its answer", || async {
            nodes[old].services().await.filter(|(_, w)| w.is_none())
        })
        .await;
        let sip = state_of_service(&services, "sip");
        assert_eq!(sip["servingInstance"], "backup", "{sip}");
        assert_eq!(sip["stateSince"], since, "{sip}");
        // The backup dies: the primary (back, and known to be) takes over. A leader that
        // believed its pre-pause view (the primary serving) would keep showing the dead
        // backup.
        backup.close().await;
        eventually(
            Duration::from_secs(10),
            "the primary serving again",
            || async {
                let (services, _) = nodes[old].services().await?;
                (state_of(&services, "sip") == ("Active".into(), json!("primary"))).then_some(())
            },
        )
        .await;
    });
    // etcd's record: after the successor's switchover, nothing but the move back to the
    // primary, and the same since throughout (the state never changed).
    let history = runtime.block_on(etcd_history(&etcd.endpoint()));
    let changes = visible_changes(&history, "sip");
    let tail: Vec<(String, Value)> = changes
        .iter()
        .skip_while(|(_, _, serving, _)| *serving != json!("backup"))
        .map(|(_, state, serving, _)| (state.clone(), serving.clone()))
        .collect();
    assert_eq!(
        tail,
        [
            ("Active".to_string(), json!("backup")),
            ("Active".to_string(), json!("primary"))
        ],
        "{changes:?}"
    );
    let sinces: std::collections::BTreeSet<String> = changes
        .iter()
        .map(|(_, _, _, since)| since.to_string())
        .collect();
    assert_eq!(sinces.len(), 1, "stateSince never reset: {changes:?}");
    nodes.clear();
}

/// One kill of the leader at a seam, and what the survivor must show.
#[derive(Clone, Copy, Debug)]
enum Seam {
    /// The backup died a moment before the kill, the primary right after it: the new
    /// leader must go to Inactive, never to the dead backup.
    BackupDiedJustBefore,
    /// The backup serves; the primary recovered a moment before the kill, and the backup
    /// dies right after it: the new leader must hand over to the primary, never flash
    /// Inactive, and keep since.
    PrimaryRecoveredJustBefore,
}

#[test]
fn a_new_leader_shows_no_false_state_when_a_server_changed_just_before_the_kill() {
    if !common::etcd::available() {
        return;
    }
    let kills: usize = std::env::var("CLUSTER_SEAM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let mut primary = runtime.block_on(Backend::start(Mode::Accept));
    let mut backup = runtime.block_on(Backend::start(Mode::Accept));
    let services = format!(
        "[[service]]\nid = \"sip\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\n",
        primary.toml(),
        backup.toml()
    );
    let mut nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["a", "b"], &services);
    let mut false_states = Vec::new();
    let (mut primary_up, mut backup_up) = (true, true);
    for kill in 0..kills {
        let seam = if kill % 2 == 0 {
            Seam::BackupDiedJustBefore
        } else {
            Seam::PrimaryRecoveredJustBefore
        };
        runtime.block_on(async {
            let lead = leader(&nodes, Duration::from_secs(15)).await;
            let other = 1 - lead;
            // Set the scene with both up: the primary serving, or the backup.
            set(&mut primary, &mut primary_up, true).await;
            set(&mut backup, &mut backup_up, true).await;
            let want_serving = match seam {
                Seam::BackupDiedJustBefore => "primary",
                Seam::PrimaryRecoveredJustBefore => "backup",
            };
            let current = state_of(&agreed(&nodes, Duration::from_secs(15)).await, "sip");
            if current.1 != json!(want_serving) {
                // Move it: the serving one fails, the other takes over, the first returns.
                if want_serving == "backup" {
                    set(&mut primary, &mut primary_up, false).await;
                } else {
                    set(&mut backup, &mut backup_up, false).await;
                }
                eventually(Duration::from_secs(10), "the scene", || async {
                    let now = agreed(&nodes, Duration::from_secs(10)).await;
                    (state_of(&now, "sip") == ("Active".into(), json!(want_serving))).then_some(())
                })
                .await;
                set(&mut primary, &mut primary_up, true).await;
                set(&mut backup, &mut backup_up, true).await;
            }
            let since = state_of_service(&agreed(&nodes, Duration::from_secs(10)).await, "sip")
                ["stateSince"]
                .clone();
            let mut ui = subscriber(&nodes[other].process.addr).await;
            match seam {
                Seam::BackupDiedJustBefore => set(&mut backup, &mut backup_up, false).await,
                Seam::PrimaryRecoveredJustBefore => {
                    // Seen down by the leader, then back (the backup keeps serving).
                    set(&mut primary, &mut primary_up, false).await;
                    eventually(Duration::from_secs(10), "the primary seen down", || async {
                        (stored_health(&etcd.endpoint(), "sip", "primary").await? == "down")
                            .then_some(())
                    })
                    .await;
                    set(&mut primary, &mut primary_up, true).await;
                }
            }
            // The change a moment before the kill.
            tokio::time::sleep(Duration::from_millis(800)).await;
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(nodes[lead].process.child.id() as libc::pid_t, libc::SIGKILL) };
            match seam {
                Seam::BackupDiedJustBefore => set(&mut primary, &mut primary_up, false).await,
                Seam::PrimaryRecoveredJustBefore => set(&mut backup, &mut backup_up, false).await,
            }
            let (want_state, want_serving) = match seam {
                Seam::BackupDiedJustBefore => ("Inactive", Value::Null),
                Seam::PrimaryRecoveredJustBefore => ("Active", json!("primary")),
            };
            // What the survivor's UI sees until the new leader has decided.
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                let batch = drain(&mut ui, Duration::from_millis(200)).await;
                let done = batch.iter().any(|m| {
                    let s = &m["data"]["service"];
                    s["state"] == want_state
                        && s.get("servingInstance").cloned().unwrap_or(Value::Null) == want_serving
                });
                seen.extend(batch);
                if done {
                    break;
                }
            }
            let states: Vec<(Value, Value, Value)> = seen
                .iter()
                .map(|m| {
                    let s = &m["data"]["service"];
                    (
                        s["state"].clone(),
                        s.get("servingInstance").cloned().unwrap_or(Value::Null),
                        s["stateSince"].clone(),
                    )
                })
                .collect();
            let expected = (json!(want_state), want_serving.clone());
            let only = match states.as_slice() {
                [(state, serving, shown)] if (state.clone(), serving.clone()) == expected => {
                    Some(shown.clone())
                }
                _ => None,
            };
            match (seam, only) {
                (_, None) => {
                    false_states.push(format!("kill {kill} ({seam:?}): the UI saw {states:?}"))
                }
                (Seam::PrimaryRecoveredJustBefore, Some(shown)) if shown != since => {
                    false_states.push(format!("kill {kill} ({seam:?}): since reset to {shown}"))
                }
                _ => {}
            }
            // The killed node comes back, as systemd would restart it.
            let _ = nodes[lead].process.child.wait();
            let name = nodes[lead].name.clone();
            let toml = nodes[lead].toml.clone();
            nodes[lead] = Node::start(&name, toml);
        });
    }
    assert!(false_states.is_empty(), "{false_states:#?}");
    drop(nodes);
}

/// Opens or closes `backend` if it is not already as `want`.
async fn set(backend: &mut Backend, up: &mut bool, want: bool) {
    if *up != want {
        if want {
            backend.reopen().await;
        } else {
            backend.close().await;
        }
        *up = want;
    }
}

/// The health of `part` of service `id` in the record etcd holds now.
async fn stored_health(endpoint: &str, id: &str, part: &str) -> Option<String> {
    let mut client = Client::connect([endpoint], None).await.ok()?;
    let got = client
        .get(format!("/servicewatch/services/{id}"), None)
        .await
        .ok()?;
    let record: Value = serde_json::from_slice(got.kvs().first()?.value()).ok()?;
    record["servers"]
        .as_array()?
        .iter()
        .find(|s| s["part"] == part)?["health"]
        .as_str()
        .map(str::to_string)
}

/// When each `/meta/connect` reply reached a WebSocket client, and whether it said stale.
async fn watch_connects(
    addr: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, bool)>>>,
) {
    let mut c = subscriber(&addr).await;
    let connect =
        json!([{"channel":"/meta/connect","clientId":c.client_id,"connectionType":"websocket"}]);
    c.send(connect.clone()).await;
    // The first connect was answered at once (a fresh node); this one is held.
    seen.lock().unwrap().push((Instant::now(), false));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match c.recv_within(Duration::from_millis(500)).await {
            Some(Received::Batch(batch)) => {
                for m in batch.iter().filter(|m| m["channel"] == "/meta/connect") {
                    let stale = m["ext"]["stale"] == true;
                    seen.lock().unwrap().push((Instant::now(), stale));
                    c.send(connect.clone()).await;
                }
            }
            Some(Received::Closed(_)) => return,
            None => {}
        }
    }
}

#[test]
fn a_websocket_ui_hears_within_a_second_that_its_node_turned_stale_and_fresh_again() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut etcd = Etcd::start();
    let backend = runtime.block_on(Backend::start(Mode::Accept));
    // The default connect_timeout (30 s): a held connect must not wait for it.
    let toml = node_toml(&etcd.endpoint(), "a", &stat_toml(&backend))
        .replace("[notifications]\nconnect_timeout = \"1s\"\n", "");
    assert!(!toml.contains("connect_timeout"));
    let node = Node::start("a", toml);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    runtime.block_on(async {
        agreed(std::slice::from_ref(&node), Duration::from_secs(15)).await;
    });
    runtime.spawn(watch_connects(node.process.addr.clone(), seen.clone()));
    // Settled: the UI's connect is held.
    runtime.block_on(async {
        eventually(Duration::from_secs(5), "the UI subscribed", || async {
            (!seen.lock().unwrap().is_empty()).then_some(())
        })
        .await;
    });
    let mut delays = Vec::new();
    for (action, stale) in [("etcd killed", true), ("etcd back", false)] {
        if stale {
            etcd.kill();
        } else {
            etcd.resume();
        }
        let turned = runtime.block_on(eventually(
            Duration::from_secs(15),
            "the node to turn",
            || async {
                let (status, _) = node.admin("/readyz").await?;
                ((status == 503) == stale).then(Instant::now)
            },
        ));
        let heard = runtime.block_on(eventually(
            Duration::from_secs(5),
            "the UI to hear it",
            || async {
                let seen = seen.lock().unwrap();
                seen.iter()
                    .rev()
                    .find(|(_, s)| *s == stale)
                    .map(|(at, _)| *at)
            },
        ));
        let delay = heard.saturating_duration_since(turned);
        eprintln!("{action}: the UI heard it {delay:?} after /readyz said so");
        delays.push((action, delay));
    }
    for (action, delay) in delays {
        assert!(delay < Duration::from_secs(1), "{action}: {delay:?}");
    }
}
