//! One accepted socket: over TLS when the server has it (a plain-HTTP client on a TLS port is
//! told so), served as HTTP/1.1 with a time limit on request heads, or answered 503 when it got
//! no place under the connection limits.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;
use tracing::debug;

use super::LOG_TARGET;
use super::page::busy;
use crate::Server;
use crate::limits::ConnectionSlot;
use crate::proxy::Client;
use crate::tls;

/// Largest HTTP request head (request line and headers); a larger one is answered 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

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
        Ok(Err(error)) => debug!(target: LOG_TARGET, %peer, %error, "TLS handshake failed"),
        Err(_elapsed) => debug!(target: LOG_TARGET, %peer, "TLS handshake timed out"),
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
