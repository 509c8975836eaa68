#![allow(dead_code)] // Each test binary uses its own part.

//! What the library's test files share: bounded waits for a client's events, and the pieces of
//! a stand-in server.

use std::future::Future;

use clichat_client::{Client, Event};
use futures_util::SinkExt;
use serde_json::Value;
use test_support::WAIT;
use tokio_tungstenite::tungstenite::Message;

/// `future`'s output, or a failed test after [`WAIT`].
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("no answer in time")
}

/// The client's next event, within [`WAIT`].
pub async fn next(client: &mut Client) -> Event {
    within(client.next_event())
        .await
        .expect("an event before the end")
}

/// A stand-in server's side of one WebSocket.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A listener on a free loopback port, for a stand-in server, and its address.
pub async fn listener() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// The next connection to `listener`, its WebSocket handshake done, and its peer's address.
pub async fn accept(listener: &tokio::net::TcpListener) -> (Ws, std::net::SocketAddr) {
    let (stream, peer) = within(listener.accept()).await.unwrap();
    (tokio_tungstenite::accept_async(stream).await.unwrap(), peer)
}

/// A text frame's JSON.
pub fn frame(message: Message) -> Value {
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

/// Sends `value` as a text frame.
pub async fn send<S>(ws: &mut S, value: Value)
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    ws.send(Message::text(value.to_string())).await.unwrap();
}
