//! The HTTPS listener's rustls configuration, read from PEM files.
//!
//! Reading happens at start (and in `check-config`), so that a missing, unreadable or
//! mismatched certificate or key stops the daemon with a message naming the file, instead of
//! failing each handshake later. The crypto provider is `ring`, chosen explicitly so that the
//! build needs no C toolchain beyond what `ring` brings and no process-wide default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::server::TlsSettings;
use crate::pem;

/// Why the HTTPS listener cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {}: {reason}", path.display())]
    /// The certificate file is unreadable or holds no certificate.
    Certificate {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    #[error("cannot read the TLS key {}: {reason}", path.display())]
    /// The key file is unreadable or holds no private key.
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    #[error("the TLS certificate {} and key {} do not go together: {reason}", certificate.display(), key.display())]
    /// The key is not the certificate's.
    Mismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// Loads the certificate chain and key and builds the server configuration (TLS 1.2 and
/// 1.3, HTTP/1.1 only: WebSocket upgrades need it).
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let chain = certificates(&settings.certificate)?;
    let key = private_key(&settings.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TlsError::Mismatch {
            certificate: settings.certificate.clone(),
            key: settings.key.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem::certificates(path).map_err(|reason| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    })
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    pem::private_key(path).map_err(|reason| TlsError::Key {
        path: path.to_path_buf(),
        reason,
    })
}
