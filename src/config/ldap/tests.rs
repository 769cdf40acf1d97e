use std::os::unix::fs::PermissionsExt;

use super::super::settings::tests::{load, refused};
use super::*;

/// A `[ldap]` table over StartTLS with a search bind whose password is in `password`.
fn config(password: &Path, extra: &str) -> String {
    format!(
        "[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n\
         [ldap]\nurl = \"ldap://dir.example.com\"\nstarttls = true\n\
         bind_dn = \"cn=servicewatch,dc=example,dc=com\"\nbind_password_file = \"{}\"\n\
         user_base = \"ou=people,dc=example,dc=com\"\n{extra}\
         [ldap.roles]\n\"CN=Supervisors, ou=groups,dc=example,dc=com\" = [\"supervisor\"]\n\
         [ldap.contact_centers]\n\"cn=staff,ou=groups,dc=example,dc=com\" = \"cc\"\n",
        password.display()
    )
}

fn password_file(mode: u32) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "s3cret\n").unwrap();
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

#[test]
fn a_starttls_directory_with_defaults() {
    let password = password_file(0o600);
    let s = load(&config(password.path(), "")).unwrap();
    let ldap = s.auth.ldap.unwrap();
    assert_eq!(ldap.transport, Transport::StartTls);
    assert_eq!(ldap.user_filter, DEFAULT_USER_FILTER);
    assert_eq!(ldap.group_attribute.as_deref(), Some("memberOf"));
    assert_eq!(ldap.timeout, DEFAULT_TIMEOUT);
    assert_eq!(
        ldap.cache, s.auth.login_cache,
        "the cache follows login_cache"
    );
    assert_eq!(ldap.bind.unwrap().password.expose(), "s3cret");
    assert_eq!(
        ldap.roles["cn=supervisors,ou=groups,dc=example,dc=com"],
        [UserRole::Supervisor].into()
    );
    let cc = &ldap.contact_centers["cn=staff,ou=groups,dc=example,dc=com"];
    assert_eq!(cc.id, "cc");
    assert!(cc.features.contains("api-voice"));
}

#[test]
fn refusals_name_their_key() {
    let password = password_file(0o600);
    let base = config(password.path(), "");
    let cases = [
        (
            base.replace("starttls = true\n", ""),
            "ldap.url: is ldap:// without StartTLS",
        ),
        (
            base.replace("ldap://dir.example.com", "http://dir"),
            "ldap.url: has scheme \"http\"",
        ),
        (
            base.replace("ldap://dir.example.com", "not a url"),
            "ldap.url: \"not a url\" is not a URL",
        ),
        (
            base.replace("user_base = \"ou=people,dc=example,dc=com\"\n", ""),
            "ldap.user_base: is required",
        ),
        (
            config(password.path(), "user_filter = \"(uid=alice)\"\n"),
            "ldap.user_filter: must contain {user}",
        ),
        (
            config(password.path(), "user_filter = \"(uid={user}\"\n"),
            "ldap.user_filter: \"(uid={user}\" is not an LDAP filter",
        ),
        (
            base.replace("[\"supervisor\"]", "[\"root\"]"),
            "\"root\" is not a role",
        ),
        (
            base.replace("com\" = \"cc\"", "com\" = \"zz\""),
            "no [[contact_center]] with id \"zz\"",
        ),
        (
            base.replace(&password.path().display().to_string(), "/nonexistent/pw"),
            "ldap.bind_password_file: cannot read /nonexistent/pw",
        ),
    ];
    for (text, expected) in cases {
        let why = refused(&text);
        assert!(why.contains(expected), "{why}\nshould contain\n{expected}");
    }
}

#[test]
fn a_world_readable_password_file_is_refused() {
    let password = password_file(0o644);
    let why = refused(&config(password.path(), ""));
    assert!(
        why.contains("ldap.bind_password_file:") && why.contains("readable by everyone"),
        "{why}"
    );
    assert!(!why.contains("s3cret"), "the password is never echoed");
}

#[test]
fn clear_ldap_only_to_loopback_and_only_when_asked() {
    assert_eq!(
        transport("ldap://127.0.0.1:3890", None, Some(true)),
        Ok(Transport::Plain)
    );
    assert!(transport("ldap://127.0.0.1:3890", None, None).is_err());
    assert!(transport("ldap://dir.example.com", None, Some(true)).is_err());
    assert_eq!(
        transport("ldaps://dir.example.com", None, None),
        Ok(Transport::Ldaps)
    );
    assert!(transport("ldaps://dir.example.com", Some(true), None).is_err());
    assert!(transport("ldaps://dir.example.com/dc=x", None, None).is_err());
}

#[test]
fn dns_compare_without_case_or_spaces() {
    assert_eq!(
        normalize_dn("CN=Supervisors, OU=Groups ,DC=Example,DC=com"),
        "cn=supervisors,ou=groups,dc=example,dc=com"
    );
}
