//! The SAUTH2 token pages at `/{id}`: each shows a pending login's temporary token, a few
//! times at most, within a per-address page budget.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::page::{not_found, page, too_many_requests};
use crate::Server;
use crate::hub::PageView;
use crate::limits::UNKNOWN_PAGE_COST;

/// `GET /{id}`: the temporary token while the login waits for it (a few views at most); 410
/// once settled; 404 for ids never issued. Each request spends the address's page budget, a
/// miss five times as much, so ids cannot be guessed at speed; past the budget, 429.
pub(super) async fn token_page(
    State(server): State<Arc<Server>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let settings = server.settings();
    if !settings.rates.page_request(peer.ip(), 1) {
        server.metrics.page_view(429);
        return too_many_requests();
    }
    let view = server
        .hub
        .view_page(&id, settings.config.limits.max_page_views)
        .await;
    if matches!(view, PageView::Settled | PageView::Unknown) {
        // A miss costs more; an address that cannot pay is refused from its next request on.
        let _ = settings
            .rates
            .page_request(peer.ip(), UNKNOWN_PAGE_COST - 1);
    }
    server.metrics.page_view(match &view {
        PageView::Pending(_) => 200,
        PageView::TooManyViews => 429,
        PageView::Settled => 410,
        PageView::Unknown => 404,
        PageView::Unavailable => 503,
    });
    match view {
        PageView::Pending(token) => styled(
            StatusCode::OK,
            "Your login token",
            &format!(
                "<p>Copy this token and paste it into the chat client that sent you here.</p>\
                 <textarea id=\"token\" class=\"token\" readonly rows=\"3\" spellcheck=\"false\" \
                 aria-label=\"your token is\">{token}</textarea>\
                 <p class=\"token-actions\"><button id=\"copy\" type=\"button\" hidden>Copy token</button>\
                 <span id=\"copied\" class=\"hint\" role=\"status\"></span></p>\
                 <p class=\"hint\">It logs in once. This page stops showing it as soon as it is \
                 used or refused, and within {minutes} minutes at most.</p>",
                minutes = settings.config.tokenauth_timeout_secs.div_ceil(60),
            ),
        ),
        PageView::Settled => styled(
            StatusCode::GONE,
            "Token used or expired",
            "<p>This token page is closed: its token was used, refused, or expired.</p>\
             <p>Log in again in your chat client for a new one.</p>",
        ),
        PageView::TooManyViews => styled(
            StatusCode::TOO_MANY_REQUESTS,
            "Viewed too often",
            "<p>This token page has been viewed too many times to show its token again.</p>\
             <p>Log in again in your chat client for a new one.</p>",
        ),
        PageView::Unknown => not_found().await,
        PageView::Unavailable => styled(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again shortly",
            "<p>This server is reconnecting to the chat's other servers and cannot look up the \
             page now. Reload in a few seconds.</p>",
        ),
    }
}

/// A token page in the browser client's look (its style sheet, light and dark), with the
/// client's Content-Security-Policy: its own style and script, nothing inline, nothing from
/// anywhere else. `body` is this module's own markup; the only value in it that is not is the
/// temporary token, whose alphabet (`[A-Za-z0-9.]`) needs no escaping.
fn styled(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>CLIChat: {title}</title>\
         <link rel=\"icon\" href=\"/app/icon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/app/app.css\"><link rel=\"stylesheet\" href=\"/app/token.css\">\
         <script src=\"/app/token.js\" defer></script></head>\
         <body><header class=\"bar\"><h1>CLIChat</h1></header><main>\
         <section class=\"card token-card\" aria-labelledby=\"title\"><h2 id=\"title\">{title}</h2>\
         {body}</section></main></body></html>"
    );
    let mut response = page(status, html);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::web::CLIENT_CSP),
    );
    response
}
