//! The control socket's file: bound with mode 0660 (the daemon's user and group), a stale
//! file of a daemon that died replaced, a live one (another daemon answers on it) refused,
//! and removed at stop if it is still the one bound here.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket file's mode: read and write (connect) for the daemon's user and group.
const SOCKET_MODE: u32 = 0o660;

/// Why the control socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process answers on the socket.
    #[error(
        "{0}: another servicewatch is listening on this control socket; stop it, or set another [control] socket"
    )]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{0}: exists and is not a socket; remove it, or set another [control] socket")]
    NotASocket(PathBuf),
    /// The system refused.
    #[error("{path}: cannot listen on the control socket: {source}")]
    Io {
        /// The socket file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl From<BindError> for io::Error {
    fn from(e: BindError) -> io::Error {
        let kind = match &e {
            BindError::InUse(_) => io::ErrorKind::AddrInUse,
            BindError::NotASocket(_) => io::ErrorKind::AlreadyExists,
            BindError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e.to_string())
    }
}

/// The bound socket file: which file it is, so that a stop removes only its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file bound (in use while the file is there, so that no
    /// other file can have them).
    identity: (u64, u64),
}

impl SocketFile {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if it is still the one bound here (a newer daemon may have
    /// replaced it).
    pub fn remove(&self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| identity(&m) == self.identity);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), error = %e, "cannot remove the control socket");
        }
    }
}

/// Binds the socket at `path` with mode 0660, replacing a stale socket file.
pub(crate) fn bind(path: &Path) -> Result<(UnixListener, SocketFile), BindError> {
    let io = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    clear_stale(path)?;
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(io)?;
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        identity: identity(&meta),
    };
    Ok((listener, file))
}

/// What tells one socket file from the next made at the same path.
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Removes a socket file nobody listens on; refuses one somebody does, or a file that is
/// not a socket.
fn clear_stale(path: &Path) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BindError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(BindError::InUse(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "replacing a stale control socket");
            std::fs::remove_file(path).map_err(|source| BindError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(BindError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_0660_and_removes_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (_listener, file) = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        file.remove();
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(UnixListener::bind(&path).unwrap());
        let (live, _file) = bind(&path).expect("the stale file is replaced");
        let refused = bind(&path).unwrap_err();
        assert!(matches!(refused, BindError::InUse(_)), "{refused}");
        assert!(refused.to_string().contains("another servicewatch"));
        drop(live);
    }

    #[test]
    fn a_file_in_the_way_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::fs::write(&path, "keep").unwrap();
        assert!(matches!(bind(&path), Err(BindError::NotASocket(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
    }

    #[test]
    fn a_replaced_file_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (listener, file) = bind(&path).unwrap();
        drop(listener);
        // Kept under another name, so that the newer file cannot reuse its inode.
        std::fs::hard_link(&path, dir.path().join("older.sock")).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (_newer, _) = bind(&path).unwrap();
        file.remove();
        assert!(path.exists(), "the newer daemon's socket stays");
    }
}
