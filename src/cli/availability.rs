//! `servicewatch availability [SERVICE]`: the share of time each service was Active over
//! the last 24 hours, 7 and 30 days (`GET /availability`, `/services/{id}/availability`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, on_terminal, table, text};
use super::{Failure, Reach, encode};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch availability
  servicewatch availability sips1 --json

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `availability`'s arguments.
#[derive(Args, Debug)]
pub struct AvailabilityArgs {
    /// One service's id; all services without it.
    service: Option<String>,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: AvailabilityArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let answer = match &args.service {
        Some(id) => {
            client
                .get(&format!("/services/{}/availability", encode(id)))
                .await?
        }
        None => client.get("/availability").await?,
    };
    args.reach.print(&answer, |a| {
        let services: Vec<Value> = match &a["availability"] {
            Value::Array(all) => all.clone(),
            one @ Value::Object(_) => vec![one.clone()],
            _ => Vec::new(),
        };
        let rows: Vec<Vec<Cell>> = services.iter().map(row).collect();
        print!(
            "{}",
            table(&["SERVICE", "24H", "7D", "30D"], &rows, on_terminal())
        );
    });
    Ok(())
}

/// A service's id and its share Active in each period, as a percentage.
fn row(service: &Value) -> Vec<Cell> {
    let share = |period: &str| {
        service["periods"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["period"] == period))
            .and_then(|p| p["active"].as_f64())
            .map_or_else(|| "-".to_string(), |a| format!("{:.3}%", a * 100.0))
    };
    vec![
        Cell::plain(text(service, "id")),
        Cell::plain(share("24h")),
        Cell::plain(share("7d")),
        Cell::plain(share("30d")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_period_is_a_percentage() {
        let service = serde_json::json!({"id": "sips1", "periods": [
            {"period": "24h", "active": 1.0}, {"period": "7d", "active": 0.99951}
        ]});
        let cells: Vec<String> = row(&service).iter().map(|c| format!("{c:?}")).collect();
        assert!(cells[1].contains("100.000%") && cells[2].contains("99.951%"));
        assert!(cells[3].contains("\"-\""));
    }
}
