//! What the webhook and Alertmanager receivers share: one POST over HTTP or HTTPS, judged.
//!
//! `https://` servers are verified against the system's CA certificates (read once per
//! process) or the receiver's `ca_file`, with rustls on `ring` as everywhere in the
//! daemon. A 2xx answer is a success; any other is a [`DeliveryError::Status`] with the
//! start of its body, and a redirect is not followed (a POST moved elsewhere is a
//! configuration to fix, not a hop to take silently).
//!
//! The `awc` client is built for each POST: it is tied to the thread it runs on, while a
//! [`super::Receiver`] may be made on another; alerts are too few for a pool to matter.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use awc::error::{ConnectError, SendRequestError};
use futures_util::StreamExt;
use rustls::{ClientConfig, RootCertStore};
use url::Url;

use super::{DeliveryError, excerpt};
use crate::config::receivers::{CaCertificates, Login};
use crate::probe::https::system_roots;

/// Bytes of an unsuccessful answer's body read for its excerpt; the rest is not waited for.
const BODY_READ_BYTES: usize = 4096;

/// `User-Agent` of every request: a receiver's log tells servicewatch's requests apart.
const USER_AGENT: &str = concat!("servicewatch/", env!("CARGO_PKG_VERSION"));

/// How to reach one receiver's servers: TLS and, when configured, HTTP Basic credentials.
pub struct HttpClient {
    tls: Arc<ClientConfig>,
    login: Option<Login>,
}

impl HttpClient {
    /// Builds the TLS configuration: with the certificates of `ca`, else the system's.
    pub fn new(ca: Option<&CaCertificates>, login: Option<Login>) -> Result<HttpClient, String> {
        let roots = match ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(ca.certificates.iter().cloned());
                Arc::new(roots)
            }
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("no TLS protocol version available: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpClient {
            tls: Arc::new(config),
            login,
        })
    }

    /// POSTs `body` as JSON to `url` with `headers`, all within `timeout`.
    pub async fn post_json(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let target = origin(url);
        let connector = awc::Connector::new()
            .rustls_0_23(self.tls.clone())
            .timeout(timeout)
            .handshake_timeout(timeout);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .finish();
        let mut request = client
            .post(url.as_str())
            .insert_header((header::USER_AGENT, USER_AGENT))
            .insert_header((header::CONTENT_TYPE, "application/json"));
        for (name, value) in headers {
            request = request.insert_header((*name, value.as_str()));
        }
        if let Some(login) = &self.login {
            request = request.basic_auth(&login.username, login.password.expose());
        }
        let exchange = async {
            let mut response = request
                .send_body(body)
                .await
                .map_err(|e| send_error(&target, e, timeout))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let mut said = Vec::new();
            while said.len() < BODY_READ_BYTES {
                match response.next().await {
                    Some(Ok(chunk)) => said.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            Err(DeliveryError::Status {
                target: target.clone(),
                status: status.as_u16(),
                body: excerpt(&said),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::TimedOut { target, timeout }),
        }
    }
}

/// `https://host:port`: how errors name a server, without the path or query that may
/// carry a token.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The error of a request that got no answer.
fn send_error(target: &str, e: SendRequestError, timeout: Duration) -> DeliveryError {
    let target = target.to_string();
    match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
            DeliveryError::TimedOut { target, timeout }
        }
        SendRequestError::Connect(ConnectError::Io(io))
            if io.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            DeliveryError::Refused { target }
        }
        other => DeliveryError::Unreachable {
            target,
            reason: other.to_string(),
        },
    }
}
