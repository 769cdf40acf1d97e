//! From a role check as layered in the file (the service's or `config_server`'s `role`,
//! then the instance's) to the [`RoleCheck`] a monitor runs. A new way of asking touches
//! this file and `probe/role.rs`.

use std::time::Duration;

use super::file::{RoleKindName, RoleSection};
use super::rules::{Invalid, positive};
use crate::probe::role::{Ask, RoleCheck, Words};

impl RoleSection {
    /// This role check with every key it leaves unset taken from `under`.
    pub fn over(&self, under: &RoleSection) -> RoleSection {
        RoleSection {
            kind: self.kind.or(under.kind),
            port: self.port.or(under.port),
            path: self.path.clone().or_else(|| under.path.clone()),
            pointer: self.pointer.clone().or_else(|| under.pointer.clone()),
            command: self.command.clone().or_else(|| under.command.clone()),
            primary: self.primary.clone().or_else(|| under.primary.clone()),
            backup: self.backup.clone().or_else(|| under.backup.clone()),
            timeout: self.timeout.or(under.timeout),
        }
    }

    /// Turns a fully layered role section into a `RoleCheck` for an instance listening on
    /// `port`, whose health check gives up after `check_timeout`.
    pub fn resolve(&self, port: u16, check_timeout: Duration) -> Result<RoleCheck, Invalid> {
        let kind = self.kind.ok_or_else(|| {
            (
                "kind".to_string(),
                "a role check needs kind = \"http\" (with path) or kind = \"exec\" (with command)"
                    .to_string(),
            )
        })?;
        let refuse = |key: &str, present: bool, kind: &str| {
            if present {
                Err((
                    key.to_string(),
                    format!("does not apply to an {kind} role check"),
                ))
            } else {
                Ok(())
            }
        };
        let ask = match kind {
            RoleKindName::Http => {
                refuse("command", self.command.is_some(), "http")?;
                let path = self.path.clone().ok_or_else(|| {
                    (
                        "path".to_string(),
                        "an http role check needs path = \"/...\", the page that names the role"
                            .to_string(),
                    )
                })?;
                if !path.starts_with('/')
                    || path.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err((
                        "path".into(),
                        format!("\"{path}\" must start with / and hold no spaces"),
                    ));
                }
                if let Some(pointer) = &self.pointer
                    && !(pointer.is_empty() || pointer.starts_with('/'))
                {
                    return Err((
                        "pointer".into(),
                        format!(
                            "\"{pointer}\" is not a JSON pointer; write it as \"/key/inner\" (RFC 6901)"
                        ),
                    ));
                }
                if self.port == Some(0) {
                    return Err(("port".into(), "must be between 1 and 65535".into()));
                }
                Ask::Http {
                    port: self.port.unwrap_or(port),
                    path,
                    pointer: self.pointer.clone(),
                }
            }
            RoleKindName::Exec => {
                for (key, present) in [
                    ("path", self.path.is_some()),
                    ("pointer", self.pointer.is_some()),
                    ("port", self.port.is_some()),
                ] {
                    refuse(key, present, "exec")?;
                }
                let command = self.command.clone().unwrap_or_default();
                if command.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err((
                        "command".into(),
                        "an exec role check needs command = [\"/path/to/program\", \"arg\", ...]"
                            .into(),
                    ));
                }
                Ask::Exec { command }
            }
        };
        let defaults = Words::default();
        let word = |key: &str, value: &Option<String>, default: String| match value {
            Some(w) if w.trim().is_empty() => {
                Err((key.to_string(), "must not be empty".to_string()))
            }
            Some(w) => Ok(w.trim().to_string()),
            None => Ok(default),
        };
        let words = Words {
            primary: word("primary", &self.primary, defaults.primary)?,
            backup: word("backup", &self.backup, defaults.backup)?,
        };
        if words.primary.eq_ignore_ascii_case(&words.backup) {
            return Err((
                "backup".into(),
                format!(
                    "\"{}\" is also the answer for primary; the two answers must differ",
                    words.backup
                ),
            ));
        }
        Ok(RoleCheck {
            ask,
            timeout: positive("timeout", self.timeout, check_timeout)?,
            words,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::settings::tests::{PAIR, load, refused};
    use crate::probe::role::{Ask, Words};
    use std::time::Duration;

    fn with_role(role: &str) -> String {
        format!("{PAIR}role = {{ {role} }}\n")
    }

    #[test]
    fn a_role_check_is_layered_from_the_pair_to_each_instance() {
        let text = with_role(r#"kind = "http", path = "/ha", port = 8081, primary = "ACTIVE""#)
            .replace(
                "backup  = { host = \"10.0.0.6\", port = 5001,",
                "backup  = { host = \"10.0.0.6\", port = 5001, role = { port = 8082 },",
            );
        let s = load(&text).unwrap();
        let pair = &s.services[0].pair;
        assert!(pair.asks_roles());
        let ask = |i: &crate::config::services::InstanceSpec| i.role.clone().unwrap();
        let primary = ask(&pair.primary);
        assert_eq!(
            primary.ask,
            Ask::Http {
                port: 8081,
                path: "/ha".into(),
                pointer: None
            }
        );
        assert_eq!(
            primary.words,
            Words {
                primary: "ACTIVE".into(),
                backup: "backup".into()
            }
        );
        assert_eq!(
            primary.timeout,
            Duration::from_secs(1),
            "the check's timeout"
        );
        let backup = ask(pair.backup.as_ref().unwrap());
        assert!(matches!(backup.ask, Ask::Http { port: 8082, .. }));
        assert_eq!(backup.timeout, Duration::from_secs(3));
    }

    #[test]
    fn refuses_role_checks_that_cannot_work() {
        let at = "test.toml: service[0] (sips1).primary.role.";
        assert_eq!(
            refused(&with_role(r#"path = "/ha""#)),
            format!(
                "{at}kind: a role check needs kind = \"http\" (with path) or kind = \"exec\" (with command)"
            )
        );
        assert!(refused(&with_role(r#"kind = "http""#)).starts_with(&format!("{at}path: ")));
        assert_eq!(
            refused(&with_role(
                r#"kind = "http", path = "/ha", pointer = "ha.role""#
            )),
            format!(
                "{at}pointer: \"ha.role\" is not a JSON pointer; write it as \"/key/inner\" (RFC 6901)"
            )
        );
        assert_eq!(
            refused(&with_role(
                r#"kind = "exec", command = ["x"], path = "/ha""#
            )),
            format!("{at}path: does not apply to an exec role check")
        );
        assert_eq!(
            refused(&with_role(
                r#"kind = "exec", command = ["x"], backup = "PRIMARY""#
            )),
            format!(
                "{at}backup: \"PRIMARY\" is also the answer for primary; the two answers must differ"
            )
        );
        assert!(
            refused(&with_role(r#"kind = "exec", command = []"#))
                .starts_with(&format!("{at}command: an exec role check needs command"))
        );
        let one_sided = PAIR.replace(
            "primary = { host = \"10.0.0.5\", port = 5001 }",
            "primary = { host = \"10.0.0.5\", port = 5001, role = { kind = \"exec\", command = [\"x\"] } }",
        );
        assert!(
            refused(&one_sided).starts_with(
                "test.toml: service[0] (sips1).primary.role: a role check is asked of both instances"
            ),
            "{}",
            refused(&one_sided)
        );
    }
}
