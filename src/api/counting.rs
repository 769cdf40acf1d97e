//! Counts every answer by route pattern and status (`http_requests_total`).

use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};

use super::Wrapped;
use crate::metrics::{HttpLabels, Metrics};

/// Counts every answer by route pattern and status.
pub fn count_requests<S, B>(
    metrics: Arc<Metrics>,
) -> impl Fn(ServiceRequest, &S) -> Wrapped<B> + Clone
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    move |req, service| {
        let metrics = metrics.clone();
        let response = service.call(req);
        Box::pin(async move {
            let response = response.await?;
            let route = response
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_string());
            metrics
                .http
                .requests
                .get_or_create(&HttpLabels {
                    route,
                    status: response.status().as_u16(),
                })
                .inc();
            Ok(response)
        })
    }
}
