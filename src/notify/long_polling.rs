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
    // The body is dropped once parsed: a held connect keeps only the parsed messages.
    let parsed = parse_batch(&body);
    drop(body);
    let batch = match parsed {
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
///
/// A body that arrived in one piece (a Bayeux batch nearly always does) is that piece,
/// without a copy; actix-web's `to_bytes_limited` would first reserve 32 KiB for it.
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    within: std::time::Duration,
) -> Result<web::Bytes, actix_web::Error> {
    use actix_web::error;
    use futures_util::StreamExt;
    let read = async {
        let mut pieces: Vec<web::Bytes> = Vec::new();
        let mut len = 0;
        while let Some(piece) = payload.next().await {
            let piece = piece.map_err(|e| {
                error::ErrorBadRequest(format!("the request body could not be read: {e}"))
            })?;
            len += piece.len();
            if len > limit {
                return Err(error::ErrorPayloadTooLarge(format!(
                    "the request body is larger than {limit} bytes"
                )));
            }
            pieces.push(piece);
        }
        Ok(match pieces.len() {
            1 => pieces.swap_remove(0),
            _ => web::Bytes::from(pieces.concat()),
        })
    };
    match tokio::time::timeout(within, read).await {
        Ok(read) => read,
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
