//! Connecting, logging in, and the chat that follows.

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clichat_proto::{ClientFrame, ResumeToken, ServerFrame, Stamp};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::resume::{self, Dial, Held, Reconnect};
use crate::{Closed, Error, Event, ServerAddress};

/// How long a client keeps reading after the server's close frame, so that its answer reaches
/// the server and the server hangs up first.
const CLOSE_ANSWER: Duration = Duration::from_secs(2);

/// The protocol extensions a client asks for unless told not to ([`ConnectOptions::extensions`]):
/// `history` (recent messages on joining, [`Event::History`], and numbered messages),
/// `presence` (the member list, [`Event::Members`]) and `resume` (a lost connection is taken
/// back by itself, see [`Event::Reconnecting`]).
pub const EXTENSIONS: [&str; 3] = ["history", "presence", "resume"];

/// The WebSocket a [`Client`] talks over.
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to a CLIChat server. Nothing is sent yet: log in next. `wss://`
/// addresses are checked against the usual public certificate authorities; see
/// [`connect_with`] to trust a certificate of your own (a self-signed one, say).
///
/// # Errors
/// [`Error::Connect`] when the TCP connection, the TLS handshake or the WebSocket handshake
/// fails.
pub async fn connect(address: &ServerAddress) -> Result<Connection, Error> {
    connect_with(address, &ConnectOptions::default()).await
}

/// [`connect`], with options.
///
/// # Errors
/// As [`connect`].
pub async fn connect_with(
    address: &ServerAddress,
    options: &ConnectOptions,
) -> Result<Connection, Error> {
    let stream = TcpStream::connect(address.authority())
        .await
        .map_err(|e| Error::Connect(e.into()))?;
    // Chat frames are small: send each at once.
    let _ = stream.set_nodelay(true);
    handshake(stream, address, options, None).await
}

/// [`connect_with`] over a TCP connection the caller opened, e.g. from a chosen local address
/// (load generators spread their connections over several, so that ephemeral ports last). A
/// resume after a lost connection dials `address` again from the same local IP address.
///
/// # Errors
/// As [`connect`].
pub async fn connect_on(
    stream: TcpStream,
    address: &ServerAddress,
    options: &ConnectOptions,
) -> Result<Connection, Error> {
    let bind = stream.local_addr().ok().map(|local| local.ip());
    handshake(stream, address, options, bind).await
}

/// The WebSocket handshake (and TLS) over an open TCP connection; `bind` is the local IP
/// address a resume dials from, when the caller chose one.
pub(crate) async fn handshake(
    stream: TcpStream,
    address: &ServerAddress,
    options: &ConnectOptions,
    bind: Option<IpAddr>,
) -> Result<Connection, Error> {
    let connector = address
        .is_tls()
        .then(|| Connector::Rustls(Arc::new(options.tls_config())));
    let (ws, _response) = tokio_tungstenite::client_async_tls_with_config(
        address.as_str(),
        stream,
        Some(websocket_config()),
        connector,
    )
    .await
    .map_err(Error::Connect)?;
    Ok(Connection {
        ws: Box::new(ws),
        asked: options.asked(),
        granted: Vec::new(),
        dial: Dial {
            address: address.clone(),
            options: options.clone(),
            bind,
        },
    })
}

/// A chat connection's WebSocket settings: tungstenite's default read buffer is 128 KiB (and
/// is zero-filled as it is used), sized for bulk transfers; chat frames are small, and a
/// program may hold many connections.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// The read buffer of a connection; larger frames grow it as they arrive.
const READ_BUFFER: usize = 4 * 1024;

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    trusted: Vec<CertificateDer<'static>>,
    /// The extensions to ask for; `None`: all of [`EXTENSIONS`].
    asking: Option<Vec<String>>,
    /// The first and the longest pause between resume attempts; `None`: [`resume::BACKOFF`].
    backoff: Option<(Duration, Duration)>,
}

impl ConnectOptions {
    /// Whether to ask for the protocol [`EXTENSIONS`] (`history`, `presence`, `resume`) when logging
    /// in; the default is to ask. Asking is harmless with servers that do not know them (the
    /// original CLIChat among them): they ignore the `caps` frame and the login goes on as
    /// before. Not asking keeps the classic protocol exactly, e.g. for a load generator that
    /// must not receive a room's history and member list with every login.
    pub fn extensions(mut self, ask: bool) -> ConnectOptions {
        self.asking = if ask { None } else { Some(Vec::new()) };
        self
    }

    /// Asks for these extensions only (none: as `extensions(false)`), e.g. `["history"]` for a
    /// client that shows history but keeps no member list.
    pub fn ask_only(mut self, names: &[&str]) -> ConnectOptions {
        self.asking = Some(names.iter().map(|name| (*name).to_owned()).collect());
        self
    }

    /// The pauses between attempts to resume a lost connection: `first` before the first one,
    /// doubling up to `longest`, each varied by ±50% so that many clients cut off together do
    /// not come back together. The default is 100 ms doubling to 10 s. Attempts stop when the
    /// session's `expires_in` has passed since the loss.
    pub fn resume_backoff(mut self, first: Duration, longest: Duration) -> ConnectOptions {
        self.backoff = Some((first, longest.max(first)));
        self
    }

    pub(crate) fn backoff(&self) -> (Duration, Duration) {
        self.backoff.unwrap_or(resume::BACKOFF)
    }

    fn asked(&self) -> Vec<String> {
        self.asking
            .clone()
            .unwrap_or_else(|| EXTENSIONS.iter().map(|name| (*name).to_owned()).collect())
    }

    /// Also trusts the certificates in a PEM file (for `wss://`), e.g. a server's self-signed
    /// certificate.
    ///
    /// # Errors
    /// [`Error::Certificate`] when the file cannot be read or holds no certificate.
    pub fn trust_pem_file(mut self, path: &Path) -> Result<ConnectOptions, Error> {
        let bad = |reason: String| Error::Certificate {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".to_owned()));
        }
        self.trusted.extend(certs);
        Ok(self)
    }

    fn tls_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &self.trusted {
            // A certificate the store cannot take would fail the handshake anyway, with a
            // clearer error than here.
            let _ = roots.add(cert.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }
}

/// An open connection that has not logged in.
#[derive(Debug)]
pub struct Connection {
    // Boxed: a socket is large, and a login step moves it around.
    ws: Box<WebSocket>,
    /// The extensions the login asks for first (`["caps", ...]`); none: no `caps` frame.
    asked: Vec<String>,
    /// What the server's `caps` answer granted, once it came.
    granted: Vec<String>,
    /// Where it was opened, to open it again for a resume.
    dial: Dial,
}

impl Connection {
    /// Logs in as a user: `["auth", {"username": ..., "token": ...}]`.
    ///
    /// Plain CLIChat servers take no token and let the user straight in
    /// ([`LoginStep::Joined`]). Secure Servers want a generic token and answer with a link
    /// ([`LoginStep::TokenNeeded`]): a person opens it and reads the temporary token, which
    /// [`PendingLogin::token_auth`] then sends.
    ///
    /// # Errors
    /// [`Error::Refused`] with the server's exact text (`Token refused`,
    /// `Username already taken.`, ...), [`Error::Closed`] or [`Error::WebSocket`].
    pub async fn login(mut self, username: &str, token: Option<&str>) -> Result<LoginStep, Error> {
        self.ask_for_extensions().await?;
        self.send(ClientFrame::Auth {
            username: Some(username.to_owned()),
            token: token.map(str::to_owned),
        })
        .await?;
        match self.answer().await? {
            Answer::Link(link) => {
                let link = self.dial.address.resolve_link(&link);
                Ok(LoginStep::TokenNeeded(PendingLogin {
                    connection: self,
                    username: username.to_owned(),
                    link,
                }))
            }
            Answer::Id { id, version } => {
                let username = username.to_owned();
                Ok(LoginStep::Joined(self.joined(id, version, username)))
            }
        }
    }

    /// Logs in as a bot: `["botauth", {"botusername": ..., "bottoken": ...}]`. Others see the
    /// bot as `[BOT] name`.
    ///
    /// # Errors
    /// [`Error::Refused`] (`bot refused` for a wrong name or token), [`Error::Closed`],
    /// [`Error::WebSocket`], or [`Error::Unexpected`] if the server asks for a token page.
    pub async fn login_bot(mut self, name: &str, token: &str) -> Result<Client, Error> {
        self.ask_for_extensions().await?;
        self.send(ClientFrame::BotAuth {
            name: Some(name.to_owned()),
            token: Some(token.to_owned()),
        })
        .await?;
        self.expect_id(format!("[BOT] {name}")).await
    }

    /// Waits for the `id` that ends a login (a second link is a protocol error).
    async fn expect_id(mut self, username: String) -> Result<Client, Error> {
        match self.answer().await? {
            Answer::Id { id, version } => Ok(self.joined(id, version, username)),
            Answer::Link(_) => Err(Error::Unexpected("authmsg".to_owned())),
        }
    }

    fn joined(self, id: u64, version: Option<String>, username: String) -> Client {
        let welcome = Welcome {
            id,
            version,
            username,
            extensions: self.granted,
        };
        Client::new(*self.ws, welcome, self.dial)
    }

    /// Takes a lost session back: `["caps", ...]` and `["resume", ...]` in place of a login,
    /// then the server's answer up to its fresh `session` frame.
    pub(crate) async fn resume(
        mut self,
        token: &ResumeToken,
        since: Option<u64>,
    ) -> Result<resume::Resumed, Error> {
        self.ask_for_extensions().await?;
        self.send(ClientFrame::Resume {
            token: Some(token.0.clone()),
            since,
        })
        .await?;
        let id = match self.answer().await? {
            Answer::Id { id, .. } => id,
            Answer::Link(_) => return Err(Error::Unexpected("authmsg".to_owned())),
        };
        // The missed messages, the member list and the fresh token follow `id`; the session
        // frame is the last of them.
        let mut frames = Vec::new();
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let last =
                        matches!(ServerFrame::decode(&text), Ok(ServerFrame::Session { .. }));
                    frames.push(text.to_string());
                    if last {
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(Error::Closed(Closed::from_frame(frame)));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Error::WebSocket(e)),
                None => return Err(Error::Closed(Closed::default())),
            }
        }
        Ok(resume::Resumed {
            ws: *self.ws,
            id,
            frames,
        })
    }

    /// Sends `["caps", [...]]`, the first frame of a login, unless told to ask for none. The
    /// answer is not waited for: a server that does not know `caps` never sends one, and one
    /// that does answers before `id` ([`Connection::answer`] keeps it).
    async fn ask_for_extensions(&mut self) -> Result<(), Error> {
        if self.asked.is_empty() {
            return Ok(());
        }
        self.send(ClientFrame::Caps(self.asked.clone())).await
    }

    async fn send(&mut self, frame: ClientFrame) -> Result<(), Error> {
        self.ws
            .send(Message::text(frame.encode()))
            .await
            .map_err(Error::WebSocket)
    }

    /// Waits for the server's answer to a login frame: a link, an id, or a refusal. Frames
    /// that cannot answer a login (unknown types, chat from others) are skipped.
    async fn answer(&mut self) -> Result<Answer, Error> {
        loop {
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(Error::WebSocket(e)),
                None => return Err(Error::Closed(Closed::default())),
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => return Err(Error::Closed(Closed::from_frame(frame))),
                _ => continue,
            };
            match ServerFrame::decode(&text) {
                // Only an answer to our own `caps` counts.
                Ok(ServerFrame::Caps(granted)) if !self.asked.is_empty() => self.granted = granted,
                Ok(ServerFrame::AuthMsg(link)) => return Ok(Answer::Link(link)),
                Ok(ServerFrame::Id { id, version }) => return Ok(Answer::Id { id, version }),
                Ok(ServerFrame::Refusal(reason)) => return Err(Error::Refused(reason)),
                Ok(_) | Err(_) => continue,
            }
        }
    }
}

enum Answer {
    Link(String),
    Id { id: u64, version: Option<String> },
}

/// What happened after a user's `auth`.
#[derive(Debug)]
pub enum LoginStep {
    /// A plain server let the user in.
    Joined(Client),
    /// A Secure Server wants the temporary token from the page at the link (SAUTH2).
    TokenNeeded(PendingLogin),
}

/// A SAUTH2 login waiting for the temporary token a person reads off the web page.
#[derive(Debug)]
pub struct PendingLogin {
    connection: Connection,
    username: String,
    link: String,
}

impl PendingLogin {
    /// The page to open in a browser. The original server's `SERVERIPHERE/<id>` is already
    /// rewritten to the server's own address (see [`ServerAddress::resolve_link`]).
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Sends `["tokenauth", token]` with the token read off the page. Surrounding white space
    /// (from a paste) is trimmed.
    ///
    /// # Errors
    /// [`Error::Refused`] (`refused` for a wrong token), [`Error::Closed`],
    /// [`Error::WebSocket`], or [`Error::Unexpected`] for a second link.
    pub async fn token_auth(self, token: &str) -> Result<Client, Error> {
        let PendingLogin {
            mut connection,
            username,
            ..
        } = self;
        connection
            .send(ClientFrame::TokenAuth(Some(token.trim().to_owned())))
            .await?;
        connection.expect_id(username).await
    }
}

/// What the server said when it let us in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The id the server gave this connection; [`Sender::send`] puts it in every message.
    pub id: u64,
    /// The server's version text (the original sent bots none).
    pub version: Option<String>,
    /// The name others see: the username, or `[BOT] name` for a bot.
    pub username: String,
    /// The protocol extensions the server granted (see [`EXTENSIONS`]); empty when none were
    /// asked for, or the server does not know them.
    pub extensions: Vec<String>,
}

impl Welcome {
    /// Whether the server granted the extension `name` (`"history"`, `"presence"`).
    pub fn granted(&self, name: &str) -> bool {
        self.extensions.iter().any(|granted| granted == name)
    }
}

/// A logged-in connection: read [`Event`]s with [`Client::next_event`], talk with
/// [`Client::send`]. [`Client::split`] parts the two for use from different tasks.
#[derive(Debug)]
pub struct Client {
    sender: Sender,
    events: Events,
}

impl Client {
    fn new(ws: WebSocket, welcome: Welcome, dial: Dial) -> Client {
        let (sink, stream) = ws.split();
        let link = Arc::new(Link {
            sink: Mutex::new(sink),
            id: AtomicU64::new(welcome.id),
            closing: AtomicBool::new(false),
        });
        let welcome = Arc::new(welcome);
        Client {
            sender: Sender {
                link: Arc::clone(&link),
                welcome: Arc::clone(&welcome),
            },
            events: Events {
                stream,
                welcome,
                state: EventsState::Welcome,
                members: None,
                last_stamp: None,
                link,
                dial,
                held: None,
                last_seq: None,
                pending: VecDeque::new(),
            },
        }
    }

    /// What the server said when it let us in.
    pub fn welcome(&self) -> &Welcome {
        &self.events.welcome
    }

    /// Sends a chat message (the id is filled in).
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn send(&self, text: &str) -> Result<(), Error> {
        self.sender.send(text).await
    }

    /// The next event; see [`Events::next_event`].
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.next_event().await
    }

    /// Who is in the room, as far as the events read so far tell; see [`Events::members`].
    pub fn members(&self) -> Option<&BTreeSet<String>> {
        self.events.members()
    }

    /// The newest message number read so far; see [`Events::last_stamp`].
    pub fn last_stamp(&self) -> Option<Stamp> {
        self.events.last_stamp()
    }

    /// Asks for the member list again; see [`Sender::ask_members`].
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn ask_members(&self) -> Result<(), Error> {
        self.sender.ask_members().await
    }

    /// Closes the connection (code 1000). Events still arriving can be read until
    /// [`Event::Closed`].
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is already gone.
    pub async fn close(&self) -> Result<(), Error> {
        self.sender.close().await
    }

    /// Parts the sending and receiving halves, e.g. to read events in one task and send from
    /// others.
    pub fn split(self) -> (Sender, Events) {
        (self.sender, self.events)
    }

    /// The raw WebSocket and the welcome, for tools that read frames themselves (such as a load
    /// generator counting frames without decoding them). Events not yet read stay in the socket.
    ///
    /// # Panics
    /// If a [`Sender`] cloned from this client is still alive.
    pub fn into_websocket(self) -> (WebSocket, Welcome) {
        let Client { sender, events } = self;
        let Events {
            stream,
            welcome,
            link,
            ..
        } = events;
        drop(link);
        let sink = Arc::into_inner(sender.link)
            .expect("no Sender clone outlives into_websocket")
            .sink
            .into_inner();
        let ws = sink
            .reunite(stream)
            .expect("the halves come from one socket");
        drop(sender.welcome);
        let welcome = Arc::unwrap_or_clone(welcome);
        (ws, welcome)
    }
}

/// The sending half of a [`Client`]; cheap to clone.
///
/// While the connection is being resumed ([`Event::Reconnecting`]), sending fails with
/// [`Error::WebSocket`] (the old connection is gone); after [`Event::Resumed`] it goes over the
/// new one. A message sent just before a loss was noticed may not have reached the server.
#[derive(Debug, Clone)]
pub struct Sender {
    link: Arc<Link>,
    welcome: Arc<Welcome>,
}

/// What the sending and the receiving half share: the socket's sending half (swapped for a new
/// one when a session is resumed), the connection id, and whether we closed it ourselves.
#[derive(Debug)]
struct Link {
    sink: Mutex<SplitSink<WebSocket, Message>>,
    id: AtomicU64,
    closing: AtomicBool,
}

impl Sender {
    /// Sends a chat message: `["msg", {"id": ID, "msg": text}]`.
    ///
    /// The server refuses texts over its limit (200 characters by default) with a
    /// [`Event::Refusal`] and keeps the connection; see [`crate::message_length`].
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn send(&self, text: &str) -> Result<(), Error> {
        let frame = ClientFrame::Msg {
            id: Some(self.id()),
            text: Some(text.to_owned()),
        };
        self.send_frame(&frame).await
    }

    /// Sends any frame, e.g. the moderation frames of APIv2 (`kick`, `ban`, `unban`, `who`).
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn send_frame(&self, frame: &ClientFrame) -> Result<(), Error> {
        self.link
            .sink
            .lock()
            .await
            .send(Message::text(frame.encode()))
            .await
            .map_err(Error::WebSocket)
    }

    /// Asks for a fresh member list: `["members"]`, answered with [`Event::Members`] by a
    /// server that granted `presence`. In a large room such a server may stop announcing every
    /// join and leave, so the list [`Events::members`] keeps can fall behind; this brings it up
    /// to date. A server without `presence` does not answer.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn ask_members(&self) -> Result<(), Error> {
        self.send_frame(&ClientFrame::Members).await
    }

    /// Closes the connection with code 1000. A deliberate close: the session is not resumed.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is already gone.
    pub async fn close(&self) -> Result<(), Error> {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        self.link.closing.store(true, Ordering::Relaxed);
        self.link
            .sink
            .lock()
            .await
            .send(Message::Close(Some(frame)))
            .await
            .map_err(Error::WebSocket)
    }

    /// What the server said when it let us in.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The connection's id now: [`Welcome::id`], or the one the server gave the latest resume.
    pub fn id(&self) -> u64 {
        self.link.id.load(Ordering::Relaxed)
    }
}

/// The receiving half of a [`Client`].
#[derive(Debug)]
pub struct Events {
    stream: SplitStream<WebSocket>,
    welcome: Arc<Welcome>,
    state: EventsState,
    /// The room's members, once a `members` frame came.
    members: Option<BTreeSet<String>>,
    /// The newest stamp of a message or history entry.
    last_stamp: Option<Stamp>,
    /// Shared with the [`Sender`]s.
    link: Arc<Link>,
    /// Where the connection was opened, for a resume.
    dial: Dial,
    /// The resume token of the last `session` frame, if the server granted `resume`.
    held: Option<Held>,
    /// The newest message number seen: of a message, a history entry or a `session` frame.
    last_seq: Option<u64>,
    /// Events read ahead (the answer to a resume), handed out before reading on.
    pending: VecDeque<(Event, Option<Stamp>)>,
}

#[derive(Debug)]
enum EventsState {
    /// [`Event::Joined`] has not been handed out yet.
    Welcome,
    Open,
    /// The connection ended this way; [`Event::Closed`] (or [`Event::Reconnecting`]) is next.
    Closing(Closed),
    /// The connection was lost this way and is being resumed.
    Reconnecting(Closed, Reconnect),
    /// Resuming failed; [`Event::Closed`] with the original loss is next.
    Failed(Closed),
    /// [`Event::Closed`] has been handed out; nothing follows.
    Done,
}

impl Events {
    /// The next event: first [`Event::Joined`], then whatever the server sends, and last
    /// [`Event::Closed`]; after that, `None`. Cancel-safe, so it may sit in a `select!`.
    ///
    /// With `resume` granted, a lost connection is taken back here: [`Event::Reconnecting`],
    /// then (attempts run in a task of their own, so cancelling this call does not disturb
    /// them) either [`Event::Resumed`] followed by the messages missed meanwhile, as
    /// [`Event::Message`]s in order, or [`Event::ResumeFailed`] followed by [`Event::Closed`].
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some((event, stamp)) = self.pending.pop_front() {
                self.observe(&event, stamp);
                return Some(event);
            }
            if let EventsState::Reconnecting(_, reconnect) = &mut self.state {
                let outcome = reconnect.outcome().await;
                let EventsState::Reconnecting(closed, _) =
                    std::mem::replace(&mut self.state, EventsState::Open)
                else {
                    unreachable!("the state was Reconnecting just above")
                };
                return Some(match outcome {
                    Ok(resumed) => self.resumed(resumed).await,
                    Err(reason) => {
                        self.state = EventsState::Failed(closed);
                        Event::ResumeFailed { reason }
                    }
                });
            }
            if let EventsState::Closing(_) = self.state {
                // Reading on sends our answer to the close frame, then sees the server hang
                // up, so the server is not left waiting for us.
                let _ = tokio::time::timeout(CLOSE_ANSWER, async {
                    while self.stream.next().await.is_some() {}
                })
                .await;
            }
            match std::mem::replace(&mut self.state, EventsState::Open) {
                EventsState::Open => {}
                EventsState::Welcome => {
                    return Some(Event::Joined {
                        id: self.welcome.id,
                        version: self.welcome.version.clone(),
                    });
                }
                EventsState::Closing(closed) => {
                    if let Some(held) = self.resumable(&closed) {
                        let reconnect = resume::start(self.dial.clone(), held, self.last_seq);
                        self.state = EventsState::Reconnecting(closed.clone(), reconnect);
                        return Some(Event::Reconnecting(closed));
                    }
                    self.state = EventsState::Done;
                    return Some(Event::Closed(closed));
                }
                EventsState::Failed(closed) => {
                    self.state = EventsState::Done;
                    return Some(Event::Closed(closed));
                }
                state @ EventsState::Reconnecting(..) => self.state = state,
                EventsState::Done => {
                    self.state = EventsState::Done;
                    return None;
                }
            }
            let closed = match self.stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    let (event, stamp) = match ServerFrame::decode(&text) {
                        Ok(ServerFrame::Session {
                            resume,
                            expires_in,
                            seq,
                        }) => {
                            self.hold(resume, expires_in, seq);
                            continue;
                        }
                        Ok(frame) => Event::from_frame(frame),
                        Err(error) => Event::invalid(&text, error),
                    };
                    self.observe(&event, stamp);
                    return Some(event);
                }
                Some(Ok(Message::Close(frame))) => Closed::from_frame(frame),
                Some(Ok(_)) => continue,
                Some(Err(e)) => Closed {
                    code: None,
                    reason: e.to_string(),
                },
                None => Closed::default(),
            };
            self.state = EventsState::Closing(closed);
        }
    }

    /// What the server said when it let us in.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Who is in the room (us included, bots as `[BOT] name`), as far as the events read so
    /// far tell: the last [`Event::Members`], with the [`Event::Join`]s and
    /// [`Event::Disconnect`]s read since. `None` until a member list came, i.e. always with a
    /// server that did not grant `presence`. A set keyed by name, so a join of someone already
    /// listed changes nothing. In a large room the server may stop announcing joins and leaves;
    /// [`Sender::ask_members`] then brings the list up to date.
    pub fn members(&self) -> Option<&BTreeSet<String>> {
        self.members.as_ref()
    }

    /// The number and time of the newest message read so far (from [`Event::History`] or a
    /// live [`Event::Message`]), when the server granted `history`; `None` otherwise. Numbers
    /// grow with every message of the room, so this says where reading left off.
    pub fn last_stamp(&self) -> Option<Stamp> {
        self.last_stamp
    }

    /// Whether the server granted `resume` and a token for the next loss is held: a lost
    /// connection will then be resumed rather than end in [`Event::Closed`].
    pub fn can_resume(&self) -> bool {
        self.held.is_some()
    }

    /// The resume token to use if the connection was lost this way: none after a deliberate
    /// close (ours, or the server's with anything but `1001` or `1012`), or without a token.
    fn resumable(&mut self, closed: &Closed) -> Option<Held> {
        if !resume::lost(closed) || self.link.closing.load(Ordering::Relaxed) {
            return None;
        }
        self.held.take()
    }

    /// Keeps the token of a `session` frame (a fresh one replaces the last).
    fn hold(&mut self, token: ResumeToken, expires_in: u64, seq: Option<u64>) {
        self.last_seq = self.last_seq.max(seq);
        self.held = Some(Held {
            token,
            expires_in: Duration::from_secs(expires_in),
        });
    }

    /// Takes the new connection of an accepted resume, queues the events of the server's
    /// answer (missed messages first), and says so.
    async fn resumed(&mut self, resumed: resume::Resumed) -> Event {
        let (sink, stream) = resumed.ws.split();
        *self.link.sink.lock().await = sink;
        self.link.id.store(resumed.id, Ordering::Relaxed);
        self.stream = stream;
        let since = self.last_seq;
        let mut missed = 0;
        let mut complete = true;
        for text in &resumed.frames {
            match ServerFrame::decode(text) {
                Ok(ServerFrame::History {
                    messages,
                    complete: all,
                }) => {
                    complete &= all;
                    for entry in messages {
                        self.last_seq = self.last_seq.max(Some(entry.stamp.seq));
                        // Only what came after the last message seen, and never our own (the
                        // server does not send us our own messages live either).
                        if since.is_some_and(|since| entry.stamp.seq <= since)
                            || entry.from == self.welcome.username
                        {
                            continue;
                        }
                        missed += 1;
                        let event = Event::Message {
                            from: entry.from,
                            text: entry.text,
                        };
                        self.pending.push_back((event, Some(entry.stamp)));
                    }
                }
                Ok(ServerFrame::Session {
                    resume,
                    expires_in,
                    seq,
                }) => self.hold(resume, expires_in, seq),
                Ok(frame) => self.pending.push_back(Event::from_frame(frame)),
                Err(error) => self.pending.push_back(Event::invalid(text, error)),
            }
        }
        Event::Resumed {
            id: resumed.id,
            missed,
            complete,
        }
    }

    /// Keeps the member list and the last stamp up to date with an event about to be handed
    /// out.
    fn observe(&mut self, event: &Event, stamp: Option<Stamp>) {
        let newest = match event {
            Event::History { messages, .. } => messages.iter().map(|entry| entry.stamp).max(),
            _ => stamp,
        };
        if let Some(newest) = newest {
            self.last_stamp = self.last_stamp.max(Some(newest));
            self.last_seq = self.last_seq.max(Some(newest.seq));
        }
        match event {
            Event::Members(names) => self.members = Some(names.iter().cloned().collect()),
            Event::Join(name) => {
                if let Some(members) = &mut self.members {
                    members.insert(name.clone());
                }
            }
            Event::Disconnect(name) => {
                if let Some(members) = &mut self.members {
                    members.remove(name);
                }
            }
            _ => {}
        }
    }
}

impl Closed {
    fn from_frame(frame: Option<CloseFrame>) -> Closed {
        match frame {
            Some(frame) => Closed {
                code: Some(frame.code.into()),
                reason: frame.reason.to_string(),
            },
            None => Closed::default(),
        }
    }
}
