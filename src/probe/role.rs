//! The role check: asks an instance which role it has, over HTTP (a path whose body, or a
//! JSON value in it, names the role) or by running a command (whose output names it).
//!
//! A role check never changes an instance's health: an instance that does not answer, or
//! answers something else, has an unknown role, with the reason in the log and the instance
//! detail, and the service falls back to inferring its serving instance
//! ([`crate::domain::roles`]).

use std::time::Duration;

use serde_json::Value;

use super::Target;
use super::exec::{self, ExecCheck};
use super::http::{self, HttpCheck};
use crate::domain::roles::SaidRole;

/// The most of an answer a log line and the instance detail repeat.
const MAX_QUOTED_CHARS: usize = 80;

/// How to ask an instance its role, fully resolved from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCheck {
    pub ask: Ask,
    /// Bound on one question, connection or process included.
    pub timeout: Duration,
    /// What the answer says for each role.
    pub words: Words,
}

/// The two ways to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `GET path` on the instance's host at `port`; the role is the body, or the JSON value
    /// at `pointer` (RFC 6901) in it.
    Http {
        port: u16,
        path: String,
        pointer: Option<String>,
    },
    /// The command's first line of output names the role.
    Exec { command: Vec<String> },
}

impl Ask {
    /// The name used in the configuration and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Ask::Http { .. } => "http",
            Ask::Exec { .. } => "exec",
        }
    }
}

/// The answers that mean primary and backup, compared without regard to case or to
/// surrounding white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    pub primary: String,
    pub backup: String,
}

impl Default for Words {
    fn default() -> Self {
        Words {
            primary: "primary".into(),
            backup: "backup".into(),
        }
    }
}

/// Asks the instance at `target` its role: what it said, and a sentence saying why.
pub async fn ask(check: &RoleCheck, target: &Target) -> (SaidRole, String) {
    let answer = match &check.ask {
        Ask::Http {
            port,
            path,
            pointer,
        } => {
            let at = Target {
                host: target.host.clone(),
                port: *port,
            };
            let request = HttpCheck {
                method: "GET".into(),
                path: path.clone(),
                expect_status: Vec::new(),
                expect_body: Some(String::new()),
            };
            match http::fetch(&request, &at, check.timeout).await {
                Ok((status, body)) => from_http(status, &body, pointer.as_deref()),
                Err(why) => Err(why),
            }
        }
        Ask::Exec { command } => {
            let run = ExecCheck {
                command: command.clone(),
            };
            match exec::run(&run, target, check.timeout).await {
                Ok((status, out, _)) if status.success() => {
                    Ok(exec::first_line(&out).unwrap_or_default())
                }
                Ok((status, out, err)) => {
                    let said = exec::first_line(&err).or_else(|| exec::first_line(&out));
                    Err(match said {
                        Some(line) => format!("the role command {status}: {line}"),
                        None => format!("the role command {status}"),
                    })
                }
                Err(why) => Err(why),
            }
        }
    };
    match answer {
        Ok(text) => interpret(&text, &check.words),
        Err(why) => (SaidRole::Unknown, why),
    }
}

/// The role text of an HTTP answer: the body, or the value at `pointer` in it.
fn from_http(status: u16, body: &[u8], pointer: Option<&str>) -> Result<String, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the role endpoint answered HTTP status {status}"));
    }
    let Some(pointer) = pointer else {
        return Ok(String::from_utf8_lossy(body).into_owned());
    };
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the role endpoint's answer is not JSON ({e}): {}",
            super::readable(body, MAX_QUOTED_CHARS)
        )
    })?;
    match json.pointer(pointer) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Null) | None => Err(format!("the role endpoint's JSON has no {pointer}")),
        Some(other) => Ok(other.to_string()),
    }
}

/// Reads the role from what the instance said.
pub fn interpret(text: &str, words: &Words) -> (SaidRole, String) {
    let said = text.trim();
    let quoted = super::readable(said.as_bytes(), MAX_QUOTED_CHARS);
    if said.eq_ignore_ascii_case(words.primary.trim()) {
        (SaidRole::Primary, format!("says {quoted:?}"))
    } else if said.eq_ignore_ascii_case(words.backup.trim()) {
        (SaidRole::Backup, format!("says {quoted:?}"))
    } else {
        (
            SaidRole::Unknown,
            format!(
                "says {quoted:?}, which is neither {:?} (primary) nor {:?} (backup)",
                words.primary, words.backup
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_compared_without_case_or_white_space() {
        let words = Words::default();
        assert_eq!(interpret(" Primary\n", &words).0, SaidRole::Primary);
        assert_eq!(interpret("BACKUP", &words).0, SaidRole::Backup);
        let (role, why) = interpret("standby", &words);
        assert_eq!(role, SaidRole::Unknown);
        assert_eq!(
            why,
            r#"says "standby", which is neither "primary" (primary) nor "backup" (backup)"#
        );
        let genesys = Words {
            primary: "SCS_PRIMARY".into(),
            backup: "SCS_BACKUP".into(),
        };
        assert_eq!(interpret("scs_backup", &genesys).0, SaidRole::Backup);
        assert_eq!(interpret("primary", &genesys).0, SaidRole::Unknown);
    }

    #[test]
    fn an_http_answer_is_the_body_or_a_json_value() {
        assert_eq!(from_http(200, b"primary\n", None).unwrap(), "primary\n");
        assert_eq!(
            from_http(200, br#"{"ha":{"role":"backup"}}"#, Some("/ha/role")).unwrap(),
            "backup"
        );
        assert_eq!(
            from_http(200, br#"{"primary":true}"#, Some("/primary")).unwrap(),
            "true",
            "a non-string value is compared as written"
        );
        assert_eq!(
            from_http(503, b"primary", None).unwrap_err(),
            "the role endpoint answered HTTP status 503"
        );
        assert_eq!(
            from_http(200, br#"{"ha":{}}"#, Some("/ha/role")).unwrap_err(),
            "the role endpoint's JSON has no /ha/role"
        );
        assert!(
            from_http(200, b"<html>", Some("/role"))
                .unwrap_err()
                .starts_with("the role endpoint's answer is not JSON")
        );
    }
}
