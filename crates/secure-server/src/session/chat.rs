//! Chat: joining the room, then one loop over {the room's frames out, the client's frames in,
//! pings, eviction, shutdown}: messages checked and broadcast, moderation handed on, everything
//! else ignored; room frames written in batches, one flush for many.

use clichat_proto::{ClientFrame, ResumeToken, ServerFrame, refusal};
use futures_util::{SinkExt, StreamExt};
use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::sync::Arc;
use tokio::sync::futures::Notified;
use tokio::time::{Duration, Instant, timeout};
use tracing::{debug, info};
use tungstenite::Message;

use super::gather::Next;
use super::login::{Entry, LoggedIn};
use super::{
    Exit, Frame, LOG_TARGET, RESTARTING, SHUTTING_DOWN, Session, classify, close_code, refuse,
};
use crate::hub::{JoinRefused, Membership, Profile};
use crate::limits::{MessageBudget, MessageVerdict};
use crate::rules::MessageRefusal;

/// The most frames of the room written before one flush.
const MAX_BATCH: usize = 256;
/// The most batches written at once (a backlog of the default `outbound_queue`).
const MAX_BATCHES: usize = 4;

impl Session {
    /// Joins the room and chats until the connection ends. The room, and with it the leases,
    /// are left before this returns.
    pub(super) async fn chat(&mut self, entry: Entry) -> Exit {
        let (mut member, name, profile) = match entry {
            Entry::Join(login) => match self.join(login) {
                Ok(joined) => joined,
                Err(exit) => return exit,
            },
            Entry::Resume(resumed) => {
                info!(
                    target: LOG_TARGET,
                    peer = %self.peer,
                    id = resumed.membership.id(),
                    name = ?resumed.name,
                    "resumed"
                );
                (resumed.membership, resumed.name, resumed.profile)
            }
        };
        let Err(exit) = self.chat_loop(&mut member, &name, &profile).await;
        let window = self.server.settings().config.resume_window();
        if self.caps.resume && exit.is_loss() {
            info!(target: LOG_TARGET, peer = %self.peer, id = member.id(), ?name, "held for a resume");
            member.hold(window);
            // A server that stops tells its held sessions to come back (a restart, or the
            // other nodes of a cluster).
            return if self.server.shutdown.is_cancelled() {
                RESTARTING
            } else {
                exit
            };
        }
        info!(target: LOG_TARGET, peer = %self.peer, id = member.id(), ?name, "left the room");
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

    /// Joins the room afresh.
    fn join(&mut self, login: LoggedIn) -> Result<(Membership, String, Profile), Exit> {
        let LoggedIn {
            name,
            leases,
            profile,
        } = login;
        let kind = profile.kind;
        let server = Arc::clone(&self.server);
        let admit = || server.admits(&name, &profile);
        let history = self.caps.history;
        let joined = self
            .server
            .hub
            .join(&name, leases, profile.clone(), history, admit);
        let member = match joined {
            Ok(member) => member,
            Err(JoinRefused::Conflict) => return Err(refuse(refusal::CLUSTER_CONFLICT)),
            Err(JoinRefused::Refused(reason)) => return Err(refuse(reason)),
        };
        self.server.metrics.login(kind.as_str());
        let role = self.server.role_of(&profile);
        info!(
            target: LOG_TARGET,
            peer = %self.peer,
            id = member.id(),
            ?name,
            kind = kind.as_str(),
            role = role.as_str(),
            "logged in"
        );
        Ok((member, name, profile))
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
        if let Some((messages, complete)) = member.take_history() {
            self.send(&ServerFrame::History { messages, complete })
                .await?;
        }
        if self.caps.presence {
            let members = self.members().await;
            self.send(&members).await?;
        }
        if self.caps.resume {
            self.send_session(member).await?;
        }
        member.welcomed();
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
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        // A ping went out and nothing has come back since.
        let mut unanswered = false;
        // The server's clock, borrowed from a handle of this loop's own (the handlers need
        // `self`); the tick to wait for while frames stream, `None` while the socket is quiet.
        let server = Arc::clone(&self.server);
        let ticker = &server.ticker;
        let mut tick: Pin<&mut Option<Notified<'_>>> = pin!(None);
        loop {
            // Biased, in the order of how often each is ready, so that a wake-up polls as few
            // branches as it can. Nothing starves: the room's branches are ready at most once a
            // tick while frames stream, and shutdown and removal also end every wait for a
            // write.
            tokio::select! {
                biased;
                () = next_tick(tick.as_mut()), if tick.is_some() => {
                    let next = self.write_room(member, write_timeout).await?;
                    tick.set((next == Next::Tick).then(|| ticker.next()));
                }
                ready = member.ready(), if tick.is_none() => {
                    if !ready {
                        return Err(Exit::Removed);
                    }
                    // Let the rest of the server run first: frames pushed meanwhile leave in
                    // the same write. In a quiet room this returns at once.
                    tokio::task::yield_now().await;
                    let next = self.write_room(member, write_timeout).await?;
                    tick.set((next == Next::Tick).then(|| ticker.next()));
                }
                msg = self.ws.next() => {
                    if member.removed() {
                        // Told a moment ago, through the eviction branch below.
                        return Err(Exit::Removed);
                    }
                    unanswered = false;
                    self.spend(&msg)?;
                    if let Some(Frame::Text(text)) = classify(msg)? {
                        // Boxed: a rare path, kept out of the state every idle connection holds.
                        let answer =
                            Box::pin(self.chat_frame(id, name, profile, &text, &budget)).await?;
                        // The room's frames that came before an answer leave before it; and
                        // those of a client that sends faster than a tick lets it read leave
                        // before its own messages push them out of the ring.
                        if (answer.is_some() || member.falls_behind())
                            && self.write_room(member, write_timeout).await? == Next::Tick
                        {
                            tick.set(Some(ticker.next()));
                        }
                        if let Some(answer) = answer {
                            self.send(&answer).await?;
                        }
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
                () = &mut shutdown => return Err(SHUTTING_DOWN),
                () = &mut evicted => return Err(Exit::Removed),
            }
        }
    }

    /// Handles one text frame from a logged-in client: a `msg` with its own id is checked and
    /// broadcast; moderation frames are carried out if the role allows; everything else is
    /// ignored. Returns the frame to answer with, if any.
    async fn chat_frame(
        &mut self,
        id: u64,
        name: &str,
        profile: &Profile,
        text: &str,
        budget: &MessageBudget,
    ) -> Result<Option<ServerFrame>, Exit> {
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
                return Ok(Self::moderate(Arc::clone(&self.server), name, role, frame).await);
            }
            Ok(ClientFrame::Members) if self.caps.presence => {
                // A list of the whole room costs more than a message: it is charged as one.
                return match budget.spend() {
                    MessageVerdict::Send => Ok(Some(self.members().await)),
                    MessageVerdict::SlowDown => {
                        Ok(Some(ServerFrame::Refusal(refusal::SLOW_DOWN.to_owned())))
                    }
                    MessageVerdict::Flood => Err(refuse(refusal::FLOOD)),
                };
            }
            Ok(other) => {
                debug!(target: LOG_TARGET, id, kind = other.kind(), "ignored frame");
                return Ok(None);
            }
            Err(error) => {
                debug!(target: LOG_TARGET, id, ?error, "ignored malformed frame");
                return Ok(None);
            }
        };
        match budget.spend() {
            MessageVerdict::Send => {}
            MessageVerdict::SlowDown => {
                debug!(target: LOG_TARGET, peer = %self.peer, id, "message over the rate");
                return Ok(Some(ServerFrame::Refusal(refusal::SLOW_DOWN.to_owned())));
            }
            MessageVerdict::Flood => return Err(refuse(refusal::FLOOD)),
        }
        match self.server.settings().rules.check_message(&text) {
            Ok(()) => {
                debug!(target: LOG_TARGET, id, "message");
                self.server.metrics.message();
                let sent = self.server.hub.say(id, name, text);
                if sent.is_err() {
                    // Delivered to nobody, and the sender is told so: never lost silently.
                    let not_sent = ServerFrame::Refusal(refusal::MESSAGE_NOT_SENT.to_owned());
                    return Ok(Some(not_sent));
                }
                Ok(None)
            }
            Err(MessageRefusal::TooLong(reason)) => {
                info!(target: LOG_TARGET, peer = %self.peer, id, ?reason, "refused message");
                Ok(Some(ServerFrame::Refusal(reason)))
            }
            Err(MessageRefusal::Close(reason)) => Err(refuse(reason)),
        }
    }

    /// Sends `["session", ...]` with a fresh resume token, which replaces the session's last
    /// one; only its key is kept.
    async fn send_session(&mut self, member: &Membership) -> Result<(), Exit> {
        let token = crate::secrets::generate_resume_token();
        member.set_resume(crate::auth::TokenKey::of(&token));
        let window = self.server.settings().config.resume_window();
        let session = ServerFrame::Session {
            resume: ResumeToken(token),
            expires_in: window.as_secs(),
            seq: member.newest(),
        };
        self.send(&session).await
    }

    /// `["members", [...]]`: everyone in the room now, on every node (this node's only, while
    /// the other nodes cannot be asked).
    async fn members(&mut self) -> ServerFrame {
        let names = match self.server.hub.who().await {
            Ok(names) => names,
            Err(_) => self
                .server
                .hub
                .members()
                .into_iter()
                .map(|m| m.name)
                .collect(),
        };
        ServerFrame::Members(names)
    }

    /// Writes the room's frames waiting for this connection, a batch at a time while batches
    /// come full (up to [`MAX_BATCHES`]: a backlog is worked off at once), and says what to
    /// wait for next.
    async fn write_room(
        &mut self,
        member: &Membership,
        write_timeout: Duration,
    ) -> Result<Next, Exit> {
        let mut frames = self.write_batch(member, write_timeout).await?;
        let mut total = frames;
        // Bounded, so that a session kept behind by a busy room still reads its client, pings
        // and hears of shutdown: the rest waits for the next tick.
        for _ in 1..MAX_BATCHES {
            if frames < MAX_BATCH {
                break;
            }
            frames = self.write_batch(member, write_timeout).await?;
            total += frames;
        }
        Ok(Next::after(total))
    }

    /// Writes the frames waiting for this connection (at most [`MAX_BATCH`]), then flushes
    /// once, and says how many frames it wrote. Gives up at once if the hub drops this
    /// connection as a slow consumer meanwhile.
    ///
    /// Room frames are framed once for every receiver, so they are copied from the room's ring
    /// into the socket's write buffer as they are, behind whatever tungstenite has written
    /// there (it buffers nothing itself once a flush has completed), and leave with the flush.
    async fn write_batch(
        &mut self,
        member: &Membership,
        write_timeout: Duration,
    ) -> Result<usize, Exit> {
        let socket = self.ws.get_mut();
        let frames = member.read(MAX_BATCH, socket.staging());
        if frames == 0 {
            // Only the member's own messages were new.
            return Ok(0);
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
                () = member.evicted_token().cancelled() => return Err(Exit::Removed),
            },
        };
        match result {
            Ok(Ok(())) => Ok(frames),
            Ok(Err(error)) => {
                debug!(target: LOG_TARGET, peer = %self.peer, %error, "write failed");
                Err(Exit::Gone)
            }
            Err(_elapsed) => {
                info!(
                    target: LOG_TARGET,
                    peer = %self.peer,
                    "write timed out; dropping the connection"
                );
                Err(Exit::Gone)
            }
        }
    }
}

/// Completes at the tick a gathering session waits for (never while it waits for none).
async fn next_tick(tick: Pin<&mut Option<Notified<'_>>>) {
    match tick.as_pin_mut() {
        Some(tick) => tick.await,
        None => std::future::pending().await,
    }
}

/// The exit of a connection that answered no ping for a whole interval.
const NO_PONG: Exit = Exit::Close(close_code::GOING_AWAY, "no answer to ping");
/// The exit of a connection dropped as a slow consumer.
const EVICTED: Exit = Exit::Close(close_code::POLICY, "outbound queue full");
