//! The accept loop: every accepted socket takes a place under the connection limits (or is
//! answered 503 without one) and is served on a task of its own, until shutdown; then open HTTP
//! requests get a bounded time to finish. A failed accept (out of file descriptors) backs off
//! rather than spin.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::{Server, http, limits, proxy};

/// The target of this file's events: the crate's, as when this loop was in `lib.rs`, so that
/// log lines and `RUST_LOG` filters stay as they were.
const LOG_TARGET: &str = "secure_server";

/// How long open HTTP requests may take to finish once shutdown begins.
const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long the listener rests after a failed accept (typically: out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts sockets on `listener` and serves each on a task of its own until the server shuts
/// down; then closes the listener and waits, at most [`HTTP_SHUTDOWN_GRACE`], for open HTTP
/// requests. Upgraded connections are sessions by then, which the server waits for itself.
pub(crate) async fn accept_until_shutdown(server: &Arc<Server>, listener: TcpListener) {
    let router = http::router(Arc::clone(server));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = server.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // A trusted proxy's clients are counted by address once they say who they are.
                let proxied =
                    proxy::is_trusted(peer.ip(), &server.settings().config.trusted_proxies);
                let slot = server.connections.admit(peer.ip(), !proxied);
                if slot.is_none() {
                    server.metrics.connection_refused();
                }
                let server = Arc::clone(server);
                connections.spawn(http::accept(server, router.clone(), tcp, peer, slot));
            }
            Err(error) => accept_failed(&error).await,
        }
    }
    drop(listener);

    // Open HTTP requests may finish; one that never completes (a client that sent half its
    // headers) must not keep the process alive.
    connections.close();
    if tokio::time::timeout(HTTP_SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            target: LOG_TARGET,
            "HTTP requests still open {HTTP_SHUTDOWN_GRACE:?} after shutdown began; leaving them"
        );
    }
}

/// An accept that failed: out of file descriptors (wait for some to close rather than spin),
/// or a connection that died before it was accepted (nothing to do).
async fn accept_failed(error: &std::io::Error) {
    static THROTTLE: std::sync::LazyLock<limits::LogThrottle> =
        std::sync::LazyLock::new(limits::LogThrottle::default);
    if let Some(failures) = THROTTLE.hit() {
        tracing::warn!(target: LOG_TARGET, %error, failures, "accept failed");
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}
