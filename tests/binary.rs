//! The `servicewatch` binary: configuration refused with one clear line and exit 3, the
//! shipped example valid, environment overrides, and a run that serves and stops on SIGTERM.

mod common;

use common::process::read_until_listening;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_servicewatch");

/// Runs `check-config` on `text`; returns exit code and stderr.
fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&path.display().to_string(), "FILE");
    (out.status.code().unwrap(), stderr)
}

const GOOD: &str = "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = { host = \"10.0.0.5\", port = 5001 }\n";

/// Runs the daemon on the file at `path`, its listeners moved to port 0 by the environment
/// as an operator would override them.
fn run_on_port_zero(path: &Path) -> std::process::Child {
    Command::new(BIN)
        .arg("--config")
        .arg(path)
        .env("SERVICEWATCH_SERVER__LISTEN", "127.0.0.1:0")
        .env("SERVICEWATCH_ADMIN__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The whole answer to `GET /api/v2/services` over HTTP/1.0 with `authorization`.
fn get_services(addr: &str, authorization: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /api/v2/services HTTP/1.0\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn bad_files_are_refused_with_one_line_each() {
    let cases: &[(&str, &str)] = &[
        (
            "[server]\nlisten = \"x\"\nbogus = 1\n",
            "FILE:3:1: unknown field `bogus`, expected one of `listen`, `public_url`, `allowed_origins`, `base_path`, `workers`, `send_timeout`, `send_buffer`, `shutdown_timeout`, `keep_alive`",
        ),
        (
            "[[service]]\nid = \"a\"\ntype = \"Voice\"\nprimary = { host = \"h\", port = 70000 }\n",
            "FILE:4:32: invalid value: integer `70000`, expected u16",
        ),
        (
            "[checks]\ninterval = \"soon\"\n",
            "FILE:2:12: invalid duration \"soon\" (expected number at 0); expected a number with its unit, such as \"2s\" or \"500ms\"",
        ),
        (
            "[checks]\ninterval = 2\n",
            "FILE:2:12: a duration needs a unit: write \"2s\" or \"2ms\", not 2",
        ),
        (
            "[[service]]\nid = \"a\"\ntype = \"Fax\"\n",
            "FILE:3:8: unknown variant `Fax`, expected one of `Provisioning`, `Voice`, `Reporting`, `Media`",
        ),
        (
            "[[service]]\nid = \"a\n",
            "FILE:2:8: invalid basic string, expected `\"`",
        ),
        (
            &format!("{GOOD}{GOOD}"),
            "FILE: service[1].id: duplicate service id \"sips1\"; ids must be unique",
        ),
        (
            &GOOD.replace("port = 5001", "port = 0"),
            "FILE: service[0] (sips1).primary.port: must be between 1 and 65535",
        ),
        (
            &format!("{GOOD}attributes = {{ type = \"x\" }}\n"),
            "FILE: service[0] (sips1).attributes.type: \"type\" is reserved by the service resource; choose another attribute name (reserved: id, name, type, state, servingInstance, stateSince, servingInstanceSource, roleConflict, maintenance, fields)",
        ),
        (
            "[server]\nlisten = \"localhost:80\"\n",
            "FILE: server.listen: \"localhost:80\" is not an address; expected IP:port such as \"127.0.0.1:8080\" or \"[::]:8080\"",
        ),
    ];
    for (text, expected) in cases {
        let (code, stderr) = check(text);
        assert_eq!(code, 3, "{text}");
        assert_eq!(stderr.trim_end(), *expected, "for:\n{text}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn missing_file_is_refused() {
    let out = Command::new(BIN)
        .args(["check-config", "/nonexistent/servicewatch.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("/nonexistent/servicewatch.toml: cannot read: No such file"),
        "{stderr}"
    );
}

#[test]
fn shipped_example_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/servicewatch.toml");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .ends_with(": ok (3 services)\n")
    );
}

#[test]
fn the_shipped_configuration_says_how_to_log_in_and_does_once_told() {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/servicewatch.toml"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let path = dir.path().join("servicewatch.toml");
        std::fs::write(&path, text).unwrap();
        run_on_port_zero(&path)
    };
    let listen_of = |child: &mut std::process::Child| {
        let (addr, seen, rest) = read_until_listening(child.stderr.take().unwrap());
        std::thread::spawn(move || rest.for_each(drop));
        (addr, seen)
    };
    let status = |addr: &str, user: &str, password: &str| {
        let answer = get_services(addr, &common::daemon::basic_of(user, password));
        answer.split_whitespace().nth(1).unwrap().to_string()
    };

    // As shipped: no user, and the start-up says what to do.
    let mut child = run(&shipped);
    let (addr, seen) = listen_of(&mut child);
    let warning = seen
        .iter()
        .find(|l| l.contains("no [[user]] is configured"))
        .unwrap_or_else(|| panic!("no warning before the listener: {seen:?}"));
    assert!(warning.contains("servicewatch hash-password"), "{warning}");
    assert_eq!(status(&addr, "alice", "wonderland"), "401");
    let _ = child.kill();
    let _ = child.wait();

    // Told: the commented examples uncommented, with a real hash, log alice in.
    let hash = servicewatch::password::hash("wonderland").unwrap();
    let example = [
        "# [[contact_center]]",
        "# id = ",
        "# features = ",
        "# [[user]]",
        "# name = ",
        "# roles = ",
        "# contact_center = ",
    ];
    let told: String = shipped
        .lines()
        .map(|line| {
            if line.starts_with("# password = ") {
                format!("password = \"{hash}\"\n")
            } else if example.iter().any(|e| line.starts_with(e)) {
                format!("{}\n", &line[2..])
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let mut child = run(&told);
    let (addr, seen) = listen_of(&mut child);
    assert!(!seen.iter().any(|l| l.contains("no [[user]]")), "{seen:?}");
    assert_eq!(status(&addr, "alice", "wonderland"), "200");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn run_refuses_a_bad_environment_override() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, GOOD).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env("SERVICEWATCH_LIMITS__PROBES_IN_FLIGHT", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("with SERVICEWATCH_* environment"),
        "{stderr}"
    );
    assert!(stderr.contains("limits.probes_in_flight"), "{stderr}");
}

#[test]
fn a_variable_under_the_prefix_that_names_no_option_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, GOOD).unwrap();
    for (name, says) in [
        ("SERVICEWATCH_FOO", "SERVICEWATCH_FOO names no option"),
        ("SERVICEWATCH_SERVER__BOGUS", "unknown field `bogus`"),
        (
            "SERVICEWATCH_SERVICE__ID",
            "[[service]] entries cannot be set from the environment",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&path)
            .env(name, "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{name}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(stderr.contains(name), "the variable is named: {stderr}");
    }
    // Variables outside the prefix are none of the daemon's business.
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .env("SKIP_INTEROP_TESTS", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// Runs `check-config` on `text` with the variables `env`; returns exit code and stderr.
fn check_with(text: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("servicewatch.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn history_keys_are_set_from_the_environment() {
    let (code, stderr) = check_with(GOOD, &[("SERVICEWATCH_HISTORY__MAX_ROWS", "0")]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("history.max_rows: must be at least 1"),
        "{stderr}"
    );
    let (code, stderr) = check_with(
        GOOD,
        &[
            ("SERVICEWATCH_HISTORY__MAX_ROWS", "5000"),
            ("SERVICEWATCH_HISTORY__MAX_AGE", "7d"),
            ("SERVICEWATCH_HISTORY__ENABLED", "false"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[cfg(feature = "cluster")]
#[test]
fn a_cluster_node_name_is_set_per_host_from_the_environment() {
    let file =
        format!("{GOOD}[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nnode = \"from-file\"\n");
    let (code, stderr) = check_with(&file, &[("SERVICEWATCH_CLUSTER__NODE", "node-2")]);
    assert_eq!(code, 0, "{stderr}");
    // The override is what is checked, not the file's name.
    let (code, stderr) = check_with(&file, &[("SERVICEWATCH_CLUSTER__NODE", "not a name!")]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(r#"cluster.node: "not a name!" is not a node name"#),
        "{stderr}"
    );
    // A list has no name per item: the file holds it.
    let (code, stderr) = check_with(
        &file,
        &[("SERVICEWATCH_CLUSTER__ENDPOINTS", "http://127.0.0.1:2379")],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("SERVICEWATCH_CLUSTER__ENDPOINTS: cluster.endpoints is a list"),
        "{stderr}"
    );
}

#[test]
fn runs_with_an_environment_override_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n{GOOD}{}",
            common::users_toml()
        ),
    )
    .unwrap();
    let mut child = run_on_port_zero(&path);
    let (addr, _, _log) = read_until_listening(child.stderr.take().unwrap());
    assert!(
        addr.starts_with("127.0.0.1:") && addr != "127.0.0.1:1",
        "{addr}"
    );
    // Listed once its first probe round is done.
    let listed = format!(r#"{{"statusCode":0,"uris":["http://{addr}/api/v2/services/sips1"]}}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = get_services(&addr, &common::basic_header());
        if answer.ends_with(&listed) || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !(answer.starts_with("HTTP/1.0 200 OK\r\n") && answer.ends_with(&listed)) {
        let _ = child.kill();
        panic!("{answer}");
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop within 10s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("json.toml");
    std::fs::write(&path, format!("[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n[log]\nformat = \"json\"\n{GOOD}")).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().filter(|l| l.contains("serving the Services API")))
        .expect("the listener line");
    let _ = child.kill();
    let _ = child.wait();
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(json["level"], "INFO");
    assert_eq!(json["fields"]["message"], "serving the Services API");
    assert!(
        json["fields"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[test]
fn hash_password_reads_stdin_and_prints_a_verifiable_hash() {
    let hash = |input: &str| {
        let mut child = Command::new(BIN)
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = hash("s3cret pass\n");
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    let phc = phc.trim_end();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(
        servicewatch::password::verify("s3cret pass", phc).unwrap(),
        "the newline is not part of it"
    );
    assert!(!servicewatch::password::verify("s3cret pass\n", phc).unwrap());

    let empty = hash("\n");
    assert_eq!(empty.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(empty.stderr).unwrap(),
        "servicewatch hash-password: an empty password cannot be used\n"
    );
}

#[test]
fn check_config_refuses_a_receiver_it_could_not_use_naming_its_key() {
    let receiver = |keys: &str| format!("{GOOD}[[alerts.receiver]]\nname = \"noc\"\n{keys}");
    let (code, stderr) = check(&receiver(
        "kind = \"webhook\"\nurl = \"ftp://hooks.example.com/x\"\n",
    ));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("alerts.receiver[0].url"), "{stderr}");
    let (code, stderr) = check(&receiver(
        "kind = \"webhook\"\nurl = \"https://hooks.example.com/x\"\nsecret_file = \"/nonexistent/webhook.secret\"\n",
    ));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("alerts.receiver[0].secret_file"),
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/webhook.secret"), "{stderr}");
    let (code, stderr) = check(&format!(
        "{}[[alerts.route]]\nreceivers = [\"pager\"]\n",
        receiver("kind = \"exec\"\ncommand = [\"/bin/true\"]\n")
    ));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("alerts.route[0].receivers"), "{stderr}");
    let (code, stderr) = check(&receiver("kind = \"exec\"\ncommand = [\"/bin/true\"]\n"));
    assert_eq!(code, 0, "a usable receiver passes: {stderr}");
}

#[test]
fn check_config_refuses_a_sip_check_it_could_not_run_naming_its_key() {
    let sip = |keys: &str| format!("{GOOD}check = {{ kind = \"sip\", {keys} }}\n");
    let cases = [
        (
            r#"transport = "sctp""#,
            r#"check.transport: "sctp" is not a SIP transport: "udp", "tcp" or "tls""#,
        ),
        (
            r#"up = ["2xx", "7xx"]"#,
            r#"check.up: "7xx" is not a final SIP status code (200 to 699) or class ("2xx" to "6xx")"#,
        ),
        (
            "degraded = [180]",
            r#"check.degraded: "180" is not a final SIP status code"#,
        ),
        (
            r#"ca_file = "ca.pem""#,
            r#"check.ca_file: applies to a sip check with transport = "tls" only"#,
        ),
        (
            "watch = true",
            "check.watch: a sip check over udp has no connection to watch",
        ),
    ];
    for (keys, says) in cases {
        let (code, stderr) = check(&sip(keys));
        assert_eq!(code, 3, "{keys}: {stderr}");
        assert!(stderr.contains(says), "{keys}: {stderr}");
    }
    let (code, stderr) = check(&format!("{GOOD}check = {{ kind = \"tcp\", up = [200] }}\n"));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("check.up: does not apply to a tcp check"),
        "{stderr}"
    );
    let (code, stderr) = check(&sip(
        r#"transport = "tcp", up = [200, "4xx"], degraded = ["503"], watch = true"#,
    ));
    assert_eq!(code, 0, "a usable sip check passes: {stderr}");
}
