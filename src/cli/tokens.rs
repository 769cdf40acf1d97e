//! `servicewatch tokens list|create|revoke`: the API tokens (`Authorization: Bearer
//! swt_...`) of `GET` and `POST /tokens` and `DELETE /tokens/{name}`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use awc::http::Method;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{Cell, items, on_terminal, table, text};
use super::{Failure, Reach, encode};

const LIST_HELP: &str = "\
Examples:
  servicewatch tokens list
  servicewatch tokens list --json

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

const CREATE_HELP: &str = "\
Examples:
  servicewatch tokens create nagios --contact-center cc1
  servicewatch tokens create change-control --scope maintenance --for 30d --contact-center cc1
  servicewatch tokens create deploy-bot --scope admin --expires 2027-06-30T00:00:00Z --contact-center cc1

Scopes: read (reads services, history, availability, notifications), maintenance (read, and
sets and clears maintenance), admin. A token expires after --for (default 90 days) or at
--expires (at most 400 days ahead). Over the control socket, name the contact center whose
services the token sees; over --url it defaults to yours. The token is printed once; the
daemon keeps only its SHA-256.

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

const REVOKE_HELP: &str = "\
Examples:
  servicewatch tokens revoke nagios

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `tokens`' subcommands.
#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// List the API tokens.
    #[command(after_help = LIST_HELP)]
    List(ListArgs),
    /// Create an API token and print it (once).
    #[command(after_help = CREATE_HELP)]
    Create(CreateArgs),
    /// Revoke an API token: requests bearing it are refused from now on.
    #[command(after_help = REVOKE_HELP)]
    Revoke(RevokeArgs),
}

/// `tokens list`'s arguments.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    reach: Reach,
}

/// `tokens create`'s arguments.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The token's name, to list and revoke it by.
    name: String,
    /// What the token may do: read, maintenance or admin.
    #[arg(long, default_value = "read", value_parser = ["read", "maintenance", "admin"])]
    scope: String,
    /// How long the token lasts (`90d`, `12h`...).
    #[arg(long = "for", id = "for_", value_parser = humantime::parse_duration, conflicts_with = "expires")]
    for_: Option<Duration>,
    /// When the token expires (RFC 3339), instead of --for.
    #[arg(long)]
    expires: Option<String>,
    /// The contact center whose services the token sees.
    #[arg(long)]
    contact_center: Option<String>,
    #[command(flatten)]
    reach: Reach,
}

/// A token lasts this long when neither --for nor --expires says otherwise.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

impl CreateArgs {
    /// The body of `POST /tokens`.
    fn body(&self, now: SystemTime) -> Value {
        let expires = self.expires.clone().unwrap_or_else(|| {
            let lasting = self.for_.unwrap_or(DEFAULT_LIFETIME);
            humantime::format_rfc3339_seconds(now + lasting).to_string()
        });
        let mut body = json!({ "name": self.name, "scope": self.scope, "expires": expires });
        if let Some(center) = &self.contact_center {
            body["contactCenter"] = Value::from(center.as_str());
        }
        body
    }
}

/// `tokens revoke`'s arguments.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The token's name.
    name: String,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(command: TokensCommand, config: &Path) -> Result<(), Failure> {
    match command {
        TokensCommand::List(args) => {
            let client = args.reach.client(config)?;
            let answer = client.get("/tokens").await.map_err(no_endpoint)?;
            args.reach.print(&answer, print_list);
        }
        TokensCommand::Create(args) => {
            let client = args.reach.client(config)?;
            let body = args.body(SystemTime::now());
            let answer = client
                .send(Method::POST, "/tokens", Some(&body))
                .await
                .map_err(no_endpoint)?;
            args.reach.print(&answer, |a| {
                eprintln!("servicewatch: the token is shown once; keep it now or make a new one");
                println!("{}", text(a, "token"));
            });
        }
        TokensCommand::Revoke(args) => {
            let client = args.reach.client(config)?;
            let path = format!("/tokens/{}", encode(&args.name));
            let answer = client
                .send(Method::DELETE, &path, None)
                .await
                .map_err(no_endpoint)?;
            args.reach
                .print(&answer, |_| println!("token {} revoked", args.name));
        }
    }
    Ok(())
}

/// The tokens as a table.
fn print_list(answer: &Value) {
    let rows: Vec<Vec<Cell>> = items(answer, "apiTokens")
        .iter()
        .map(|t| {
            let mut row: Vec<Cell> = ["name", "scope", "contactCenter", "expires", "createdBy"]
                .iter()
                .map(|key| Cell::plain(text(t, key)))
                .collect();
            if t["expired"] == true {
                row[3] = Cell::plain(format!("{} (expired)", text(t, "expires")));
            }
            row
        })
        .collect();
    print!(
        "{}",
        table(
            &["NAME", "SCOPE", "CONTACT CENTER", "EXPIRES", "CREATED BY"],
            &rows,
            on_terminal()
        )
    );
}

/// A 404 for the endpoint itself (not for one token) means the daemon has no tokens yet:
/// said so, the daemon's own message kept.
pub(super) fn no_endpoint(failure: Failure) -> Failure {
    match failure {
        Failure::Daemon {
            status: 404,
            message,
        } if message.starts_with("no resource at") => Failure::Daemon {
            status: 404,
            message: format!(
                "this servicewatch daemon has no such endpoint ({message}): it is older than this command; upgrade it"
            ),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_sends_the_scope_the_expiry_and_the_center() {
        let args = CreateArgs {
            name: "nagios".into(),
            scope: "maintenance".into(),
            for_: Some(Duration::from_secs(3600)),
            expires: None,
            contact_center: Some("cc1".into()),
            reach: Reach::default(),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_836_000);
        assert_eq!(
            args.body(now),
            json!({"name": "nagios", "scope": "maintenance", "expires": "2026-11-28T04:20:00Z", "contactCenter": "cc1"})
        );
    }

    #[test]
    fn a_missing_endpoint_is_said_plainly() {
        let missing = Failure::Daemon {
            status: 404,
            message: "no resource at /api/v2/tokens".into(),
        };
        let Failure::Daemon { message, .. } = no_endpoint(missing) else {
            panic!("still the daemon's answer");
        };
        assert!(message.contains("no such endpoint") && message.contains("/api/v2/tokens"));
        let unknown_token = Failure::Daemon {
            status: 404,
            message: "no token named x".into(),
        };
        assert_eq!(no_endpoint(unknown_token.clone()), unknown_token);
    }
}
