//! Bayeux clients for tests: over a real WebSocket (tokio-tungstenite) and over
//! long-polling (reqwest), speaking the messages a CometD client sends. Both log in as
//! [`USER`] with Basic unless told otherwise.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{PASSWORD, TestDaemon, USER};

pub const SERVICES: &str = "/notifications/services";

/// What a WebSocket read found.
#[derive(Debug)]
pub enum Received {
    Batch(Vec<Value>),
    Closed(Option<(CloseCode, String)>),
}

/// A byte stream a WebSocket runs on: TCP, or TLS over TCP.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A Bayeux client over WebSocket.
pub struct WsClient {
    pub ws: WebSocketStream<Box<dyn Io>>,
    pub client_id: String,
    next_id: u64,
    /// State changes received in a frame with others, not yet taken by `next_change`.
    changes: std::collections::VecDeque<Value>,
}

impl WsClient {
    /// Opens a WebSocket to the daemon's notification endpoint as [`USER`], without
    /// handshaking.
    pub async fn open(d: &TestDaemon) -> WsClient {
        WsClient::open_as(d, USER, PASSWORD).await
    }

    /// Opens a WebSocket as `user`, without handshaking.
    pub async fn open_as(d: &TestDaemon, user: &str, password: &str) -> WsClient {
        let auth = super::daemon::basic_of(user, password);
        WsClient::try_open(d, &[("authorization", auth.as_str())])
            .await
            .expect("WebSocket upgrade")
    }

    /// Tries an upgrade with these request headers (and no others); an `Err` carries the
    /// refusal (`tungstenite::Error::Http` with the HTTP answer).
    pub async fn try_open(
        d: &TestDaemon,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        let request = ws_request(d, headers);
        let tcp = TcpStream::connect(d.addr).await?;
        let (ws, _) =
            tokio_tungstenite::client_async(request, Box::new(tcp) as Box<dyn Io>).await?;
        Ok(WsClient::from_stream(ws))
    }

    /// Wraps a WebSocket opened by the test.
    pub fn from_stream(ws: WebSocketStream<Box<dyn Io>>) -> WsClient {
        WsClient {
            ws,
            client_id: String::new(),
            next_id: 0,
            changes: std::collections::VecDeque::new(),
        }
    }

    /// Opens, handshakes, subscribes to the services topic and sends the first connect.
    pub async fn subscribed(d: &TestDaemon) -> WsClient {
        WsClient::subscribed_as(d, USER, PASSWORD).await
    }

    /// [`WsClient::subscribed`] as `user`.
    pub async fn subscribed_as(d: &TestDaemon, user: &str, password: &str) -> WsClient {
        let mut c = WsClient::open_as(d, user, password).await;
        c.handshake().await;
        let reply = c
            .call(json!({"channel":"/meta/subscribe","subscription":SERVICES}))
            .await;
        assert_eq!(reply[0]["successful"], true, "{reply:?}");
        c.connect().await;
        c
    }

    pub fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a batch.
    pub async fn send(&mut self, batch: Value) {
        self.send_text(&batch.to_string()).await;
    }

    /// Waits until the socket is closed for revoked credentials (1008, "credentials
    /// revoked; log in again"), the service messages before the close let pass.
    pub async fn closed_for_revocation(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(Received::Batch(_)) => continue,
                Some(Received::Closed(Some((code, reason)))) => {
                    assert_eq!(code, CloseCode::Policy);
                    assert_eq!(reason, "credentials revoked; log in again");
                    return;
                }
                other => {
                    panic!("expected the socket closed for revoked credentials, got {other:?}")
                }
            }
        }
    }

    /// The next batch (or close) within `within`.
    pub async fn recv_within(&mut self, within: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("frames are JSON");
                    let batch = match value {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    return Some(Received::Batch(batch));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Received::Closed(
                        frame.map(|f| (f.code, f.reason.to_string())),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Received::Closed(None)),
            }
        }
    }

    /// The next batch; panics on close or after 5 s.
    pub async fn recv(&mut self) -> Vec<Value> {
        match self.recv_within(Duration::from_secs(5)).await {
            Some(Received::Batch(b)) => b,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    /// Sends one message with this client's id and clientId; returns the next batch.
    pub async fn call(&mut self, mut message: Value) -> Vec<Value> {
        let id = self.id();
        message["id"] = json!(id);
        if !self.client_id.is_empty() && message.get("clientId").is_none() {
            message["clientId"] = json!(self.client_id);
        }
        self.send(json!([message])).await;
        self.recv().await
    }

    pub async fn handshake(&mut self) -> Value {
        let reply = self
            .call(json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}))
            .await;
        assert_eq!(reply[0]["successful"], true, "{reply:?}");
        self.client_id = reply[0]["clientId"].as_str().unwrap().to_string();
        reply[0].clone()
    }

    /// Sends a connect; the first is answered at once.
    pub async fn connect(&mut self) -> Vec<Value> {
        self.call(json!({"channel":"/meta/connect","connectionType":"websocket"}))
            .await
    }

    /// Opens, handshakes and subscribes presenting `revision` (as a UI resuming after its
    /// connection dropped, here or on another node), answers the connects, and collects the
    /// service messages that arrive within `within`, or until `expect` have.
    pub async fn resumed(
        d: &TestDaemon,
        revision: i64,
        expect: usize,
        within: Duration,
    ) -> Vec<Value> {
        let mut c = WsClient::open(d).await;
        c.handshake().await;
        let connect =
            json!({"channel":"/meta/connect","clientId":c.client_id,"connectionType":"websocket"});
        c.send(json!([
            {"channel":"/meta/subscribe","clientId":c.client_id,"subscription":SERVICES,"ext":{"revision":revision}},
            connect.clone()
        ]))
        .await;
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while got.len() < expect && tokio::time::Instant::now() < deadline {
            match c.recv_within(Duration::from_millis(100)).await {
                None => continue,
                Some(Received::Closed(why)) => panic!("closed: {why:?}"),
                Some(Received::Batch(batch)) => {
                    for m in batch {
                        if m["channel"] == SERVICES {
                            got.push(m);
                        } else if m["channel"] == "/meta/subscribe" {
                            assert_eq!(m["successful"], true, "{m}");
                        } else if m["channel"] == "/meta/connect" {
                            c.send(json!([connect.clone()])).await;
                        }
                    }
                }
            }
        }
        got
    }

    /// Waits for the next ServiceStateChangeMessage and returns its service, skipping
    /// connect replies. Several changes in one frame (published together) come one per call,
    /// in order.
    pub async fn next_change(&mut self, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(service) = self.changes.pop_front() {
                return service;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(Received::Batch(batch)) => {
                    for m in batch.iter().filter(|m| m["channel"] == SERVICES) {
                        assert_eq!(m["data"]["messageType"], "ServiceStateChangeMessage");
                        self.changes.push_back(m["data"]["service"].clone());
                    }
                }
                other => panic!("expected a state change within {within:?}, got {other:?}"),
            }
        }
    }
}

/// The upgrade request to the notification endpoint, with these headers.
pub fn ws_request(
    d: &TestDaemon,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{}/api/v2/notifications", d.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    request
}

/// A Bayeux client over long-polling.
pub struct LpClient {
    http: reqwest::Client,
    url: String,
    /// Basic credentials sent with every request.
    login: Option<(String, String)>,
    pub client_id: String,
    next_id: u64,
}

impl LpClient {
    /// A client logging in as [`USER`].
    pub fn new(d: &TestDaemon) -> LpClient {
        LpClient::as_user(d, Some((USER, PASSWORD)))
    }

    /// A client logging in as `login` (name, password), or sending no credentials.
    pub fn as_user(d: &TestDaemon, login: Option<(&str, &str)>) -> LpClient {
        LpClient {
            // An idle pooled connection is dropped well before the daemon's keep-alive (5 s)
            // ends it, as a long-polling client must: a request sent on a connection the
            // server is closing at that moment fails (a POST is not retried).
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            url: d.url("/api/v2/notifications"),
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            client_id: String::new(),
            next_id: 0,
        }
    }

    /// POSTs raw bytes to `<url><suffix>`; returns status and parsed body.
    pub async fn post_raw(&self, suffix: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{suffix}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some((user, password)) = &self.login {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.expect("long-polling request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// Sends one message (with id and clientId) to `<url>/<suffix>`; returns the batch.
    pub async fn call(&mut self, suffix: &str, mut message: Value) -> Vec<Value> {
        self.next_id += 1;
        message["id"] = json!(self.next_id.to_string());
        if !self.client_id.is_empty() && message.get("clientId").is_none() {
            message["clientId"] = json!(self.client_id);
        }
        let (status, body) = self.post_raw(suffix, json!([message]).to_string()).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    pub async fn handshake(&mut self) {
        let reply = self
            .call("/handshake", json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling","websocket"]}))
            .await;
        assert_eq!(reply[0]["successful"], true, "{reply:?}");
        self.client_id = reply[0]["clientId"].as_str().unwrap().to_string();
    }

    pub async fn subscribe(&mut self, snapshot: bool) -> Vec<Value> {
        self.call("/subscribe", json!({"channel":"/meta/subscribe","subscription":SERVICES,"ext":{"snapshot":snapshot}}))
            .await
    }

    pub async fn connect(&mut self) -> Vec<Value> {
        self.call(
            "/connect",
            json!({"channel":"/meta/connect","connectionType":"long-polling"}),
        )
        .await
    }
}

/// The services of the ServiceStateChangeMessages in a batch.
pub fn changes(batch: &[Value]) -> Vec<Value> {
    batch
        .iter()
        .filter(|m| m["channel"] == SERVICES)
        .map(|m| m["data"]["service"].clone())
        .collect()
}
