//! The browser client, served at `/` with its assets under `/app/`.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::Server;
use crate::http::page;

/// The routes of the browser client.
pub(crate) fn routes() -> Router<Arc<Server>> {
    Router::new().route("/", get(index))
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
