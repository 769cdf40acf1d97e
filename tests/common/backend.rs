//! Backends a test controls: servicewatch's own stand-ins (real loopback listeners), with
//! failures turned into panics.

pub use servicewatch::standin::Mode;
use servicewatch::standin::StandIn;

/// A stand-in backend for one test.
pub struct Backend(StandIn);

impl Backend {
    /// Starts listening on a free loopback port.
    pub async fn start(mode: Mode) -> Backend {
        Backend(StandIn::start(mode).await.expect("bind a loopback port"))
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// `{ host = "127.0.0.1", port = N }` for a config file.
    pub fn toml(&self) -> String {
        self.0.toml()
    }

    /// Stops listening: new connections are refused, open ones dropped.
    pub async fn close(&mut self) {
        self.0.close().await
    }

    /// Listens again on the same port.
    pub async fn reopen(&mut self) {
        self.0.reopen().await.expect("rebind the backend's port")
    }
}
