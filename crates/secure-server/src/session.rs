//! One connection's life: login (SAUTH2 or bot), then chat, then a clean close.
//!
//! A session is one task that owns its socket. Everything it holds in the hub (its name, its
//! token hold, its token page, its place in the room) is a lease, dropped before the session
//! sends its last refusal or close frame, so that a client that was just refused may retry at
//! once and others hear of a departure without waiting for the close handshake.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clichat_proto::{ClientFrame, ServerFrame, refusal};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, Utf8Bytes};

use crate::Server;
use crate::auth::Grant;
use crate::coalesce::Coalesced;
use crate::config::Role;
use crate::hub::{
    JoinRefused, Leases, MemberInfo, Membership, PageLease, Payload, Profile, Refused,
};
use crate::limits::{FrameBudget, MessageBudget, MessageVerdict};
use crate::names;
use crate::rules::MessageRefusal;
use crate::secrets;

/// How long a closing session waits for the client's close frame before dropping the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The most queued frames written before one flush.
const MAX_BATCH: usize = 256;

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
    /// The client closed or the socket failed: finish the close handshake if possible.
    Gone,
    /// The hub removed the connection from the room: a slow consumer (close 1008), or kicked,
    /// banned or revoked (a refusal saying so).
    Removed,
}

/// A data frame from the client. Ping, pong and close are handled below this level.
enum Frame {
    Text(Utf8Bytes),
    Binary,
}

/// The frame that starts a login.
enum LoginFrame {
    User {
        username: Option<String>,
        token: Option<String>,
    },
    Bot {
        name: Option<String>,
        token: Option<String>,
    },
}

/// A client that passed login, with what it holds until it leaves.
struct LoggedIn {
    /// The display name (`[BOT] name` for bots).
    name: String,
    leases: Leases,
    profile: Profile,
}

/// A user login waiting for `tokenauth`. Fields drop in declaration order: the name and token
/// are free before the page turns 410.
struct Pending {
    leases: Leases,
    page: PageLease,
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
}

impl Session {
    pub(crate) fn new(
        ws: Socket,
        server: Arc<Server>,
        peer: SocketAddr,
        link_base: String,
    ) -> Session {
        let settings = server.settings();
        let frames = settings.rates.frame_budget(settings.config.max_frame_bytes);
        drop(settings);
        Session {
            ws,
            server,
            peer,
            link_base,
            frames,
        }
    }

    /// Runs the connection to its end.
    pub(crate) async fn run(mut self) {
        info!(peer = %self.peer, "connection opened");
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
        info!(peer = %self.peer, "connection closed");
    }

    /// Waits for `auth` or `botauth` (other frames are ignored until one comes, for at most
    /// `limits.auth_timeout_secs`), then logs in, if the address has login attempts left.
    async fn login(&mut self) -> Result<LoggedIn, Exit> {
        let settings = self.server.settings();
        let first = timeout(settings.config.auth_timeout(), self.first_login_frame())
            .await
            .map_err(|_elapsed| refuse(refusal::AUTH_TIMEOUT))??;
        if !settings.rates.login_attempt(self.peer.ip()) {
            return Err(refuse(refusal::TOO_MANY_LOGINS));
        }
        drop(settings);
        match first {
            LoginFrame::User { username, token } => self.user_login(username, token).await,
            LoginFrame::Bot { name, token } => self.bot_login(name, token).await,
        }
    }

    /// A wrong token (generic, bot or temporary): charged extra, so that guessing is slow.
    fn wrong_token(&self, reason: &'static str) -> Exit {
        self.server.settings().rates.login_failed(self.peer.ip());
        refuse(reason)
    }

    /// The first `auth` or `botauth` frame; everything before it is ignored.
    async fn first_login_frame(&mut self) -> Result<LoginFrame, Exit> {
        loop {
            let Frame::Text(text) = self.next_frame().await? else {
                debug!(peer = %self.peer, "ignored binary frame before login");
                continue;
            };
            match ClientFrame::decode(&text) {
                Ok(ClientFrame::Auth { username, token }) => {
                    return Ok(LoginFrame::User { username, token });
                }
                Ok(ClientFrame::BotAuth { name, token }) => {
                    return Ok(LoginFrame::Bot { name, token });
                }
                Ok(other) => {
                    debug!(peer = %self.peer, kind = other.kind(), "ignored frame before login")
                }
                Err(error) => debug!(peer = %self.peer, ?error, "ignored malformed frame"),
            }
        }
    }

    /// SAUTH2: username rules, generic token, then the temporary token from the page.
    ///
    /// The token is checked before the name is looked up, so that a client without a valid
    /// token learns nothing of who is online or mid-login.
    async fn user_login(
        &mut self,
        username: Option<String>,
        token: Option<String>,
    ) -> Result<LoggedIn, Exit> {
        let server = Arc::clone(&self.server);
        let settings = server.settings();
        let name = settings.rules.check_username(username).map_err(refuse)?;
        let Some(grant) = token.and_then(|t| settings.tokens.check_user(&t)) else {
            return Err(self.wrong_token(refusal::TOKEN_REFUSED));
        };
        self.check_admitted(&grant)?;
        let name_lease = server
            .hub
            .reserve_name(&name)
            .await
            .map_err(|e| refused(e, refusal::USERNAME_TAKEN))?;
        // A good token in use elsewhere (1UPT) is refused with the same text, but is no guess.
        let hold = server
            .hub
            .hold_token(grant.key)
            .await
            .map_err(|e| refused(e, refusal::TOKEN_REFUSED))?;
        let tokenauth_timeout = settings.config.tokenauth_timeout();
        drop(settings);

        // Field order matters: the leases drop before the page, on every path out of here,
        // so that whoever sees the page closed (410) may log in again at once.
        let leases = Leases {
            name: name_lease,
            token: Some(hold),
        };
        let page = server
            .hub
            .open_page(secrets::generate_temp_token(), tokenauth_timeout)
            .await
            .map_err(|e| refused(e, refusal::CLUSTER_UNAVAILABLE))?;
        let pending = Pending { leases, page };
        // Subscribed before the page is shown: a ban or revocation from now on wakes the wait.
        let mut expulsions = server.expulsions.subscribe();
        let link = format!("{}/{}", self.link_base, pending.page.id());
        self.send(&ServerFrame::AuthMsg(link)).await?;

        // The very next data frame decides, and the page dies whatever it is. Meanwhile a ban
        // or revocation of the token ends the wait at once.
        let deadline = tokio::time::Instant::now() + tokenauth_timeout;
        let frame = loop {
            tokio::select! {
                frame = tokio::time::timeout_at(deadline, self.next_frame()) => {
                    break frame.map_err(|_elapsed| refuse(refusal::TOKENAUTH_TIMEOUT))??;
                }
                Ok(()) = expulsions.changed() => self.check_admitted(&grant)?,
            }
        };
        let accepted = match &frame {
            Frame::Text(text) => matches!(
                ClientFrame::decode(text),
                Ok(ClientFrame::TokenAuth(Some(presented))) if secrets::secret_eq(&presented, pending.page.token())
            ),
            Frame::Binary => false,
        };
        if !accepted {
            return Err(self.wrong_token(refusal::TEMP_TOKEN_REFUSED));
        }
        let Pending { leases, page } = pending;
        drop(page);
        // Checked again at the join, under the room's lock (see `chat`).
        self.check_admitted(&grant)?;
        Ok(LoggedIn {
            name,
            leases,
            profile: self.profile("user", grant),
        })
    }

    /// Bot login: the name and token must match the owner's list.
    async fn bot_login(
        &mut self,
        name: Option<String>,
        token: Option<String>,
    ) -> Result<LoggedIn, Exit> {
        let (Some(name), Some(token)) = (name, token) else {
            return Err(self.wrong_token(refusal::BOT_REFUSED));
        };
        let Some(grant) = self.server.settings().tokens.check_bot(&name, &token) else {
            return Err(self.wrong_token(refusal::BOT_REFUSED));
        };
        self.check_admitted(&grant)?;
        let display = format!("{} {name}", names::BOT_PREFIX);
        let name = self.server.hub.reserve_name(&display).await;
        let name = name.map_err(|e| refused(e, refusal::USERNAME_TAKEN))?;
        Ok(LoggedIn {
            name: display,
            leases: Leases { name, token: None },
            profile: self.profile("bot", grant),
        })
    }

    /// Refuses a token revoked or banned now (saying until when).
    fn check_admitted(&self, grant: &Grant) -> Result<(), Exit> {
        self.server.admits(&grant.key).map_err(refuse)
    }

    fn profile(&self, kind: &'static str, grant: Grant) -> Profile {
        Profile {
            kind,
            role: grant.role,
            token: Some(grant.key),
            label: grant.label,
            peer: Some(self.peer),
        }
    }

    /// Joins the room and chats until the connection ends. The room, and with it the leases,
    /// are left before this returns.
    async fn chat(&mut self, login: LoggedIn) -> Exit {
        let LoggedIn {
            name,
            leases,
            profile,
        } = login;
        let kind = profile.kind;
        let server = Arc::clone(&self.server);
        let admit = || match &profile.token {
            Some(key) => server.admits(key),
            None => Ok(()),
        };
        let joined = self.server.hub.join(&name, leases, profile.clone(), admit);
        let mut member = match joined {
            Ok(member) => member,
            Err(JoinRefused::Conflict) => return refuse(refusal::CLUSTER_CONFLICT),
            Err(JoinRefused::Refused(reason)) => return refuse(reason),
        };
        self.server.metrics.login(kind);
        let role = self.server.role_of(&profile);
        info!(peer = %self.peer, id = member.id(), ?name, kind, role = role.as_str(), "logged in");
        let Err(exit) = self.chat_loop(&mut member, &name, &profile).await;
        info!(peer = %self.peer, id = member.id(), ?name, "left the room");
        let exit = match exit {
            Exit::Removed => match member.removal_reason() {
                Some(reason) => refuse(reason.to_owned()),
                None => EVICTED,
            },
            exit => exit,
        };
        drop(member);
        exit
    }

    /// Sends the `id` frame, then relays the room to the client and the client's messages to
    /// the room until the session must end.
    async fn chat_loop(
        &mut self,
        member: &mut Membership,
        name: &str,
        profile: &Profile,
    ) -> Result<Infallible, Exit> {
        let id = member.id();
        let welcome = ServerFrame::Id {
            id,
            version: Some(crate::VERSION.to_owned()),
        };
        self.send(&welcome).await?;
        let settings = self.server.settings();
        let budget = settings.rates.message_budget();
        let every = settings.config.ping_interval();
        let write_timeout = settings.config.write_timeout();
        drop(settings);
        // A child of the server's token, made once and pinned: polling a cancellation future
        // locks its token's node, and the server's own node would be locked by every session
        // on every frame.
        let shutdown = self.server.shutdown.child_token();
        let shutdown = shutdown.cancelled();
        tokio::pin!(shutdown);
        let evicted = member.evicted();
        let evicted = evicted.cancelled();
        tokio::pin!(evicted);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // A ping went out and nothing has come back since.
        let mut unanswered = false;
        loop {
            // Unbiased: a busy room must not starve this client's own input, nor the reverse.
            tokio::select! {
                () = &mut shutdown => return Err(SHUTTING_DOWN),
                () = &mut evicted => return Err(Exit::Removed),
                out = member.recv() => {
                    let payload = out.ok_or(Exit::Removed)?;
                    self.write_batch(payload, member, write_timeout).await?;
                }
                msg = self.ws.next() => {
                    unanswered = false;
                    self.spend(&msg)?;
                    if let Some(Frame::Text(text)) = classify(msg)? {
                        // Boxed: a rare path, kept out of the state every idle connection holds.
                        Box::pin(self.chat_frame(id, name, profile, &text, &budget)).await?;
                    }
                }
                _ = ping.tick() => {
                    if unanswered {
                        // Nothing since the last ping, not even its pong: the peer is gone.
                        return Err(NO_PONG);
                    }
                    self.send_message(Message::Ping(Default::default())).await?;
                    unanswered = true;
                }
            }
        }
    }

    /// Handles one text frame from a logged-in client: a `msg` with its own id is checked and
    /// broadcast; moderation frames are carried out if the role allows; everything else is
    /// ignored.
    async fn chat_frame(
        &mut self,
        id: u64,
        name: &str,
        profile: &Profile,
        text: &str,
        budget: &MessageBudget,
    ) -> Result<(), Exit> {
        let text = match ClientFrame::decode(text) {
            Ok(ClientFrame::Msg {
                id: Some(from),
                text: Some(text),
            }) if from == id => text,
            Ok(
                frame @ (ClientFrame::Kick { .. }
                | ClientFrame::Ban { .. }
                | ClientFrame::Unban { .. }
                | ClientFrame::Who),
            ) => {
                // The role in force now: a reload may have demoted (or promoted) the token.
                let role = self.server.role_of(profile);
                let answer = Self::moderate(Arc::clone(&self.server), name, role, frame).await;
                return match answer {
                    Some(frame) => self.send(&frame).await,
                    None => Ok(()),
                };
            }
            Ok(other) => {
                debug!(id, kind = other.kind(), "ignored frame");
                return Ok(());
            }
            Err(error) => {
                debug!(id, ?error, "ignored malformed frame");
                return Ok(());
            }
        };
        match budget.spend() {
            MessageVerdict::Send => {}
            MessageVerdict::SlowDown => {
                debug!(peer = %self.peer, id, "message over the rate");
                return self
                    .send(&ServerFrame::Refusal(refusal::SLOW_DOWN.to_owned()))
                    .await;
            }
            MessageVerdict::Flood => return Err(refuse(refusal::FLOOD)),
        }
        match self.server.settings().rules.check_message(&text) {
            Ok(()) => {
                debug!(id, "message");
                self.server.metrics.message();
                let from = name.to_owned();
                let sent = self
                    .server
                    .hub
                    .broadcast(id, &ServerFrame::Message { from, text });
                if sent.is_err() {
                    // Delivered to nobody, and the sender is told so: never lost silently.
                    let not_sent = ServerFrame::Refusal(refusal::MESSAGE_NOT_SENT.to_owned());
                    return self.send(&not_sent).await;
                }
                Ok(())
            }
            Err(MessageRefusal::TooLong(reason)) => {
                info!(peer = %self.peer, id, ?reason, "refused message");
                self.send(&ServerFrame::Refusal(reason)).await
            }
            Err(MessageRefusal::Close(reason)) => Err(refuse(reason)),
        }
    }

    /// Carries out a moderation frame (APIv2) from `actor`; returns the answer to send, if any.
    /// Users may not moderate; mods act on users, admins on users and mods.
    /// In a cluster it acts on every node; while the cluster cannot be reached it is refused.
    async fn moderate(
        server: Arc<Server>,
        actor: &str,
        role: Role,
        frame: ClientFrame,
    ) -> Option<ServerFrame> {
        let not_permitted = Some(ServerFrame::Refusal(refusal::NOT_PERMITTED.to_owned()));
        if role < Role::Mod {
            return not_permitted;
        }
        let hub = &server.hub;
        match frame {
            ClientFrame::Who => Some(match hub.who().await {
                Ok(names) => ServerFrame::Users(names),
                Err(_) => ServerFrame::Refusal(refusal::CLUSTER_UNAVAILABLE.to_owned()),
            }),
            ClientFrame::Kick { username, reason } => {
                let reason = reason.unwrap_or_default();
                let target = match target_of(&server, username.as_deref(), role).await {
                    Ok(target) => target,
                    Err(answer) => return answer,
                };
                if hub.expel_member(&target, &refusal::kicked(&reason)) {
                    info!(?actor, target = ?target.name, ?reason, "kicked");
                }
                None
            }
            ClientFrame::Ban {
                username,
                reason,
                minutes,
            } => {
                let reason = reason.unwrap_or_default();
                let target = match target_of(&server, username.as_deref(), role).await {
                    Ok(target) => target,
                    Err(answer) => return answer,
                };
                if let Err(error) = server.ban_member(&target, &reason, minutes)? {
                    warn!(%error, "the ban holds, but could not be saved");
                }
                info!(?actor, target = ?target.name, ?reason, ?minutes, "banned");
                None
            }
            ClientFrame::Unban {
                username,
                token_label,
            } => {
                // As with kicks: only bans of lower roles.
                let lifted = server.lift_bans(|ban| {
                    ban.role < role
                        && (username
                            .as_deref()
                            .is_some_and(|n| names::key(n) == names::key(&ban.username))
                            || token_label.is_some() && token_label == ban.label)
                });
                match lifted {
                    Ok(lifted) => info!(?actor, lifted, "unbanned"),
                    Err(error) => warn!(%error, "the unban holds, but could not be saved"),
                }
                None
            }
            _ => None,
        }
    }

    /// Writes `first` and whatever else is already queued, then flushes once. Gives up at once
    /// if the hub drops this connection as a slow consumer meanwhile.
    ///
    /// Room frames are framed once for every receiver, so they are copied into the socket's
    /// write buffer as they are, behind whatever tungstenite has written there (it buffers
    /// nothing itself once a flush has completed), and leave with the flush.
    async fn write_batch(
        &mut self,
        first: Payload,
        member: &mut Membership,
        write_timeout: Duration,
    ) -> Result<(), Exit> {
        // Let the rest of the server run first: in a busy room more frames arrive meanwhile
        // and leave in the same write (one system call for many frames); in a quiet one this
        // returns at once.
        tokio::task::yield_now().await;
        let evicted = member.evicted();
        let socket = self.ws.get_mut();
        socket.stage(&first.wire());
        for _ in 1..MAX_BATCH {
            let Some(next) = member.try_recv() else { break };
            socket.stage(&next.wire());
        }
        let write = self.ws.flush();
        // A write that completes at once (the usual case) arms no timer and does not register
        // with the eviction token; only one that has to wait for the socket does.
        let mut write = std::pin::pin!(write);
        let result = match futures_util::poll!(&mut write) {
            std::task::Poll::Ready(result) => Ok(result),
            std::task::Poll::Pending => tokio::select! {
                biased;
                result = timeout(write_timeout, write) => result,
                () = evicted.cancelled() => return Err(Exit::Removed),
            },
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                debug!(peer = %self.peer, %error, "write failed");
                Err(Exit::Gone)
            }
            Err(_elapsed) => {
                info!(peer = %self.peer, "write timed out; dropping the connection");
                Err(Exit::Gone)
            }
        }
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

    /// Charges what the socket yielded to the frame budget: every frame the client sends, of
    /// any kind, costs one frame and its length in bytes.
    fn spend(&self, msg: &Option<Result<Message, tungstenite::Error>>) -> Result<(), Exit> {
        match msg {
            Some(Ok(message)) if !self.frames.spend(message.len()) => {
                debug!(peer = %self.peer, "over the frame budget");
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
                info!(peer = %self.peer, ?reason, "refused");
                if self
                    .send(&ServerFrame::Refusal(reason.into_owned()))
                    .await
                    .is_ok()
                {
                    self.close(close_code::NORMAL, "").await;
                }
            }
            Exit::Close(code, reason) => {
                info!(peer = %self.peer, code, reason, "closing");
                self.close(code, reason).await;
            }
            // Resolved into one of the above by `chat`; never reaches here.
            Exit::Removed => self.close(close_code::POLICY, "removed").await,
            Exit::Gone => {
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
/// The exit of a connection that answered no ping for a whole interval.
const NO_PONG: Exit = Exit::Close(close_code::GOING_AWAY, "no answer to ping");
/// The exit of a connection dropped as a slow consumer.
const EVICTED: Exit = Exit::Close(close_code::POLICY, "outbound queue full");
/// The exit of a connection that sent more frames (or bytes) than its budget allows.
const TOO_MANY_FRAMES: Exit = Exit::Close(close_code::POLICY, "too many frames");

/// The member a kick or ban by someone of `role` aims at, on any node; otherwise the answer to
/// send: nothing if nobody of that name is connected, a refusal if the target's role (as in
/// force now) is not lower or the cluster cannot be asked.
async fn target_of(
    server: &Server,
    username: Option<&str>,
    role: Role,
) -> Result<MemberInfo, Option<ServerFrame>> {
    let answer = |text: &str| Some(ServerFrame::Refusal(text.to_owned()));
    let found = server
        .hub
        .find(username.ok_or(None)?)
        .await
        .map_err(|_| answer(refusal::CLUSTER_UNAVAILABLE))?;
    let target = found.ok_or(None)?;
    if server.role_of(&target.profile) >= role {
        return Err(answer(refusal::NOT_PERMITTED));
    }
    Ok(target)
}

fn refuse(reason: impl Into<Cow<'static, str>>) -> Exit {
    Exit::Refuse(reason.into())
}

/// A claim the hub refused: `taken` if someone has it, or the cluster's refusal if it could not
/// be asked.
fn refused(refusal: Refused, taken: &'static str) -> Exit {
    match refusal {
        Refused::Taken => refuse(taken),
        Refused::Unavailable(_) => refuse(refusal::CLUSTER_UNAVAILABLE),
    }
}

/// Sorts what the socket yielded: a data frame, nothing of interest (`None`: ping, pong), or the
/// end of the session.
fn classify(msg: Option<Result<Message, tungstenite::Error>>) -> Result<Option<Frame>, Exit> {
    match msg {
        Some(Ok(Message::Text(text))) => Ok(Some(Frame::Text(text))),
        Some(Ok(Message::Binary(_))) => Ok(Some(Frame::Binary)),
        // Raw frames are only ever written, never read.
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(None),
        Some(Ok(Message::Close(_))) | None => Err(Exit::Gone),
        Some(Err(error)) => Err(read_error_exit(error)),
    }
}

/// The close a read error calls for: 1009 for a frame over the limit, 1007 for a text frame
/// that is not UTF-8, 1002 for other protocol violations; nothing for a broken socket.
fn read_error_exit(error: tungstenite::Error) -> Exit {
    use tungstenite::Error as WsError;
    match error {
        WsError::Capacity(_) => Exit::Close(close_code::TOO_BIG, "frame too large"),
        WsError::Utf8(_) => Exit::Close(close_code::INVALID_DATA, "text frame is not UTF-8"),
        WsError::Protocol(_) => Exit::Close(close_code::PROTOCOL, "protocol error"),
        error => {
            debug!(%error, "read failed");
            Exit::Gone
        }
    }
}
