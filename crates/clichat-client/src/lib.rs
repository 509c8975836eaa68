//! A client and bot library for CLIChat servers: the plain server, the Secure Server (SAUTH2),
//! and bots, over one typed API.
//!
//! A bot in a few lines, answering every message:
//!
//! ```no_run
//! # async fn bot() -> Result<(), clichat_client::Error> {
//! use clichat_client::{Event, ServerAddress, connect};
//!
//! let address = ServerAddress::parse("localhost:70")?;
//! let mut bot = connect(&address).await?.login_bot("echo", "BOT_TOKEN").await?;
//! while let Some(event) = bot.next_event().await {
//!     if let Event::Message { from, text } = event {
//!         bot.send(&format!("{from} said: {text}")).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A user on a Secure Server: the server answers `auth` with a link, a **person** opens it in a
//! browser and types the temporary token back. This library never fetches the page itself;
//! that step is the point of SAUTH2.
//!
//! ```no_run
//! # async fn user(read_line: impl Fn() -> String) -> Result<(), clichat_client::Error> {
//! use clichat_client::{LoginStep, ServerAddress, connect};
//!
//! let address = ServerAddress::parse("chat.example.com")?;
//! let connection = connect(&address).await?;
//! let client = match connection.login("alice", Some("GENERIC_TOKEN")).await? {
//!     LoginStep::Joined(client) => client, // a plain server: no page
//!     LoginStep::TokenNeeded(pending) => {
//!         println!("open {} and paste the token:", pending.link());
//!         pending.token_auth(&read_line()).await?
//!     }
//! };
//! client.send("hello").await?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/echo_bot.rs` is a complete bot.
//!
//! # Extensions: history, presence and resume
//! A login starts with `["caps", ["history", "presence", "resume"]]` ([`EXTENSIONS`]; turn it
//! off with [`ConnectOptions::extensions`], or choose with [`ConnectOptions::ask_only`]). Servers that do not know it ignore it, the original CLIChat
//! among them, and everything works as before. A server that grants them says so before `id`
//! ([`Welcome::extensions`]) and then, right after [`Event::Joined`]:
//! - `history`: [`Event::History`], the room's recent messages (oldest first, each with its
//!   number and time), said before we joined; live messages still come as [`Event::Message`],
//!   and the newest number read is [`Events::last_stamp`].
//! - `presence`: [`Event::Members`], everyone in the room. [`Events::members`] (or
//!   [`Client::members`]) keeps that list current with the joins and leaves that follow;
//!   [`Sender::ask_members`] asks for it afresh (a large room may stop announcing them).
//!
//! ```no_run
//! # async fn who(address: &clichat_client::ServerAddress) -> Result<(), clichat_client::Error> {
//! use clichat_client::{Event, connect};
//!
//! let mut bot = connect(address).await?.login_bot("greeter", "BOT_TOKEN").await?;
//! while let Some(event) = bot.next_event().await {
//!     match event {
//!         Event::History { messages, .. } => println!("{} earlier messages", messages.len()),
//!         Event::Members(_) | Event::Join(_) | Event::Disconnect(_) => {
//!             println!("in the room: {:?}", bot.members());
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Resume: a lost connection taken back
//! With `resume` granted, the server hands out a resume token after the login (never shown:
//! not in events, not in `Debug` output). When the connection is then lost (it breaks without
//! a close frame, or the server closes with `1001` or `1012`, "restarting"), the server holds
//! the session for a while and [`Client::next_event`] takes it back by itself:
//! [`Event::Reconnecting`], attempts with backoff to the same address and TLS settings
//! ([`ConnectOptions::resume_backoff`]), then [`Event::Resumed`] followed by the messages
//! missed meanwhile as ordinary [`Event::Message`]s, oldest first, each exactly once. The room
//! saw nothing. If the server refuses or the session expires first: [`Event::ResumeFailed`],
//! then [`Event::Closed`]; a bot logs in again, a user needs a new token page. A deliberate
//! close (ours, or the server's `1000` after a refusal, `1008`) is never resumed.
//!
//! # Layout
//! - [`ServerAddress`]: addresses as people type them, and token-page links (including the
//!   original server's `SERVERIPHERE/<id>`).
//! - [`connect`], [`Connection`], [`PendingLogin`]: the ways in.
//! - [`Client`], [`Sender`], [`Events`]: the chat, as a typed stream of [`Event`]s, with the
//!   member list and the newest message number they keep.
//! - `resume`: taking a lost connection back (backoff, the resume handshake's task).
//! - [`page`]: reading a token page, for tools that play the person's part.

mod address;
mod client;
pub mod page;
mod resume;

use clichat_proto::{DecodeError, ServerFrame};
use serde_json::Value;

pub use address::{DEFAULT_PORT, ServerAddress};
pub use clichat_proto::refusal;
pub use clichat_proto::{HistoryEntry, Stamp};
pub use client::{
    Client, ConnectOptions, Connection, EXTENSIONS, Events, LoginStep, PendingLogin, Sender,
    WebSocket, Welcome, connect, connect_on, connect_with,
};

/// The longest message a server takes unless its owner configured another limit.
pub const DEFAULT_MAX_MESSAGE_LENGTH: usize = 200;

/// A message's length as servers count it against their limit (Unicode scalar values), so a
/// client can warn before sending a text the server would refuse.
pub fn message_length(text: &str) -> usize {
    text.chars().count()
}

/// Something that happened in the room, or to the connection. New kinds may be added (as
/// servers grow), so match with a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// We are in: always the first event.
    Joined {
        /// Our connection's id.
        id: u64,
        /// The server's version text, if it sent one.
        version: Option<String>,
    },
    /// Someone joined (bots appear as `[BOT] name`).
    Join(String),
    /// Someone said something. We never get our own messages back. With `history` granted,
    /// the message's number and time are [`Events::last_stamp`] once it is read.
    Message {
        /// Who said it.
        from: String,
        /// What they said.
        text: String,
    },
    /// Someone left.
    Disconnect(String),
    /// The server refused something, in its exact words (see [`refusal`]). Most refusals are
    /// followed by [`Event::Closed`]; `message is too long [N/200]` is not.
    Refusal(String),
    /// Who is in the room: the answer to a `who` sent with [`Sender::send_frame`] (moderators
    /// and admins only).
    Users(Vec<String>),
    /// Recent messages of the room, oldest first (extension `history`): sent once, right after
    /// [`Event::Joined`], by a server that granted `history`. They were said before we joined;
    /// show them set apart from live messages.
    History {
        /// The messages, oldest first, each with its number and the server's time.
        messages: Vec<HistoryEntry>,
        /// `false` when older messages were no longer kept by the server.
        complete: bool,
    },
    /// Everyone in the room now, us included, bots as `[BOT] name` (extension `presence`):
    /// right after [`Event::Joined`] (and the history), and as the answer to
    /// [`Sender::ask_members`]. [`Events::members`] keeps the list current from this and later
    /// [`Event::Join`] / [`Event::Disconnect`] events.
    Members(Vec<String>),
    /// A frame this library does not know, passed through so that newer servers do not break
    /// older clients.
    Unknown {
        /// The frame type.
        kind: String,
        /// The elements after the type.
        args: Vec<Value>,
    },
    /// A text frame that is not a CLIChat frame at all (not a JSON array starting with a type).
    Invalid {
        /// The frame's text.
        text: String,
        /// Why it could not be read.
        error: DecodeError,
    },
    /// The connection was lost (how: the close frame, or what broke), and the library is taking
    /// the session back (extension `resume`): it reconnects to the same address with backoff
    /// while the server holds the session. [`Event::Resumed`] or [`Event::ResumeFailed`]
    /// follows. Meanwhile the room sees no leave, and sending fails.
    Reconnecting(Closed),
    /// The session was resumed over a new connection: nobody in the room saw us leave. The
    /// messages said while we were away follow at once, oldest first, as ordinary
    /// [`Event::Message`]s (each message exactly once across the loss; ours are left out),
    /// then [`Event::Members`] with `presence`.
    Resumed {
        /// The new connection's id ([`Sender::id`]).
        id: u64,
        /// How many missed messages follow.
        missed: usize,
        /// `false` when the server no longer kept some of the missed messages.
        complete: bool,
    },
    /// The session could not be resumed: the server refused the token (its words,
    /// [`refusal::RESUME_REFUSED`]), or it expired before the server could be reached again
    /// (then what went wrong last). [`Event::Closed`] follows; log in again to go on (a bot
    /// can do so by itself; a user needs a new token page).
    ResumeFailed {
        /// Why, for people.
        reason: String,
    },
    /// The connection is over; no events follow.
    Closed(Closed),
}

impl Event {
    /// A text frame that is not a CLIChat frame.
    fn invalid(text: &str, error: DecodeError) -> (Event, Option<Stamp>) {
        let event = Event::Invalid {
            text: text.to_owned(),
            error,
        };
        (event, None)
    }

    /// The event a frame means, and the stamp of a numbered message.
    fn from_frame(frame: ServerFrame) -> (Event, Option<Stamp>) {
        let event = match frame {
            ServerFrame::Join(name) => Event::Join(name),
            ServerFrame::Message { from, text, stamp } => {
                return (Event::Message { from, text }, stamp);
            }
            ServerFrame::Disconnect(name) => Event::Disconnect(name),
            ServerFrame::Refusal(reason) => Event::Refusal(reason),
            ServerFrame::Users(names) => Event::Users(names),
            ServerFrame::Unknown { kind, args } => Event::Unknown { kind, args },
            // Login frames after login mean nothing to a client: passed on as unknown.
            ServerFrame::AuthMsg(link) => Event::Unknown {
                kind: "authmsg".to_owned(),
                args: vec![Value::String(link)],
            },
            ServerFrame::Id { id, version } => Event::Unknown {
                kind: "id".to_owned(),
                args: std::iter::once(Value::from(id))
                    .chain(version.map(Value::String))
                    .collect(),
            },
            ServerFrame::History { messages, complete } => Event::History { messages, complete },
            ServerFrame::Members(names) => Event::Members(names),
            // A resume token is a secret: passed on without it.
            ServerFrame::Session { .. } => Event::Unknown {
                kind: "session".to_owned(),
                args: Vec::new(),
            },
            // The answer to `caps` belongs before `id` (the login reads it there); one that
            // comes later is passed on as it was.
            ServerFrame::Caps(names) => Event::Unknown {
                kind: "caps".to_owned(),
                args: vec![Value::from(names)],
            },
        };
        (event, None)
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closed {
    /// The WebSocket close code, when the server sent one (1000 normal, 1001 server going away,
    /// 1008 policy, 1009 too big, ...).
    pub code: Option<u16>,
    /// The close reason, or what went wrong when the connection broke without a close frame.
    pub reason: String,
}

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be understood.
    #[error("invalid server address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate file to trust could not be used.
    #[error("{path}: {reason}")]
    Certificate {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached, or did not speak WebSocket.
    #[error("could not connect: {0}")]
    Connect(#[source] tokio_tungstenite::tungstenite::Error),
    /// The server refused the login, in its exact words (see [`refusal`]).
    #[error("refused by the server: {0}")]
    Refused(String),
    /// The server closed the connection before the login finished.
    #[error("the server closed the connection{}", close_suffix(.0))]
    Closed(Closed),
    /// The server sent a frame that makes no sense at this point of the login.
    #[error("unexpected {0:?} frame during login")]
    Unexpected(String),
    /// The connection failed.
    #[error("connection error: {0}")]
    WebSocket(#[source] tokio_tungstenite::tungstenite::Error),
}

fn close_suffix(closed: &Closed) -> String {
    match (closed.code, closed.reason.as_str()) {
        (None, "") => String::new(),
        (Some(code), "") => format!(" (code {code})"),
        (None, reason) => format!(" ({reason})"),
        (Some(code), reason) => format!(" (code {code}: {reason})"),
    }
}
