//! What a cluster node proves itself with, and checks etcd with: the CA of the members'
//! certificates, this node's certificate and key, an etcd user's password. Read once at
//! start (and by `check-config`), so that a missing or malformed file stops the start with
//! its name and the reason rather than showing up as a failed connection later.

use std::path::Path;

use crate::config::cluster::ClusterSettings;

/// The files' contents, as the etcd client takes them (PEM as read).
#[derive(Clone, Default)]
pub struct Credentials {
    pub(crate) tls: Option<Tls>,
    /// An etcd user and its password.
    pub(crate) user: Option<(String, String)>,
}

/// TLS to the members.
#[derive(Clone)]
pub(crate) struct Tls {
    pub ca: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    pub server_name: Option<String>,
}

/// A file of `[cluster]` that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("[cluster] {key} {path}: {reason}")]
pub struct CredentialsError {
    pub(crate) key: &'static str,
    pub(crate) path: String,
    pub(crate) reason: String,
}

impl Credentials {
    /// Reads and checks every file `settings` names.
    pub fn load(settings: &ClusterSettings) -> Result<Credentials, CredentialsError> {
        let tls = match &settings.tls {
            None => None,
            Some(tls) => {
                let ca = certificates("ca_file", &tls.ca_file)?;
                let identity = match &tls.identity {
                    None => None,
                    Some((certificate, key)) => Some((
                        certificates("client_certificate", certificate)?,
                        private_key(key)?,
                    )),
                };
                Some(Tls {
                    ca,
                    identity,
                    server_name: tls.server_name.clone(),
                })
            }
        };
        let user = match &settings.user {
            None => None,
            Some(user) => {
                let path = &user.password_file;
                let password = std::fs::read_to_string(path)
                    .map_err(|e| refused("password_file", path, e.to_string()))?;
                let password = password.trim_end_matches(['\n', '\r']).to_string();
                if password.is_empty() {
                    return Err(refused("password_file", path, "is empty".into()));
                }
                Some((user.name.clone(), password))
            }
        };
        Ok(Credentials { tls, user })
    }
}

fn refused(key: &'static str, path: &Path, reason: String) -> CredentialsError {
    CredentialsError {
        key,
        path: path.display().to_string(),
        reason,
    }
}

/// The PEM file at `path`, once it is known to hold certificates.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<u8>, CredentialsError> {
    crate::pem::certificates(path).map_err(|reason| refused(key, path, reason))?;
    std::fs::read(path).map_err(|e| refused(key, path, e.to_string()))
}

/// The PEM file at `path`, once it is known to hold a private key.
fn private_key(path: &Path) -> Result<Vec<u8>, CredentialsError> {
    crate::pem::private_key(path).map_err(|reason| refused("client_key", path, reason))?;
    std::fs::read(path).map_err(|e| refused("client_key", path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cluster::{ClusterTls, ClusterUser};
    use std::time::Duration;

    fn settings(dir: &Path) -> ClusterSettings {
        ClusterSettings {
            endpoints: vec!["https://127.0.0.1:2379".into()],
            node: "n".into(),
            prefix: "/servicewatch/".into(),
            lease_ttl: Duration::from_secs(3),
            timeout: Duration::from_secs(1),
            tls: Some(ClusterTls {
                ca_file: dir.join("ca.pem"),
                identity: None,
                server_name: None,
            }),
            user: Some(ClusterUser {
                name: "servicewatch".into(),
                password_file: dir.join("password"),
            }),
            quorum: Default::default(),
        }
    }

    #[test]
    fn each_unusable_file_is_named_with_its_reason() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let s = settings(dir);
        let ca = rcgen::generate_simple_self_signed(vec!["etcd".into()])
            .unwrap()
            .cert
            .pem();
        let missing = Credentials::load(&s).err().unwrap();
        assert_eq!(missing.key, "ca_file");
        assert!(missing.to_string().contains("ca.pem"), "{missing}");
        std::fs::write(dir.join("ca.pem"), "not a certificate").unwrap();
        let garbage = Credentials::load(&s).err().unwrap();
        assert!(garbage.reason.contains("no PEM CERTIFICATE"), "{garbage}");
        std::fs::write(dir.join("ca.pem"), &ca).unwrap();
        std::fs::write(dir.join("password"), "\n").unwrap();
        let empty = Credentials::load(&s).err().unwrap();
        assert_eq!(
            (empty.key, empty.reason.as_str()),
            ("password_file", "is empty")
        );
        std::fs::write(dir.join("password"), "s3cret\n").unwrap();
        let loaded = Credentials::load(&s).unwrap();
        assert_eq!(loaded.user, Some(("servicewatch".into(), "s3cret".into())));
        assert_eq!(loaded.tls.unwrap().ca, ca.as_bytes());
    }
}
