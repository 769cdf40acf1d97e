//! The bound on request heads, below the HTTP layer's own.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::ApiState;
use super::error::ApiError;

/// Refuses a request whose head (request line and headers, as sent) is larger than
/// `[limits] max_header_size`, with 431 and the GWS envelope.
pub async fn limit_head(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<ApiState>>()
        .map_or(usize::MAX, |s| s.max_header_size);
    let target = req.uri().path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let size = line + headers;
    if size > limit {
        let refusal = ApiError::HeadTooLarge { size, limit };
        return Ok(req.error_response(refusal).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
