//! A cluster node that has lost etcd keeps answering with the states it last knew, and says
//! so on every answer: `Warning: 110 - "Response is Stale"` (RFC 9111's stale warning), so
//! that a client or a load balancer's health check can tell, and a person reading curl's
//! output sees it.

use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};

use super::Wrapped;
use crate::cluster::ClusterStatus;

/// The header every answer of a stale node carries.
pub const STALE_WARNING: &str = r#"110 - "Response is Stale""#;

/// Adds [`STALE_WARNING`] to every answer given while `status` is stale.
pub fn warn_when_stale<S, B>(
    status: Arc<ClusterStatus>,
) -> impl Fn(ServiceRequest, &S) -> Wrapped<B> + Clone
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    move |req, service| {
        let status = status.clone();
        let response = service.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            if status.is_stale() {
                response.headers_mut().insert(
                    HeaderName::from_static("warning"),
                    HeaderValue::from_static(STALE_WARNING),
                );
            }
            Ok(response)
        })
    }
}
