//! `servicewatch reload`: the daemon re-reads its configuration file, as on SIGHUP
//! (`POST /reload`), and says what changed or why the file was refused.

use std::path::Path;

use awc::http::Method;
use clap::Args;
use serde_json::Value;

use super::{Failure, Reach};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch check-config && servicewatch reload
  servicewatch reload --json

A refused file changes nothing: the running configuration stays, and the message names the
key to fix (exit 1).

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `reload`'s arguments.
#[derive(Args, Debug)]
pub struct ReloadArgs {
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: ReloadArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let answer = client.send(Method::POST, "/reload", None).await?;
    args.reach.print(&answer, |a| {
        let ids = |key: &str| {
            a[key]
                .as_array()
                .map(|all| {
                    all.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|list| !list.is_empty())
                .unwrap_or_else(|| "none".into())
        };
        println!("reloaded");
        println!("  added:     {}", ids("added"));
        println!("  changed:   {}", ids("changed"));
        println!("  removed:   {}", ids("removed"));
        println!("  unchanged: {}", a["unchanged"]);
    });
    Ok(())
}
