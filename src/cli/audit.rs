//! `servicewatch audit`: who changed what, when (`GET /audit`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, items, on_terminal, table, text};
use super::tokens::no_endpoint;
use super::{Failure, Reach, Span};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch audit
  servicewatch audit --since 2026-12-01T00:00:00Z --limit 50
  servicewatch audit --json | jq '.audit[] | select(.who == \"uid:0\")'

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `audit`'s arguments.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    span: Span,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: AuditArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let path = args.span.query("/audit".into());
    let answer = client.get(&path).await.map_err(no_endpoint)?;
    args.reach.print(&answer, |a| {
        let rows: Vec<Vec<Cell>> = items(a, "audit")
            .iter()
            .map(|entry: &Value| {
                ["at", "who", "from", "action", "target", "outcome", "detail"]
                    .iter()
                    .map(|key| Cell::plain(text(entry, key)))
                    .collect()
            })
            .collect();
        let headers = ["AT", "WHO", "FROM", "ACTION", "TARGET", "OUTCOME", "DETAIL"];
        print!("{}", table(&headers, &rows, on_terminal()));
    });
    Ok(())
}
