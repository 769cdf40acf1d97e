//! `servicewatch history SERVICE`: the recorded changes of a service, newest first
//! (`GET /services/{id}/history`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, on_terminal, table, text};
use super::{Failure, Reach, encode, with_query};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch history sips1
  servicewatch history sips1 --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z
  servicewatch history sips1 --limit 10 --json

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `history`'s arguments.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The service's id.
    service: String,
    /// Changes at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Changes before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// At most this many changes, the newest.
    #[arg(long)]
    limit: Option<u32>,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: HistoryArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let path = with_query(
        format!("/services/{}/history", encode(&args.service)),
        &[
            ("since", args.since.clone()),
            ("until", args.until.clone()),
            ("limit", args.limit.map(|l| l.to_string())),
        ],
    );
    let answer = client.get(&path).await?;
    args.reach.print(&answer, |a| {
        let rows: Vec<Vec<Cell>> = a["history"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|change: &Value| {
                vec![
                    Cell::plain(text(change, "at")),
                    Cell::state(&text(change, "state")),
                    Cell::plain(text(change, "reason")),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["AT", "STATE", "REASON"], &rows, on_terminal())
        );
    });
    Ok(())
}
