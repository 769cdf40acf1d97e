//! Why a Bayeux message is refused, written the one way its reply's `error` field carries
//! it: `code:args:message` (Bayeux 1.0, "error"), where `args` names what was refused.

use std::fmt;

/// A refusal, ready for the `error` field of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(String);

impl Refusal {
    /// 400: the message is malformed, or asks for what makes no sense; `args` names the
    /// offending part (a channel), or is empty.
    pub fn bad_request(args: &str, message: impl fmt::Display) -> Self {
        Refusal(format!("400:{args}:{message}"))
    }

    /// 402: the clientId names no session the caller may use; CometD clients handshake
    /// again on it.
    pub fn unknown_client(client_id: &str) -> Self {
        Refusal(format!("402:{client_id}:Unknown client"))
    }

    /// 403: the caller may not do this on `channel`.
    pub fn forbidden(channel: &str, message: impl fmt::Display) -> Self {
        Refusal(format!("403:{channel}:{message}"))
    }

    /// 503: the server cannot take it now (too many sessions); the client may retry.
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Refusal(format!("503::{message}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_in_its_form() {
        assert_eq!(
            Refusal::bad_request("", "malformed JSON").as_str(),
            "400::malformed JSON"
        );
        assert_eq!(
            Refusal::bad_request("/x", "invalid channel name").as_str(),
            "400:/x:invalid channel name"
        );
        assert_eq!(
            Refusal::unknown_client("c1").as_str(),
            "402:c1:Unknown client"
        );
        assert_eq!(Refusal::unknown_client("").as_str(), "402::Unknown client");
        assert_eq!(
            Refusal::forbidden("/a", "Permission denied").to_string(),
            "403:/a:Permission denied"
        );
        assert_eq!(
            Refusal::unavailable("too many sessions").as_str(),
            "503::too many sessions"
        );
    }
}
