//! Observed roles: each instance of a pair is asked which role it has, and the serving
//! instance is the healthy one that says primary, against real loopback backends whose
//! role endpoints (HTTP pages, commands) switch while the daemon runs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, Mode, TestDaemon, eventually, stays};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A role page on loopback: answers every request with the status and body it holds now.
struct RolePage {
    port: u16,
    answer: Arc<Mutex<(u16, String)>>,
}

impl RolePage {
    async fn start(body: &str) -> RolePage {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new((200, body.to_string())));
        let shared = answer.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 2048];
                    let _ = stream.read(&mut request).await;
                    let (status, body) = shared.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        RolePage { port, answer }
    }

    fn say(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_string());
    }
}

/// Probed and asked every 50 ms, so that a switch shows within a fraction of a second.
const FAST: &str = r#"kind = "tcp", interval = "50ms", timeout = "500ms", rise = 1, fall = 1"#;

/// A Voice pair whose instances answer their role on `pages` (JSON `{"ha":{"role":...}}`).
fn pair_config(primary: &Backend, backup: &Backend, pages: [&RolePage; 2]) -> String {
    let instance = |b: &Backend, page: &RolePage| {
        format!(
            "{{ host = \"127.0.0.1\", port = {}, role = {{ port = {} }} }}",
            b.port(),
            page.port
        )
    };
    format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\nrole = {{ kind = \"http\", path = \"/ha\", pointer = \"/ha/role\" }}\n",
        instance(primary, pages[0]),
        instance(backup, pages[1]),
    )
}

/// A Voice pair of live instances whose role pages first say `primary_says` and
/// `backup_says`, and the daemon watching it.
struct Pair {
    d: TestDaemon,
    pages: [RolePage; 2],
    _instances: [Backend; 2],
}

impl Pair {
    async fn start(primary_says: &str, backup_says: &str) -> Pair {
        let instances = [
            Backend::start(Mode::Accept).await,
            Backend::start(Mode::Accept).await,
        ];
        let pages = [
            RolePage::start(&json_role(primary_says)).await,
            RolePage::start(&json_role(backup_says)).await,
        ];
        let d = TestDaemon::start(&pair_config(
            &instances[0],
            &instances[1],
            [&pages[0], &pages[1]],
        ));
        Pair {
            d,
            pages,
            _instances: instances,
        }
    }
}

fn json_role(role: &str) -> String {
    format!(r#"{{"ha":{{"role":"{role}"}}}}"#)
}

async fn serving_as(d: &TestDaemon, instance: &str, source: &str) -> serde_json::Value {
    eventually(
        Duration::from_secs(5),
        &format!("{instance} serving, from {source}"),
        || async {
            let s = d.service("sips1").await;
            (s["servingInstance"] == instance && s["servingInstanceSource"] == source).then_some(s)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_that_says_primary_serves_through_a_switchover_done_elsewhere() {
    let Pair {
        d,
        pages,
        _instances,
    } = Pair::start("primary", "backup").await;
    let first = serving_as(&d, "primary", "role").await;
    assert_eq!(first["state"], "Active");
    assert!(first.get("roleConflict").is_none(), "{first}");

    // An operator switches over in the Management Layer: both processes stay up, probes
    // see nothing, the roles swap.
    pages[0].say(200, &json_role("backup"));
    pages[1].say(200, &json_role("primary"));
    serving_as(&d, "backup", "role").await;
    let serving = |instance: &str| {
        format!(r#"servicewatch_instance_serving{{service="sips1",instance="{instance}"}}"#)
    };
    assert_eq!(d.metric(&serving("backup")).await, Some(1.0));
    assert_eq!(d.metric(&serving("primary")).await, Some(0.0));
    assert_eq!(
        d.metric(r#"servicewatch_instance_role{service="sips1",instance="backup",role="primary"}"#)
            .await,
        Some(1.0)
    );

    // And back: servicewatch never fails back by itself, but the instances say so.
    pages[0].say(200, &json_role("primary"));
    pages[1].say(200, &json_role("backup"));
    serving_as(&d, "primary", "role").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_primaries_are_shown_as_a_conflict_on_the_configured_primary() {
    let Pair {
        d,
        pages,
        _instances,
    } = Pair::start("backup", "primary").await;
    serving_as(&d, "backup", "role").await;

    // A split brain: the primary comes back thinking it is primary too.
    pages[0].say(200, &json_role("primary"));
    let conflict = serving_as(&d, "primary", "role").await;
    assert_eq!(conflict["roleConflict"], true, "{conflict}");
    assert_eq!(
        d.metric(r#"servicewatch_role_conflict{service="sips1"}"#)
            .await,
        Some(1.0)
    );
    // A client can ask for exactly the services in conflict.
    let (status, body) = d.get("/api/v2/services?roleConflict=true&fields=id").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""id":"sips1""#), "{body}");

    pages[0].say(200, &json_role("backup"));
    let resolved = serving_as(&d, "backup", "role").await;
    assert!(resolved.get("roleConflict").is_none(), "{resolved}");
    assert_eq!(
        d.metric(r#"servicewatch_role_conflict{service="sips1"}"#)
            .await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_answer_the_serving_instance_is_inferred_and_said_to_be() {
    let Pair {
        d,
        pages,
        _instances,
    } = Pair::start("primary", "backup").await;
    serving_as(&d, "primary", "role").await;

    // The role pages break in two different ways; health is untouched.
    pages[0].say(500, "internal error");
    pages[1].say(200, r#"{"ha":{"role":"standby"}}"#);
    let inferred = serving_as(&d, "primary", "health").await;
    assert_eq!(
        inferred["state"], "Active",
        "a role check never changes health"
    );
    assert_eq!(
        d.metric(r#"servicewatch_role_fallback{service="sips1"}"#)
            .await,
        Some(1.0)
    );
    // Each instance is asked on its own schedule: the backup's answer may come later.
    for instance in ["primary", "backup"] {
        let unknown = format!(
            r#"servicewatch_instance_role{{service="sips1",instance="{instance}",role="unknown"}}"#
        );
        eventually(
            Duration::from_secs(5),
            &format!("the {instance}'s role unknown"),
            || async { (d.metric(&unknown).await == Some(1.0)).then_some(()) },
        )
        .await;
    }
    pages[0].say(200, &json_role("primary"));
    serving_as(&d, "primary", "role").await;
    assert_eq!(
        d.metric(r#"servicewatch_role_fallback{service="sips1"}"#)
            .await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_role_check_reads_the_role_from_a_command() {
    let (primary, backup) = (
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let role_file = |port: u16| dir.path().join(format!("role-{port}"));
    std::fs::write(role_file(primary.port()), "SCS_PRIMARY\n").unwrap();
    std::fs::write(role_file(backup.port()), "SCS_BACKUP\n").unwrap();
    // `{port}` tells the command which instance it is asked about.
    let command = format!(
        r#"["/bin/sh", "-c", "cat {}/role-$SERVICEWATCH_PORT", "{{port}}"]"#,
        dir.path().display()
    );
    let config = format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ {FAST} }}\nrole = {{ kind = \"exec\", command = {command}, primary = \"SCS_PRIMARY\", backup = \"SCS_BACKUP\" }}\n",
        primary.toml(),
        backup.toml(),
    );
    let d = TestDaemon::start(&config);
    serving_as(&d, "primary", "role").await;
    std::fs::write(role_file(primary.port()), "SCS_BACKUP\n").unwrap();
    std::fs::write(role_file(backup.port()), "SCS_PRIMARY\n").unwrap();
    serving_as(&d, "backup", "role").await;
    // The backup dies: the primary still says backup, so the serving instance is inferred.
    drop(backup);
    let after = serving_as(&d, "primary", "health").await;
    assert_eq!(after["state"], "Active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_a_role_check_keeps_its_shape() {
    let primary = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ {FAST} }}\n",
        primary.toml()
    ));
    stays(
        Duration::from_millis(300),
        "no role attributes on a service that is not asked",
        || async {
            let s = d.service("sips1").await;
            s["servingInstance"] == "primary"
                && s.get("servingInstanceSource").is_none()
                && s.get("roleConflict").is_none()
        },
    )
    .await;
    assert_eq!(
        d.metric(r#"servicewatch_role_conflict{service="sips1"}"#)
            .await,
        None
    );
}
