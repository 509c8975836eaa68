//! The HTTP side of the one port: WebSocket upgrades (on any path, as the original accepted),
//! the SAUTH2 token pages under `/{id}`, and a short index at `/`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, uri::Authority};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::Server;
use crate::hub::PageView;
use crate::session::Session;

/// Read buffer per WebSocket: small, because chat frames are small and idle connections are
/// many; larger frames are read in several chunks.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes buffered before tungstenite writes to the socket; a batch of queued frames is flushed
/// at once anyway.
const WRITE_BUFFER: usize = 8 * 1024;

/// Security headers on every page: nothing cached, indexed, framed, sniffed or referred, and a
/// Content-Security-Policy that allows no script, style, image or form at all.
const PAGE_HEADERS: [(header::HeaderName, &str); 6] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::HeaderName::from_static("x-robots-tag"),
        "noindex, nofollow",
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// The server's routes. WebSocket upgrades are taken on any path before routing.
pub(crate) fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/{id}", get(token_page))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server),
            websocket_on_any_path,
        ))
        .with_state(server)
}

/// Hands WebSocket upgrade requests to a [`Session`]; answers a broken upgrade request (wrong
/// method, key or version) with axum's 4xx rejection; lets every other request through to the
/// routes.
async fn websocket_on_any_path(
    State(server): State<Arc<Server>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
    next: Next,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) if wants_websocket(request.headers()) => return rejection.into_response(),
        Err(_) => return next.run(request).await,
    };
    let link_base = link_base(&server, request.headers());
    let max_frame = server.config.max_frame_bytes;
    let session_guard = server.sessions.token();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + 4 * max_frame)
        .max_frame_size(max_frame)
        .max_message_size(max_frame)
        .on_upgrade(move |ws| async move {
            Session::new(ws, server, peer, link_base).run().await;
            drop(session_guard);
        })
}

/// Whether a request asks for a WebSocket (`Upgrade: websocket`), well-formed or not.
fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The base of `authmsg` links: `public_url` when set, else `http://` and the `Host` the client
/// connected to (falling back to the listening address when that header is missing or not a
/// plain host\[:port\]).
fn link_base(server: &Server, headers: &HeaderMap) -> String {
    if let Some(url) = server.config.public_url() {
        return url.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
        .filter(|a| !a.as_str().contains('@'));
    match host {
        Some(host) => format!("http://{host}"),
        None => format!("http://{}", server.local_addr),
    }
}

async fn index() -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CLIChat Secure Server</title></head>\
         <body><h1>CLIChat Secure Server</h1><p>{}. Connect with a CLIChat client to this address \
         (WebSocket, same port).</p></body></html>",
        crate::VERSION
    );
    page(StatusCode::OK, body)
}

/// `GET /{id}`: the temporary token while the login waits for it; 410 once settled; 404 for
/// ids never issued.
async fn token_page(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Response {
    match server.hub.view_page(&id) {
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
        PageView::Unknown => not_found().await,
    }
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>\
         <body><h1>Not found</h1></body></html>"
            .to_owned(),
    )
}

fn page(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
