//! `GET /services` and `GET /services/{id}`: read the current snapshot, apply `fields` and
//! filters, answer in the GWS envelope.

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::ApiState;
use super::error::ApiError;
use super::query::{self, Fields};
use crate::auth::Caller;
use crate::snapshot::{PublishedService, Snapshot, list_body};

/// `GET /services`: URIs, or resources when `fields` is given; only the services the
/// caller's contact center may see.
pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot.load();
    let visible = || {
        snapshot
            .services()
            .iter()
            .filter(|s| caller.sees(&s.feature))
    };
    let sees_all = visible().count() == snapshot.services().len();
    let hidden_attributes;
    let attributes = if sees_all {
        snapshot.attributes()
    } else {
        hidden_attributes = Snapshot::attributes_of(visible().map(|s| &**s));
        &hidden_attributes
    };
    let query = query::parse(req.query_string(), attributes, true)?;
    let selected = || visible().filter(|s| query.filters.iter().all(|f| f.matches(&s.resource)));
    let body = match &query.fields {
        None => {
            let base = state.services_url(&req);
            let uris: Vec<String> = selected().map(|s| format!("{base}/{}", s.id)).collect();
            to_json(&UriList {
                status_code: 0,
                uris,
            })?
        }
        Some(Fields::All) if query.filters.is_empty() && sees_all => snapshot.all_body(),
        Some(Fields::All) => list_body(selected().map(|s| &**s)),
        Some(Fields::Only(names)) => {
            let services: Vec<_> = selected()
                .map(|s| query::project(&s.resource, names))
                .collect();
            to_json(&ServiceList {
                status_code: 0,
                services,
            })?
        }
    };
    Ok(json_ok(body))
}

/// `GET /services/{id}`: one resource, wrapped in an array as the GWS example shows. A
/// service hidden from the caller answers exactly like one that does not exist.
pub async fn one(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot.load();
    let id = req.match_info().get("id").unwrap_or_default();
    let service = snapshot
        .get(id)
        .filter(|s| caller.sees(&s.feature))
        .ok_or_else(|| ApiError::NotFound(format!("no service with id \"{id}\"")))?;
    let attributes = Snapshot::attributes_of(std::iter::once(service));
    let query = query::parse(req.query_string(), &attributes, false)?;
    let body = match &query.fields {
        None | Some(Fields::All) => single_body(service),
        Some(Fields::Only(names)) => to_json(&SingleService {
            status_code: 0,
            service: [query::project(&service.resource, names)],
        })?,
    };
    Ok(json_ok(body))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UriList {
    status_code: u8,
    uris: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceList {
    status_code: u8,
    services: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SingleService {
    status_code: u8,
    service: [serde_json::Map<String, serde_json::Value>; 1],
}

fn single_body(service: &PublishedService) -> Bytes {
    let mut body = Vec::with_capacity(service.json.len() + 32);
    body.extend_from_slice(br#"{"statusCode":0,"service":["#);
    body.extend_from_slice(&service.json);
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("cannot render the answer: {e}")))
}

fn json_ok(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
        .body(body)
}
