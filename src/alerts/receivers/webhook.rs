//! The `webhook` receiver: the notification's JSON (docs/alerts.md), POSTed as it is.
//!
//! Headers a receiving service can rely on:
//! - `Idempotency-Key`: the notification's key, the same on every attempt and every node,
//!   so that a notification delivered twice (delivery is at least once) can be told;
//! - `X-Servicewatch-Signature: sha256=<hex>`, with a `secret_file`: HMAC-SHA256 of the
//!   exact body bytes under the secret, as GitHub signs its webhooks, so that the service
//!   can tell the body came from a holder of the secret, unchanged;
//! - `Content-Type: application/json`, `User-Agent: servicewatch/<version>`.

use std::time::Duration;

use ring::hmac;

use super::DeliveryError;
use super::http::HttpClient;
use crate::alerts::notification::Notification;
use crate::config::receivers::WebhookSpec;

/// The header that carries the notification's key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The header that carries the body's signature.
pub const SIGNATURE: &str = "X-Servicewatch-Signature";

/// A webhook, set up.
pub struct Webhook {
    url: url::Url,
    key: Option<hmac::Key>,
    client: HttpClient,
}

impl Webhook {
    pub fn new(spec: &WebhookSpec) -> Result<Webhook, String> {
        Ok(Webhook {
            url: spec.url.clone(),
            key: spec
                .secret
                .as_ref()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.expose().as_bytes())),
            client: HttpClient::new(spec.ca.as_ref(), spec.login.clone())?,
        })
    }

    /// POSTs the notification; a 2xx answer is a success.
    pub async fn deliver(&self, n: &Notification, timeout: Duration) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(n).map_err(|e| DeliveryError::Encode(e.to_string()))?;
        let mut headers = vec![(IDEMPOTENCY_KEY, header_value(&n.key))];
        if let Some(key) = &self.key {
            headers.push((SIGNATURE, signature(key, &body)));
        }
        self.client
            .post_json(&self.url, &headers, body, timeout)
            .await
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `key`, in lowercase hex.
fn signature(key: &hmac::Key, body: &[u8]) -> String {
    let tag = hmac::sign(key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// `text` as a header value: as it is when it is visible ASCII (keys are made of service
/// ids, revisions and kinds, which are), else percent-encoded rather than refused.
fn header_value(text: &str) -> String {
    if text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        text.to_string()
    } else {
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_rfc_4231_test_case_2() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn keys_are_header_values() {
        assert_eq!(
            header_value("sips1/1700000000123/stateChanged"),
            "sips1/1700000000123/stateChanged"
        );
        assert_eq!(header_value("a\nb\u{e9}"), "a%0Ab%C3%A9");
    }
}
