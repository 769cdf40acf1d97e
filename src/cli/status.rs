//! `servicewatch status [SERVICE]`: the services, their state, the serving instance and
//! since when the state holds (`GET /services?fields=*` and `GET /redundancy`).

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::output::{Cell, on_terminal, table, text};
use super::{Failure, Reach, encode};

/// `--help`'s examples.
pub const HELP: &str = "\
Examples:
  servicewatch status
  servicewatch status sips1
  servicewatch status --json | jq -r '.services[] | select(.state != \"Active\") | .id'

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `status`'s arguments.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// One service's id; all services without it.
    service: Option<String>,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(args: StatusArgs, config: &Path) -> Result<(), Failure> {
    let client = args.reach.client(config)?;
    let services = match &args.service {
        Some(id) => {
            client
                .get(&format!("/services/{}?fields=*", encode(id)))
                .await?
        }
        None => client.get("/services?fields=*").await?,
    };
    if args.reach.json {
        println!("{services}");
        return Ok(());
    }
    let standing = client.get("/redundancy").await?;
    let list = services
        .get("services")
        .or_else(|| services.get("service"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    print!("{}", render(&list, &standing, on_terminal()));
    Ok(())
}

/// The table of `services`, their serving instance read from `standing` (`/redundancy`).
fn render(services: &[Value], standing: &Value, colour: bool) -> String {
    let serving = |id: &str| {
        standing
            .get("redundancy")
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|s| s["id"] == id))
            .map_or_else(|| "-".to_string(), |s| text(s, "servingInstance"))
    };
    let rows: Vec<Vec<Cell>> = services
        .iter()
        .map(|s| {
            let id = text(s, "id");
            let maintenance = s
                .get("maintenance")
                .and_then(Value::as_array)
                .and_then(|w| w.first())
                .map_or_else(|| "-".to_string(), |w| text(w, "reason"));
            vec![
                Cell::plain(id.clone()),
                Cell::state(&text(s, "state")),
                Cell::plain(serving(&id)),
                Cell::plain(text(s, "stateSince")),
                Cell::plain(maintenance),
            ]
        })
        .collect();
    table(
        &["SERVICE", "STATE", "SERVING", "SINCE", "MAINTENANCE"],
        &rows,
        colour,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_per_service_with_its_serving_instance_and_maintenance() {
        let services = json!([
            {"id": "sips1", "state": "Active", "stateSince": "2026-01-01T00:00:00.000Z"},
            {"id": "stat", "state": "Inactive", "stateSince": "2026-01-02T00:00:00.000Z",
             "maintenance": [{"reason": "upgrade", "by": "uid:0"}]}
        ]);
        let standing = json!({"redundancy": [{"id": "sips1", "servingInstance": "backup"}]});
        let out = render(services.as_array().unwrap(), &standing, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "SERVICE  STATE     SERVING  SINCE                     MAINTENANCE"
        );
        assert_eq!(
            lines[1],
            "sips1    Active    backup   2026-01-01T00:00:00.000Z  -"
        );
        assert_eq!(
            lines[2],
            "stat     Inactive  -        2026-01-02T00:00:00.000Z  upgrade"
        );
    }
}
