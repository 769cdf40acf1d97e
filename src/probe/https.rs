//! The `https` check: the `http` check over TLS.
//!
//! The server's certificate is verified by default, against the system's CA certificates
//! (`/etc/ssl/certs`, read once) or a configured CA file, for the instance's host or a
//! configured server name (also sent as SNI); a client certificate can be presented.
//! Verification can be turned off for a test bench (`tls_skip_verify`), which the monitor
//! logs as a warning on every start. A certificate that fails verification is a down
//! instance with rustls's reason ("certificate expired", "unknown issuer", "not valid for
//! name ..."), never a crash.
//!
//! The end of validity of the certificate shown is reported with each probe (a metric and
//! the instance detail), and below `certificate_min_days` the instance counts as degraded:
//! it still serves, and an alert has weeks to fire before the outage.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use rustls::client::WantsClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Target;
use super::http::{self, HttpCheck};
use crate::domain::health::ProbeOutcome;
use crate::pem;

/// An `https` check: the request, the TLS client, and the degraded threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpsCheck {
    pub http: HttpCheck,
    pub tls: TlsClient,
    /// Days of validity left below which the instance counts as degraded.
    pub min_days: Option<f64>,
}

/// How to set up TLS to the instance, as configured, and the client built from it.
#[derive(Clone)]
pub struct TlsClient {
    /// The name the certificate must be valid for, and the SNI; default the host.
    pub server_name: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub skip_verify: bool,
    /// The files as read: a reload that finds them changed changes the check, and so
    /// restarts its monitor with the new ones.
    files: Vec<Vec<u8>>,
    config: Arc<ClientConfig>,
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        self.server_name == other.server_name
            && self.ca_file == other.ca_file
            && self.client_certificate == other.client_certificate
            && self.client_key == other.client_key
            && self.skip_verify == other.skip_verify
            && self.files == other.files
    }
}

impl fmt::Debug for TlsClient {
    /// Leaves the files' contents (a private key among them) out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("ca_file", &self.ca_file)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("skip_verify", &self.skip_verify)
            .finish_non_exhaustive()
    }
}

/// What configures a [`TlsClient`]; `Err` names the key at fault and why.
pub struct TlsOptions {
    pub server_name: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub skip_verify: bool,
}

/// What a [`TlsClient`] cannot be built from: the key at fault, and why.
type Fault = (&'static str, String);

impl TlsClient {
    /// Reads the files and builds the client: at start and on reload, so that a missing
    /// CA file or a key that does not match its certificate stops the configuration with
    /// the file named, instead of failing every probe.
    pub fn load(options: TlsOptions) -> Result<TlsClient, Fault> {
        if let Some(name) = &options.server_name {
            check_server_name(name)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ("kind", format!("no TLS protocol version available: {e}")))?;
        // The files in the order read: CA, client certificate, client key.
        let mut files = Vec::new();
        let builder = if options.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            builder.with_root_certificates(roots(options.ca_file.as_deref(), &mut files)?)
        };
        let config = client_auth(builder, &options, &mut files)?;
        Ok(TlsClient {
            server_name: options.server_name,
            ca_file: options.ca_file,
            client_certificate: options.client_certificate,
            client_key: options.client_key,
            skip_verify: options.skip_verify,
            files,
            config: Arc::new(config),
        })
    }
}

/// Refuses a `server_name` that no certificate can be valid for, at load rather than at
/// every probe.
fn check_server_name(name: &str) -> Result<(), Fault> {
    ServerName::try_from(name).map(drop).map_err(|_| {
        (
            "server_name",
            format!("\"{name}\" is not a DNS name or an IP address"),
        )
    })
}

/// The bytes of the file at `path`, configured by `key`: kept so that a reload sees
/// whether they changed.
fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, Fault> {
    std::fs::read(path).map_err(|e| (key, format!("cannot read {}: {e}", path.display())))
}

/// The CA certificates the server's certificate must chain to: those of `ca_file`, else
/// the system's. A CA file without one usable certificate is refused, since it would make
/// every probe fail with "unknown issuer".
fn roots(ca_file: Option<&Path>, files: &mut Vec<Vec<u8>>) -> Result<Arc<RootCertStore>, Fault> {
    let Some(path) = ca_file else {
        return system_roots().map_err(|e| ("ca_file", e));
    };
    files.push(read("ca_file", path)?);
    let certificates =
        pem::certificates(path).map_err(|e| ("ca_file", format!("{}: {e}", path.display())))?;
    let mut roots = RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(certificates);
    if roots.is_empty() {
        return Err((
            "ca_file",
            format!(
                "{}: none of its {ignored} certificates is a usable CA certificate",
                path.display()
            ),
        ));
    }
    Ok(Arc::new(roots))
}

/// The client certificate presented, if any: `client_certificate` and `client_key` go
/// together, and the key must be the certificate's.
fn client_auth(
    builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    options: &TlsOptions,
    files: &mut Vec<Vec<u8>>,
) -> Result<ClientConfig, Fault> {
    let (certificate, key) = match (&options.client_certificate, &options.client_key) {
        (None, None) => return Ok(builder.with_no_client_auth()),
        (Some(certificate), Some(key)) => (certificate, key),
        (Some(_), None) => {
            return Err((
                "client_key",
                "a client_certificate needs its client_key".into(),
            ));
        }
        (None, Some(_)) => {
            return Err((
                "client_certificate",
                "a client_key needs its client_certificate".into(),
            ));
        }
    };
    files.push(read("client_certificate", certificate)?);
    files.push(read("client_key", key)?);
    let chain = pem::certificates(certificate).map_err(|e| {
        (
            "client_certificate",
            format!("{}: {e}", certificate.display()),
        )
    })?;
    let key_der =
        pem::private_key(key).map_err(|e| ("client_key", format!("{}: {e}", key.display())))?;
    builder.with_client_auth_cert(chain, key_der).map_err(|e| {
        (
            "client_key",
            format!(
                "{} does not go with {}: {e}",
                key.display(),
                certificate.display()
            ),
        )
    })
}

/// The system's CA certificates, read once per process (hundreds of certificates: not once
/// per check), for the `https` checks and the alert receivers alike.
pub fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                Err(format!(
                    "no system CA certificates found{why}; install ca-certificates, or set ca_file"
                ))
            } else {
                Ok(Arc::new(roots))
            }
        })
        .clone()
}

/// What an `https` probe saw: the outcome (or why it failed) and the end of validity of
/// the certificate shown, when the handshake got that far.
pub struct Seen {
    pub result: Result<(ProbeOutcome, String), String>,
    pub not_after: Option<SystemTime>,
}

/// Connects, handshakes, sends the request and judges the answer and the certificate, all
/// within `timeout`.
pub async fn probe(check: &HttpsCheck, target: &Target, timeout: Duration) -> Seen {
    let mut not_after = None;
    let exchange = async {
        let stream = handshake(&check.tls, target, timeout).await?;
        not_after = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| end_of_validity(leaf));
        http::converse(stream, &check.http, target).await
    };
    let answer = match tokio::time::timeout(timeout, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "no complete HTTPS answer from {target} within {timeout:?}"
        )),
    };
    let result = answer.map(|(status, body)| {
        judge_certificate(
            http::judge(&check.http, status, &body),
            not_after,
            check.min_days,
            SystemTime::now(),
        )
    });
    Seen { result, not_after }
}

/// Connects to `target` and completes a TLS handshake as `tls` says, the certificate
/// verified: the start of an `https` probe, and of a `sip` probe over TLS.
pub(crate) async fn handshake(
    tls: &TlsClient,
    target: &Target,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = super::connect(target, timeout).await?;
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    let name = ServerName::try_from(name)
        .map_err(|_| format!("{target}: the host is not a name TLS can verify"))?;
    TlsConnector::from(tls.config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {target} failed: {e}"))
}

/// The HTTP outcome, told the certificate's days left, and degraded below `min_days`.
fn judge_certificate(
    (outcome, detail): (ProbeOutcome, String),
    not_after: Option<SystemTime>,
    min_days: Option<f64>,
    now: SystemTime,
) -> (ProbeOutcome, String) {
    let Some(not_after) = not_after else {
        return (outcome, detail);
    };
    let days = days_left(not_after, now);
    let until = humantime::format_rfc3339_seconds(not_after);
    match min_days {
        Some(min) if outcome == ProbeOutcome::Up && days < min => (
            ProbeOutcome::Degraded,
            format!(
                "{detail}, but the certificate expires in {days:.1} days ({until}), below certificate_min_days = {min}"
            ),
        ),
        _ => (
            outcome,
            format!("{detail}, certificate valid for {days:.1} more days ({until})"),
        ),
    }
}

/// Days from `now` to `not_after`; negative once past.
pub fn days_left(not_after: SystemTime, now: SystemTime) -> f64 {
    match not_after.duration_since(now) {
        Ok(left) => left.as_secs_f64() / 86_400.0,
        Err(past) => -past.duration().as_secs_f64() / 86_400.0,
    }
}

/// The end of validity of a DER certificate; `None` if it cannot be read.
pub fn end_of_validity(der: &CertificateDer<'_>) -> Option<SystemTime> {
    use x509_cert::der::Decode;
    let certificate = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let not_after = certificate.tbs_certificate().validity().not_after;
    Some(SystemTime::UNIX_EPOCH + not_after.to_unix_duration())
}

/// `tls_skip_verify = true`: accepts any certificate for any name, while still checking
/// that the server holds the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_told_and_degrades_below_the_threshold() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let up = || (ProbeOutcome::Up, "HTTP status 200".to_string());
        let in_days = |d: u64| Some(now + Duration::from_secs(d * 86_400));
        assert_eq!(
            judge_certificate(up(), in_days(90), Some(14.0), now),
            (
                ProbeOutcome::Up,
                "HTTP status 200, certificate valid for 90.0 more days (2024-02-12T22:13:20Z)"
                    .into()
            )
        );
        let (outcome, detail) = judge_certificate(up(), in_days(5), Some(14.0), now);
        assert_eq!(outcome, ProbeOutcome::Degraded);
        assert!(
            detail.ends_with(
                "expires in 5.0 days (2023-11-19T22:13:20Z), below certificate_min_days = 14"
            ),
            "{detail}"
        );
        let down = (
            ProbeOutcome::Down,
            "HTTP status 500, not an expected one".into(),
        );
        assert_eq!(
            judge_certificate(down, in_days(5), Some(14.0), now).0,
            ProbeOutcome::Down,
            "a failing answer stays down"
        );
        assert_eq!(judge_certificate(up(), None, Some(14.0), now), up());
    }

    fn options() -> TlsOptions {
        TlsOptions {
            server_name: None,
            ca_file: None,
            client_certificate: None,
            client_key: None,
            skip_verify: true,
        }
    }

    fn refused(options: TlsOptions) -> Fault {
        TlsClient::load(options).unwrap_err()
    }

    #[test]
    fn a_client_is_refused_naming_the_key_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let server_name = refused(TlsOptions {
            server_name: Some("not a name".into()),
            ..options()
        });
        assert_eq!(
            server_name,
            (
                "server_name",
                "\"not a name\" is not a DNS name or an IP address".into()
            )
        );
        let missing = dir.path().join("missing.pem");
        let (key, why) = refused(TlsOptions {
            ca_file: Some(missing.clone()),
            client_certificate: Some(missing.clone()),
            skip_verify: false,
            ..options()
        });
        assert_eq!(key, "ca_file", "the CA file is read first: {why}");
        assert!(why.starts_with(&format!("cannot read {}", missing.display())));
        let (key, _) = refused(TlsOptions {
            ca_file: Some(file("empty.pem", "")),
            skip_verify: false,
            ..options()
        });
        assert_eq!(key, "ca_file");
        assert_eq!(
            refused(TlsOptions {
                client_certificate: Some(missing.clone()),
                ..options()
            }),
            (
                "client_key",
                "a client_certificate needs its client_key".into()
            )
        );
        assert_eq!(
            refused(TlsOptions {
                client_key: Some(missing),
                ..options()
            }),
            (
                "client_certificate",
                "a client_key needs its client_certificate".into()
            )
        );
    }

    #[test]
    fn a_client_keeps_its_files_to_tell_a_reload_they_changed() {
        let dir = tempfile::tempdir().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let certificate_file = write("cert.pem", certificate.pem());
        let key_file = write("key.pem", key.serialize_pem());
        let other_key_file = write("other.pem", other_key.serialize_pem());
        let both = TlsOptions {
            ca_file: Some(certificate_file.clone()),
            client_certificate: Some(certificate_file.clone()),
            client_key: Some(key_file.clone()),
            skip_verify: false,
            ..options()
        };
        let client = TlsClient::load(both).unwrap();
        assert_eq!(
            client.files,
            [certificate.pem(), certificate.pem(), key.serialize_pem()].map(String::into_bytes)
        );
        let (fault, why) = refused(TlsOptions {
            client_certificate: Some(certificate_file),
            client_key: Some(other_key_file),
            ..options()
        });
        assert_eq!(fault, "client_key");
        assert!(why.contains("does not go with"), "{why}");
    }

    #[test]
    fn reads_the_end_of_validity_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let not_after = end_of_validity(certificate.der()).unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(not_after).to_string(),
            "2031-05-17T00:00:00Z"
        );
        assert_eq!(
            end_of_validity(&CertificateDer::from(vec![0x30, 0x03])),
            None
        );
    }
}
