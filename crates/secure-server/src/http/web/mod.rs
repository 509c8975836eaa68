//! The browser client (v2), served by the server itself: the page at `/`, its script, style and
//! icon under `/app/`. The files live beside this one (`src/http/web/`) and are compiled into
//! the binary, so there is no build step and nothing is fetched from anywhere but this server.
//!
//! `/app/...` has two path segments, so it never collides with the token pages at `/{id}`.
//!
//! Every answer carries the security headers of the token pages (see `page::page`), with one
//! difference: the Content-Security-Policy lets the page load its own script, style and icon and
//! open a WebSocket to its own origin ([`CLIENT_CSP`]), and nothing else. No inline script or
//! style is allowed, and the script inserts every name and message as text, never as HTML.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use super::page::page;
use crate::Server;

/// The client page.
const INDEX_HTML: &str = include_str!("index.html");
/// The client's whole logic: login (SAUTH2, an open room's name alone, or bot), chat, reconnect.
const APP_JS: &str = include_str!("app.js");
/// The client's style.
const APP_CSS: &str = include_str!("app.css");
/// The page's icon.
const ICON_SVG: &str = include_str!("icon.svg");
/// The token page's own style, over the client's.
const TOKEN_CSS: &str = include_str!("token.css");
/// The token page's copy button.
const TOKEN_JS: &str = include_str!("token.js");

/// The Content-Security-Policy of the client and its assets: scripts, styles, images and
/// connections from this origin only (`'self'` covers `ws://` and `wss://` to the same host and
/// port), no inline code, no plugins, no base URL or form targets, never framed.
pub(crate) const CLIENT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The routes of the browser client.
pub(crate) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/app/icon.svg",
            get(|| async { asset(ICON_SVG, "image/svg+xml") }),
        )
        .route(
            "/app/token.css",
            get(|| async { asset(TOKEN_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/app/token.js",
            get(|| async { asset(TOKEN_JS, "text/javascript; charset=utf-8") }),
        )
        .route("/app/server.json", get(server_info))
}

/// `GET /app/server.json`: what the client needs to know of this server before it logs in:
/// whether logins need a token (`sauth2`), and the longest name and message it takes.
async fn server_info(State(server): State<Arc<Server>>) -> Response {
    let config = &server.settings().config;
    let info = serde_json::json!({
        "sauth2": config.sauth2,
        "max_username_length": config.max_username_length,
        "max_message_length": config.max_message_length,
    });
    asset_owned(info.to_string(), "application/json")
}

/// One of the client's files, with the pages' security headers (nothing cached, referred,
/// sniffed, framed or indexed) and the client's CSP.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    asset_owned(body, content_type)
}

/// As [`asset`], for a body made at the request.
fn asset_owned(body: impl Into<Body>, content_type: &'static str) -> Response {
    // `page` owns the list of security headers; take them from it rather than repeat them.
    let (mut parts, _) = page(StatusCode::OK, String::new()).into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    parts.headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CLIENT_CSP),
    );
    Response::from_parts(parts, body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSP forbids inline code, so the page must have none: one external script, no
    /// `style` attributes, no event-handler attributes, and nothing from another origin.
    #[test]
    fn the_page_has_no_inline_code_and_no_other_origin() {
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert_eq!(lower.matches("<script").count(), 1);
        assert!(lower.contains("<script src=\"/app/app.js\" defer></script>"));
        assert!(!lower.contains(" style="), "no inline style");
        assert!(!lower.contains("<style"), "no inline style");
        for attr in [" onclick", " onload", " onerror", " onsubmit", " oninput"] {
            assert!(!lower.contains(attr), "no {attr} attribute");
        }
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("//fonts."), "no external fonts");
            assert!(!text.contains("@import"), "no imported styles");
        }
        assert!(!lower.contains("src=\"http"), "same origin only");
        assert!(!lower.contains("href=\"http"), "same origin only");
    }

    /// The script never parses markup from the server: no `innerHTML` and friends.
    #[test]
    fn the_script_inserts_text_only() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage",
            "sessionStorage",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
    }
}
