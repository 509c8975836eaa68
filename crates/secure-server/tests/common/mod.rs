//! Test harness: a real server on `127.0.0.1:0`, and WebSocket/HTTP clients that speak to it.
//!
//! What every test crate of the workspace shares (the server, the test config, token pages,
//! [`eventually`], [`require_program`]) comes from `test-support` and is re-exported here;
//! what is this crate's own is the WebSocket [`Client`] that speaks the wire frame by frame,
//! and [`TestServer`]'s ways of opening one.
//!
//! Every wait is bounded by [`WAIT`], so a missing frame fails the test instead of hanging it.

#![allow(dead_code, unused_imports)] // Each test binary uses its own part of the harness.

pub mod process;
pub mod redis;
pub mod sentinel;
pub mod status;

use std::net::SocketAddr;
use std::path::Path;

use futures_util::{SinkExt, StreamExt};
use secure_server::Config;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use test_support::{
    BOT_NAME, BOT_TOKEN, TOKENS, WAIT, config, config_file, config_json, eventually,
    eventually_within, generous_limits, page_token, poll_until, require_program, status, token_in,
    wait_for_status, write_config,
};

/// The owner API's JSON answer to `GET url` with the admin key `key`.
pub async fn admin_get(url: &str, key: &str) -> Value {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

/// A running server ([`test_support::TestServer`], whose `addr` and `url` it shows) and the
/// WebSocket clients these tests open on it.
pub struct TestServer(test_support::TestServer);

impl std::ops::Deref for TestServer {
    type Target = test_support::TestServer;

    fn deref(&self) -> &test_support::TestServer {
        &self.0
    }
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        TestServer(test_support::TestServer::start(config).await)
    }

    /// A server at `addr`, where an earlier one was.
    pub async fn start_at(addr: SocketAddr, config: Config) -> TestServer {
        TestServer(test_support::TestServer::start_at(addr, config).await)
    }

    /// A server started from the config file at `path`, as the binary starts: it watches the
    /// file and keeps its bans beside it.
    pub async fn start_from_file(path: &Path) -> TestServer {
        TestServer(test_support::TestServer::start_from_file(path).await)
    }

    /// A server on the default test config.
    pub async fn default() -> TestServer {
        TestServer(test_support::TestServer::default().await)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(self) {
        self.0.stop().await;
    }

    /// A WebSocket connection that has not logged in.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A fresh connection sends `frame` first and must get `["refusal", reason]` and a close.
    pub async fn expect_refused(&self, frame: Value, reason: &str) {
        let mut client = self.connect().await;
        client.send(frame).await;
        client.expect_refusal_and_close(reason).await;
    }

    /// A user logged in through the whole SAUTH2 flow. Events before its `id` are consumed.
    pub async fn login(&self, name: &str, token: &str) -> Client {
        let mut client = self.connect().await;
        let link = client.auth(name, token).await;
        client.tokenauth(&link).await;
        client
    }

    /// A bot logged in.
    pub async fn login_bot(&self) -> Client {
        let mut client = self.connect().await;
        client
            .send(json!(["botauth", {"botusername": BOT_NAME, "bottoken": BOT_TOKEN}]))
            .await;
        client.expect_id().await;
        client
    }
}

/// One WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The id the server gave, once logged in.
    pub id: Option<u64>,
}

/// What the server did to a connection that ended.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// A close frame with this code.
    Code(u16),
    /// The socket ended without a close frame.
    NoFrame,
}

impl Client {
    /// A WebSocket connection to the server at `addr` that has not logged in.
    pub async fn connect(addr: impl std::fmt::Display) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        Client { ws, id: None }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// Sends a chat message with this client's id.
    pub async fn say(&mut self, text: &str) {
        let id = self.id.expect("logged in");
        self.send(json!(["msg", {"id": id, "msg": text}])).await;
    }

    /// The next data frame as JSON; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("no socket error");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("server frames are JSON");
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// A user logged in through SAUTH2 at `addr` after asking for the extensions `caps`; returns
    /// the client (its `id` read, nothing after) and what the server granted, sorted.
    pub async fn login_asking(
        addr: impl std::fmt::Display,
        name: &str,
        token: &str,
        caps: &[&str],
    ) -> (Client, Vec<String>) {
        let mut client = Client::connect(addr).await;
        client.send(json!(["caps", caps])).await;
        let granted = client.expect_kind("caps").await;
        let mut granted: Vec<String> = serde_json::from_value(granted[1].clone()).unwrap();
        granted.sort();
        let link = client.auth(name, token).await;
        client.tokenauth(&link).await;
        (client, granted)
    }

    /// The next frame, which must be of type `kind`.
    pub async fn expect_kind(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame[0], kind, "{frame}");
        frame
    }

    /// The `[SEQ, TIME_MS, NAME, TEXT]` entries of the `history` frame that must come next.
    pub async fn expect_history(&mut self) -> Vec<Value> {
        let frame = self.expect_kind("history").await;
        frame[1].as_array().unwrap().clone()
    }

    /// The names of the `members` frame that must come next, sorted.
    pub async fn expect_members(&mut self) -> Vec<String> {
        let frame = self.expect_kind("members").await;
        let mut names: Vec<String> = serde_json::from_value(frame[1].clone()).unwrap();
        names.sort();
        names
    }

    /// The `session` frame that must come next: its resume token and its `seq`.
    pub async fn expect_session(&mut self) -> (String, Option<u64>) {
        let session = self.expect_kind("session").await;
        assert!(session[1]["expires_in"].as_u64().unwrap() > 0, "{session}");
        let token = session[1]["resume"].as_str().unwrap().to_owned();
        assert!(token.len() >= 22, "at least 128 bits: {token}");
        (token, session[1]["seq"].as_u64())
    }

    /// A new connection at `addr` that asks for `caps` and resumes with `token` from `since`:
    /// the client (its new `id` read, nothing after), or the refusal's text.
    pub async fn resume_at(
        addr: impl std::fmt::Display,
        caps: &[&str],
        token: &str,
        since: u64,
    ) -> Result<Client, String> {
        let mut client = Client::connect(addr).await;
        client.send(json!(["caps", caps])).await;
        client.expect(json!(["caps", caps])).await;
        client
            .send(json!(["resume", {"token": token, "since": since}]))
            .await;
        let first = client.recv().await;
        if first[0] == "refusal" {
            return Err(first[1].as_str().unwrap().to_owned());
        }
        assert_eq!(first[0], "id", "{first}");
        client.id = first[1].as_u64();
        Ok(client)
    }

    /// Sends `auth` and returns the `authmsg` link.
    pub async fn auth(&mut self, name: &str, token: &str) -> String {
        self.send(json!(["auth", {"username": name, "token": token}]))
            .await;
        let frame = self.recv().await;
        assert_eq!(frame[0], "authmsg", "{frame}");
        frame[1].as_str().unwrap().to_owned()
    }

    /// Finishes a login after `auth`: reads the temporary token off the page at `link`, sends
    /// it, and expects the `id` frame.
    pub async fn tokenauth(&mut self, link: &str) {
        let temp = page_token(link).await;
        self.send(json!(["tokenauth", temp])).await;
        self.expect_id().await;
    }

    /// Expects `["id", ID, VERSION]` and keeps the id.
    pub async fn expect_id(&mut self) -> u64 {
        let frame = self.recv().await;
        assert_eq!(frame[0], "id", "{frame}");
        assert!(frame[2].is_string(), "id carries the version: {frame}");
        let id = frame[1].as_u64().expect("id is an integer");
        self.id = Some(id);
        id
    }

    pub async fn expect(&mut self, want: Value) {
        assert_eq!(self.recv().await, want);
    }

    /// Expects the connection to end; returns how.
    pub async fn closed(&mut self) -> Closed {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time");
            match next {
                Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => {
                    // Let tungstenite answer the close handshake.
                    while let Some(Ok(_)) =
                        tokio::time::timeout(WAIT, self.ws.next()).await.unwrap()
                    {
                    }
                    return Closed::Code(code.into());
                }
                Some(Ok(Message::Close(None))) => return Closed::Code(1005),
                Some(Ok(Message::Text(text))) => panic!("expected the close, got {text}"),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Closed::NoFrame,
            }
        }
    }

    /// Expects `["refusal", text]` followed by a close.
    pub async fn expect_refusal_and_close(&mut self, text: &str) {
        self.expect(json!(["refusal", text])).await;
        assert_eq!(self.closed().await, Closed::Code(1000));
    }

    /// Closes from the client side and waits for the server's close reply, by which time the
    /// server has released what this connection held.
    pub async fn close(mut self) {
        self.ws.close(None).await.unwrap();
        while let Some(Ok(_)) = tokio::time::timeout(WAIT, self.ws.next()).await.unwrap() {}
    }
}
