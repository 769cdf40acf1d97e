//! HTTPS beside HTTP: a certificate made by the test (rcgen), REST and a WebSocket over TLS,
//! the Secure cookie, and clear refusals of a missing or mismatched key.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::bayeux::{Io, WsClient, ws_request};
use common::{TestDaemon, basic_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A self-signed certificate for localhost and 127.0.0.1, written to `dir`; returns the
/// certificate (to trust) and the `[tls]` table naming the files.
fn certificate(dir: &Path, name: &str) -> (CertificateDer<'static>, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let table = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    (certified.cert.der().clone(), table)
}

fn connector(trusted: CertificateDer<'static>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(trusted).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_stream(
    d: &TestDaemon,
    trusted: CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(d.tls.expect("an HTTPS listener"))
        .await
        .unwrap();
    connector(trusted)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// One HTTP/1.1 GET over TLS; returns the status line, the head and the body.
async fn https_get(
    d: &TestDaemon,
    trusted: CertificateDer<'static>,
    path: &str,
) -> (String, String, String) {
    let mut tls = tls_stream(d, trusted).await;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic_header()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server closes after the answer (Connection: close); a TLS peer may end without
    // close_notify, which counts as the end too.
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status = head.lines().next().unwrap().to_string();
    (status, head.to_string(), body.to_string())
}

const SERVICE: &str =
    "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = { host = \"127.0.0.1\", port = 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http_serve_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (trusted, table) = certificate(dir.path(), "server");
    let d = TestDaemon::start(&format!("{table}{SERVICE}"));

    let (status, head, body) = https_get(&d, trusted.clone(), "/api/v2/services?fields=id").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a Basic login sets the cookie");
    assert!(cookie.contains("; Secure"), "Secure over TLS: {cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(body.contains("\"sips1\""), "{body}");

    // Plain HTTP still answers, on its own port.
    assert_eq!(d.ids().await, ["sips1"]);

    // A WebSocket over TLS, authenticated by the cookie the HTTPS login set.
    let cookie_value = cookie
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut request = ws_request(&d, &[("cookie", cookie_value.as_str())]);
    *request.uri_mut() = format!(
        "wss://localhost:{}/api/v2/notifications",
        d.tls.unwrap().port()
    )
    .parse()
    .unwrap();
    let stream = tls_stream(&d, trusted).await;
    let (ws, _) = tokio_tungstenite::client_async(request, Box::new(stream) as Box<dyn Io>)
        .await
        .expect("the upgrade over TLS");
    let mut client = WsClient::from_stream(ws);
    client.handshake().await;
}

/// Runs `servicewatch check-config` and `servicewatch run` on `toml`; both must refuse it
/// with exit status 3 and `expected` on stderr.
fn refused_by_the_binary(toml: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("servicewatch.toml");
    std::fs::write(&path, toml).unwrap();
    for command in ["check-config", "run"] {
        let output = Command::new(env!("CARGO_BIN_EXE_servicewatch"))
            .arg("--config")
            .arg(&path)
            .arg(command)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{command}: {stderr}");
        assert!(stderr.contains(expected), "{command}: {stderr}");
    }
}

#[test]
fn a_missing_key_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, table) = certificate(dir.path(), "server");
    let missing = dir.path().join("gone.key");
    let table = table.replace(
        &dir.path().join("server.key").display().to_string(),
        &missing.display().to_string(),
    );
    refused_by_the_binary(
        &format!("[server]\nlisten = \"127.0.0.1:0\"\n{table}"),
        &format!(
            "cannot read the TLS key {}: No such file or directory",
            missing.display()
        ),
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, table) = certificate(dir.path(), "one");
    certificate(dir.path(), "two");
    let table = table.replace("one.key", "two.key");
    refused_by_the_binary(
        &format!("[server]\nlisten = \"127.0.0.1:0\"\n{table}"),
        "do not go together",
    );
}

#[test]
fn a_file_without_a_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, table) = certificate(dir.path(), "server");
    // The certificate where the key should be.
    let table = table.replace("server.key", "server.crt");
    refused_by_the_binary(
        &format!("[server]\nlisten = \"127.0.0.1:0\"\n{table}"),
        "no PEM private key block",
    );
}
