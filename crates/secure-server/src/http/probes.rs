//! The probes: `/_status` (what the server holds now, for tools on the same machine),
//! `/metrics` (Prometheus text, when the config enables it) and `/healthz` (for load
//! balancers).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};

use super::page::not_found;
use crate::Server;
use crate::proxy::Client;
use crate::secrets::TokenKey;

/// `GET /_status`, for tools on the same machine (soak tests, benchmarks): what the server holds
/// now, as JSON. Other addresses, and any request through a trusted proxy, get 404.
pub(super) async fn status(
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
        "held_sessions": hub.held_sessions,
        "deliveries": hub.deliveries,
        "socket_writes": crate::coalesce::socket_writes(),
        "held": server
            .hub
            .tokens_in_use()
            .await
            .iter()
            .map(TokenKey::fingerprint)
            .collect::<Vec<_>>(),
        "cluster": server.hub.node_status().map(|status| serde_json::json!({
            "node": status.node,
            "link": if status.up { "up" } else { "down" },
        })),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text, when the config enables it, to the addresses it allows or
/// with its key; 404 otherwise (as if there were no such page). A request through a trusted
/// proxy needs the key.
pub(super) async fn metrics(
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
        socket_writes: crate::coalesce::socket_writes(),
        queue_drops: hub.queue_drops,
        cluster_link_up: server.hub.node_status().map(|status| status.up),
    });
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// `GET /healthz`: 200 while the server accepts logins; 503 once it is shutting down, or, in
/// cluster mode, while it cannot reach the cluster.
pub(super) async fn healthz(State(server): State<Arc<Server>>) -> Response {
    if server.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if server.hub.node_status().is_some_and(|status| !status.up) {
        // A node that cannot reach the cluster refuses logins: a load balancer should send
        // people elsewhere.
        (StatusCode::SERVICE_UNAVAILABLE, "cluster unreachable\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}
