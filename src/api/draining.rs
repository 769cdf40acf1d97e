//! Once a stop has begun, every answer closes its connection.
//!
//! A graceful stop waits for the connections it serves to end. Long-polling clients answer
//! a connect with the next one at once, on the same kept-alive connection, so without this
//! a stop with many of them open waited for the keep-alive timeout (or the shutdown
//! timeout) after every client had been told. `Connection: close` ends each connection with
//! the answer that tells its client the server is going; the client reconnects elsewhere or
//! later, as the answer's advice says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;

use super::Wrapped;

/// Marks every answer given after `stopping` is set to close its connection.
pub fn close_when_stopping<S, B>(
    stopping: Arc<AtomicBool>,
) -> impl Fn(ServiceRequest, &S) -> Wrapped<B> + Clone
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    move |req, service| {
        let stopping = stopping.clone();
        let response = service.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            // Read when the answer is ready: a long-poll held across the stop is answered
            // after the flag was set.
            if stopping.load(Ordering::Acquire) {
                response
                    .response_mut()
                    .head_mut()
                    .set_connection_type(ConnectionType::Close);
            }
            Ok(response)
        })
    }
}
