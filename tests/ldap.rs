//! Directory logins against a real OpenLDAP (see `common::ldap`): directory users log in
//! with Basic over StartTLS and get the roles and contact center of their groups; wrong
//! passwords are refused and throttled; a local user of the same name wins; a directory
//! that stops answering gives its users a quick 503 while local users still log in, and
//! its users log in again once it is back. `check-config` names the `[ldap]` key at fault.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::ldap::{ADMIN_DN, SUFFIX, Slapd, USER_PASSWORD, available};
use common::{PASSWORD, TestDaemon, USER, eventually};

const WITHIN: Duration = Duration::from_secs(10);
const BIN: &str = env!("CARGO_BIN_EXE_servicewatch");
/// The directory's timeout in these tests: a 503 must come well before it.
const TIMEOUT_SECS: u64 = 2;
const INSTANCES: &str = "/api/v2/services/sips1/instances";
const SERVICES: &str = "/api/v2/services";

/// A service on nothing and an `[ldap]` table for `slapd` over StartTLS; `auth` on top.
fn config(slapd: &Slapd, auth: &str) -> String {
    let dir = slapd.dir();
    let password = dir.join("bind.pw");
    std::fs::write(&password, "admin-secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    ldap_table(&slapd.url(), &dir.join("ca.pem"), &password, auth)
}

fn ldap_table(url: &str, ca: &Path, password: &Path, auth: &str) -> String {
    format!(
        r#"{auth}
[[service]]
id = "sips1"
type = "Voice"
primary = {{ host = "127.0.0.1", port = 1 }}

[ldap]
url = "{url}"
starttls = true
ca_file = "{ca}"
bind_dn = "{ADMIN_DN}"
bind_password_file = "{password}"
user_base = "ou=people,{SUFFIX}"
group_attribute = ""
group_base = "ou=groups,{SUFFIX}"
timeout = "{TIMEOUT_SECS}s"

[ldap.roles]
"cn=supervisors,ou=groups,{SUFFIX}" = ["supervisor"]
"cn=agents,ou=groups,{SUFFIX}" = ["agent"]

[ldap.contact_centers]
"cn=cc-all,ou=groups,{SUFFIX}" = "all"
"#,
        ca = ca.display(),
        password = password.display(),
    )
}

/// GET `path` as `user` with `password`: the status and the body.
async fn get_as(daemon: &TestDaemon, user: &str, password: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(daemon.url(path))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[actix_rt::test]
async fn directory_groups_give_roles_and_a_contact_center() {
    if !available() {
        return;
    }
    let slapd = Slapd::start();
    let daemon = TestDaemon::start(&config(&slapd, ""));
    let (status, body) = get_as(&daemon, "sup", USER_PASSWORD, INSTANCES).await;
    assert_eq!(status, 200, "a supervisor reads the instances: {body}");
    let (status, body) = get_as(&daemon, "agent1", USER_PASSWORD, SERVICES).await;
    assert_eq!(status, 200, "an agent reads the services: {body}");
    let (status, _) = get_as(&daemon, "agent1", USER_PASSWORD, INSTANCES).await;
    assert_eq!(status, 403, "but not the instances");
    let (status, body) = get_as(&daemon, "nocc", USER_PASSWORD, SERVICES).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("map to no contact center"), "{body}");
    let (status, body) = get_as(&daemon, "sup", "wrong", SERVICES).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = get_as(&daemon, "sup", "", SERVICES).await;
    assert_eq!(status, 401, "an empty password never binds");
    let (status, _) = get_as(&daemon, "*", USER_PASSWORD, SERVICES).await;
    assert_eq!(status, 401, "a wildcard name matches nobody");
    let (status, _) = get_as(&daemon, USER, USER_PASSWORD, SERVICES).await;
    assert_eq!(
        status, 401,
        "the local tester wins: the directory's password is not its"
    );
    let (status, _) = get_as(&daemon, USER, PASSWORD, SERVICES).await;
    assert_eq!(
        status, 200,
        "the local tester logs in with its own password"
    );
    assert_eq!(daemon.metric("servicewatch_ldap_up").await, Some(1.0));
    assert!(
        daemon
            .metric("servicewatch_ldap_requests_total{outcome=\"accepted\"}")
            .await
            .is_some_and(|n| n >= 2.0)
    );
}

#[actix_rt::test]
async fn wrong_directory_passwords_are_throttled() {
    if !available() {
        return;
    }
    let slapd = Slapd::start();
    let daemon = TestDaemon::start(&config(&slapd, "[auth]\nmax_failures = 2\n"));
    for _ in 0..2 {
        let (status, _) = get_as(&daemon, "sup", "wrong", SERVICES).await;
        assert_eq!(status, 401);
    }
    let (status, body) = get_as(&daemon, "sup", USER_PASSWORD, SERVICES).await;
    assert_eq!(status, 429, "the address is locked out: {body}");
}

#[actix_rt::test]
async fn a_directory_down_gives_a_quick_503_and_spares_local_users() {
    if !available() {
        return;
    }
    let mut slapd = Slapd::start();
    let daemon = TestDaemon::start(&config(&slapd, ""));
    let (status, _) = get_as(&daemon, "sup", USER_PASSWORD, SERVICES).await;
    assert_eq!(status, 200);
    slapd.stop();
    let started = Instant::now();
    let (status, body) = get_as(&daemon, "agent1", USER_PASSWORD, SERVICES).await;
    let took = started.elapsed();
    eprintln!("a directory login with the directory down was refused in {took:?}");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("the directory is unreachable; try again later")
            && body.contains("statusCode"),
        "{body}"
    );
    assert!(took < Duration::from_secs(TIMEOUT_SECS), "503 in {took:?}");
    assert_eq!(daemon.metric("servicewatch_ldap_up").await, Some(0.0));
    let (status, _) = get_as(&daemon, USER, PASSWORD, SERVICES).await;
    assert_eq!(status, 200, "a local user still logs in");
    let (status, _) = get_as(&daemon, "sup", USER_PASSWORD, SERVICES).await;
    assert_eq!(status, 200, "a cached directory login still passes");
    slapd.run();
    eventually(WITHIN, "directory logins again", || async {
        let (status, _) = get_as(&daemon, "agent1", USER_PASSWORD, SERVICES).await;
        (status == 200).then_some(())
    })
    .await;
    assert_eq!(daemon.metric("servicewatch_ldap_up").await, Some(1.0));
}

/// Runs `check-config` on `text`; returns exit code and stderr.
fn check_config(dir: &Path, text: &str) -> (i32, String) {
    let path = dir.join("servicewatch.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_the_ldap_key_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    common::certs::Ca::new(dir.path());
    let password = dir.path().join("bind.pw");
    std::fs::write(&password, "s3cret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let center = "[[contact_center]]\nid = \"all\"\n";
    let good = format!(
        "{center}{}",
        ldap_table("ldap://127.0.0.1:389", &ca, &password, "")
    );
    assert_eq!(
        check_config(dir.path(), &good).0,
        0,
        "{}",
        check_config(dir.path(), &good).1
    );
    let cases = [
        (
            good.replace("starttls = true\n", ""),
            "ldap.url: is ldap:// without StartTLS",
        ),
        (
            good.replace("ldap://127.0.0.1:389", "ldapz://x"),
            "ldap.url: has scheme",
        ),
        (
            good.replace(&format!("user_base = \"ou=people,{SUFFIX}\"\n"), ""),
            "ldap.user_base: is required",
        ),
        (
            good.replace("timeout =", "user_filter = \"(uid=x)\"\ntimeout ="),
            "ldap.user_filter: must contain {user}",
        ),
        (
            good.replace("[\"supervisor\"]", "[\"boss\"]"),
            "\"boss\" is not a role",
        ),
        (
            good.replace("com\" = \"all\"", "com\" = \"nowhere\""),
            "no [[contact_center]] with id \"nowhere\"",
        ),
        (
            good.replace(&password.display().to_string(), "/nonexistent/pw"),
            "ldap.bind_password_file: cannot read",
        ),
    ];
    for (text, expected) in cases {
        let (code, stderr) = check_config(dir.path(), &text);
        assert_eq!(code, 3, "{stderr}");
        assert!(
            stderr.contains(expected),
            "{stderr}\nshould contain\n{expected}"
        );
    }
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = check_config(dir.path(), &good);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("ldap.bind_password_file") && stderr.contains("readable by everyone"),
        "{stderr}"
    );
}
