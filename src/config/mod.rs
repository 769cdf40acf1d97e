//! Configuration: one TOML file layered with `SERVICEWATCH_...` environment variables.
//!
//! Loading happens in two passes over the same file, for the sake of the error messages:
//! 1. the file alone is parsed with `toml` into `file::FileConfig`, so that a syntax error,
//!    an unknown key or a wrong type is reported with its line and column, the way
//!    `nginx -t` does;
//! 2. the `config` crate layers the environment over the file (`SERVICEWATCH_SERVER__LISTEN`
//!    overrides `[server] listen`: a `__` separates table and key) and deserializes the
//!    result again, which is what the daemon runs on.
//!
//! Then [`settings::validate`] checks what types cannot (duplicate ids, reserved attribute
//! names, quorum sizes, ...) and names the key of the first mistake.

pub(crate) mod alerts;
pub(crate) mod auth;
mod checks;
pub(crate) mod cluster;
pub mod control;
pub(crate) mod duration;
pub(crate) mod environment;
pub(crate) mod file;
pub(crate) mod history;
pub(crate) mod ldap;
pub(crate) mod notifications;
pub(crate) mod receivers;
mod roles;
mod rules;
pub mod server;
pub(crate) mod services;
pub(crate) mod settings;

use std::path::Path;

use thiserror::Error;

use crate::domain::text::one_line;

pub use settings::{Settings, validate};

/// The prefix of environment variables that override the file.
pub(crate) const ENV_PREFIX: &str = "SERVICEWATCH";
/// Separates nested keys in an environment variable name.
pub(crate) const ENV_SEPARATOR: &str = "__";
/// Where the daemon looks for its configuration when not told.
pub const DEFAULT_PATH: &str = "/etc/servicewatch/servicewatch.toml";

/// Longest part of a refusal shown: ample for any sentence here, short of a value pasted
/// whole.
const MESSAGE_CHARS: usize = 1000;

/// Why a configuration was refused. Each variant displays as one line that names the file
/// (a value quoted in it has its line breaks escaped).
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {}", one_line(message, MESSAGE_CHARS))]
    /// The file is not TOML, or not of the expected shape (an unknown key, a wrong type).
    Syntax {
        /// The file, as given.
        path: String,
        /// Where, counted from 1.
        line: usize,
        /// Where in the line, counted from 1.
        column: usize,
        /// The parser's explanation.
        message: String,
    },
    #[error(
        "{path} with {ENV_PREFIX}_* environment: {}",
        one_line(message, MESSAGE_CHARS)
    )]
    /// A `SERVICEWATCH_*` variable is not an override, or its value does not fit its key.
    Environment {
        /// The file the variables were layered over.
        path: String,
        /// Which variable, and why.
        message: String,
    },
    #[error(
        "{file}: {}: {}",
        one_line(key, MESSAGE_CHARS),
        one_line(message, MESSAGE_CHARS)
    )]
    /// A value is of the right type but not allowed (a zero interval, an unknown service
    /// type...).
    Invalid {
        /// The file, as given.
        file: String,
        /// The key, as a path (`service[2].check.rise`).
        key: String,
        /// Why, and what would do.
        message: String,
    },
}

/// Reads, layers and validates the configuration at `path`.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text, &shown, path.parent())
}

/// Validates configuration `text`, layered with the environment; `shown` names its source
/// in errors, and `base` is the directory a relative `users_file` is found in.
pub fn parse(text: &str, shown: &str, base: Option<&Path>) -> Result<Settings, ConfigError> {
    let shown = shown.to_string();
    check_syntax::<file::FileConfig>(text, &shown)?;
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    let environment_error = |message: String| ConfigError::Environment {
        path: shown.clone(),
        message,
    };
    environment::check_names(names.iter().map(String::as_str)).map_err(environment_error)?;
    let layered = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator(ENV_SEPARATOR)
                .try_parsing(true),
        )
        .build()
        .and_then(|c| c.try_deserialize::<file::FileConfig>())
        .map_err(|e| {
            let mut message = tidy_config_message(&e.to_string());
            // Name the variable behind an unknown key (`unknown field `bogus``).
            let unknown = message
                .split('`')
                .nth(1)
                .and_then(|key| environment::variable_for(key, names.iter().map(String::as_str)));
            if let Some(variable) = unknown {
                message = format!("{message} (set by {variable})");
            }
            environment_error(message)
        })?;
    let mut layered = layered;
    if let Some(users_file) = layered.auth.users_file.clone() {
        let path = base.map_or_else(
            || Path::new(&users_file).to_path_buf(),
            |b| b.join(&users_file),
        );
        let users_shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: users_shown.clone(),
            source,
        })?;
        let users: file::UsersFile = check_syntax(&text, &users_shown)?;
        layered.users.extend(users.users);
        layered.contact_centers.extend(users.contact_centers);
    }
    if let Some(base) = base {
        layered.rebase_check_files(base);
        for receiver in &mut layered.alerts.receiver {
            receiver.rebase(base);
        }
        if let Some(ldap) = &mut layered.ldap {
            ldap.rebase(base);
        }
    }
    let mut settings = settings::validate(layered, &shown)?;
    if let (Some(path), Some(base)) = (&mut settings.history.path, base) {
        *path = base.join(&*path);
    }
    if let (Some(cluster), Some(base)) = (&mut settings.cluster, base) {
        cluster.rebase(base);
    }
    if let (Some(tls), Some(base)) = (&mut settings.tls, base) {
        tls.certificate = base.join(&tls.certificate);
        tls.key = base.join(&tls.key);
    }
    Ok(settings)
}

/// Parses a file alone, to report mistakes with their line and column.
fn check_syntax<T: serde::de::DeserializeOwned>(text: &str, path: &str) -> Result<T, ConfigError> {
    let e = match toml::from_str::<T>(text) {
        Ok(parsed) => return Ok(parsed),
        Err(e) => e,
    };
    let offset = e.span().map_or(0, |s| s.start).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(ConfigError::Syntax {
        path: path.to_string(),
        line,
        column,
        message: e.message().trim().replace('\n', "; "),
    })
}

/// The `config` crate writes nested keys as `service[0]primary.port`; put the dot back.
fn tidy_config_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']' && chars.peek().is_some_and(|n| n.is_ascii_alphabetic()) {
            out.push('.');
        }
    }
    out.replace('\n', "; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(text: &str) -> String {
        check_syntax::<file::FileConfig>(text, "f.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        assert_eq!(
            syntax("[server]\nlisten = \"x\"\nbogus = 1\n"),
            "f.toml:3:1: unknown field `bogus`, expected one of `listen`, `public_url`, `allowed_origins`, `base_path`, `workers`, `send_timeout`, `send_buffer`, `shutdown_timeout`, `keep_alive`"
        );
        let port = syntax(
            "[[service]]\nid = \"a\"\ntype = \"Voice\"\nprimary = { host = \"h\", port = 70000 }\n",
        );
        assert!(port.starts_with("f.toml:4:"), "{port}");
        assert!(port.contains("70000"), "{port}");
        let kind = syntax("[[service]]\nid = \"a\"\ntype = \"Fax\"\n");
        assert!(
            kind.starts_with("f.toml:3:8: unknown variant `Fax`"),
            "{kind}"
        );
    }

    #[test]
    fn tidies_config_keys() {
        assert_eq!(
            tidy_config_message("bad for key `service[0]primary.port`"),
            "bad for key `service[0].primary.port`"
        );
        assert_eq!(tidy_config_message("nodes[1]"), "nodes[1]");
    }
}
