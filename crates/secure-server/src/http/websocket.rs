//! The WebSocket upgrade, taken on any path: the request's checks (method, version, key, and
//! the page's origin), the client's place under the per-address limit when a trusted proxy
//! forwarded it, the `authmsg` link base; then the socket is handed to a [`Session`].

use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, uri::Authority};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;
use tungstenite::protocol::{Role, WebSocketConfig};

use super::LOG_TARGET;
use super::page::{busy, too_many_requests};
use crate::Server;
use crate::coalesce::Coalesced;
use crate::limits::ConnectionSlot;
use crate::proxy::{self, Client};
use crate::session::Session;

/// Read buffer per WebSocket: small, because chat frames are small and idle connections are
/// many (it is kept for the connection's life); a larger frame grows it as it arrives.
const READ_BUFFER: usize = 1024;

/// Bytes tungstenite gathers before it writes to the socket: none. Its buffer would keep the
/// largest size it ever reached for the connection's life; the socket is [`Coalesced`] instead,
/// which gathers a batch of frames into one write and frees its buffer afterwards.
const WRITE_BUFFER: usize = 0;

/// Hands WebSocket upgrade requests to a [`Session`]; answers a broken upgrade request (wrong
/// method, key or version) with axum's 4xx rejection; lets every other request through to the
/// routes.
///
/// axum checks the request, but the socket is taken over here rather than through axum's
/// `WebSocket`, so that sessions own the [`Coalesced`] stream under tungstenite and can copy
/// room frames, framed once for everyone, straight into it.
pub(super) async fn websocket_on_any_path(
    State(server): State<Arc<Server>>,
    Extension(client): Extension<Client>,
    Extension(slot): Extension<Arc<ConnectionSlot>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // The extractor takes the upgrade out of the request: a handle to it is kept first.
    let on_upgrade = parts.extensions.get::<OnUpgrade>().cloned();
    let checked = WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
    let request = Request::from_parts(parts, body);
    let on_upgrade = match (checked, on_upgrade) {
        (Ok(_), Some(on_upgrade)) => on_upgrade,
        (Err(rejection), _) if wants_websocket(request.headers()) => {
            return rejection.into_response();
        }
        // Not an upgrade (the extractor fails without the upgrade handle too).
        _ => return next.run(request).await,
    };
    let Some(accept) = well_formed_key(request.headers()) else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be one base64-encoded 16-byte value\n",
        )
            .into_response();
    };
    let (host, scheme) = addressed_to(&server, &client, request.headers());
    let settings = server.settings();
    let origin = request.headers().get(header::ORIGIN).map(|o| o.to_str());
    let same_site = match origin {
        None => true,
        Some(Ok(origin)) => crate::origin::allowed(
            Some(origin),
            host.map(|host| (scheme, host)),
            settings.config.public_url(),
            &settings.config.allowed_origins,
        ),
        Some(Err(_)) => false,
    };
    if !same_site {
        debug!(
            target: LOG_TARGET,
            peer = %client.addr,
            origin = ?origin,
            "refused a WebSocket from another site"
        );
        return (
            StatusCode::FORBIDDEN,
            "WebSocket connections from this page's site are not allowed\n",
        )
            .into_response();
    }
    if !settings.rates.websocket(client.addr.ip()) {
        debug!(target: LOG_TARGET, peer = %client.addr, "refused a WebSocket over the address's rate");
        return too_many_requests();
    }
    // A proxied client holds a place under its own address, as a direct one does at accept.
    let client_slot = if client.proxied {
        match server.connections.admit_client(client.addr.ip()) {
            Some(slot) => Some(slot),
            None => {
                server.metrics.connection_refused();
                return busy();
            }
        }
    } else {
        None
    };
    let link_base = link_base(&server, host, scheme);
    let max_frame = settings.config.max_frame_bytes;
    let reads = settings.rates.read_budget(max_frame);
    drop(settings);
    let peer = client.addr;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + 4 * max_frame)
        .max_frame_size(Some(max_frame))
        .max_message_size(Some(max_frame));
    let session_guard = server.sessions.token();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = Coalesced::new(TokioIo::new(upgraded)).with_read_budget(reads);
                let ws = WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
                Session::new(ws, server, peer, link_base).run().await;
            }
            Err(error) => debug!(target: LOG_TARGET, %peer, %error, "WebSocket upgrade failed"),
        }
        drop((slot, client_slot, session_guard));
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The `Sec-WebSocket-Accept` answer to the upgrade request's `Sec-WebSocket-Key`, if it has
/// exactly one and it is the base64 of 16 bytes, as RFC 6455 (4.2.1) requires (axum only checks
/// that one is there).
fn well_formed_key(headers: &HeaderMap) -> Option<HeaderValue> {
    use base64::Engine;
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return None;
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
    if !decoded.is_ok_and(|bytes| bytes.len() == 16) {
        return None;
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    Some(HeaderValue::from_str(&accept).expect("base64 is a valid header value"))
}

/// Whether a request asks for a WebSocket (`Upgrade: websocket`), well-formed or not.
fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The host a request was addressed to (its `Host`, or a trusted proxy's `X-Forwarded-Host`),
/// when it is a plain host\[:port\], and the scheme the client used (a trusted proxy's
/// `X-Forwarded-Proto`, or this port's own).
fn addressed_to<'a>(
    server: &Server,
    client: &Client,
    headers: &'a HeaderMap,
) -> (Option<&'a str>, &'static str) {
    let (proto, forwarded_host) = if client.proxied {
        proxy::forwarded_origin(headers)
    } else {
        (None, None)
    };
    let host = forwarded_host
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .filter(|h| h.parse::<Authority>().is_ok() && !h.contains('@'));
    let scheme = match proto {
        Some("https") => "https",
        Some(_) => "http",
        None if server.tls.is_some() => "https",
        None => "http",
    };
    (host, scheme)
}

/// The base of `authmsg` links: `public_url` when set, else the `scheme` and `host` the client
/// addressed (falling back to the listening address when the host is missing or not a plain
/// host\[:port\]).
fn link_base(server: &Server, host: Option<&str>, scheme: &str) -> String {
    if let Some(url) = server.settings().config.public_url() {
        return url.to_owned();
    }
    match host {
        Some(host) => format!("{scheme}://{host}"),
        None => format!("{scheme}://{}", server.local_addr),
    }
}
