//! A Bayeux WebSocket subscriber to `/notifications/services` as every bench opens one: Basic
//! on the upgrade, a handshake, then subscribe and connect in one batch.

use base64ct::Encoding;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a subscriber to the server at `addr` (`host:port`), as `user` with `password`,
/// asking for `ext.snapshot` when `snapshot`; returns the connection and its clientId.
pub async fn open(addr: &str, user: &str, password: &str, snapshot: bool) -> (Ws, String) {
    let mut request = format!("ws://{addr}/api/v2/notifications")
        .into_client_request()
        .unwrap();
    let basic = base64ct::Base64::encode_string(format!("{user}:{password}").as_bytes());
    request
        .headers_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    // tungstenite zeroes its whole read buffer (128 KiB by default) before each read: at
    // ten thousand connections that memset cost more than the server under test. A frame
    // here is well under 4 KiB.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .expect("upgrade");
    let handshake = json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]);
    ws.send(Message::text(handshake.to_string())).await.unwrap();
    let reply: Value = match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    let client_id = reply[0]["clientId"].as_str().unwrap().to_string();
    let subscribe = json!([
        {"channel":"/meta/subscribe","clientId":client_id,"subscription":"/notifications/services","ext":{"snapshot":snapshot}},
        {"channel":"/meta/connect","clientId":client_id,"connectionType":"websocket"}
    ]);
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    (ws, client_id)
}

/// The next `/meta/connect` of `client_id`: sent after each one is answered, as every
/// Bayeux client does, or the session ends.
pub fn connect(client_id: &str) -> Message {
    Message::text(
        json!([{"channel":"/meta/connect","clientId":client_id,"connectionType":"websocket"}])
            .to_string(),
    )
}
