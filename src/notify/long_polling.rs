//! The long-polling transport: `POST <base>/notifications` (and the `/handshake`,
//! `/connect`, ... suffixes CometD clients append) with a JSON array of messages; the
//! answer is a JSON array of replies and messages. A held `/meta/connect` keeps the request
//! open until something is delivered or `connect_timeout` passes. Every request is
//! authenticated (the login cookie, or Basic) and acts for that caller only.
//!
//! The body is read here rather than by an extractor so that its arrival has a deadline
//! (`[limits] request_timeout`): the HTTP layer bounds the time to send a request's head,
//! not its body, and a client that stalls mid-body would otherwise hold its connection,
//! and a place under `max_connections`, for good.

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
    payload: web::Payload,
    shared: web::Data<Arc<Shared>>,
    caller: web::ReqData<Caller>,
) -> Result<HttpResponse, actix_web::Error> {
    let body = read_body(
        payload,
        shared.settings.max_message_size,
        shared.body_timeout,
    )
    .await?;
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
            return Ok(json(
                StatusCode::BAD_REQUEST,
                reply::render_batch([&refusal], []),
            ));
        }
    };
    Ok(json(
        StatusCode::OK,
        dispatch(&shared, &caller, batch, Via::LongPolling).await,
    ))
}

/// The whole body, if it is at most `limit` bytes and arrives within `within`; the
/// refusals are the HTTP layer's own errors (413, 408, 400), which the API gives the GWS
/// envelope.
async fn read_body(
    payload: web::Payload,
    limit: usize,
    within: std::time::Duration,
) -> Result<web::Bytes, actix_web::Error> {
    use actix_web::error;
    match tokio::time::timeout(within, payload.to_bytes_limited(limit)).await {
        Ok(Ok(read)) => read.map_err(|e| {
            error::ErrorBadRequest(format!("the request body could not be read: {e}"))
        }),
        Ok(Err(_)) => Err(error::ErrorPayloadTooLarge(format!(
            "the request body is larger than {limit} bytes"
        ))),
        Err(_) => Err(error::ErrorRequestTimeout(format!(
            "the request body did not arrive within {}",
            humantime::format_duration(within)
        ))),
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body)
}
