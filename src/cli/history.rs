//! `servicewatch history SERVICE`: the recorded changes of a service, newest first
//! (`GET /services/{id}/history`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, items, on_terminal, table, text};
use super::{Failure, Reach, Span, encode};

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
    #[command(flatten)]
    span: Span,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: HistoryArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let path = args
        .span
        .query(format!("/services/{}/history", encode(&args.service)));
    let answer = client.get(&path).await?;
    args.reach.print(&answer, |a| {
        let rows: Vec<Vec<Cell>> = items(a, "history")
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
