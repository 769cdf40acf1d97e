//! The `tcp` check: the instance accepts a connection.

use std::time::Duration;

use super::Target;
use crate::domain::health::ProbeOutcome;

/// Connects and closes at once.
pub async fn probe(target: &Target, timeout: Duration) -> Result<(ProbeOutcome, String), String> {
    super::connect(target, timeout).await?;
    Ok((ProbeOutcome::Up, format!("connected to {target}")))
}
