//! How the command line reaches the daemon: HTTP/1.1 over the control socket, or over TCP
//! (`--url`, with a Bearer token) for a daemon elsewhere; and what each failure means for
//! the exit code.
//!
//! The HTTP client is awc, already the daemon's client for alert receivers; over the socket
//! it is given a connector that opens a Unix stream instead of a TCP connection, so that
//! both ways share one request and answer path.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::{Method, Uri};
use serde_json::Value;

use super::Failure;

/// How long a command waits for the daemon's answer (a reload reads and applies the file).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(40);
/// Bytes of an answer read at most: the history of a busy year fits.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;
/// `User-Agent` of the command line's requests.
const USER_AGENT: &str = concat!("servicewatch-cli/", env!("CARGO_PKG_VERSION"));

/// Where the daemon is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The control socket at this path.
    Socket(PathBuf),
    /// The API at this origin (`http(s)://host:port`), with a Bearer token if any.
    Url {
        /// Scheme, host and port.
        origin: String,
        /// Sent as `Authorization: Bearer ...`.
        token: Option<String>,
    },
}

/// A connection to the daemon's API under its base path.
pub struct Client {
    target: Target,
    base_path: String,
    http: awc::Client,
}

impl Client {
    /// A client of the API at `base_path` on `target`.
    pub fn new(target: Target, base_path: String) -> Result<Client, Failure> {
        let http = match &target {
            Target::Socket(path) => socket_client(path.clone()),
            Target::Url { .. } => url_client()?,
        };
        Ok(Client {
            target,
            base_path,
            http,
        })
    }

    /// `GET {base}{path}`: the answer's JSON.
    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(Method::GET, path, None).await
    }

    /// Sends `method {base}{path}` with `body` as JSON; the answer's JSON, or the failure
    /// the daemon's answer or its absence means.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let url = match &self.target {
            Target::Socket(_) => format!("http://localhost{}{path}", self.base_path),
            Target::Url { origin, .. } => format!("{origin}{}{path}", self.base_path),
        };
        let mut request = self
            .http
            .request(method, url)
            .insert_header(("User-Agent", USER_AGENT));
        if let Target::Url {
            token: Some(token), ..
        } = &self.target
        {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut answer = sent.map_err(|e| self.unreachable(e))?;
        let bytes = answer
            .body()
            .limit(ANSWER_LIMIT)
            .await
            .map_err(|e| Failure::Unreachable(format!("the daemon's answer was cut: {e}")))?;
        let status = answer.status().as_u16();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(json),
            401 | 403 => Err(Failure::Refused(message_of(&json, status))),
            _ => Err(Failure::Daemon {
                status,
                message: message_of(&json, status),
            }),
        }
    }

    /// What a request that got no answer means, said so that the reader can act.
    fn unreachable(&self, e: awc::error::SendRequestError) -> Failure {
        let io_kind = match &e {
            awc::error::SendRequestError::Connect(awc::error::ConnectError::Io(io)) => {
                Some(io.kind())
            }
            _ => None,
        };
        match (&self.target, io_kind) {
            (Target::Socket(path), Some(std::io::ErrorKind::NotFound)) => {
                Failure::Unreachable(format!(
                    "servicewatch is not running (no socket at {}); start it with `systemctl start servicewatch`",
                    path.display()
                ))
            }
            (Target::Socket(path), Some(std::io::ErrorKind::PermissionDenied)) => {
                Failure::Unreachable(format!(
                    "permission denied on {}: the control socket is for root and the servicewatch group; use sudo, or join the group",
                    path.display()
                ))
            }
            (Target::Socket(path), Some(std::io::ErrorKind::ConnectionRefused)) => {
                Failure::Unreachable(format!(
                    "servicewatch is not running (nothing listens on {}); start it with `systemctl start servicewatch`",
                    path.display()
                ))
            }
            (Target::Socket(path), _) => Failure::Unreachable(format!(
                "cannot reach servicewatch at {}: {e}",
                path.display()
            )),
            (Target::Url { origin, .. }, _) => {
                Failure::Unreachable(format!("cannot reach servicewatch at {origin}: {e}"))
            }
        }
    }
}

/// The `statusMessage` of a GWS error envelope, or the bare HTTP status.
fn message_of(json: &Value, status: u16) -> String {
    json.get("statusMessage")
        .and_then(Value::as_str)
        .map_or_else(
            || format!("the daemon answered HTTP {status}"),
            str::to_string,
        )
}

/// An awc client whose every connection is a Unix stream to `path`.
fn socket_client(path: PathBuf) -> awc::Client {
    let path = Rc::new(path);
    let connector = awc::Connector::new().connector(actix_service::fn_service(
        move |info: ConnectInfo<Uri>| {
            let path = path.clone();
            async move {
                let stream = actix_rt::net::UnixStream::connect(&*path)
                    .await
                    .map_err(ConnectError::Io)?;
                Ok::<_, ConnectError>(Connection::new(info.request().clone(), stream))
            }
        },
    ));
    awc::Client::builder()
        .connector(connector)
        .timeout(ANSWER_TIMEOUT)
        .disable_redirects()
        .finish()
}

/// An awc client over TCP, HTTPS verified against the system's CA certificates.
fn url_client() -> Result<awc::Client, Failure> {
    let roots = crate::probe::https::system_roots().map_err(Failure::Unreachable)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Unreachable(format!("no TLS protocol version available: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = awc::Connector::new().rustls_0_23(Arc::new(tls));
    Ok(awc::Client::builder()
        .connector(connector)
        .timeout(ANSWER_TIMEOUT)
        .disable_redirects()
        .finish())
}
