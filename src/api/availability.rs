//! `GET /services/{id}/availability` and `GET /availability`: the share of time a service
//! was `Active` over the last 24 hours, 7 days and 30 days, or over a period of the
//! caller's, computed from the history (definitions in `crate::history::availability`,
//! and docs/availability.md). Extensions beside the history, with its authentication and
//! visibility: a service hidden from the caller answers 404, and the list holds the
//! services the caller sees, in configuration order, as the services list does.
//!
//! Parameters: `since` and `until` (RFC 3339; `until` defaults to now and is capped at
//! now), `maintenance` (`exclude`, the default, or `include`); `_`, the cache buster, is
//! ignored; anything else is refused, as by the history. `since` (with or without `until`)
//! asks for one period, `"custom"`; without it, the three periods `"24h"`, `"7d"` and
//! `"30d"` end at `until`.

use std::time::{Duration, SystemTime};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use super::history::read_error;
use super::services::{not_serving_yet, visible};
use crate::auth::Caller;
use crate::history::availability::{Figures, MaintenanceMode, Totals};
use crate::resource::{parse_timestamp, timestamp};

/// The longest period answered: what the aggregates are kept for.
pub const MAX_RANGE: Duration = Duration::from_secs(400 * 86_400);

/// The periods answered without `since`: their names and lengths.
const DEFAULT_PERIODS: [(&str, Duration); 3] = [
    ("24h", Duration::from_secs(86_400)),
    ("7d", Duration::from_secs(7 * 86_400)),
    ("30d", Duration::from_secs(30 * 86_400)),
];

/// One period asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub name: &'static str,
    pub since: SystemTime,
    pub until: SystemTime,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub periods: Vec<Period>,
    pub maintenance: MaintenanceMode,
}

/// Serves the availability of one service.
pub async fn one(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    visible(&state.snapshot.load(), &caller, &id)?;
    let request = parse(req.query_string(), SystemTime::now())?;
    let mut answers = figures(&state, vec![id], &request).await?;
    Ok(super::fresh_json(
        &json!({ "statusCode": 0, "availability": answers.remove(0) }),
    ))
}

/// Serves the availability of every service the caller sees.
pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot.load();
    not_serving_yet(&snapshot)?;
    let request = parse(req.query_string(), SystemTime::now())?;
    let ids: Vec<String> = snapshot
        .services()
        .iter()
        .filter(|s| caller.sees(&s.feature))
        .map(|s| s.id.clone())
        .collect();
    let answers = figures(&state, ids, &request).await?;
    Ok(super::fresh_json(
        &json!({ "statusCode": 0, "availability": answers }),
    ))
}

/// The answer object of each of `ids`.
async fn figures(
    state: &ApiState,
    ids: Vec<String>,
    request: &Request,
) -> Result<Vec<Value>, ApiError> {
    let periods: Vec<(SystemTime, SystemTime)> =
        request.periods.iter().map(|p| (p.since, p.until)).collect();
    let totals = state
        .history
        .availability(ids.clone(), &periods)
        .await
        .map_err(read_error)?;
    Ok(ids
        .iter()
        .zip(&totals)
        .map(|(id, totals)| render(id, request, totals))
        .collect())
}

/// One service's answer: its periods' figures, in the order asked.
fn render(id: &str, request: &Request, totals: &[Totals]) -> Value {
    let periods: Vec<Value> = request
        .periods
        .iter()
        .zip(totals)
        .map(|(period, totals)| {
            let f = Figures::of(totals, request.maintenance);
            json!({
                "period": period.name,
                "since": timestamp(period.since),
                "until": timestamp(period.until),
                "active": f.active,
                "observedSeconds": f.observed_seconds,
                "activeSeconds": f.active_seconds,
                "maintenanceSeconds": f.maintenance_seconds,
            })
        })
        .collect();
    json!({
        "id": id,
        "maintenance": request.maintenance.as_str(),
        "periods": periods,
    })
}

/// Reads `since`, `until` and `maintenance`, at `now`.
pub fn parse(query: &str, now: SystemTime) -> Result<Request, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| {
        ApiError::InvalidParameter(format!("the query string is not readable: {e}"))
    })?;
    let time = |name: &str, value: &str| {
        parse_timestamp(value).ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "{name}: \"{value}\" is not a time; use RFC 3339, such as 2026-11-28T03:20:00Z"
            ))
        })
    };
    let (mut since, mut until) = (None, None);
    let mut maintenance = MaintenanceMode::Exclude;
    for (name, value) in &pairs {
        match name.as_str() {
            "since" => since = Some(time(name, value)?),
            "until" => until = Some(time(name, value)?),
            "maintenance" => {
                maintenance = match value.trim() {
                    "exclude" => MaintenanceMode::Exclude,
                    "include" => MaintenanceMode::Include,
                    _ => {
                        return Err(ApiError::InvalidParameter(format!(
                            "maintenance: \"{value}\" is neither exclude nor include"
                        )));
                    }
                }
            }
            "_" => {}
            other => {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown parameter \"{other}\"; the availability takes since, until and maintenance"
                )));
            }
        }
    }
    // The history holds nothing before 1970, and times before it are not shown.
    let until = until
        .map_or(now, |u| u.min(now))
        .max(SystemTime::UNIX_EPOCH);
    let since = since.map(|s| s.max(SystemTime::UNIX_EPOCH));
    let periods = match since {
        None => DEFAULT_PERIODS
            .iter()
            .map(|(name, length)| Period {
                name,
                since: until
                    .checked_sub(*length)
                    .unwrap_or(SystemTime::UNIX_EPOCH)
                    .max(SystemTime::UNIX_EPOCH),
                until,
            })
            .collect(),
        Some(since) => vec![custom(since, until)?],
    };
    Ok(Request {
        periods,
        maintenance,
    })
}

/// The period `since` to `until`, if it is one: in order, and at most [`MAX_RANGE`] long.
fn custom(since: SystemTime, until: SystemTime) -> Result<Period, ApiError> {
    let length = until.duration_since(since).map_err(|_| {
        ApiError::InvalidParameter(format!(
            "since ({}) is after until ({}, now if not given)",
            timestamp(since),
            timestamp(until)
        ))
    })?;
    if length > MAX_RANGE {
        return Err(ApiError::InvalidParameter(format!(
            "since to until is longer than {} days, the most answered",
            MAX_RANGE.as_secs() / 86_400
        )));
    }
    Ok(Period {
        name: "custom",
        since,
        until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    /// 2026-11-28T03:20:00Z.
    const NOW: u64 = 1_795_836_000;

    #[test]
    fn without_since_the_three_periods_end_now() {
        let r = parse("_=1", at(NOW)).unwrap();
        let periods: Vec<(&str, SystemTime, SystemTime)> = r
            .periods
            .iter()
            .map(|p| (p.name, p.since, p.until))
            .collect();
        assert_eq!(
            periods,
            [
                ("24h", at(NOW - 86_400), at(NOW)),
                ("7d", at(NOW - 7 * 86_400), at(NOW)),
                ("30d", at(NOW - 30 * 86_400), at(NOW)),
            ]
        );
        assert_eq!(r.maintenance, MaintenanceMode::Exclude);
    }

    #[test]
    fn since_asks_for_one_period_ending_until_or_now() {
        let r = parse(
            "since=2026-11-28T00:00:00Z&until=2026-11-28T01:00:00Z&maintenance=include",
            at(NOW),
        )
        .unwrap();
        assert_eq!(
            r.periods,
            [Period {
                name: "custom",
                since: at(NOW - 12_000),
                until: at(NOW - 8_400),
            }]
        );
        assert_eq!(r.maintenance, MaintenanceMode::Include);
        let future = parse(
            "since=2026-11-28T00:00:00Z&until=2030-01-01T00:00:00Z",
            at(NOW),
        );
        assert_eq!(future.unwrap().periods[0].until, at(NOW), "capped at now");
        let ancient = parse("until=0417-07-30T07:53:21-12:08", at(NOW)).unwrap();
        assert!(
            ancient
                .periods
                .iter()
                .all(|p| p.since == at(0) && p.until == at(0))
        );
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        let refused = |q: &str| parse(q, at(NOW)).unwrap_err().to_string();
        assert_eq!(
            refused("maintenance=skip"),
            "maintenance: \"skip\" is neither exclude nor include"
        );
        assert_eq!(
            refused("limit=5"),
            "unknown parameter \"limit\"; the availability takes since, until and maintenance"
        );
        assert_eq!(
            refused("since=2026-11-28T04:00:00Z"),
            "since (2026-11-28T04:00:00.000Z) is after until (2026-11-28T03:20:00.000Z, now if not given)"
        );
        assert_eq!(
            refused("since=2025-01-01T00:00:00Z"),
            "since to until is longer than 400 days, the most answered"
        );
        assert_eq!(
            refused("until=noon"),
            "until: \"noon\" is not a time; use RFC 3339, such as 2026-11-28T03:20:00Z"
        );
    }
}
