//! `servicewatch alerts`: the alerts firing now (`GET /alerts`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, items, on_terminal, table, text};
use super::{Failure, Reach};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch alerts
  servicewatch alerts --json | jq '.alerts | length'

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `alerts`'s arguments.
#[derive(Args, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: AlertsArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let answer = client.get("/alerts").await?;
    args.reach.print(&answer, |a| {
        let alerts = items(a, "alerts");
        if alerts.is_empty() {
            println!("no alert is firing");
            return;
        }
        let rows: Vec<Vec<Cell>> = alerts
            .iter()
            .map(|alert: &Value| {
                vec![
                    Cell::plain(text(alert, "name")),
                    Cell::plain(text(alert, "service")),
                    Cell::state(&text(alert, "severity")),
                    Cell::plain(text(alert, "startsAt")),
                    Cell::plain(text(alert, "summary")),
                ]
            })
            .collect();
        let headers = ["ALERT", "SERVICE", "SEVERITY", "SINCE", "SUMMARY"];
        print!("{}", table(&headers, &rows, on_terminal()));
    });
    Ok(())
}
