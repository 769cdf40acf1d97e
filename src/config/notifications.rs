//! The `[notifications]` table: the Bayeux endpoint's timing and bounds.

use std::time::Duration;

use super::file::FileConfig;
use super::rules::{Invalid, at_least_one, positive};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Sessions at once: each costs a few kilobytes, so this bounds memory, not throughput.
const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Sessions one user may hold: room for a shared wallboard account on many screens, while
/// one leaked password cannot take every session of the daemon.
const DEFAULT_MAX_SESSIONS_PER_USER: usize = 256;
const DEFAULT_MAX_SUBSCRIPTIONS: usize = 64;
/// A burst of changes to every service of a large site fits; a client that falls this far
/// behind is not reading.
const DEFAULT_SESSION_QUEUE: usize = 1_000;
const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// The Bayeux endpoint's timing and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettings {
    /// How long a `/meta/connect` is held when there is nothing to deliver (`advice.timeout`).
    pub connect_timeout: Duration,
    /// How long after a connect reply the next connect must come before the client is
    /// forgotten (CometD's `maxInterval`); also the time a new session has to connect.
    pub session_timeout: Duration,
    /// How often a WebSocket is pinged; a peer silent for three intervals is dropped.
    pub ping_interval: Duration,
    pub max_sessions: usize,
    /// Sessions one user may hold at once, so that one account cannot take them all.
    pub max_sessions_per_user: usize,
    pub max_subscriptions: usize,
    /// Messages waiting for one client before it counts as a slow consumer and is dropped.
    pub session_queue: usize,
    /// Largest WebSocket message or long-polling body, in bytes.
    pub max_message_size: usize,
}

pub(super) fn validate_notifications(file: &FileConfig) -> Result<NotificationSettings, Invalid> {
    let n = &file.notifications;
    let duration =
        |key: &str, value, default| positive(&format!("notifications.{key}"), value, default);
    let count =
        |key: &str, value, default| at_least_one(&format!("notifications.{key}"), value, default);
    let max_message_size = count(
        "max_message_size",
        n.max_message_size,
        DEFAULT_MAX_MESSAGE_SIZE,
    )?;
    if max_message_size < 1024 {
        return Err((
            "notifications.max_message_size".into(),
            format!("{max_message_size} bytes cannot hold a handshake; use at least 1024"),
        ));
    }
    Ok(NotificationSettings {
        connect_timeout: duration(
            "connect_timeout",
            n.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        session_timeout: duration(
            "session_timeout",
            n.session_timeout,
            DEFAULT_SESSION_TIMEOUT,
        )?,
        ping_interval: duration("ping_interval", n.ping_interval, DEFAULT_PING_INTERVAL)?,
        max_sessions: count("max_sessions", n.max_sessions, DEFAULT_MAX_SESSIONS)?,
        max_sessions_per_user: count(
            "max_sessions_per_user",
            n.max_sessions_per_user,
            DEFAULT_MAX_SESSIONS_PER_USER,
        )?,
        max_subscriptions: count(
            "max_subscriptions",
            n.max_subscriptions,
            DEFAULT_MAX_SUBSCRIPTIONS,
        )?,
        session_queue: count("session_queue", n.session_queue, DEFAULT_SESSION_QUEUE)?,
        max_message_size,
    })
}
