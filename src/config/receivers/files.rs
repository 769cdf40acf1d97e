//! What receivers read from files: a secret (an HMAC key, a password) and CA certificates.
//! Read at validation, so that `check-config` and a reload see a missing or unreadable
//! file, and kept as read, so that a receiver whose file changed is a changed receiver.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;

use super::ReceiverSection;
use crate::config::rules::Invalid;

/// The text of a secret file, with its line ending trimmed (`echo secret > file` leaves
/// one). `Debug` shows the file, never the secret, so that no log or panic carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    path: PathBuf,
    text: String,
}

impl Secret {
    /// The secret read from `path`; `Err` says why not, in words.
    pub fn read(path: &Path) -> Result<Secret, String> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => format!("{}: is not UTF-8 text", path.display()),
            _ => format!("cannot read {}: {e}", path.display()),
        })?;
        let text = text.trim_end_matches(['\n', '\r']).to_string();
        if text.is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        Ok(Secret {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}, <redacted>)", self.path.display())
    }
}

/// A user name and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Who logs in.
    pub username: String,
    /// With what (from `password_file`).
    pub password: Secret,
}

/// The CA certificates of a `ca_file`, at least one.
#[derive(Clone, PartialEq, Eq)]
pub struct CaCertificates {
    /// The `ca_file` they were read from.
    pub path: PathBuf,
    /// The certificates, in the file's order.
    pub certificates: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CaCertificates({}, {} certificates)",
            self.path.display(),
            self.certificates.len()
        )
    }
}

/// The secret in `file`, configured by `key`.
pub(super) fn secret(key: &str, file: &str) -> Result<Secret, Invalid> {
    Secret::read(Path::new(file)).map_err(|why| (key.to_string(), why))
}

/// `username` and `password_file`, which go together.
pub(super) fn login(r: &ReceiverSection) -> Result<Option<Login>, Invalid> {
    match (&r.username, &r.password_file) {
        (None, None) => Ok(None),
        (Some(username), Some(file)) if !username.is_empty() => Ok(Some(Login {
            username: username.clone(),
            password: secret("password_file", file)?,
        })),
        (Some(_), None) => Err((
            "password_file".into(),
            "a username needs its password_file".into(),
        )),
        _ => Err((
            "username".into(),
            "a password_file needs its username (not empty)".into(),
        )),
    }
}

/// The certificates of `file`, configured by `key`.
pub(crate) fn ca(key: &str, file: &str) -> Result<CaCertificates, Invalid> {
    let path = PathBuf::from(file);
    let certificates = crate::pem::certificates(&path)
        .map_err(|why| (key.to_string(), format!("{file}: {why}")))?;
    // Refused here rather than failing every handshake with "unknown issuer".
    let mut roots = rustls::RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(certificates.iter().cloned());
    if roots.is_empty() {
        return Err((
            key.to_string(),
            format!("{file}: none of its {ignored} certificates is a usable CA certificate"),
        ));
    }
    Ok(CaCertificates { path, certificates })
}
