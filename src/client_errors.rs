//! Malformed input that the HTTP layer refuses before servicewatch sees the request (a bad
//! header, a garbage request line, a connection reset mid-request): counted, and logged at
//! most once a minute as one summary line.
//!
//! The HTTP layer logs each such refusal as an ERROR of its own (`stream error: request
//! parse error: ...`). A client's bad input is not the daemon's error, and one line per bad
//! request lets anybody fill the disk without a password. So [`crate::logging`] keeps those
//! events out of the log (unless `RUST_LOG` names `actix_http`) and hands them to
//! [`ClientErrorLayer`], which only counts them; [`report`] turns the count into the metric
//! `http_client_errors_total` and a summary line at INFO.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, info};

use crate::metrics::Metrics;
use tracing_subscriber::layer::{Context, Layer};

/// Where the HTTP layer logs a connection it refused.
pub const TARGET: &str = "actix_http::h1::dispatcher";

/// The shortest time between two summary lines.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Refusals counted since the process started.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// The latest refusal's message, for the summary.
static LATEST: Mutex<String> = Mutex::new(String::new());

/// The tracing layer that counts the HTTP layer's refusals.
pub struct ClientErrorLayer;

impl<S: Subscriber> Layer<S> for ClientErrorLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET || *event.metadata().level() != tracing::Level::ERROR
        {
            return;
        }
        COUNT.fetch_add(1, Ordering::Relaxed);
        let mut message = Message(String::new());
        event.record(&mut message);
        if let Ok(mut latest) = LATEST.try_lock() {
            *latest = message.0;
        }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// What [`report`] has told so far.
pub struct Reporter {
    counted: u64,
    last_line: Option<Instant>,
    /// Refusals since the last summary line.
    unreported: u64,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter {
            counted: COUNT.load(Ordering::Relaxed),
            last_line: None,
            unreported: 0,
        }
    }
}

/// What one look at the count found: refusals new since the last look (for the metric), and
/// a summary line to log, if one is due.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub new: u64,
    pub summary: Option<(u64, String)>,
}

impl Reporter {
    /// Takes the refusals counted since the last call; a summary is due for the first
    /// refusals after a quiet minute at once, then at most once per [`SUMMARY_EVERY`].
    pub fn look(&mut self, now: Instant) -> Report {
        let total = COUNT.load(Ordering::Relaxed);
        let new = total.saturating_sub(self.counted);
        self.counted = total;
        self.unreported += new;
        let due = self.unreported > 0
            && self
                .last_line
                .is_none_or(|last| now.duration_since(last) >= SUMMARY_EVERY);
        let summary = due.then(|| {
            self.last_line = Some(now);
            let latest = LATEST.lock().map(|l| l.clone()).unwrap_or_default();
            (std::mem::take(&mut self.unreported), latest)
        });
        Report { new, summary }
    }
}

/// Counts the malformed input the HTTP layer refused, each second, and logs a summary at
/// most once a minute .
pub(crate) async fn report_periodically(metrics: Arc<Metrics>) {
    let mut reporter = Reporter::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let report = reporter.look(std::time::Instant::now());
        metrics.http.client_errors.inc_by(report.new);
        if let Some((refused, latest)) = report.summary {
            info!(
                refused,
                latest = %latest,
                "malformed HTTP input from clients refused with 400 (each is counted in http_client_errors_total; RUST_LOG=info,actix_http=error logs each)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn refusals_are_counted_and_summarised_at_most_once_a_minute() {
        let subscriber = tracing_subscriber::registry().with(ClientErrorLayer);
        let mut reporter = Reporter::default();
        let start = Instant::now();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                tracing::error!(target: TARGET, "stream error: request parse error: invalid Header provided");
            }
            // Other targets and levels are not the HTTP layer's refusals.
            tracing::error!(target: "servicewatch", "a real error");
            tracing::warn!(target: TARGET, "not a refusal");
        });
        let first = reporter.look(start);
        assert_eq!(first.new, 3);
        let (count, latest) = first.summary.expect("the first refusals are told at once");
        assert_eq!(count, 3);
        assert_eq!(
            latest,
            "stream error: request parse error: invalid Header provided"
        );
        let subscriber = tracing_subscriber::registry().with(ClientErrorLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: TARGET, "stream error: request parse error: invalid Method specified");
        });
        let soon = reporter.look(start + Duration::from_secs(1));
        assert_eq!((soon.new, soon.summary), (1, None), "counted, not told yet");
        let later = reporter.look(start + SUMMARY_EVERY);
        assert_eq!(later.new, 0);
        assert_eq!(
            later.summary.map(|(n, _)| n),
            Some(1),
            "told a minute later"
        );
        assert_eq!(
            reporter.look(start + SUMMARY_EVERY * 3).summary,
            None,
            "nothing new"
        );
    }
}
