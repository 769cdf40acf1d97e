use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// A directory with a secret, a password, a program and a CA certificate in it.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("password"), "pa55\r\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let program = dir.path().join("notify");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("plain"), "not a program").unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut ca = ca;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = ca.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), certificate.pem()).unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn webhook(url: &str) -> ReceiverSection {
    ReceiverSection {
        name: "hook".into(),
        kind: "webhook".into(),
        url: Some(url.into()),
        ..ReceiverSection::default()
    }
}

fn email(files: &Files) -> ReceiverSection {
    ReceiverSection {
        name: "mail".into(),
        kind: "email".into(),
        smtp: Some("mail.example.com:587".into()),
        username: Some("sw".into()),
        password_file: Some(files.path("password")),
        from: Some("servicewatch <sw@example.com>".into()),
        to: Some(vec!["oncall@example.com".into(), "noc@example.com".into()]),
        ..ReceiverSection::default()
    }
}

fn exec(program: &str) -> ReceiverSection {
    ReceiverSection {
        name: "script".into(),
        kind: "exec".into(),
        command: Some(vec![program.into(), "--page".into()]),
        ..ReceiverSection::default()
    }
}

fn alertmanager(urls: &[&str]) -> ReceiverSection {
    ReceiverSection {
        name: "am".into(),
        kind: "alertmanager".into(),
        urls: Some(urls.iter().map(|u| u.to_string()).collect()),
        ..ReceiverSection::default()
    }
}

/// The key a lone section is refused for, and the message.
fn refused(section: ReceiverSection) -> (String, String) {
    validate_receivers(&[section]).unwrap_err()
}

/// Asserts that `section` is refused for `key`, with a message holding `words`.
fn assert_refused(section: ReceiverSection, key: &str, words: &str) {
    let (k, message) = refused(section);
    assert_eq!(k, format!("receiver[0].{key}"), "{message}");
    assert!(message.contains(words), "{key}: {message}");
}

#[test]
fn each_kind_is_read_with_its_defaults() {
    let files = Files::new();
    let mut hook = webhook("https://hooks.example.com/servicewatch?token=x");
    hook.secret_file = Some(files.path("secret"));
    hook.ca_file = Some(files.path("ca.pem"));
    let specs = validate_receivers(&[
        hook,
        alertmanager(&["http://am1:9093", "http://am2:9093/am/"]),
        exec(&files.path("notify")),
        email(&files),
    ])
    .unwrap();
    assert_eq!(specs.len(), 4);
    assert_eq!(specs[0].timeout, DEFAULT_TIMEOUT);
    assert_eq!(specs[0].attempts, DEFAULT_ATTEMPTS);
    assert_eq!(specs[0].queue, DEFAULT_QUEUE);
    let ReceiverKind::Webhook(w) = &specs[0].kind else {
        panic!("{:?}", specs[0].kind)
    };
    assert_eq!(w.secret.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(w.ca.as_ref().unwrap().certificates.len(), 1);
    let ReceiverKind::Alertmanager(a) = &specs[1].kind else {
        panic!()
    };
    let urls: Vec<&str> = a.urls.iter().map(Url::as_str).collect();
    assert_eq!(
        urls,
        [
            "http://am1:9093/api/v2/alerts",
            "http://am2:9093/am/api/v2/alerts"
        ]
    );
    let ReceiverKind::Exec(e) = &specs[2].kind else {
        panic!()
    };
    assert_eq!(e.args, ["--page"]);
    let ReceiverKind::Email(m) = &specs[3].kind else {
        panic!()
    };
    assert_eq!((m.host.as_str(), m.port), ("mail.example.com", 587));
    assert_eq!(m.security, SmtpSecurity::StartTls);
    assert_eq!(m.to.len(), 2);
    let login = m.login.as_ref().unwrap();
    assert_eq!(
        (login.username.as_str(), login.password.expose()),
        ("sw", "pa55")
    );
    assert_eq!(specs[3].kind.name(), "email");
}

#[test]
fn secrets_never_show_in_debug() {
    let files = Files::new();
    let mut hook = webhook("https://hooks.example.com/");
    hook.secret_file = Some(files.path("secret"));
    let specs = validate_receivers(&[hook, email(&files)]).unwrap();
    let shown = format!("{specs:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("pa55"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn common_keys_are_checked() {
    let ok = || webhook("http://127.0.0.1:8080/");
    assert_refused(
        ReceiverSection {
            name: "has space".into(),
            ..ok()
        },
        "name",
        "not a receiver name",
    );
    assert_refused(
        ReceiverSection {
            kind: "pager".into(),
            ..ok()
        },
        "kind",
        "unknown kind \"pager\"",
    );
    let zero = Some(HumanDuration(Duration::ZERO));
    assert_refused(
        ReceiverSection {
            timeout: zero,
            ..ok()
        },
        "timeout",
        "longer than 0",
    );
    assert_refused(
        ReceiverSection {
            attempts: Some(0),
            ..ok()
        },
        "attempts",
        "at least 1",
    );
    assert_refused(
        ReceiverSection {
            queue: Some(0),
            ..ok()
        },
        "queue",
        "at least 1",
    );
    let (key, message) = validate_receivers(&[ok(), ok()]).unwrap_err();
    assert_eq!(key, "receiver[1].name");
    assert!(message.contains("duplicate receiver \"hook\""), "{message}");
}

#[test]
fn a_key_of_another_kind_is_refused_by_name() {
    let files = Files::new();
    assert_refused(
        ReceiverSection {
            command: Some(vec!["/bin/true".into()]),
            ..webhook("http://127.0.0.1/")
        },
        "command",
        "does not belong to a webhook receiver",
    );
    assert_refused(
        ReceiverSection {
            url: Some("http://am:9093".into()),
            ..alertmanager(&["http://am:9093"])
        },
        "url",
        "whose keys are urls,",
    );
    assert_refused(
        ReceiverSection {
            secret_file: Some("x".into()),
            ..email(&files)
        },
        "secret_file",
        "email receiver",
    );
    assert_refused(
        ReceiverSection {
            to: Some(vec![]),
            ..exec("/bin/true")
        },
        "to",
        "exec receiver",
    );
}

#[test]
fn urls_are_checked() {
    for (url, words) in [
        ("hooks.example.com/x", "is not a URL"),
        ("ftp://hooks.example.com/", "not an http:// or https:// URL"),
        ("https://", "is not a URL"),
        ("https://user:pw@hooks.example.com/", "holds credentials"),
    ] {
        let (key, message) = refused(webhook(url));
        assert_eq!(key, "receiver[0].url", "{url}");
        assert!(message.contains(words), "{url}: {message}");
        assert!(
            !message.contains("pw@"),
            "the password is not echoed: {message}"
        );
    }
    assert_refused(
        ReceiverSection {
            url: None,
            ..webhook("")
        },
        "url",
        "is required",
    );
    assert_refused(alertmanager(&[]), "urls", "names no Alertmanager");
    assert_refused(alertmanager(&["am:9093"]), "urls", "not an http");
    assert_refused(
        alertmanager(&["http://am:9093?x=1"]),
        "urls",
        "not a base URL",
    );
    assert_refused(
        alertmanager(&["http://am:9093", "http://am:9093/api/v2/alerts"]),
        "urls",
        "twice",
    );
}

#[test]
fn files_are_read_at_validation() {
    let files = Files::new();
    for (file, words) in [
        (files.path("missing"), "cannot read"),
        (files.path("empty"), "is empty"),
        (files.dir.path().display().to_string(), "cannot read"),
    ] {
        assert_refused(
            ReceiverSection {
                secret_file: Some(file.clone()),
                ..webhook("https://hooks.example.com/")
            },
            "secret_file",
            words,
        );
        assert_refused(
            ReceiverSection {
                password_file: Some(file),
                ..email(&files)
            },
            "password_file",
            words,
        );
    }
    assert_refused(
        ReceiverSection {
            ca_file: Some(files.path("secret")),
            ..webhook("https://hooks.example.com/")
        },
        "ca_file",
        "no PEM CERTIFICATE",
    );
    assert_refused(
        ReceiverSection {
            ca_file: Some(files.path("ca.pem")),
            ..webhook("http://hooks.example.com/")
        },
        "ca_file",
        "only used over TLS",
    );
}

#[test]
fn relative_files_follow_the_configuration() {
    let mut section = ReceiverSection {
        secret_file: Some("secret".into()),
        password_file: Some("/etc/servicewatch/password".into()),
        ..webhook("https://hooks.example.com/")
    };
    section.rebase(Path::new("/etc/servicewatch"));
    assert_eq!(
        section.secret_file.as_deref(),
        Some("/etc/servicewatch/secret")
    );
    assert_eq!(
        section.password_file.as_deref(),
        Some("/etc/servicewatch/password")
    );
}

#[test]
fn logins_go_together_and_never_in_clear_to_another_machine() {
    let files = Files::new();
    assert_refused(
        ReceiverSection {
            password_file: None,
            ..email(&files)
        },
        "password_file",
        "needs its password_file",
    );
    assert_refused(
        ReceiverSection {
            username: None,
            ..email(&files)
        },
        "username",
        "needs its username",
    );
    assert_refused(
        ReceiverSection {
            security: Some("none".into()),
            ..email(&files)
        },
        "security",
        "in clear to mail.example.com:587",
    );
    let local = ReceiverSection {
        security: Some("none".into()),
        smtp: Some("127.0.0.1:25".into()),
        ..email(&files)
    };
    assert!(validate_receivers(&[local]).is_ok());
    let login = |url: &str| ReceiverSection {
        username: Some("sw".into()),
        password_file: Some(files.path("password")),
        ..alertmanager(&["https://am1:9093", url])
    };
    assert_refused(
        login("http://am2:9093"),
        "username",
        "in clear to http://am2:9093",
    );
    assert!(validate_receivers(&[login("http://[::1]:9093")]).is_ok());
    assert!(validate_receivers(&[login("http://localhost:9093")]).is_ok());
}

#[test]
fn programs_are_absolute_and_executable() {
    let files = Files::new();
    assert_refused(exec("notify"), "command", "not an absolute path");
    assert_refused(
        ReceiverSection {
            command: Some(vec![]),
            ..exec("")
        },
        "command",
        "names no program",
    );
    assert_refused(exec(&files.path("missing")), "command", "No such file");
    assert_refused(
        exec(&files.path("plain")),
        "command",
        "not an executable file",
    );
    assert_refused(
        exec(&files.dir.path().display().to_string()),
        "command",
        "not an executable file",
    );
}

#[test]
fn email_is_checked() {
    let files = Files::new();
    for smtp in ["mail.example.com", "mail.example.com:0", ":25", "::1:25"] {
        assert_refused(
            ReceiverSection {
                smtp: Some(smtp.into()),
                ..email(&files)
            },
            "smtp",
            "",
        );
    }
    let v6 = ReceiverSection {
        smtp: Some("[::1]:25".into()),
        ..email(&files)
    };
    let ReceiverKind::Email(m) = &validate_receivers(&[v6]).unwrap()[0].kind else {
        panic!()
    };
    assert_eq!((m.host.as_str(), m.port), ("::1", 25));
    assert_refused(
        ReceiverSection {
            security: Some("ssl".into()),
            ..email(&files)
        },
        "security",
        "expected starttls, tls or none",
    );
    assert_refused(
        ReceiverSection {
            to: None,
            ..email(&files)
        },
        "to",
        "names no recipient",
    );
    assert_refused(
        ReceiverSection {
            to: Some(vec!["oncall@example.com".into(), "not an address".into()]),
            ..email(&files)
        },
        "to",
        "\"not an address\" is not an address",
    );
    assert_refused(
        ReceiverSection {
            from: None,
            ..email(&files)
        },
        "from",
        "is required",
    );
    assert_refused(
        ReceiverSection {
            smtp: Some("localhost:25".into()),
            security: Some("none".into()),
            ca_file: Some(files.path("ca.pem")),
            ..email(&files)
        },
        "ca_file",
        "only used over TLS",
    );
}
