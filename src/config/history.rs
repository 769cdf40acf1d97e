//! `[history]`: where the history database is, and how much of it is kept.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::HumanDuration;
use super::rules::{Invalid, at_least_one, positive};

/// How long changes are kept by default: a quarter, enough to look back at last month's
/// incidents.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
/// Most changes kept by default: a few hundred bytes each, a few hundred MB at most.
const DEFAULT_MAX_ROWS: u64 = 1_000_000;

/// `[history]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub max_age: Option<HumanDuration>,
    pub max_rows: Option<u64>,
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Changes older than this are deleted.
    pub max_age: Duration,
    /// At most this many changes are kept, the newest.
    pub max_rows: u64,
}

/// `[history]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    pub enabled: bool,
    /// The database file; `None`: `history.sqlite` in systemd's `STATE_DIRECTORY`, or no
    /// history when that is not set either.
    pub path: Option<PathBuf>,
    pub retention: Retention,
}

impl HistorySettings {
    /// The database file to use, given systemd's `STATE_DIRECTORY` (a colon-separated list
    /// whose first entry is the one to use), if any.
    pub fn database(&self, state_directory: Option<&str>) -> Option<PathBuf> {
        if !self.enabled {
            return None;
        }
        self.path.clone().or_else(|| {
            state_directory
                .and_then(|dirs| dirs.split(':').find(|d| !d.is_empty()))
                .map(|dir| PathBuf::from(dir).join("history.sqlite"))
        })
    }
}

pub(super) fn validate_history(h: &HistorySection) -> Result<HistorySettings, Invalid> {
    let prefix = |(key, message): Invalid| (format!("history.{key}"), message);
    let path = match &h.path {
        Some(p) if p.trim().is_empty() => {
            return Err((
                "history.path".into(),
                "must not be empty; leave it out for the default".into(),
            ));
        }
        p => p.as_ref().map(PathBuf::from),
    };
    Ok(HistorySettings {
        enabled: h.enabled.unwrap_or(true),
        path,
        retention: Retention {
            max_age: positive("max_age", h.max_age, DEFAULT_MAX_AGE).map_err(prefix)?,
            max_rows: at_least_one("max_rows", h.max_rows, DEFAULT_MAX_ROWS).map_err(prefix)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_the_path_or_in_the_state_directory() {
        let mut settings = validate_history(&HistorySection::default()).unwrap();
        assert_eq!(settings.retention.max_rows, DEFAULT_MAX_ROWS);
        assert_eq!(settings.database(None), None, "no history without a place");
        assert_eq!(
            settings.database(Some("/var/lib/servicewatch:/var/lib/other")),
            Some(PathBuf::from("/var/lib/servicewatch/history.sqlite"))
        );
        settings.path = Some("/srv/h.sqlite".into());
        assert_eq!(
            settings.database(Some("/var/lib/servicewatch")),
            Some(PathBuf::from("/srv/h.sqlite"))
        );
        settings.enabled = false;
        assert_eq!(settings.database(Some("/var/lib/servicewatch")), None);
        let zero = HistorySection {
            max_rows: Some(0),
            ..HistorySection::default()
        };
        assert_eq!(
            validate_history(&zero).unwrap_err(),
            ("history.max_rows".into(), "must be at least 1".into())
        );
    }
}
