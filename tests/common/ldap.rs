//! A real OpenLDAP (Debian's `slapd`) for directory-login tests: its own temp database on a
//! free loopback port, StartTLS with a certificate from a test CA, users and groups loaded
//! with `ldapadd`; stopped when dropped, and stopped and started again on the same port and
//! data by a test that needs the directory down for a while.
//!
//! Without `slapd` the tests are skipped with a message, except under CI, where that is a
//! failure (a skipped check is not a passed one): `.ci/run` installs `slapd` and `ldap-utils`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::Ca;

/// The directory's root.
pub const SUFFIX: &str = "dc=example,dc=com";
/// The administrator, also servicewatch's search bind here.
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
const ADMIN_PASSWORD: &str = "admin-secret";
/// What every directory user's password is.
pub const USER_PASSWORD: &str = "directory-password";
/// How long slapd may take to listen.
const START_WITHIN: Duration = Duration::from_secs(20);

const SLAPD: &str = "/usr/sbin/slapd";

/// Whether `slapd` and `ldapadd` are here; without them, `false` with a message, and a
/// panic under CI.
pub fn available() -> bool {
    let found = Path::new(SLAPD).exists()
        && Command::new("ldapadd")
            .arg("-VV")
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "slapd or ldapadd is missing under CI; .ci/run installs slapd and ldap-utils"
        );
        eprintln!("directory tests skipped: install slapd and ldap-utils to run them");
    }
    found
}

/// A running slapd; stopped when dropped.
pub struct Slapd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The users (`uid=NAME,ou=people`) and the groups (`cn=NAME,ou=groups`) with their
/// members: supervisors `sup`; agents `agent1` and `tester`; contact center "all" for all
/// three; `nocc` only in `elsewhere`, which maps to no contact center.
const LDIF: &str = "\
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups
";

fn person(uid: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {USER_PASSWORD}\n\n"
    )
}

fn group(cn: &str, members: &[&str]) -> String {
    let members: String = members
        .iter()
        .map(|m| format!("member: uid={m},ou=people,{SUFFIX}\n"))
        .collect();
    format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n")
}

impl Slapd {
    /// A slapd with the users and groups of [`LDIF`] and a certificate for 127.0.0.1 from
    /// a CA written to `ca.pem` in [`Slapd::dir`].
    pub fn start() -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path());
        ca.issue_files(&["127.0.0.1"], dir.path(), "server");
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let d = dir.path().display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\n\
             moduleload back_mdb\npidfile {d}/slapd.pid\n\
             TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\nsuffix \"{SUFFIX}\"\nrootdn \"{ADMIN_DN}\"\nrootpw {ADMIN_PASSWORD}\n\
             directory {d}/db\n"
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut slapd = Slapd {
            port,
            dir,
            child: None,
        };
        slapd.run();
        let ldif = format!(
            "{LDIF}\n{}{}{}{}{}{}{}{}",
            person("sup"),
            person("agent1"),
            person("tester"),
            person("nocc"),
            group("supervisors", &["sup"]),
            group("agents", &["agent1", "tester"]),
            group("cc-all", &["sup", "agent1", "tester"]),
            group("elsewhere", &["nocc"]),
        );
        let ldif_path = slapd.dir.path().join("data.ldif");
        std::fs::write(&ldif_path, ldif).unwrap();
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &slapd.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
            ])
            .arg(&ldif_path)
            .output()
            .unwrap();
        assert!(out.status.success(), "ldapadd: {out:?}");
        slapd
    }

    /// Starts slapd on [`Slapd::port`] and waits until it listens.
    pub fn run(&mut self) {
        let child = Command::new(SLAPD)
            .args(["-d", "0", "-f"])
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-h", &format!("{}/", self.url())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slapd starts");
        self.child = Some(child);
        let deadline = Instant::now() + START_WITHIN;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = self
                    .child
                    .take()
                    .unwrap()
                    .stderr
                    .unwrap()
                    .read_to_string(&mut err);
                panic!("slapd exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen within {START_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops slapd (its data stays for [`Slapd::run`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The directory of its files: `ca.pem` is the CA of its certificate.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
