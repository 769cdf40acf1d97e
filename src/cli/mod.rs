//! The command line of a running daemon: `servicewatch status`, `maintenance`, `history`,
//! `instances`, `alerts`, `availability`, `reload`, `tokens` and `audit`, each a file here.
//!
//! Every command is a request to the daemon's own API ([`client`]): over the control socket
//! by default (root and the daemon's group are admins there, no password), or over HTTP(S)
//! with `--url` and a Bearer token. What is printed is read from the API's JSON; `--json`
//! prints that JSON as it came, for scripts.
//!
//! Exit codes a script can test: [`EXIT_CODES`].

pub mod client;
mod output;

mod alerts;
mod audit;
mod availability;
mod history;
mod instances;
mod maintenance;
mod reload;
mod status;
mod tokens;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::config;
use client::{Client, Target};

/// What each exit code of a command means, as `--help` says it.
pub const EXIT_CODES: &str = "\
Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon (not running, or no permission on the socket); 4 refused
(401/403: not root nor in the servicewatch group, or a token without the right).";

/// Why a command did not succeed; each maps to an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The daemon answered with an error (exit 1).
    Daemon {
        /// The HTTP status.
        status: u16,
        /// The answer's `statusMessage`.
        message: String,
    },
    /// The daemon could not be reached (exit 3).
    Unreachable(String),
    /// The daemon refused the caller: 401 or 403 (exit 4).
    Refused(String),
    /// The command line asked for something impossible that clap could not tell (exit 2).
    Usage(String),
}

impl Failure {
    /// The process's exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Daemon { .. } => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::Refused(_) => 4,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Daemon { message, .. }
            | Failure::Unreachable(message)
            | Failure::Refused(message)
            | Failure::Usage(message) => message,
        }
    }
}

/// How to reach the daemon, and how to print; every command takes these.
#[derive(Args, Debug, Clone, Default)]
pub struct Reach {
    /// The control socket [default: [control] socket of --config, else
    /// /run/servicewatch/control.sock].
    #[arg(long, env = "SERVICEWATCH_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// A daemon elsewhere: its API's address, such as https://sw.example.com:8443 (the
    /// base path may follow; default: [server] base_path of --config, else /api/v2).
    #[arg(long, value_name = "URL", conflicts_with = "socket")]
    url: Option<String>,
    /// An API token for --url, sent as `Authorization: Bearer TOKEN` (not sent over the
    /// socket, where the socket's rule decides).
    #[arg(long, env = "SERVICEWATCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON as it came, for scripts.
    #[arg(long)]
    json: bool,
}

/// The commands that talk to a running daemon.
#[derive(Subcommand, Debug)]
pub enum ControlCommand {
    /// Show every service (or one): its state, serving instance and since when.
    #[command(after_help = status::HELP)]
    Status(status::StatusArgs),
    /// Put a service (or one of its servers) into maintenance, or take it out.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Show the recorded changes of a service, newest first.
    #[command(after_help = history::HELP)]
    History(history::HistoryArgs),
    /// Show each server of a service: health, serving, last check.
    #[command(after_help = instances::HELP)]
    Instances(instances::InstancesArgs),
    /// Show the alerts firing now.
    #[command(after_help = alerts::HELP)]
    Alerts(alerts::AlertsArgs),
    /// Show the share of time each service (or one) was Active.
    #[command(after_help = availability::HELP)]
    Availability(availability::AvailabilityArgs),
    /// Reload the configuration file, as `systemctl reload servicewatch` does, and show
    /// what changed or why the file was refused.
    #[command(after_help = reload::HELP)]
    Reload(reload::ReloadArgs),
    /// List, create and revoke API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Show the audit trail: who changed what, when.
    #[command(after_help = audit::HELP)]
    Audit(audit::AuditArgs),
}

/// Runs `command` against the daemon `config` describes (or as its options say); prints
/// what it got and returns the exit code.
pub fn run(command: ControlCommand, config: &Path) -> ExitCode {
    let system = actix_rt::System::new();
    let outcome = system.block_on(async move {
        match command {
            ControlCommand::Status(args) => status::run(args, config).await,
            ControlCommand::Maintenance(command) => maintenance::run(command, config).await,
            ControlCommand::History(args) => history::run(args, config).await,
            ControlCommand::Instances(args) => instances::run(args, config).await,
            ControlCommand::Alerts(args) => alerts::run(args, config).await,
            ControlCommand::Availability(args) => availability::run(args, config).await,
            ControlCommand::Reload(args) => reload::run(args, config).await,
            ControlCommand::Tokens(command) => tokens::run(command, config).await,
            ControlCommand::Audit(args) => audit::run(args, config).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("servicewatch: {}", failure.message());
            ExitCode::from(failure.exit_code())
        }
    }
}

impl Reach {
    /// The client these options describe, the configuration at `config` filling in what
    /// they leave out (when it can be read: a command works without it).
    fn client(&self, config: &Path) -> Result<Client, Failure> {
        let settings = config::load(config).ok();
        let configured_base = settings.as_ref().map(|s| s.server.base_path.clone());
        let base_or_default =
            |base: Option<String>| base.unwrap_or_else(|| config::server::DEFAULT_BASE_PATH.into());
        if let Some(url) = &self.url {
            let (origin, path) = split_url(url)?;
            let base = path.or(configured_base);
            let target = Target::Url {
                origin,
                token: self.token.clone(),
            };
            return Client::new(target, base_or_default(base));
        }
        let socket = self.socket.clone().unwrap_or_else(|| {
            settings
                .as_ref()
                .and_then(|s| s.control.socket.clone())
                .unwrap_or_else(|| PathBuf::from(config::control::DEFAULT_SOCKET))
        });
        Client::new(Target::Socket(socket), base_or_default(configured_base))
    }

    /// Prints `json` as it came when `--json` was given; else `human` prints it.
    fn print(&self, json: &Value, human: impl FnOnce(&Value)) {
        if self.json {
            println!("{json}");
        } else {
            human(json);
        }
    }
}

/// The origin of an `http(s)://host[:port][/base]` URL, and its path when it has one.
fn split_url(url: &str) -> Result<(String, Option<String>), Failure> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Failure::Usage(format!("--url {url}: {e}; write it as https://HOST:PORT")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Failure::Usage(format!(
            "--url {url}: must be http://HOST:PORT or https://HOST:PORT"
        )));
    }
    let origin = parsed.origin().ascii_serialization();
    let path = parsed.path().trim_end_matches('/');
    Ok((origin, (!path.is_empty()).then(|| path.to_string())))
}

/// `value` as a path segment or query value: percent-encoded.
/// Which records of a time-ordered list to ask for (`history`, `audit`): the API's `since`,
/// `until` and `limit`.
#[derive(Args, Debug)]
pub struct Span {
    /// Records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Records at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// At most this many records, the newest.
    #[arg(long)]
    limit: Option<u32>,
}

impl Span {
    /// `path` with the query of the bounds given.
    fn query(&self, path: String) -> String {
        let limit = self.limit.map(|l| l.to_string());
        let query: Vec<String> = [
            ("since", &self.since),
            ("until", &self.until),
            ("limit", &limit),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={}", encode(v))))
        .collect();
        if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_its_origin_and_base_path() {
        assert_eq!(
            split_url("https://sw.example.com:8443").unwrap(),
            ("https://sw.example.com:8443".into(), None)
        );
        assert_eq!(
            split_url("http://10.0.0.5:8080/gws/api/v2/").unwrap(),
            ("http://10.0.0.5:8080".into(), Some("/gws/api/v2".into()))
        );
        assert!(matches!(split_url("ftp://x"), Err(Failure::Usage(_))));
        assert!(matches!(split_url("sw:8080"), Err(Failure::Usage(_))));
    }

    #[test]
    fn every_failure_has_its_exit_code() {
        let daemon = Failure::Daemon {
            status: 404,
            message: "no service".into(),
        };
        assert_eq!(daemon.exit_code(), 1);
        assert_eq!(Failure::Usage(String::new()).exit_code(), 2);
        assert_eq!(Failure::Unreachable(String::new()).exit_code(), 3);
        assert_eq!(Failure::Refused(String::new()).exit_code(), 4);
    }

    #[test]
    fn values_are_encoded_for_paths_and_queries() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(
            encode("2026-01-01T00:00:00+01:00"),
            "2026-01-01T00%3A00%3A00%2B01%3A00"
        );
    }
}
