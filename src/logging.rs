//! Where logs go: the journal when systemd connected stderr to it (native fields, levels as
//! priorities), otherwise stderr as text (coloured on a terminal) or JSON lines.
//!
//! The level comes from `RUST_LOG` when set (it is the usual switch at 3 a.m.), else from
//! `[log] level`, else `info`.

use std::io::IsTerminal;
use std::os::fd::AsRawFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use crate::config::server::{LogFormat, LogSettings};

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| {
            settings
                .level
                .as_deref()
                .and_then(|l| EnvFilter::try_new(l).ok())
        })
        .unwrap_or_else(|| EnvFilter::new("info"));
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("servicewatch".into()))
                .init();
            return;
        }
    }
    let stderr = std::io::stderr;
    match settings.format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(stderr)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(stderr)
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
