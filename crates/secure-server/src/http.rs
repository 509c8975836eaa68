//! The HTTP side of the one port: each accepted socket is served as HTTP/1.1 (with a time limit
//! on request heads), and routed: WebSocket upgrades (on any path, as the original accepted),
//! the SAUTH2 token pages under `/{id}`, a short index at `/`, and `/_status` for local tools.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, uri::Authority};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tower::ServiceExt;
use tracing::debug;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::Server;
use crate::coalesce::Coalesced;
use crate::hub::PageView;
use crate::limits::{ConnectionSlot, UNKNOWN_PAGE_COST};
use crate::proxy::{self, Client};
use crate::secrets::TokenKey;
use crate::session::Session;
use crate::tls;

/// Largest HTTP request head (request line and headers); a larger one is answered 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Read buffer per WebSocket: small, because chat frames are small and idle connections are
/// many (it is kept for the connection's life); a larger frame grows it as it arrives.
const READ_BUFFER: usize = 1024;
/// Bytes tungstenite gathers before it writes to the socket: none. Its buffer would keep the
/// largest size it ever reached for the connection's life; the socket is [`Coalesced`] instead,
/// which gathers a batch of frames into one write and frees its buffer afterwards.
const WRITE_BUFFER: usize = 0;

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

/// Serves one accepted socket, over TLS when the server has it. A TLS handshake must complete
/// within `limits.http_timeout_secs`; a client that speaks plain HTTP to a TLS port is told so
/// in plain HTTP (400) and the socket closed, rather than left to hang.
pub(crate) async fn accept(
    server: Arc<Server>,
    router: Router,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Option<ConnectionSlot>,
) {
    // Chat frames are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &server.tls else {
        return serve_connection(server, router, tcp, peer, slot).await;
    };
    let deadline = server.settings().config.http_timeout();
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == tls::HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => return refuse_plaintext(tcp).await,
        _ => return,
    }
    match tokio::time::timeout(deadline, tls.acceptor().accept(tcp)).await {
        Ok(Ok(stream)) => serve_connection(server, router, stream, peer, slot).await,
        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
        Err(_elapsed) => debug!(%peer, "TLS handshake timed out"),
    }
}

/// The answer to plain HTTP (or `ws://`) on a TLS port.
async fn refuse_plaintext(mut tcp: TcpStream) {
    const BODY: &str = "This port speaks HTTPS and WSS only: use https:// or wss://\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// Serves one connection: HTTP/1.1 requests through `router` while it holds a connection
/// `slot`, or a single 503 when it got none. A client must send each request head within
/// `limits.http_timeout_secs`. On shutdown, a request in progress may finish; the socket then
/// closes. A WebSocket upgrade takes the socket (and the slot) away from HTTP for good.
async fn serve_connection<S>(
    server: Arc<Server>,
    router: Router,
    stream: S,
    peer: SocketAddr,
    slot: Option<ConnectionSlot>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(server.settings().config.http_timeout())
        .max_buf_size(MAX_REQUEST_HEAD);

    let Some(slot) = slot else {
        builder.keep_alive(false);
        let busy = hyper::service::service_fn(|_request| async { Ok::<_, Infallible>(busy()) });
        let _ = builder.serve_connection(io, busy).await;
        return;
    };
    let slot = Arc::new(slot);
    let shared = Arc::clone(&server);
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let mut request = request.map(Body::new);
        // Who sent it: the peer, or the client a trusted proxy forwarded. Every route sees the
        // client's address as its `ConnectInfo`.
        let trusted = &shared.settings().config.trusted_proxies;
        let client = Client::of(peer, request.headers(), trusted);
        request.extensions_mut().insert(ConnectInfo(client.addr));
        request.extensions_mut().insert(client);
        request.extensions_mut().insert(Arc::clone(&slot));
        router.clone().oneshot(request)
    });
    let mut connection = pin!(builder.serve_connection(io, service).with_upgrades());
    tokio::select! {
        _ = connection.as_mut() => return,
        () = server.shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// The answer to a socket over the connection limits.
fn busy() -> Response {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Busy</title></head>\
         <body><h1>Server busy</h1><p>Too many connections; try again later.</p></body></html>"
            .to_owned(),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The server's routes. WebSocket upgrades are taken on any path before routing.
pub(crate) fn router(server: Arc<Server>) -> Router {
    Router::new()
        .merge(crate::web::routes())
        .merge(crate::admin::routes(Arc::clone(&server)))
        .route("/_status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
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
///
/// axum checks the request, but the socket is taken over here rather than through axum's
/// `WebSocket`, so that sessions own the [`Coalesced`] stream under tungstenite and can copy
/// room frames, framed once for everyone, straight into it.
async fn websocket_on_any_path(
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
            host,
            settings.config.public_url(),
            &settings.config.allowed_origins,
        ),
        Some(Err(_)) => false,
    };
    if !same_site {
        debug!(peer = %client.addr, origin = ?origin, "refused a WebSocket from another site");
        return (
            StatusCode::FORBIDDEN,
            "WebSocket connections from this page's site are not allowed\n",
        )
            .into_response();
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
                let socket = Coalesced::new(TokioIo::new(upgraded));
                let ws = WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
                Session::new(ws, server, peer, link_base).run().await;
            }
            Err(error) => debug!(%peer, %error, "WebSocket upgrade failed"),
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

/// `GET /_status`, for tools on the same machine (soak tests, benchmarks): what the server holds
/// now, as JSON. Other addresses, and any request through a trusted proxy, get 404.
async fn status(
    State(server): State<Arc<Server>>,
    Extension(client): Extension<Client>,
) -> Response {
    if client.proxied || !client.addr.ip().is_loopback() {
        return not_found().await;
    }
    let hub = server.hub.stats();
    Json(serde_json::json!({
        "version": crate::VERSION,
        "connections": server.connections.open(),
        "max_connections": server.connections.max(),
        "sessions": server.sessions.len(),
        "members": hub.members,
        "names": hub.names,
        "held_tokens": hub.held_tokens,
        "pending_pages": hub.pending_pages,
        "held": server
            .hub
            .held_tokens()
            .iter()
            .map(TokenKey::fingerprint)
            .collect::<Vec<_>>(),
        "cluster": server.hub.cluster_status().map(|(node, up)| serde_json::json!({
            "node": node,
            "link": if up { "up" } else { "down" },
        })),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text, when the config enables it, to the addresses it allows or
/// with its key; 404 otherwise (as if there were no such page). A request through a trusted
/// proxy needs the key.
async fn metrics(
    State(server): State<Arc<Server>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
) -> Response {
    let settings = server.settings();
    let Some(access) = &settings.config.metrics else {
        return not_found().await;
    };
    let keyed = access.key.as_deref().is_some_and(|key| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|presented| crate::secrets::secret_eq(presented, key))
    });
    if !keyed && (client.proxied || !access.allow_from.contains(&client.addr.ip())) {
        return not_found().await;
    }
    let hub = server.hub.stats();
    let text = server.metrics.render(crate::metrics::Snapshot {
        connections: server.connections.open(),
        sessions: server.sessions.len(),
        members: hub.members,
        pending_pages: hub.pending_pages,
        tokens_held: hub.held_tokens,
        deliveries: hub.deliveries,
        queue_drops: hub.queue_drops,
        cluster_link_up: server.hub.cluster_status().map(|(_, up)| up),
    });
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// `GET /healthz`: 200 while the server accepts logins; 503 once it is shutting down, or, in
/// cluster mode, while it cannot reach the cluster.
async fn healthz(State(server): State<Arc<Server>>) -> Response {
    if server.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if server.hub.cluster_status().is_some_and(|(_, up)| !up) {
        // A node that cannot reach the cluster refuses logins: a load balancer should send
        // people elsewhere.
        (StatusCode::SERVICE_UNAVAILABLE, "cluster unreachable\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

/// `GET /{id}`: the temporary token while the login waits for it (a few views at most); 410
/// once settled; 404 for ids never issued. Each request spends the address's page budget, a
/// miss five times as much, so ids cannot be guessed at speed; past the budget, 429.
async fn token_page(
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

fn too_many_requests() -> Response {
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Slow down</title></head>\
         <body><h1>Too many requests</h1><p>Try again in a minute.</p></body></html>"
            .to_owned(),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>\
         <body><h1>Not found</h1></body></html>"
            .to_owned(),
    )
}

pub(crate) fn page(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
