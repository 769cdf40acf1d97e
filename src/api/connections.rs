//! `[limits] max_connections`: counted here, each connection over it refused with an answer.
//!
//! The HTTP server's own per-worker bound cannot carry the limit. It is per worker, so the
//! configured number had to be divided among them and a busy worker refused while another
//! was idle; and once a worker reaches it, one connection closing does not let the next one
//! in: its counter wakes the accept loop only when a second one has closed (actix-server's
//! counter starts at one; actix/actix-web#2703), so clients waited in the listen backlog,
//! with no answer, for a slot that was free.
//!
//! Instead every connection takes a slot when it is accepted and gives it back when it ends
//! (the slot lives in the connection's data, dropped with the connection). A connection
//! accepted while `max_connections` others are open is answered `503` with `Retry-After`
//! and the GWS envelope, and closed: a client learns at once why, and retries; a WebSocket
//! upgrade on it is refused the same way. The server's own bound stays, well above the
//! limit, as a backstop on descriptors against a flood.

use std::any::Any;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;

use super::error::ApiError;
use crate::metrics::Metrics;

/// Open connections against the configured limit.
pub struct ConnectionLimit {
    limit: usize,
    metrics: Arc<Metrics>,
}

/// One connection's place in the count; dropped when the connection ends.
pub struct Slot {
    limit: Arc<ConnectionLimit>,
    /// Accepted while the limit was already reached: every request is refused.
    over: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limit.metrics.http.connections.dec();
    }
}

impl ConnectionLimit {
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit { limit, metrics })
    }

    /// The per-worker bound to give the HTTP server: twice each worker's share (plus room
    /// for small limits), so that it only stops a flood of connections that the answers
    /// below cannot keep up with, never a connection that the count would let in.
    pub fn backstop_per_worker(limit: usize, workers: usize) -> usize {
        limit.div_ceil(workers.max(1)) * 2 + 16
    }

    /// Takes a slot for a connection just accepted; for `HttpServer::on_connect`.
    pub fn on_connect(self: &Arc<Self>, _connection: &dyn Any, data: &mut Extensions) {
        let before = self.metrics.http.connections.inc();
        let over = usize::try_from(before).unwrap_or(0) >= self.limit;
        data.insert(Slot {
            limit: self.clone(),
            over,
        });
    }
}

/// Answers every request of a connection accepted over the limit with `503`, and closes it.
pub async fn refuse_over_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let refused = req
        .conn_data::<Slot>()
        .filter(|slot| slot.over)
        .map(|slot| {
            slot.limit.metrics.http.connections_refused.inc();
            slot.limit.limit
        });
    if let Some(limit) = refused {
        let mut response = req.error_response(ApiError::TooManyConnections { limit });
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        return Ok(response.map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backstop_is_above_each_workers_share() {
        assert_eq!(ConnectionLimit::backstop_per_worker(20_000, 2), 20_016);
        assert_eq!(ConnectionLimit::backstop_per_worker(1, 4), 18);
        assert_eq!(ConnectionLimit::backstop_per_worker(5, 0), 26);
    }

    #[test]
    fn a_connection_over_the_limit_is_marked_and_its_slot_given_back() {
        let metrics = Arc::new(Metrics::new());
        let limit = ConnectionLimit::new(2, metrics.clone());
        let mut connections: Vec<Extensions> = (0..3).map(|_| Extensions::new()).collect();
        for data in &mut connections {
            limit.on_connect(&(), data);
        }
        let over: Vec<bool> = connections
            .iter()
            .map(|d| d.get::<Slot>().unwrap().over)
            .collect();
        assert_eq!(over, [false, false, true]);
        assert_eq!(metrics.http.connections.get(), 3);
        connections.truncate(1);
        assert_eq!(metrics.http.connections.get(), 1);
        let mut next = Extensions::new();
        limit.on_connect(&(), &mut next);
        assert!(
            !next.get::<Slot>().unwrap().over,
            "a freed slot is taken again"
        );
    }
}
