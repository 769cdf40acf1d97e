//! `servicewatch audit`: who changed what, when (`GET /audit`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, on_terminal, table, text};
use super::tokens::no_endpoint;
use super::{Failure, Reach};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch audit
  servicewatch audit --json | jq '.audit[] | select(.by == \"uid:0\")'

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `audit`'s arguments.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: AuditArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let answer = client.get("/audit").await.map_err(no_endpoint)?;
    args.reach.print(&answer, |a| {
        let rows: Vec<Vec<Cell>> = a["audit"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|entry: &Value| {
                ["at", "by", "action", "target"]
                    .iter()
                    .map(|key| Cell::plain(text(entry, key)))
                    .collect()
            })
            .collect();
        print!(
            "{}",
            table(&["AT", "BY", "ACTION", "TARGET"], &rows, on_terminal())
        );
    });
    Ok(())
}
