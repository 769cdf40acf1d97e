//! Where logs go: the journal when systemd connected stderr to it (native fields, levels as
//! priorities), otherwise stderr as text (coloured on a terminal) or JSON lines.
//!
//! The level comes from `RUST_LOG` when set (it is the usual switch at 3 a.m.), else from
//! `[log] level`, else `info`.
//!
//! The HTTP layer's own ERROR line for each malformed request is kept out (see
//! `crate::client_errors`) unless the filter names `actix_http`.

use std::io::IsTerminal;
use std::os::fd::AsRawFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::prelude::*;

use crate::client_errors;

use crate::config::server::{LogFormat, LogSettings};

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(settings: &LogSettings) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok());
    let text = from_env
        .or_else(|| settings.level.clone())
        .unwrap_or_else(|| "info".to_string());
    // The HTTP layer's ERROR line per refused connection stays out unless asked for; its
    // other lines (trace, debug) pass as the filter says.
    let each_refusal = text.contains("actix_http");
    let filter = EnvFilter::try_new(&text)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .and(filter_fn(move |meta| {
            each_refusal
                || meta.target() != client_errors::TARGET
                || *meta.level() != tracing::Level::ERROR
        }));
    let counting = client_errors::ClientErrorLayer
        .with_filter(Targets::new().with_target(client_errors::TARGET, tracing::Level::ERROR));
    let registry = tracing_subscriber::registry().with(counting);
    if stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        registry
            .with(
                journald
                    .with_syslog_identifier("servicewatch".into())
                    .with_filter(filter),
            )
            .init();
        return;
    }
    let stderr = std::io::stderr;
    match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(stderr)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(stderr)
                    .with_filter(filter),
            )
            .init(),
    }
}

/// Whether stderr is the journal stream systemd set up (`JOURNAL_STREAM=<device>:<inode>`),
/// as `sd_journal_stream_fd` documents: not merely inherited by a child of the service.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` for a valid descriptor; stderr's is open for the process.
    let ok = unsafe { libc::fstat(std::io::stderr().as_raw_fd(), stat.as_mut_ptr()) } == 0;
    if !ok {
        return false;
    }
    // SAFETY: fstat succeeded, so it initialised the struct.
    let stat = unsafe { stat.assume_init() };
    device.parse::<u64>().ok() == Some(stat.st_dev)
        && inode.parse::<u64>().ok() == Some(stat.st_ino)
}
