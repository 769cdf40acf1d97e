//! `GET /services` and `GET /services/{id}`: read the current snapshot, apply `fields` and
//! filters, answer in the GWS envelope.
//!
//! Every answer carries a weak `ETag` made of the snapshot's tag and the caller's features
//! (what decides which services it sees), so it costs no hashing of the body; a client that
//! sends it back in `If-None-Match` gets `304 Not Modified` and no body until something was
//! published. A wallboard polling every second then downloads the list only when it
//! changed.
//!
//! The unfiltered full list (`fields=*`, the one answer that grows with the site) is sent
//! gzipped to a client that accepts it, compressed once per snapshot; other answers are
//! small or filtered and go as they are, so compression never costs a request CPU.

use std::borrow::Cow;
use std::collections::BTreeSet;

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
    not_serving_yet(&snapshot)?;
    let (attributes, sees_all) = caller_attributes(&snapshot, &caller);
    let query = query::parse(req.query_string(), &attributes, true)?;
    let visible = || {
        snapshot
            .services()
            .iter()
            .filter(|s| caller.sees(&s.feature))
    };
    let whole_list =
        matches!(query.fields, Some(Fields::All)) && query.filters.is_empty() && sees_all;
    // The whole list is the one answer large enough to matter, and the same for everybody
    // who sees everything: it is compressed once per snapshot for who accepts gzip.
    let gzip = whole_list && accepts_gzip(&req);
    let etag = entity_tag(&snapshot, &caller, gzip);
    if not_modified(&req, &etag) {
        return Ok(unchanged(etag));
    }
    if gzip {
        let mut response = json_ok(snapshot.all_body_gzip(), etag);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
        headers.append(
            header::VARY,
            header::HeaderValue::from_static("accept-encoding"),
        );
        return Ok(response);
    }
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
        Some(Fields::All) if whole_list => snapshot.all_body(),
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
    Ok(json_ok(body, etag))
}

/// How long a client is advised to wait before asking a node that serves nothing yet again:
/// about the etcd session's longest pause between two tries.
const NOT_SERVING_RETRY_SECS: u64 = 2;

/// Refuses with 503 and the reason when the node serves no state at all yet, rather than
/// answering an empty list (which a client would take for a site with no services).
pub(crate) fn not_serving_yet(snapshot: &Snapshot) -> Result<(), ApiError> {
    match snapshot.unavailable() {
        Some(reason) => Err(ApiError::NotServingYet {
            reason: reason.to_string(),
            retry_after_secs: NOT_SERVING_RETRY_SECS,
        }),
        None => Ok(()),
    }
}

/// The attribute names `caller` may use in `fields` and filters: those of the services it
/// sees (pending ones included: they are not listed, but their names may be asked for), so
/// that names used only by hidden services are not revealed; and whether it sees them all.
pub fn caller_attributes<'a>(
    snapshot: &'a Snapshot,
    caller: &Caller,
) -> (Cow<'a, BTreeSet<String>>, bool) {
    let visible = || {
        snapshot
            .services()
            .iter()
            .filter(|s| caller.sees(&s.feature))
    };
    let sees_all = visible().count() == snapshot.services().len()
        && snapshot
            .all_pending()
            .all(|p| caller.sees(&p.service.feature));
    if sees_all {
        return (Cow::Borrowed(snapshot.attributes()), true);
    }
    let pending = snapshot
        .all_pending()
        .map(|p| &p.service)
        .filter(|s| caller.sees(&s.feature));
    let attributes = Snapshot::attributes_of(visible().chain(pending).map(|s| &**s));
    (Cow::Owned(attributes), false)
}

/// Service `id` as last published, or still pending its first probe round, if `caller`
/// sees it; else the same 404 as for a service that does not exist. For the extensions
/// beside the resource (instances, history, maintenance), which serve pending services too.
pub fn visible<'a>(
    snapshot: &'a Snapshot,
    caller: &Caller,
    id: &str,
) -> Result<&'a PublishedService, ApiError> {
    snapshot
        .get(id)
        .or_else(|| snapshot.pending(id).map(|p| &*p.service))
        .filter(|s| caller.sees(&s.feature))
        .ok_or_else(|| ApiError::NotFound(format!("no service with id \"{id}\"")))
}

/// `GET /services/{id}`: one resource, wrapped in an array as the GWS example shows. A
/// service hidden from the caller answers exactly like one that does not exist; one whose
/// state is not known yet (its first probes are under way) answers 503 with `Retry-After`.
pub async fn one(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot.load();
    not_serving_yet(&snapshot)?;
    let id = req.match_info().get("id").unwrap_or_default();
    let Some(service) = snapshot.get(id).filter(|s| caller.sees(&s.feature)) else {
        return Err(match snapshot.pending(id) {
            Some(p) if caller.sees(&p.service.feature) => ApiError::NotProbedYet {
                id: id.to_string(),
                retry_after_secs: p.retry_after_secs,
            },
            _ => ApiError::NotFound(format!("no service with id \"{id}\"")),
        });
    };
    // The names any of the caller's services has, so that one `fields` works for the list
    // and for each resource; a resource without an attribute leaves it out.
    let (attributes, _) = caller_attributes(&snapshot, &caller);
    let query = query::parse(req.query_string(), &attributes, false)?;
    let etag = entity_tag(&snapshot, &caller, false);
    if not_modified(&req, &etag) {
        return Ok(unchanged(etag));
    }
    let body = match &query.fields {
        None | Some(Fields::All) => single_body(service),
        Some(Fields::Only(names)) => to_json(&SingleService {
            status_code: 0,
            service: [query::project(&service.resource, names)],
        })?,
    };
    Ok(json_ok(body, etag))
}

/// The validator of an answer: the snapshot it was read from, what the caller sees, and
/// whether the body is gzipped.
fn entity_tag(snapshot: &Snapshot, caller: &Caller, gzip: bool) -> header::EntityTag {
    let encoding = if gzip { "-gzip" } else { "" };
    header::EntityTag::new_weak(format!(
        "{:x}-{:x}{encoding}",
        snapshot.tag(),
        caller.features_tag
    ))
}

/// Whether the request's `Accept-Encoding` takes gzip (and does not refuse it with q=0).
fn accepts_gzip(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::ACCEPT_ENCODING) else {
        return false;
    };
    value.to_str().unwrap_or_default().split(',').any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// Whether the request's `If-None-Match` names `etag` (weak comparison, as for GET).
fn not_modified(req: &HttpRequest, etag: &header::EntityTag) -> bool {
    let Some(value) = req.headers().get(header::IF_NONE_MATCH) else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    text.trim() == "*"
        || text
            .split(',')
            .filter_map(|t| t.trim().parse::<header::EntityTag>().ok())
            .any(|t| t.weak_eq(etag))
}

/// `304 Not Modified`: the client's copy is current.
fn unchanged(etag: header::EntityTag) -> HttpResponse {
    HttpResponse::NotModified()
        .insert_header(header::ETag(etag))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
        .finish()
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

fn json_ok(body: Bytes, etag: header::EntityTag) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::ETag(etag))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
        .body(body)
}
