//! `servicewatch instances SERVICE`: each server of a service, its health, whether it
//! serves, its last check (`GET /services/{id}/instances`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, items, on_terminal, table, text};
use super::{Failure, Reach, encode};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch instances sips1
  servicewatch instances confserv --json

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `instances`'s arguments.
#[derive(Args, Debug)]
pub struct InstancesArgs {
    /// The service's id.
    service: String,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: InstancesArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let answer = client
        .get(&format!("/services/{}/instances", encode(&args.service)))
        .await?;
    args.reach.print(&answer, |a| {
        let rows: Vec<Vec<Cell>> = items(a, "instances")
            .iter()
            .map(|i: &Value| {
                let serving = if i["serving"] == true { "yes" } else { "no" };
                vec![
                    Cell::plain(text(i, "instance")),
                    Cell::plain(text(i, "address")),
                    Cell::state(&text(i, "health")),
                    Cell::plain(serving),
                    Cell::plain(text(i, "healthSince")),
                    Cell::plain(text(&i["lastCheck"], "detail")),
                ]
            })
            .collect();
        let headers = [
            "INSTANCE",
            "ADDRESS",
            "HEALTH",
            "SERVING",
            "SINCE",
            "LAST CHECK",
        ];
        print!("{}", table(&headers, &rows, on_terminal()));
    });
    Ok(())
}
