//! `servicewatch tokens list|create|revoke`: the API tokens (`Authorization: Bearer
//! swt_...`) of `GET` and `POST /tokens` and `DELETE /tokens/{name}`.

use std::path::Path;

use awc::http::Method;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{Cell, on_terminal, table, text};
use super::{Failure, Reach, encode};

const LIST_HELP: &str = "\
Examples:
  servicewatch tokens list
  servicewatch tokens list --json

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

const CREATE_HELP: &str = "\
Examples:
  servicewatch tokens create nagios
  servicewatch tokens create deploy-bot --role admin

The token is printed once; the daemon keeps only what verifies it.

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
    /// The role the token acts with (agent, supervisor or admin); the daemon's default
    /// without it.
    #[arg(long)]
    role: Option<String>,
    #[command(flatten)]
    reach: Reach,
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
            let mut body = json!({ "name": args.name });
            if let Some(role) = &args.role {
                body["role"] = Value::from(role.as_str());
            }
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
    let rows: Vec<Vec<Cell>> = answer["tokens"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| {
            ["name", "role", "created", "lastUsed"]
                .iter()
                .map(|key| Cell::plain(text(t, key)))
                .collect()
        })
        .collect();
    print!(
        "{}",
        table(
            &["NAME", "ROLE", "CREATED", "LAST USED"],
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
