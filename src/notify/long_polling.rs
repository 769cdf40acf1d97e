//! The long-polling transport: `POST <base>/notifications` (and the `/handshake`,
//! `/connect`, ... suffixes CometD clients append) with a JSON array of messages; the
//! answer is a JSON array of replies and messages. A held `/meta/connect` keeps the request
//! open until something is delivered or `connect_timeout` passes. Every request is
//! authenticated (the session cookie, or Basic) and acts for that caller only.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};

use super::session::Via;
use super::{Shared, dispatch};
use crate::auth::Caller;
use crate::bayeux::message::parse_batch;
use crate::bayeux::refusal::Refusal;
use crate::bayeux::{channel, reply};

/// `POST <base>/notifications[/...]`.
pub async fn handle(
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
    caller: web::ReqData<Caller>,
) -> HttpResponse {
    let batch = match parse_batch(&body) {
        Ok(batch) => batch,
        Err(e) => {
            tracing::debug!(error = %e, "long-polling request refused");
            let refusal = reply::error(
                channel::UNSUCCESSFUL,
                None,
                None,
                &Refusal::bad_request("", e),
            );
            return json(StatusCode::BAD_REQUEST, reply::render_batch([&refusal], []));
        }
    };
    json(
        StatusCode::OK,
        dispatch(&shared, &caller, batch, Via::LongPolling).await,
    )
}

fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body)
}
