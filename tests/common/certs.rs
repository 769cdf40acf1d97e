//! Certificates made by the tests: a CA, and certificates it signs for servers and clients,
//! written as PEM files where the daemon (or etcd) reads them; and TLS servers on loopback
//! showing one of them (HTTPS, or whatever a test's handler answers).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

/// A CA, its certificate written to `dir/ca.pem`.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "servicewatch test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), issuer.pem()).unwrap();
        Ca { issuer }
    }

    /// A certificate for `names`, valid until `days` days from now (before now, if
    /// negative), and its key.
    pub fn issue(&self, names: &[&str], days: i64) -> (CertificateDer<'static>, KeyPair) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let shift = Duration::from_secs(days.unsigned_abs() * 86_400);
        let end = if days < 0 {
            SystemTime::now() - shift
        } else {
            SystemTime::now() + shift
        };
        let end = humantime::format_rfc3339(end).to_string();
        let ymd: Vec<i32> = end[..10].split('-').map(|p| p.parse().unwrap()).collect();
        params.not_after = rcgen::date_time_ymd(ymd[0], ymd[1] as u8, ymd[2] as u8);
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.der().clone(), key)
    }

    /// A client certificate and key, written to `dir/client.pem` and `dir/client.key`.
    pub fn client_files(&self, dir: &Path) {
        let (certificate, key) = self.issue(&["servicewatch"], 30);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64(&certificate)
        );
        std::fs::write(dir.join("client.pem"), pem).unwrap();
        std::fs::write(dir.join("client.key"), key.serialize_pem()).unwrap();
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        roots
    }
}

pub fn base64(der: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(der)
}

impl Ca {
    /// A certificate for `names` (host names or IP addresses) valid for 30 days, and its
    /// key, written to `dir/{stem}.pem` and `dir/{stem}.key`.
    pub fn issue_files(&self, names: &[&str], dir: &Path, stem: &str) {
        let (certificate, key) = self.issue(names, 30);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64(&certificate)
        );
        std::fs::write(dir.join(format!("{stem}.pem")), pem).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }
}

/// An HTTPS server on loopback answering every request `200 ok`; with `clients`, it
/// demands a client certificate issued by that CA.
pub async fn serve(
    certificate: CertificateDer<'static>,
    key: KeyPair,
    clients: Option<&Ca>,
) -> u16 {
    serve_tls(certificate, key, clients, |mut tls| async move {
        let mut request = [0u8; 2048];
        let _ = tls.read(&mut request).await;
        let _ = tls
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
        let _ = tls.shutdown().await;
    })
    .await
}

/// A TLS server on loopback showing `certificate` (with, given `clients`, a client
/// certificate from that CA required), handing each connection it accepts to `handle`;
/// its port.
pub async fn serve_tls<F, Fut>(
    certificate: CertificateDer<'static>,
    key: KeyPair,
    clients: Option<&Ca>,
    handle: F,
) -> u16
where
    F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider)
                .build()
                .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = builder.with_single_cert(vec![certificate], key).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    handle(tls).await;
                }
            });
        }
    });
    port
}
