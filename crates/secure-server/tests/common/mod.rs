//! Test harness: a real server on `127.0.0.1:0`, and WebSocket/HTTP clients that speak to it.
//!
//! Every wait is bounded by [`WAIT`], so a missing frame fails the test instead of hanging it.

#![allow(dead_code)] // Each test binary uses its own part of the harness.

pub mod process;
pub mod redis;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secure_server::{Config, Running};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Generic tokens in the default test config.
pub const TOKENS: [&str; 4] = ["token-one", "token-two", "token-three", "token-four"];
/// The bot in the default test config.
pub const BOT_NAME: &str = "botusr";
pub const BOT_TOKEN: &str = "bot-token-secret";

/// Limits too generous for any test to meet by accident; the tests of the limits set their own.
pub fn generous_limits() -> Value {
    json!({
        "max_connections_per_ip": 100_000,
        "logins_per_ip_per_minute": 1_000_000,
        "login_burst": 1_000_000,
        "messages_per_second": 1_000_000,
        "message_burst": 1_000_000,
        "page_requests_per_ip_per_minute": 1_000_000,
    })
}

/// The default test config as JSON, with `overrides` merged over it.
pub fn config_json(overrides: Value) -> Value {
    let mut base = json!({
        "tokens": Value::Object(TOKENS.iter().map(|t| (t.to_string(), json!({}))).collect()),
        "bots": { BOT_TOKEN: BOT_NAME },
        "limits": generous_limits(),
        "filter": ["badword"],
    });
    for (k, v) in overrides.as_object().expect("overrides are an object") {
        base[k] = v.clone();
    }
    base
}

/// The default test config, with `overrides` merged over it.
pub fn config(overrides: Value) -> Config {
    let text = config_json(overrides).to_string();
    Config::parse(&text, Path::new("test-config.json")).expect("test config is valid")
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    running: Running,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestServer::from(Running::start(listener, config).unwrap())
    }

    fn from(running: Running) -> TestServer {
        TestServer {
            addr: running.local_addr(),
            running,
        }
    }

    /// A server started from the config file at `path`, as the binary starts: it watches the
    /// file and keeps its bans beside it.
    pub async fn start_from_file(path: &Path) -> TestServer {
        let config = Config::load(path).expect("the test config file is valid");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestServer::from(Running::start_from_file(listener, config, path.to_owned()).unwrap())
    }

    /// A server on the default test config.
    pub async fn default() -> TestServer {
        TestServer::start(config(json!({}))).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A WebSocket connection that has not logged in.
    pub async fn connect(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", self.addr))
            .await
            .unwrap();
        Client { ws, id: None }
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

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(self) {
        tokio::time::timeout(WAIT, self.running.stop())
            .await
            .expect("run returns after shutdown")
            .unwrap();
    }
}

/// The temporary token shown on a token page; panics if the page does not show one.
pub async fn page_token(link: &str) -> String {
    let response = reqwest::get(link).await.unwrap();
    assert_eq!(response.status(), 200, "token page {link}");
    token_in(&response.text().await.unwrap())
}

/// The temporary token in a token page's HTML; panics if it shows none.
pub fn token_in(page: &str) -> String {
    let field = page.find("id=\"token\"").expect("page shows a token");
    let start = page[field..].find('>').unwrap() + field + 1;
    let end = page[start..].find("</textarea>").unwrap() + start;
    page[start..end].to_owned()
}

/// The HTTP status of a page.
pub async fn status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

/// Polls `url` until it answers `want` (the server notices a dropped socket on its own time);
/// bounded by [`WAIT`].
pub async fn wait_for_status(url: &str, want: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if status(url).await == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
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
