//! `GET <base>/openapi.json`: the OpenAPI description of this API (`docs/openapi.json`,
//! built into the binary), fitted to this daemon: its server URL is the configured base
//! path, and the `fields` parameter names the attributes the caller's services have now
//! (operator attributes included, none of services hidden from the caller), so that tools (schemathesis, client generators) see exactly what
//! is accepted.

use std::collections::BTreeSet;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::ApiState;
use crate::auth::Caller;

/// The description as the repository keeps it.
const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// The description with this daemon's base path; its `fields` are filled per request.
pub struct OpenApi(Value);

impl OpenApi {
    pub fn for_base(base_path: &str) -> OpenApi {
        let mut document: Value =
            serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON (a test checks it)");
        document["servers"] = json!([{ "url": base_path }]);
        OpenApi(document)
    }

    /// The description, its `fields` parameter naming `attributes`.
    pub fn render(&self, attributes: &BTreeSet<String>) -> Vec<u8> {
        let mut document = self.0.clone();
        document["components"]["parameters"]["fields"]["schema"]["pattern"] =
            Value::from(fields_pattern(attributes));
        serde_json::to_vec(&document).expect("a JSON value renders")
    }
}

/// `*`, or a comma-separated list of `attributes` (spaces around names allowed).
fn fields_pattern(attributes: &BTreeSet<String>) -> String {
    let names: Vec<String> = attributes.iter().map(|a| regex_escape(a)).collect();
    let item = format!(r"\s*({})\s*", names.join("|"));
    format!(r"^\s*\*\s*$|^{item}(,{item})*$")
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Serves the description.
pub async fn document(
    openapi: web::Data<OpenApi>,
    state: web::Data<ApiState>,
    caller: web::ReqData<Caller>,
) -> HttpResponse {
    let snapshot = state.snapshot.load();
    let (attributes, _) = super::services::caller_attributes(&snapshot, &caller);
    let body = openapi.render(&attributes);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_description_names_the_base_and_the_attributes() {
        let attributes: BTreeSet<String> = ["id", "state", "sip.port"]
            .into_iter()
            .map(String::from)
            .collect();
        let served: Value =
            serde_json::from_slice(&OpenApi::for_base("/gws/v2").render(&attributes)).unwrap();
        assert_eq!(served["servers"][0]["url"], "/gws/v2");
        assert_eq!(
            served["components"]["parameters"]["fields"]["schema"]["pattern"],
            r"^\s*\*\s*$|^\s*(id|sip\.port|state)\s*(,\s*(id|sip\.port|state)\s*)*$"
        );
    }
}
