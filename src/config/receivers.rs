//! `[[alerts.receiver]]`: where alerts go (a webhook, Alertmanager, a program, e-mail),
//! as written and as checked.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::HumanDuration;
use super::rules::Invalid;

/// How long one delivery attempt may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before a notification is given up (counted, logged) by default.
pub const DEFAULT_ATTEMPTS: u32 = 10;
/// Notifications waiting for one receiver before the oldest is dropped, by default.
pub const DEFAULT_QUEUE: usize = 1000;

/// One `[[alerts.receiver]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSection {
    pub name: String,
    /// `webhook`, `alertmanager`, `exec`, `email`.
    pub kind: String,
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub secret_file: Option<String>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<HumanDuration>,
    pub attempts: Option<u32>,
    pub queue: Option<usize>,
}

/// A receiver, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverSpec {
    pub name: String,
    pub kind: ReceiverKind,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Attempts before a notification is given up.
    pub attempts: u32,
    /// Notifications waiting before the oldest is dropped.
    pub queue: usize,
}

/// What a receiver is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverKind {
    Webhook {
        url: String,
        secret_file: Option<PathBuf>,
    },
    Alertmanager {
        urls: Vec<String>,
    },
    Exec {
        program: PathBuf,
        args: Vec<String>,
    },
}

/// Checks every receiver; keys are relative to `[alerts]` (`receiver[0].url`).
pub(super) fn validate_receivers(
    sections: &[ReceiverSection],
) -> Result<Vec<ReceiverSpec>, Invalid> {
    let mut specs: Vec<ReceiverSpec> = Vec::with_capacity(sections.len());
    for (i, r) in sections.iter().enumerate() {
        let at = |key: &str| format!("receiver[{i}].{key}");
        if r.name.trim().is_empty() {
            return Err((at("name"), "must not be empty".into()));
        }
        if specs.iter().any(|s| s.name == r.name) {
            return Err((at("name"), format!("duplicate receiver \"{}\"", r.name)));
        }
        let kind = match r.kind.as_str() {
            "webhook" => ReceiverKind::Webhook {
                url: r
                    .url
                    .clone()
                    .ok_or_else(|| (at("url"), "is required".to_string()))?,
                secret_file: r.secret_file.as_ref().map(PathBuf::from),
            },
            "alertmanager" => ReceiverKind::Alertmanager {
                urls: r
                    .urls
                    .clone()
                    .ok_or_else(|| (at("urls"), "is required".to_string()))?,
            },
            "exec" => {
                let command = r.command.clone().unwrap_or_default();
                let Some((program, args)) = command.split_first() else {
                    return Err((at("command"), "is required".into()));
                };
                ReceiverKind::Exec {
                    program: PathBuf::from(program),
                    args: args.to_vec(),
                }
            }
            other => {
                return Err((
                    at("kind"),
                    format!("unknown kind \"{other}\"; expected webhook, alertmanager or exec"),
                ));
            }
        };
        specs.push(ReceiverSpec {
            name: r.name.clone(),
            kind,
            timeout: r.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            attempts: r.attempts.unwrap_or(DEFAULT_ATTEMPTS),
            queue: r.queue.unwrap_or(DEFAULT_QUEUE),
        });
    }
    Ok(specs)
}
