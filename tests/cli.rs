//! The command line against a real daemon process, over its control socket: what each
//! command prints, what it changes, and the exit codes a script tests (0 ok, 1 the daemon
//! answered an error, 2 bad command line, 3 cannot reach the daemon, 4 refused).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::process::DaemonProcess;

const BIN: &str = env!("CARGO_BIN_EXE_servicewatch");

/// A daemon with a control socket in a directory of its own, and its history.
struct Fixture {
    daemon: DaemonProcess,
    dir: tempfile::TempDir,
}

/// Two services on closed ports (Inactive: the state does not matter here).
fn services() -> String {
    "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 9 }\nbackup = { host = \"127.0.0.1\", port = 9 }\n\
     [[service]]\nid = \"stat\"\ntype = \"Reporting\"\nprimary = { host = \"127.0.0.1\", port = 9 }\n"
        .to_string()
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let daemon = DaemonProcess::spawn(&Fixture::config(dir.path(), &services()));
        Fixture { daemon, dir }
    }

    /// The whole configuration but `[server]` and `[admin]` (the process fixture adds them).
    fn config(dir: &Path, services: &str) -> String {
        format!(
            "[control]\nsocket = \"{}\"\n[history]\npath = \"{}\"\n{services}",
            dir.join("control.sock").display(),
            dir.join("history.sqlite").display()
        )
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// Runs `servicewatch ARGS --socket SOCKET`, output piped.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `status` until its output satisfies `wanted`, within a deadline.
    fn status_until(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ok(&["status"]);
            if wanted(&out) {
                return out;
            }
            assert!(Instant::now() < deadline, "status never showed it:\n{out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn status_is_a_plain_table_when_piped_and_the_api_s_json_with_json() {
    let f = Fixture::start();
    let table = f.status_until(|out| out.contains("sips1") && out.contains("stat"));
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("SERVICE") && header.contains("STATE") && header.contains("SERVING")
    );
    assert!(!table.contains('\x1b'), "no colour when piped: {table:?}");
    let one = f.ok(&["status", "stat"]);
    assert!(one.contains("stat") && !one.contains("sips1"), "{one}");

    let json: serde_json::Value = serde_json::from_str(&f.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["statusCode"], 0);
    assert!(json["services"].as_array().unwrap().len() == 2, "{json}");
}

#[test]
fn maintenance_is_set_shown_recorded_and_cleared() {
    let f = Fixture::start();
    f.status_until(|out| out.contains("sips1"));
    let said = f.ok(&[
        "maintenance",
        "set",
        "sips1",
        "--reason",
        "upgrade to 9.0",
        "--for",
        "2h",
    ]);
    assert!(
        said.contains("sips1 in maintenance") && said.contains("upgrade to 9.0"),
        "{said}"
    );
    let status = f.ok(&["status", "sips1"]);
    assert!(status.contains("upgrade to 9.0"), "{status}");
    let resource: serde_json::Value =
        serde_json::from_str(&f.ok(&["status", "sips1", "--json"])).unwrap();
    let window = &resource["service"][0]["maintenance"][0];
    assert_eq!(window["reason"], "upgrade to 9.0");
    assert_eq!(window["by"], "uid:0", "the socket's caller: {resource}");
    assert!(window["until"].is_string(), "--for sets an end: {resource}");

    let history = f.ok(&["history", "sips1", "--limit", "5"]);
    assert!(history.starts_with("AT"), "{history}");
    assert!(history.contains("put into maintenance"), "{history}");

    f.ok(&[
        "maintenance",
        "set",
        "sips1",
        "--instance",
        "backup",
        "--reason",
        "disk",
    ]);
    let instances = f.ok(&["instances", "sips1", "--json"]);
    assert!(instances.contains("backup"), "{instances}");
    f.ok(&["maintenance", "clear", "sips1", "--instance", "backup"]);
    let cleared = f.ok(&["maintenance", "clear", "sips1"]);
    assert!(cleared.contains("sips1 out of maintenance"), "{cleared}");
    let status = f.ok(&["status", "sips1"]);
    assert!(!status.contains("upgrade to 9.0"), "{status}");
}

#[test]
fn reload_applies_the_edited_file_and_says_what_changed() {
    let f = Fixture::start();
    f.status_until(|out| out.contains("sips1"));
    let more = format!(
        "{}[[service]]\nid = \"ixn\"\ntype = \"Media\"\nprimary = {{ host = \"127.0.0.1\", port = 9 }}\n",
        services()
    );
    let whole = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n{}",
        Fixture::config(f.dir.path(), &more)
    );
    std::fs::write(&f.daemon.config_path, whole).unwrap();
    let said = f.ok(&["reload"]);
    assert!(said.contains("added:     ixn"), "{said}");
    f.status_until(|out| out.contains("ixn"));

    std::fs::write(&f.daemon.config_path, "[server]\nbogus = 1\n").unwrap();
    let refused = f.run(&["reload"]);
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("the running configuration stays"),
        "{}",
        stderr(&refused)
    );
    f.status_until(|out| out.contains("ixn"));
}

#[test]
fn other_commands_answer_in_tables() {
    let f = Fixture::start();
    f.status_until(|out| out.contains("sips1"));
    let alerts = f.ok(&["alerts", "--json"]);
    assert!(alerts.contains("\"alerts\""), "{alerts}");
    let availability = f.ok(&["availability"]);
    assert!(
        availability.starts_with("SERVICE") && availability.contains("sips1"),
        "{availability}"
    );
    let one = f.ok(&["availability", "stat", "--json"]);
    assert!(one.contains("\"stat\""), "{one}");
}

#[test]
fn exit_codes_tell_a_script_what_happened() {
    let f = Fixture::start();
    f.status_until(|out| out.contains("sips1"));

    let unknown = f.run(&["status", "nope"]);
    assert_eq!(code(&unknown), 1, "404 from the daemon");
    assert!(stderr(&unknown).contains("nope"), "{}", stderr(&unknown));

    let missing = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(f.dir.path().join("absent.sock"))
        .output()
        .unwrap();
    assert_eq!(code(&missing), 3);
    assert!(
        stderr(&missing).contains("servicewatch is not running (no socket at")
            && stderr(&missing).contains("systemctl start servicewatch"),
        "{}",
        stderr(&missing)
    );

    for args in [
        &["frobnicate"][..],
        &["status", "--bogus"],
        &["maintenance", "set", "sips1"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }

    let over_http = Command::new(BIN)
        .args(["status", "--url", &f.daemon.url("")])
        .env_remove("SERVICEWATCH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        code(&over_http),
        4,
        "no credentials over HTTP: {}",
        stderr(&over_http)
    );
    assert!(
        stderr(&over_http).contains("authentication required"),
        "{}",
        stderr(&over_http)
    );
}

#[test]
fn the_socket_refuses_a_user_outside_the_group() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "under CI the tests run as root: the peer-credential check must be tested"
        );
        eprintln!("skipped: only root can run a command as another user");
        return;
    }
    let f = Fixture::start();
    // Open to everyone by file permissions, so that the refusal is the peer check's.
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(f.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let nobody = 65534;
    let out = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(f.socket())
        .env("HOME", "/")
        .uid(nobody)
        .gid(nobody)
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the control socket is for root and the servicewatch group"),
        "{}",
        stderr(&out)
    );
    f.ok(&["status"]);
}

#[test]
fn the_socket_is_0660_and_removed_at_stop() {
    let mut f = Fixture::start();
    let mode = std::fs::metadata(f.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let pid = f.daemon.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    f.daemon.child.wait().unwrap();
    assert!(!f.socket().exists(), "the socket file is removed at stop");
    let out = f.run(&["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[test]
fn tokens_are_made_used_and_revoked_from_the_command_line_and_the_trail_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let center = "[[contact_center]]\nid = \"cc1\"\nfeatures = [\"api-voice\"]\n";
    let daemon = DaemonProcess::spawn(&Fixture::config(
        dir.path(),
        &format!("{}{center}", services()),
    ));
    let f = Fixture { daemon, dir };
    f.status_until(|out| out.contains("sips1"));
    let token = f
        .ok(&[
            "tokens",
            "create",
            "nagios",
            "--contact-center",
            "cc1",
            "--scope",
            "read",
        ])
        .trim()
        .to_string();
    assert!(token.starts_with("swt_"), "{token}");
    let list = f.ok(&["tokens", "list"]);
    assert!(
        list.contains("nagios") && list.contains("read") && list.contains("cc1"),
        "{list}"
    );
    assert!(!list.contains(&token), "the token is shown once: {list}");

    // Elsewhere, with the token: it reads its center's services, and may not set maintenance.
    let url = f.daemon.url("");
    let remote = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--url")
            .arg(&url)
            .arg("--token")
            .arg(&token)
            .output()
            .unwrap()
    };
    let status = remote(&["status"]);
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let shown = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        shown.contains("sips1") && !shown.contains("stat"),
        "{shown}"
    );
    let refused = remote(&["maintenance", "set", "sips1", "--reason", "upgrade"]);
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));

    // Revoked: refused at once.
    f.ok(&["tokens", "revoke", "nagios"]);
    let after = remote(&["status"]);
    assert_eq!(code(&after), 4, "{}", stderr(&after));
    assert!(stderr(&after).contains("revoked"), "{}", stderr(&after));

    // The trail, newest first: the revocation, the refused attempt, the creation.
    let audit = f.ok(&["audit"]);
    let lines: Vec<&str> = audit.lines().collect();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what} not in the trail:\n{audit}"))
    };
    let revoked = at("token.revoke");
    let attempt = at("maintenance.set");
    let created = at("token.create");
    assert!(revoked < attempt && attempt < created, "{audit}");
    assert!(lines[attempt].contains("token:nagios") && lines[attempt].contains("refused"));
    assert!(lines[created].contains("uid:0"), "{audit}");
}
