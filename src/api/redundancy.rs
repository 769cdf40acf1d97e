//! `GET /redundancy`: how every service the caller sees stands beyond its state: whether it
//! could lose one more server, each server's health, and since when its serving instance
//! serves. What a wall screen shows on a tile ("on backup since 14:02, primary down", "2 of
//! 3 nodes"); an extension beside the GWS resources, in the same envelope.
//!
//! Every role may read it: it names each server by its place in the service (`primary`,
//! `backup`, `cassandra-1`), never by host or port (the instance detail, for supervisors
//! and admins, does). The registry answers it from its own state
//! ([`crate::registry::Standings`]); the status page polls it every few seconds.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::auth::Caller;
use crate::domain::service::Part;
use crate::registry::{Standing, Standings};
use crate::resource::timestamp;

/// Serves the standing of every visible service, in configuration order.
pub async fn list(
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let standings = state
        .registry
        .send(Standings)
        .await
        .map_err(|e| ApiError::Internal(format!("the registry did not answer: {e}")))?;
    let services: Vec<Value> = standings
        .iter()
        .filter(|s| caller.sees(&s.feature))
        .map(render)
        .collect();
    let body = json!({ "statusCode": 0, "redundancy": services });
    Ok(super::fresh_json(&body))
}

/// One service's standing on the wire.
fn render(s: &Standing) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), Value::from(s.id.as_str()));
    map.insert(
        "redundant".into(),
        s.redundant.map_or(Value::Null, Value::from),
    );
    if let Some(serving) = s.serving {
        map.insert("servingInstance".into(), Value::from(serving.as_str()));
    }
    if let Some(since) = s.serving_since {
        map.insert("servingSince".into(), Value::from(timestamp(since)));
    }
    let servers: Vec<Value> = s
        .servers
        .iter()
        .map(|(part, health, maintenance)| {
            let mut server = json!({ "instance": part.metric_label(), "health": health.as_str() });
            if *maintenance {
                server["maintenance"] = Value::from(true);
            }
            server
        })
        .collect();
    map.insert("servers".into(), Value::from(servers));
    if let Some(quorum) = s.quorum {
        let nodes = s
            .servers
            .iter()
            .filter(|(part, _, _)| matches!(part, Part::CassandraNode(_)));
        let up = nodes
            .clone()
            .filter(|(_, health, maintenance)| health.is_healthy() && !maintenance)
            .count();
        map.insert(
            "cassandra".into(),
            json!({ "nodes": nodes.count(), "up": up, "quorum": quorum }),
        );
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::health::Health;
    use crate::domain::service::Role;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_pair_on_its_backup_says_which_and_since_when() {
        let standing = Standing {
            id: "ixn".into(),
            feature: "f".into(),
            redundant: Some(false),
            serving: Some(Role::Backup),
            serving_since: Some(UNIX_EPOCH + Duration::from_secs(1_795_836_000)),
            servers: vec![
                (Part::Pair(Role::Primary), Health::Down, false),
                (Part::Pair(Role::Backup), Health::Up, false),
            ],
            quorum: None,
        };
        assert_eq!(
            render(&standing),
            json!({
                "id": "ixn", "redundant": false, "servingInstance": "backup",
                "servingSince": "2026-11-28T03:20:00.000Z",
                "servers": [
                    { "instance": "primary", "health": "down" },
                    { "instance": "backup", "health": "up" },
                ],
            })
        );
    }

    #[test]
    fn cassandra_nodes_in_maintenance_do_not_count_as_up() {
        let standing = Standing {
            id: "prov".into(),
            feature: "f".into(),
            redundant: Some(false),
            serving: Some(Role::Primary),
            serving_since: None,
            servers: vec![
                (Part::Pair(Role::Primary), Health::Up, false),
                (Part::CassandraNode(1), Health::Up, false),
                (Part::CassandraNode(2), Health::Up, true),
                (Part::CassandraNode(3), Health::Down, false),
            ],
            quorum: Some(2),
        };
        let rendered = render(&standing);
        assert_eq!(
            rendered["cassandra"],
            json!({ "nodes": 3, "up": 1, "quorum": 2 })
        );
        assert_eq!(rendered["servers"][2]["maintenance"], json!(true));
        assert!(rendered.get("servingSince").is_none());
    }
}
