//! `servicewatch maintenance set|clear SERVICE [--instance ...]`: `PUT` and `DELETE` of
//! `/services/{id}/maintenance` (or of one instance's).

use std::path::Path;
use std::time::{Duration, SystemTime};

use awc::http::Method;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::text;
use super::{Failure, Reach, encode};

const SET_HELP: &str = "\
Examples:
  servicewatch maintenance set sips1 --reason \"upgrade to 9.0\" --for 2h
  servicewatch maintenance set sips1 --instance backup --reason \"disk swap\"
  servicewatch maintenance set confserv --instance cassandra-2 --reason repair --until 2026-11-28T06:00:00Z

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

const CLEAR_HELP: &str = "\
Examples:
  servicewatch maintenance clear sips1
  servicewatch maintenance clear sips1 --instance backup

Exit codes: 0 ok; 1 the daemon answered an error (its message is printed); 2 bad command
line; 3 cannot reach the daemon; 4 refused (401/403).";

/// `maintenance`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum MaintenanceCommand {
    /// Put a service, or one of its servers, into maintenance.
    #[command(after_help = SET_HELP)]
    Set(SetArgs),
    /// Take a service, or one of its servers, out of maintenance.
    #[command(after_help = CLEAR_HELP)]
    Clear(ClearArgs),
}

/// `maintenance set`'s arguments.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// The service's id.
    service: String,
    /// One server of the service: primary, backup or cassandra-N.
    #[arg(long)]
    instance: Option<String>,
    /// Why: shown in the API, the status page and the history.
    #[arg(long)]
    reason: String,
    /// When it ends by itself (RFC 3339, such as 2026-11-28T06:00:00Z).
    #[arg(long, conflicts_with = "for_")]
    until: Option<String>,
    /// How long from now it lasts, such as 90m or 2h.
    #[arg(long = "for", id = "for_", value_parser = humantime::parse_duration)]
    for_: Option<Duration>,
    #[command(flatten)]
    reach: Reach,
}

/// `maintenance clear`'s arguments.
#[derive(Args, Debug)]
pub struct ClearArgs {
    /// The service's id.
    service: String,
    /// One server of the service: primary, backup or cassandra-N.
    #[arg(long)]
    instance: Option<String>,
    #[command(flatten)]
    reach: Reach,
}

pub(super) async fn run(command: MaintenanceCommand, config: &Path) -> Result<(), Failure> {
    match command {
        MaintenanceCommand::Set(args) => {
            let client = args.reach.client(config)?;
            let until = match (&args.until, args.for_) {
                (Some(until), _) => Some(until.clone()),
                (None, Some(lasting)) => {
                    Some(humantime::format_rfc3339_seconds(SystemTime::now() + lasting).to_string())
                }
                (None, None) => None,
            };
            let mut body = json!({ "reason": args.reason });
            if let Some(until) = until {
                body["until"] = Value::from(until);
            }
            let path = resource(&args.service, args.instance.as_deref());
            let answer = client.send(Method::PUT, &path, Some(&body)).await?;
            args.reach.print(&answer, |a| {
                let w = &a["maintenance"];
                println!(
                    "{} in maintenance since {} (until {}): {}",
                    target(&args.service, args.instance.as_deref()),
                    text(w, "since"),
                    w.get("until")
                        .and_then(Value::as_str)
                        .unwrap_or("taken out"),
                    text(w, "reason")
                );
            });
        }
        MaintenanceCommand::Clear(args) => {
            let client = args.reach.client(config)?;
            let path = resource(&args.service, args.instance.as_deref());
            let answer = client.send(Method::DELETE, &path, None).await?;
            args.reach.print(&answer, |_| {
                println!(
                    "{} out of maintenance",
                    target(&args.service, args.instance.as_deref())
                );
            });
        }
    }
    Ok(())
}

/// The maintenance resource of a service or of one of its instances.
fn resource(service: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!(
            "/services/{}/instances/{}/maintenance",
            encode(service),
            encode(i)
        ),
        None => format!("/services/{}/maintenance", encode(service)),
    }
}

/// How a service or instance is named in messages.
fn target(service: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{service} {i}"),
        None => service.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_is_the_service_s_or_its_instance_s() {
        assert_eq!(resource("sips1", None), "/services/sips1/maintenance");
        assert_eq!(
            resource("conf serv", Some("cassandra-2")),
            "/services/conf%20serv/instances/cassandra-2/maintenance"
        );
    }
}
