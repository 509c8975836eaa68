//! Pages with the security headers every HTML answer carries, and the answers several routes
//! share: 404, and the 503 of a socket over the connection limits.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

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

/// An HTML page with [`PAGE_HEADERS`].
pub(super) fn page(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The answer to a page that does not exist (or is not shown to this client).
pub(super) async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>\
         <body><h1>Not found</h1></body></html>"
            .to_owned(),
    )
}

/// The answer to a socket over the connection limits.
pub(super) fn busy() -> Response {
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

/// The answer to an address over one of its request budgets (pages, WebSocket connections).
pub(super) fn too_many_requests() -> Response {
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
