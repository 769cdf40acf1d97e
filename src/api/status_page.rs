//! The live status page: `GET /` serves one page built into the binary (`assets/status/`),
//! written for servicewatch without a framework. It logs in with the API's own Basic login
//! (which sets the login cookie), lists the services the user sees, and keeps them live
//! from the Bayeux notifications: WebSocket, or long-polling where a proxy refuses
//! WebSockets, reconnecting by itself, with the link's state shown.
//!
//! It works under a strict Content-Security-Policy (everything from this server, no inline
//! script or style), which every answer here carries, with `nosniff` and no framing.

use actix_web::body::MessageBody;
use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::ApiState;

const INDEX: &str = include_str!("../../assets/status/index.html");
const SCRIPT: &str = include_str!("../../assets/status/status.js");
const STYLE: &str = include_str!("../../assets/status/status.css");
const ICON: &str = include_str!("../../assets/status/favicon.svg");

/// Everything from this server; nothing inline; never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the page, told where the API is.
pub async fn index(state: web::Data<ApiState>) -> HttpResponse {
    let page = INDEX.replace("{{BASE}}", &attribute(&state.base_path));
    asset("text/html; charset=utf-8", page)
}

/// `GET /status.js`.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /status.css`.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /favicon.svg`: a green dot, so that the tab has an icon and the browser asks for
/// no other.
pub async fn icon() -> HttpResponse {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: impl MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // A new servicewatch may come with a new page: always ask.
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
        .body(body)
}

/// `text` made safe inside a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(!INDEX.contains("<script>"), "scripts come from files");
        assert!(!INDEX.contains("style="), "no inline style attribute");
        assert!(!INDEX.contains("<style"), "no inline style element");
        assert!(!INDEX.contains(" on"), "no inline event handler");
        assert_eq!(attribute(r#"/a"b<c>&"#), "/a&quot;b&lt;c&gt;&amp;");
    }
}
