//! No secret reaches the log: the binary runs at `trace` for every crate while clients log
//! in right and wrong, use the cookie on REST, WebSocket and long-polling, and a reload
//! changes the users; then all of its output is searched for every password, hash, Basic
//! token and session cookie of the run.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64ct::Encoding;
use common::bayeux::WsClient;
use common::{PASSWORD, TestDaemon, USER, eventually};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WRONG: &str = "a-wrong-guess-7f3a";
const NEW_USER: &str = "newcomer";
const NEW_PASSWORD: &str = "newcomer-secret-91c2";

fn config(users: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n[log]\nlevel = \"trace\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n{users}"
    )
}

/// Starts the binary; every line it writes to stderr is kept in `log`.
async fn spawn(path: &Path, log: Arc<Mutex<String>>) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_servicewatch"))
        .arg("--config")
        .arg(path)
        .env("RUST_LOG", "trace")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let addr = eventually(Duration::from_secs(10), "the listen line", || async {
        let log = log.lock().unwrap();
        let at = log.find("listen=")?;
        let rest = &log[at + "listen=".len()..];
        Some(rest.split_whitespace().next()?.to_string())
    })
    .await;
    (child, addr)
}

fn basic(user: &str, password: &str) -> String {
    base64ct::Base64::encode_string(format!("{user}:{password}").as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_ever_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("servicewatch.toml");
    std::fs::write(&path, config(&common::users_toml())).unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (mut child, addr) = spawn(&path, log.clone()).await;
    let d = TestDaemon::attach(&addr);
    let http = reqwest::Client::new();
    let services = d.url("/api/v2/services");

    let get_as =
        |user: &str, password: &str| http.get(&services).basic_auth(user, Some(password)).send();

    // Wrong, then right, Basic logins; the cookie on REST.
    assert_eq!(get_as(USER, WRONG).await.unwrap().status(), 401);
    let login = get_as(USER, PASSWORD).await.unwrap();
    assert_eq!(login.status(), 200);
    let cookie = common::session_cookie(&login);
    let token = cookie.split_once('=').unwrap().1.to_string();
    let by_cookie = http
        .get(&services)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);

    // Notifications: a WebSocket on the cookie, long-polling on Basic, a refused upgrade.
    let mut ws = WsClient::try_open(&d, &[("cookie", cookie.as_str())])
        .await
        .unwrap();
    ws.handshake().await;
    let reply = ws.call(json!({"channel":"/meta/subscribe","subscription":"/notifications/services","ext":{"snapshot":true}})).await;
    assert_eq!(reply[0]["successful"], true);
    let mut lp = common::bayeux::LpClient::new(&d);
    lp.handshake().await;
    let wrong_ws = format!("Basic {}", basic(USER, WRONG));
    assert!(
        WsClient::try_open(&d, &[("authorization", wrong_ws.as_str())])
            .await
            .is_err()
    );

    // A reload adds a user, who logs in.
    let new_hash = servicewatch::password::hash(NEW_PASSWORD).unwrap();
    let added = format!(
        "{}[[user]]\nname = \"{NEW_USER}\"\npassword = \"{new_hash}\"\nroles = [\"agent\"]\ncontact_center = \"all\"\n",
        common::users_toml()
    );
    std::fs::write(&path, config(&added)).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGHUP) };
    eventually(Duration::from_secs(10), "the reload", || async {
        log.lock().unwrap().contains("reload applied").then_some(())
    })
    .await;
    let newcomer = get_as(NEW_USER, NEW_PASSWORD).await.unwrap();
    assert_eq!(newcomer.status(), 200);

    // The clients leave, so that the stop need not wait for their idle connections.
    drop((ws, lp, http));
    // SAFETY: as above.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");

    let log = log.lock().unwrap().clone();
    // The log is the real thing: trace output of servicewatch and of the HTTP stack.
    assert!(log.lines().count() > 50, "{log}");
    assert!(log.contains("session started"), "debug lines are there");
    assert!(log.contains("TRACE"), "trace lines are there");
    let tester_hash = common::users_toml()
        .lines()
        .find_map(|l| {
            l.strip_prefix("password = \"")?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .unwrap();
    for (what, secret) in [
        ("the password", PASSWORD.to_string()),
        ("a wrong password", WRONG.to_string()),
        ("the reloaded user's password", NEW_PASSWORD.to_string()),
        ("the Basic token", basic(USER, PASSWORD)),
        ("a wrong Basic token", basic(USER, WRONG)),
        ("the new user's Basic token", basic(NEW_USER, NEW_PASSWORD)),
        ("the session cookie", token.clone()),
        ("a password hash", tester_hash.clone()),
        (
            "a hash's digest",
            tester_hash.rsplit('$').next().unwrap().to_string(),
        ),
        (
            "the reloaded hash",
            new_hash.rsplit('$').next().unwrap().to_string(),
        ),
    ] {
        assert!(!log.contains(&secret), "{what} is in the log");
    }
}
