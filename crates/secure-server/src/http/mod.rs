//! The HTTP side of the one port: each accepted socket is served as HTTP/1.1 (with a time limit
//! on request heads), and routed: WebSocket upgrades (on any path, as the original accepted),
//! the SAUTH2 token pages under `/{id}`, the browser client at `/`, the probes (`/_status` for
//! local tools, `/metrics`, `/healthz`) and the owner API under `/admin/`.
//!
//! Its parts, in the order a request meets them:
//! - `connection`: one accepted socket: TLS, HTTP/1.1 with a header timeout, or a 503 when it
//!   is over the connection limits.
//! - `websocket`: the upgrade, on any path: its checks (key, origin), the client's address and
//!   the `authmsg` link base; then the socket belongs to a session.
//! - `token_page`: the SAUTH2 token pages at `/{id}`.
//! - `probes`: `/_status`, `/metrics` and `/healthz`.
//! - `admin`: the owner API under `/admin/`.
//! - `web`: the browser client at `/` and `/app/`.
//! - `page`: pages with the security headers, and the answers (404, 503) the others share.

mod admin;
mod connection;
mod page;
mod probes;
mod token_page;
mod web;
mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::Server;

pub(crate) use connection::accept;

/// The target of the events of every file of this folder: the module's path, as it was before
/// the module became a folder, so that log lines and `RUST_LOG` filters stay as they were.
const LOG_TARGET: &str = "secure_server::http";

/// The server's routes. WebSocket upgrades are taken on any path before routing.
pub(crate) fn router(server: Arc<Server>) -> Router {
    Router::new()
        .merge(web::routes())
        .merge(admin::routes(Arc::clone(&server)))
        .route("/_status", get(probes::status))
        .route("/metrics", get(probes::metrics))
        .route("/healthz", get(probes::healthz))
        .route("/{id}", get(token_page::token_page))
        .fallback(page::not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server),
            websocket::websocket_on_any_path,
        ))
        .with_state(server)
}
