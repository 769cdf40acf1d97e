//! The daemon's life under a service manager: readiness, status, watchdog, reload on SIGHUP,
//! and a graceful stop on SIGTERM or SIGINT.
//!
//! systemd hears of it through `sd_notify` (`Type=notify`); without `NOTIFY_SOCKET` every
//! notification is a no-op, so the same code runs in a terminal.
//!
//! - `READY=1` once the listener is bound and every monitor has finished its first probe
//!   round, or after `STARTUP_GRACE` if some probe is slow, so that clients are not told
//!   "Inactive" merely because the daemon has not looked yet.
//! - `STATUS=` a line a person can read (`12 services: 10 Active, 1 ReadOnly, 1 Inactive`),
//!   refreshed as states change, with the outcome of the last refused reload.
//! - `WATCHDOG=1` at half of `WATCHDOG_USEC`, sent only after the registry actor answered a
//!   ping: a hung actor system stops the pings and systemd restarts the daemon.
//! - `RELOADING=1` with `MONOTONIC_USEC`, then `READY=1`, around a reload. A file that fails
//!   validation is refused, logged and shown in `STATUS=`; the running configuration stays.
//!   A reload asked over the API (`POST /reload`, `servicewatch reload`) is the same reload,
//!   run here between signals, its outcome answered to the request.
//! - `STOPPING=1`, then clients are told and requests in flight finish.

use std::path::PathBuf;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::Daemon;
use crate::api::reload::{ReloadAsked, ReloadRefusal};
use crate::config::Settings;
use crate::daemon::ReloadError;
use crate::registry::ReloadSummary;

/// The longest the daemon waits for every monitor's first probe round before it declares
/// itself ready anyway.
pub(crate) const STARTUP_GRACE: Duration = Duration::from_secs(10);
/// How often `STATUS=` is refreshed from the current states.
const STATUS_INTERVAL: Duration = Duration::from_millis(500);

/// The signals the daemon's life follows, taken before it starts: a SIGTERM that comes
/// while it starts (a stop right after a start) then ends it cleanly, its control socket
/// removed and its history flushed, rather than by the default action.
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes SIGTERM, SIGINT and SIGHUP from their default actions.
    pub fn take() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

/// Runs `daemon` until SIGTERM or SIGINT, reloading `config_path` on SIGHUP.
pub async fn run(
    mut daemon: Daemon,
    signals: Signals,
    config_path: PathBuf,
    mut running: Settings,
) -> std::io::Result<()> {
    let Signals {
        mut terminate,
        mut interrupt,
        mut hangup,
    } = signals;

    if tokio::time::timeout(STARTUP_GRACE, daemon.when_ready())
        .await
        .is_err()
    {
        warn!(grace = ?STARTUP_GRACE, "not every monitor finished its first probe round in time; ready anyway");
    }
    let summary = daemon.snapshot().summary();
    info!(status = %summary, "ready");
    notify(&[NotifyState::Ready, NotifyState::Status(&summary)]);

    let (note_tx, note_rx) = watch::channel(None::<String>);
    let mut asked = daemon.take_reload_requests();
    let daemon = std::rc::Rc::new(daemon);
    let status_task = actix_rt::spawn(report_status(daemon.clone(), note_rx));
    let watchdog_task = sd_notify::watchdog_enabled()
        .map(|period| actix_rt::spawn(watchdog(daemon.clone(), period / 2)));

    let signal_name = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => {
                let (note, _) = reload(&daemon, &config_path, &mut running).await;
                // A reload asked over the API is recorded by its handler, with its caller.
                audit_signal_reload(&daemon, &config_path, note.clone());
                note_tx.send_replace(note);
            }
            Some(ReloadAsked(answer)) = next_asked(&mut asked) => {
                let (note, outcome) = reload(&daemon, &config_path, &mut running).await;
                note_tx.send_replace(note);
                // The asker may have given up; the reload stands all the same.
                let _ = answer.send(outcome);
            }
        }
    };

    info!(signal = signal_name, "stopping");
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    // Wait for the aborted tasks to end, so that they drop their share of the daemon.
    status_task.abort();
    let _ = status_task.await;
    if let Some(task) = watchdog_task {
        task.abort();
        let _ = task.await;
    }
    daemon.stop().await;
    let daemon = std::rc::Rc::try_unwrap(daemon)
        .map_err(|_| std::io::Error::other("the daemon is still in use"))?;
    daemon.wait().await
}

/// Records a reload by SIGHUP in the audit trail; `note`: why it was refused, if it was.
fn audit_signal_reload(daemon: &Daemon, path: &std::path::Path, note: Option<String>) {
    use crate::history::audit::{Action, Entry, Outcome};
    daemon.history().audit(Entry {
        at: std::time::SystemTime::now(),
        who: "signal".into(),
        from: None,
        action: Action::Reload,
        target: path.display().to_string(),
        outcome: if note.is_none() {
            Outcome::Done
        } else {
            Outcome::Failed
        },
        detail: note,
    });
}

/// The next reload asked over the API; never, when nobody can ask.
async fn next_asked(
    asked: &mut Option<tokio::sync::mpsc::Receiver<ReloadAsked>>,
) -> Option<ReloadAsked> {
    match asked {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

/// Re-reads the configuration and applies it; returns a note for `STATUS=` when refused,
/// and the outcome.
async fn reload(
    daemon: &Daemon,
    path: &std::path::Path,
    running: &mut Settings,
) -> (Option<String>, Result<ReloadSummary, ReloadRefusal>) {
    info!(config = %path.display(), "reloading");
    let monotonic = NotifyState::monotonic_usec_now().ok();
    let mut states = vec![NotifyState::Reloading];
    states.extend(monotonic);
    notify(&states);
    let outcome = match daemon.reload(path, running).await {
        Ok(summary) => {
            info!(
                added = summary.added.len(),
                changed = summary.changed.len(),
                removed = summary.removed.len(),
                unchanged = summary.unchanged,
                "reload applied"
            );
            daemon.metrics().reloads.count(true);
            Ok(summary)
        }
        Err(ReloadError::Config(e)) => {
            daemon.metrics().reloads.count(false);
            error!("reload refused, the running configuration stays: {e}");
            Err(ReloadRefusal::Config(e.to_string()))
        }
        Err(e @ ReloadError::Registry(_)) => {
            error!("reload failed: {e}");
            Err(ReloadRefusal::Failed(e.to_string()))
        }
    };
    let note = match &outcome {
        Ok(_) => None,
        Err(ReloadRefusal::Config(e)) => Some(format!("last reload refused: {e}")),
        Err(ReloadRefusal::Failed(e)) => Some(format!("last reload failed: {e}")),
    };
    let status = status_line(daemon, note.as_deref());
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    (note, outcome)
}

/// Keeps `STATUS=` current.
async fn report_status(daemon: std::rc::Rc<Daemon>, note: watch::Receiver<Option<String>>) {
    let mut last = String::new();
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    loop {
        tick.tick().await;
        let line = status_line(&daemon, note.borrow().as_deref());
        if line != last {
            notify(&[NotifyState::Status(&line)]);
            last = line;
        }
    }
}

/// Pings systemd's watchdog every `period`, as long as the registry answers.
async fn watchdog(daemon: std::rc::Rc<Daemon>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if daemon.is_responsive(period).await {
            notify(&[NotifyState::Watchdog]);
        } else {
            warn!("the registry did not answer within {period:?}; withholding the watchdog ping");
        }
    }
}

/// The `STATUS=` line: the states, a cluster node's place, and a note (a refused reload).
fn status_line(daemon: &Daemon, note: Option<&str>) -> String {
    let mut line = daemon.snapshot().summary();
    if let Some(place) = daemon.cluster_place() {
        line = format!("{line}; {place}");
    }
    match note {
        Some(note) => format!("{line}; {note}"),
        None => line,
    }
}

/// Sends notifications to the service manager, if there is one.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager");
    }
}
