//! The SAUTH2 token pages at `/{id}`: each shows a pending login's temporary token, a few
//! times at most, within a per-address page budget.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
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
        PageView::Pending(token) => page(
            StatusCode::OK,
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width\"><title>CLIChat token</title></head>\
                 <body><h1>CLIChat login</h1><p><label for=\"token\">your token is</label></p>\
                 <p><textarea id=\"token\" readonly rows=\"3\" cols=\"40\" spellcheck=\"false\">{token}</textarea></p>\
                 <p>Paste it into your client now. This page stops showing it once it is used, \
                 refused or expired.</p></body></html>"
            ),
        ),
        PageView::Settled => page(
            StatusCode::GONE,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CLIChat token</title></head>\
             <body><h1>Token used or expired</h1><p>This token page is closed: its token was used, \
             refused, or expired. Log in again for a new one.</p></body></html>"
                .to_owned(),
        ),
        PageView::TooManyViews => page(
            StatusCode::TOO_MANY_REQUESTS,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CLIChat token</title></head>\
             <body><h1>Viewed too often</h1><p>This token page has been viewed too many times to \
             show its token again. Log in again for a new one.</p></body></html>"
                .to_owned(),
        ),
        PageView::Unknown => not_found().await,
        PageView::Unavailable => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CLIChat token</title></head>\
             <body><h1>Try again shortly</h1><p>This server is reconnecting to the chat's other \
             servers and cannot look up the page now. Reload in a few seconds.</p></body></html>"
                .to_owned(),
        ),
    }
}
