//! `GET /services/{id}/history`: the recorded changes of one service, newest first; an
//! extension beside the GWS resources, in the same envelope, with the same authentication
//! and visibility (a service hidden from the caller answers 404).
//!
//! Parameters: `since` and `until` (RFC 3339 times, inclusive), `limit` (1 to
//! [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]); `_`, the cache buster, is ignored; anything
//! else is refused, so that a misspelt parameter does not silently widen the answer.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::ApiState;
use super::error::ApiError;
use super::services::visible;
use crate::auth::Caller;
use crate::history::{Change, HistoryError, Query};
use crate::resource::{parse_timestamp, timestamp};

/// Changes answered when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The most changes one answer holds.
pub const MAX_LIMIT: usize = 1000;

/// Serves the history of one service.
pub async fn changes(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    visible(&state.snapshot.load(), &caller, &id)?;
    let query = parse(req.query_string())?;
    let changes = state
        .history
        .changes(&id, query)
        .await
        .map_err(read_error)?;
    let body = json!({
        "statusCode": 0,
        "history": changes.iter().map(render).collect::<Vec<_>>(),
    });
    Ok(super::fresh_json(&body))
}

/// The answer to a history that cannot be read: 404 when none is kept.
pub fn read_error(e: HistoryError) -> ApiError {
    match e {
        HistoryError::Off => ApiError::NotFound(
            "no history is kept: set [history] path, or run servicewatch under systemd with StateDirectory=".into(),
        ),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Reads `since`, `until` and `limit`.
pub fn parse(query: &str) -> Result<Query, ApiError> {
    parse_for(query, "the history")
}

/// Reads `since`, `until` and `limit` of a query on `what` (which a refusal names).
pub fn parse_for(query: &str, what: &str) -> Result<Query, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| {
        ApiError::InvalidParameter(format!("the query string is not readable: {e}"))
    })?;
    let mut parsed = Query {
        since: None,
        until: None,
        limit: DEFAULT_LIMIT,
    };
    let time = |name: &str, value: &str| {
        parse_timestamp(value).ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "{name}: \"{value}\" is not a time; use RFC 3339, such as 2026-11-28T03:20:00Z"
            ))
        })
    };
    for (name, value) in &pairs {
        match name.as_str() {
            "since" => parsed.since = Some(time(name, value)?),
            "until" => parsed.until = Some(time(name, value)?),
            "limit" => {
                parsed.limit = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::InvalidParameter(format!(
                            "limit: \"{value}\" is not a number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "_" => {}
            other => {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown parameter \"{other}\"; {what} takes since, until and limit"
                )));
            }
        }
    }
    // `since` after `until` selects nothing, and answers so: an empty list, as any range.
    Ok(parsed)
}

/// One change as the answer shows it.
fn render(c: &Change) -> Value {
    let mut map = Map::new();
    map.insert("at".into(), Value::from(timestamp(c.at)));
    map.insert("state".into(), Value::from(c.state.as_str()));
    map.insert("stateSince".into(), Value::from(timestamp(c.state_since)));
    if let Some(serving) = c.serving {
        map.insert("servingInstance".into(), Value::from(serving.as_str()));
    }
    if let Some(maintenance) = &c.maintenance {
        map.insert("maintenance".into(), Value::from(maintenance.as_str()));
    }
    map.insert("reason".into(), Value::from(c.reason.as_str()));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn reads_the_bounds_and_refuses_the_rest() {
        let q = parse("since=2026-11-28T03:20:00Z&limit=5&_=123").unwrap();
        assert_eq!(
            q.since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_836_000))
        );
        assert_eq!((q.until, q.limit), (None, 5));
        assert_eq!(parse("").unwrap().limit, DEFAULT_LIMIT);
        let refused = |q: &str| parse(q).unwrap_err().to_string();
        assert_eq!(
            refused("limit=0"),
            "limit: \"0\" is not a number from 1 to 1000"
        );
        assert_eq!(
            refused("since=yesterday"),
            "since: \"yesterday\" is not a time; use RFC 3339, such as 2026-11-28T03:20:00Z"
        );
        assert_eq!(
            refused("fields=*"),
            "unknown parameter \"fields\"; the history takes since, until and limit"
        );
    }
}
