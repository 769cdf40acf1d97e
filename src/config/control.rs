//! `[control]`: the control socket, a Unix socket on which the daemon serves the API to the
//! `servicewatch` command line of the same machine (see [`crate::control`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::rules::Invalid;

/// The socket's name in systemd's `RUNTIME_DIRECTORY` (`RuntimeDirectory=servicewatch`:
/// `/run/servicewatch/control.sock`) when `[control] socket` is not set.
pub const DEFAULT_SOCKET_NAME: &str = "control.sock";
/// Where the command line looks when neither `--socket`, `SERVICEWATCH_SOCKET` nor the
/// configuration says: the default under the shipped unit.
pub const DEFAULT_SOCKET: &str = "/run/servicewatch/control.sock";

/// `[control]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// `false` turns the socket off.
    pub enabled: Option<bool>,
    /// The socket's path.
    pub socket: Option<String>,
}

/// `[control]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// `false`: no control socket, whatever else is set.
    pub enabled: bool,
    /// The socket's path; `None`: `control.sock` in systemd's `RUNTIME_DIRECTORY`, or no
    /// socket when that is not set either.
    pub socket: Option<PathBuf>,
}

impl ControlSettings {
    /// The socket to listen on, given systemd's `RUNTIME_DIRECTORY` (a colon-separated list
    /// whose first entry is the one to use), if any.
    pub fn socket_path(&self, runtime_directory: Option<&str>) -> Option<PathBuf> {
        if !self.enabled {
            return None;
        }
        self.socket.clone().or_else(|| {
            runtime_directory
                .and_then(|dirs| dirs.split(':').find(|d| !d.is_empty()))
                .map(|dir| Path::new(dir).join(DEFAULT_SOCKET_NAME))
        })
    }
}

pub(super) fn validate_control(c: &ControlSection) -> Result<ControlSettings, Invalid> {
    let socket = match &c.socket {
        Some(p) if p.trim().is_empty() => {
            return Err((
                "control.socket".into(),
                "must not be empty; leave it out for the default, or set enabled = false".into(),
            ));
        }
        Some(p) if !p.starts_with('/') => {
            return Err((
                "control.socket".into(),
                format!(
                    "\"{p}\" must be an absolute path, such as \"/run/servicewatch/control.sock\""
                ),
            ));
        }
        p => p.as_ref().map(PathBuf::from),
    };
    Ok(ControlSettings {
        enabled: c.enabled.unwrap_or(true),
        socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_the_path_or_in_the_runtime_directory() {
        let settings = validate_control(&ControlSection::default()).unwrap();
        assert_eq!(settings.socket_path(None), None, "off without a place");
        assert_eq!(
            settings.socket_path(Some("/run/servicewatch:/run/other")),
            Some(PathBuf::from("/run/servicewatch/control.sock"))
        );
        let set = validate_control(&ControlSection {
            enabled: None,
            socket: Some("/tmp/sw.sock".into()),
        })
        .unwrap();
        assert_eq!(
            set.socket_path(Some("/run/servicewatch")),
            Some(PathBuf::from("/tmp/sw.sock"))
        );
        let off = ControlSettings {
            enabled: false,
            ..set
        };
        assert_eq!(off.socket_path(Some("/run/servicewatch")), None);
    }

    #[test]
    fn an_empty_or_relative_socket_is_refused() {
        for bad in ["", "control.sock"] {
            let section = ControlSection {
                enabled: None,
                socket: Some(bad.into()),
            };
            let (key, _) = validate_control(&section).unwrap_err();
            assert_eq!(key, "control.socket");
        }
    }
}
