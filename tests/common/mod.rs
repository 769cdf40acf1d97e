//! Fixtures for end-to-end tests: the daemon on port 0, real loopback backends that a test
//! opens, closes and stalls, an HTTP client, and polling with a deadline.
#![allow(dead_code, unused_imports)]

pub mod backend;
pub mod bayeux;
pub mod certs;
pub mod cluster;
pub mod daemon;
pub mod etcd;
pub mod held;
pub mod hook;
pub mod interop;
pub mod ldap;
pub mod process;
pub mod sip;

use std::future::Future;
use std::time::{Duration, Instant};

pub use backend::{Backend, Mode};
pub use daemon::{ADMIN, PASSWORD, SUPERVISOR, TestDaemon, USER, basic_header, users_toml};

/// `SWSESSION=...`: the session cookie an answer sets, as a client sends it back.
pub fn session_cookie(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .expect("an ASCII cookie")
        .split(';')
        .next()
        .expect("a name=value pair")
        .to_string()
}

/// Polls `probe` until it returns `Some`, or panics with `what` at `deadline`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `probe` for `period` and panics if it ever returns false.
pub async fn stays<F, Fut>(period: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        assert!(probe().await, "{what} stopped holding");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
