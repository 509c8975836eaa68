//! One connection's life: login (SAUTH2 or bot), then chat, then a clean close.
//!
//! A session is one task that owns its socket. Everything it holds in the hub (its name, its
//! token hold, its token page, its place in the room) is a lease, dropped before the session
//! sends its last refusal or close frame, so that a client that was just refused may retry at
//! once and others hear of a departure without waiting for the close handshake.
//!
//! Its parts, in the order a connection goes through them:
//! - this file: the [`Session`], its life ([`Session::run`]) and its end (refusal, close
//!   frame, close handshake); reading frames under the frame budget, and sending them.
//! - `caps`: the protocol extensions a client asks for first, and what is granted.
//! - `login`: `auth` (SAUTH2: username, generic token, then the temporary token from the
//!   token page) or `botauth`.
//! - `chat`: joining the room (with history and members for those that asked), then relaying
//!   the room to the client and the client's messages to the room, in batches.
//! - `gather`: when the room's frames are written (at once on a quiet socket, once a tick while
//!   they stream), and the server's clock for the ticks.
//! - `moderation`: `kick`, `ban`, `unban` and `who`, by role.

mod caps;
mod chat;
mod gather;
mod login;
mod moderation;

pub(crate) use gather::Ticker;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clichat_proto::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, Utf8Bytes};

use crate::Server;
use crate::coalesce::Coalesced;
use crate::limits::FrameBudget;

/// The target of the events of every file of this folder: the module's path, as it was before
/// the module became a folder, so that log lines and `RUST_LOG` filters stay as they were.
const LOG_TARGET: &str = "secure_server::session";

/// How long a closing session waits for the client's close frame before dropping the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A WebSocket over an upgraded HTTP connection, with its writes coalesced.
pub(crate) type Socket = WebSocketStream<Coalesced<TokioIo<Upgraded>>>;

/// WebSocket close codes this server sends.
mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// How a session ends.
#[derive(Debug)]
enum Exit {
    /// Send `["refusal", reason]`, then close normally.
    Refuse(Cow<'static, str>),
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The socket failed or ended without a close frame (or a write could not finish): the
    /// connection was lost.
    Gone,
    /// The client sent a close frame: it left on purpose. Finish the close handshake.
    Closed,
    /// The hub removed the connection from the room: a slow consumer (close 1008), or kicked,
    /// banned or revoked (a refusal saying so).
    Removed,
}

/// A data frame from the client. Ping, pong and close are handled below this level.
enum Frame {
    Text(Utf8Bytes),
    Binary,
}

/// One connection.
pub(crate) struct Session {
    ws: Socket,
    server: Arc<Server>,
    /// The client's address (forwarded by a trusted proxy, or the socket's peer).
    peer: SocketAddr,
    /// `http://host:port` or the configured `public_url`: the `authmsg` link base.
    link_base: String,
    /// What every frame the client sends, of any kind, costs; past it, the connection closes.
    frames: FrameBudget,
    /// The extensions the client asked for and was granted.
    caps: caps::Caps,
}

impl Session {
    pub(crate) fn new(
        ws: Socket,
        server: Arc<Server>,
        peer: SocketAddr,
        link_base: String,
    ) -> Session {
        let settings = server.settings();
        let frames = settings.rates.frame_budget();
        drop(settings);
        Session {
            ws,
            server,
            peer,
            link_base,
            frames,
            caps: caps::Caps::default(),
        }
    }

    /// Runs the connection to its end.
    pub(crate) async fn run(mut self) {
        info!(target: LOG_TARGET, peer = %self.peer, "connection opened");
        let exit = match self.login().await {
            Ok(login) => self.chat(login).await,
            Err(exit) => {
                if let Exit::Refuse(_) = exit {
                    self.server.metrics.login("refused");
                }
                exit
            }
        };
        self.finish(exit).await;
        info!(target: LOG_TARGET, peer = %self.peer, "connection closed");
    }

    /// The next data frame, or how the session must end (shutdown, close, a read error, a
    /// client over its frame budget).
    async fn next_frame(&mut self) -> Result<Frame, Exit> {
        loop {
            let msg = tokio::select! {
                biased;
                () = self.server.shutdown.cancelled() => return Err(SHUTTING_DOWN),
                msg = self.ws.next() => msg,
            };
            self.spend(&msg)?;
            if let Some(frame) = classify(msg)? {
                return Ok(frame);
            }
        }
    }

    /// Charges what the socket yielded to the frame budget: every message the client sends, of
    /// any kind (pings included), costs one frame. Its bytes were charged as they were read
    /// (the socket's `ReadBudget`, in `coalesce`), fragments and all.
    fn spend(&self, msg: &Option<Result<Message, tungstenite::Error>>) -> Result<(), Exit> {
        match msg {
            Some(Ok(_)) if !self.frames.spend() => {
                debug!(target: LOG_TARGET, peer = %self.peer, "over the frame budget");
                Err(TOO_MANY_FRAMES)
            }
            _ => Ok(()),
        }
    }

    /// Sends one frame, bounded by the write timeout. Refusals are counted here, whatever
    /// follows them.
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Exit> {
        if let ServerFrame::Refusal(reason) = frame {
            self.server.metrics.refusal(reason);
        }
        self.send_message(Message::Text(frame.encode().into()))
            .await
    }

    /// Sends one WebSocket message, bounded by the write timeout.
    async fn send_message(&mut self, message: Message) -> Result<(), Exit> {
        let write_timeout = self.server.settings().config.write_timeout();
        match timeout(write_timeout, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Exit::Gone),
        }
    }

    /// Carries out the exit: the refusal and close frames, then the close handshake.
    async fn finish(&mut self, exit: Exit) {
        match exit {
            Exit::Refuse(reason) => {
                info!(target: LOG_TARGET, peer = %self.peer, ?reason, "refused");
                if self
                    .send(&ServerFrame::Refusal(reason.into_owned()))
                    .await
                    .is_ok()
                {
                    self.close(close_code::NORMAL, "").await;
                }
            }
            Exit::Close(code, reason) => {
                info!(target: LOG_TARGET, peer = %self.peer, code, reason, "closing");
                self.close(code, reason).await;
            }
            // Resolved into one of the above by `chat`; never reaches here.
            Exit::Removed => self.close(close_code::POLICY, "removed").await,
            Exit::Gone | Exit::Closed => {
                // Flushes a close reply tungstenite may have queued; bounded for dead peers.
                let _ = timeout(CLOSE_GRACE, SinkExt::close(&mut self.ws)).await;
            }
        }
        // tungstenite may have written a last frame (the reply to a bad close frame) and
        // reported the connection closed without flushing it.
        let _ = timeout(CLOSE_GRACE, AsyncWriteExt::flush(self.ws.get_mut())).await;
    }

    /// Sends a close frame and waits briefly for the client's, so that the closing handshake
    /// completes and the client reads everything sent before it.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(reason),
        }));
        if let Ok(Ok(())) = timeout(CLOSE_GRACE, self.ws.send(frame)).await {
            let _ = timeout(CLOSE_GRACE, async {
                while let Some(Ok(_)) = self.ws.next().await {}
            })
            .await;
        }
    }
}

/// The exit of every session when the server shuts down.
const SHUTTING_DOWN: Exit = Exit::Close(close_code::GOING_AWAY, "server shutting down");
/// The exit of a session held for a resume when the server shuts down: come back and resume.
const RESTARTING: Exit = Exit::Close(clichat_proto::CLOSE_RESTARTING, "server restarting; resume");

impl Exit {
    /// Whether the connection was lost rather than closed on purpose by either side: a session
    /// that asked for `resume` is then held.
    fn is_loss(&self) -> bool {
        matches!(self, Exit::Gone | Exit::Close(close_code::GOING_AWAY, _))
    }
}
/// The exit of a connection that sent more frames (or bytes) than its budget allows.
const TOO_MANY_FRAMES: Exit = Exit::Close(close_code::POLICY, "too many frames");

fn refuse(reason: impl Into<Cow<'static, str>>) -> Exit {
    Exit::Refuse(reason.into())
}

/// Sorts what the socket yielded: a data frame, nothing of interest (`None`: ping, pong), or the
/// end of the session.
fn classify(msg: Option<Result<Message, tungstenite::Error>>) -> Result<Option<Frame>, Exit> {
    match msg {
        Some(Ok(Message::Text(text))) => Ok(Some(Frame::Text(text))),
        Some(Ok(Message::Binary(_))) => Ok(Some(Frame::Binary)),
        // Raw frames are only ever written, never read.
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(None),
        Some(Ok(Message::Close(_))) => Err(Exit::Closed),
        None => Err(Exit::Gone),
        Some(Err(error)) => Err(read_error_exit(error)),
    }
}

/// The close a read error calls for: 1009 for a frame over the limit, 1007 for a text frame
/// that is not UTF-8, 1002 for other protocol violations; nothing for a broken socket.
fn read_error_exit(error: tungstenite::Error) -> Exit {
    use tungstenite::Error as WsError;
    match error {
        WsError::Capacity(_) => Exit::Close(close_code::TOO_BIG, "frame too large"),
        WsError::Io(error)
            if error
                .get_ref()
                .is_some_and(|inner| inner.is::<crate::coalesce::OverBudget>()) =>
        {
            TOO_MANY_FRAMES
        }
        WsError::Utf8(_) => Exit::Close(close_code::INVALID_DATA, "text frame is not UTF-8"),
        // The TCP connection ended without a close frame: lost, not closed on purpose.
        WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            Exit::Gone
        }
        WsError::Protocol(_) => Exit::Close(close_code::PROTOCOL, "protocol error"),
        error => {
            debug!(target: LOG_TARGET, %error, "read failed");
            Exit::Gone
        }
    }
}
