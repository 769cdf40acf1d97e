//! Why a Bayeux message is refused, written the one way its reply's `error` field carries
//! it: `code:args:message` (Bayeux 1.0, "error"), where `args` names what was refused.

use std::fmt;

use crate::domain::text::one_line;

/// A refusal, ready for the `error` field of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(String);

impl Refusal {
    /// 400: the message is malformed, or asks for what makes no sense; `args` names the
    /// offending part (a channel), or is empty.
    pub fn bad_request(args: &str, message: impl fmt::Display) -> Self {
        Refusal(format!("400:{}:{message}", arg(args)))
    }

    /// 402: the clientId names no session the caller may use; CometD clients handshake
    /// again on it.
    pub fn unknown_client(client_id: &str) -> Self {
        Refusal(format!("402:{}:Unknown client", arg(client_id)))
    }

    /// 403: the caller may not do this on `channel`.
    pub fn forbidden(channel: &str, message: impl fmt::Display) -> Self {
        Refusal(format!("403:{}:{message}", arg(channel)))
    }

    /// 503: the server cannot take it now (too many sessions); the client may retry.
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Refusal(format!("503::{message}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Most characters of a client's own text echoed in a refusal.
const MAX_ARG_CHARS: usize = 128;

/// A client's text (a channel, a clientId) as a refusal echoes it: one line, cut short.
fn arg(text: &str) -> String {
    one_line(text, MAX_ARG_CHARS)
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
    fn what_a_client_sent_is_echoed_on_one_line_and_cut_short() {
        assert_eq!(
            Refusal::forbidden("/a\nb\u{1b}", "Permission denied").as_str(),
            r"403:/a\nb\u{1b}:Permission denied"
        );
        let long = "/x".repeat(500);
        let refusal = Refusal::bad_request(&long, "invalid channel name");
        assert_eq!(
            refusal.as_str(),
            format!("400:{}\u{2026}:invalid channel name", "/x".repeat(64))
        );
    }

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
