//! Browser safety: which web origins may use the API with the user's credentials.
//!
//! A browser attaches cookies to a WebSocket upgrade from any site, and the page that opened
//! it reads everything the socket receives (cross-site WebSocket hijacking); it also sends a
//! "simple" POST to any site. Browsers name the page's origin in the `Origin` header, so the
//! notification endpoint refuses an origin that is neither this server's own nor in
//! `[server] allowed_origins` (403). The REST API answers such origins without CORS headers,
//! which leaves the browser unable to read the answer; listed origins get CORS with
//! credentials, on preflights too.
//!
//! A request without `Origin` comes from a program, not a page in a browser (browsers always
//! send it on WebSocket upgrades and on cross-origin requests): it is let through, and its
//! credentials decide.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::ApiState;
use super::error::ApiError;

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;
/// Request headers a cross-origin page may send.
const ALLOWED_HEADERS: &str = "authorization, content-type";

/// What the `Origin` of a request is to this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin`: not a page in a browser.
    Absent,
    /// The page comes from this server (or from `public_url`).
    Same,
    /// An origin of `allowed_origins`.
    Listed,
    /// Any other origin, `null` included.
    Foreign,
}

impl Verdict {
    /// Whether a browser page from this origin may use the API with credentials.
    pub fn allowed(self) -> bool {
        !matches!(self, Verdict::Foreign)
    }
}

/// Judges `origin` for a request that reached this server as `own` (`scheme://host[:port]`,
/// from the request), given the configured public URL's origin and allow-list.
pub fn judge(origin: Option<&str>, own: &str, public: Option<&str>, allowed: &[String]) -> Verdict {
    let Some(origin) = origin else {
        return Verdict::Absent;
    };
    let origin = normalize(origin);
    if origin == normalize(own) || public.is_some_and(|p| origin == normalize(p)) {
        Verdict::Same
    } else if allowed.iter().any(|a| origin == normalize(a)) {
        Verdict::Listed
    } else {
        Verdict::Foreign
    }
}

/// The origin (`scheme://host[:port]`) of an absolute URL, for `public_url`.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// Lowercased, with the scheme's default port dropped, so that `https://UI.example:443`
/// and `https://ui.example` compare equal.
fn normalize(origin: &str) -> String {
    let lower = origin.trim().to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if lower.starts_with(scheme)
            && let Some(stripped) = lower.strip_suffix(port)
        {
            return stripped.to_string();
        }
    }
    lower
}

/// The origin check of the Services resources (and unknown paths): answers preflights and
/// adds CORS headers for allowed origins; a foreign page's request is served (a browser
/// does not let the page read the answer), since refusing it would only change the error.
pub async fn check_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    check(req, next, false).await
}

/// The origin check of the notification endpoint: like [`check_origin`], and a foreign
/// origin is refused (403), since a WebSocket upgrade is not covered by CORS and a page
/// could otherwise subscribe with the user's cookie.
pub async fn guard_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    check(req, next, true).await
}

async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    refuse_foreign: bool,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("null").to_string())
    else {
        // Not a page in a browser: nothing to check, no CORS to add.
        let mut response = next.call(req).await?;
        cors(response.headers_mut(), None);
        return Ok(response.map_into_left_body());
    };
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return Err(ApiError::Internal("no API state".into()).into());
    };
    let own = {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    };
    let allowed = judge(
        Some(&origin),
        &own,
        state.public_origin.as_deref(),
        &state.allowed_origins,
    )
    .allowed();
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let response = if allowed {
            let mut response = HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_SECS))
                .finish();
            cors(response.headers_mut(), Some(&origin));
            response
        } else {
            refusal(&origin)
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    if refuse_foreign && !allowed {
        tracing::debug!(origin, "notification request from a foreign origin refused");
        return Ok(req.into_response(refusal(&origin)).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    cors(response.headers_mut(), allowed.then_some(origin.as_str()));
    Ok(response.map_into_left_body())
}

/// Marks an answer as depending on `Origin`, and lets the page of `allowed` (if any) read
/// it with credentials.
fn cors(headers: &mut header::HeaderMap, allowed: Option<&str>) {
    headers.append(header::VARY, header::HeaderValue::from_static("origin"));
    if let Some(value) = allowed.and_then(|o| header::HeaderValue::from_str(o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::HeaderValue::from_static("true"),
        );
    }
}

fn refusal(origin: &str) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::PermissionDenied(format!(
        "origin {origin} is not allowed; add it to [server] allowed_origins"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "http://127.0.0.1:8080";

    #[test]
    fn verdicts() {
        let allowed = vec!["https://ui.example.com".to_string()];
        let public = Some("https://gws.example.com");
        let j = |origin| judge(origin, OWN, public, &allowed);
        assert_eq!(j(None), Verdict::Absent);
        assert_eq!(j(Some("http://127.0.0.1:8080")), Verdict::Same);
        assert_eq!(j(Some("https://gws.example.com")), Verdict::Same);
        assert_eq!(j(Some("https://gws.example.com:443")), Verdict::Same);
        assert_eq!(j(Some("https://UI.example.com")), Verdict::Listed);
        assert_eq!(
            j(Some("http://ui.example.com")),
            Verdict::Foreign,
            "scheme counts"
        );
        assert_eq!(
            j(Some("https://ui.example.com:8443")),
            Verdict::Foreign,
            "port counts"
        );
        assert_eq!(j(Some("https://evil.example")), Verdict::Foreign);
        assert_eq!(j(Some("null")), Verdict::Foreign);
        assert_eq!(j(Some("http://127.0.0.1:8081")), Verdict::Foreign);
        assert!(!Verdict::Foreign.allowed() && Verdict::Absent.allowed());
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin_of("https://gws.example.com/base").as_deref(),
            Some("https://gws.example.com")
        );
        assert_eq!(origin_of("http://h:8080").as_deref(), Some("http://h:8080"));
        assert_eq!(origin_of("nope"), None);
    }
}
