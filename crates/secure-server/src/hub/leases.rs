//! What a connection holds in the hub, each given back when dropped: its name, its token hold,
//! its token page and its place in the room. Every way a connection can end (refusal, timeout,
//! close, error, panic) drops them, so nothing is held by a connection that is gone.

use std::sync::{Arc, OnceLock};

use clichat_proto::HistoryEntry;
use tokio_util::sync::CancellationToken;

use super::ring::Cursor;
use super::{Hub, Payload};
use crate::auth::TokenKey;

/// What a logged-in connection holds: its name, and for users its token.
#[derive(Debug)]
pub struct Leases {
    /// The reserved display name.
    pub name: NameLease,
    /// The held generic token (`None` for bots).
    pub token: Option<TokenHold>,
}

/// A reserved username; dropping it frees the name.
#[derive(Debug)]
pub struct NameLease {
    pub(super) hub: Hub,
    /// The name's keys (`names::keys`), the main one first.
    pub(super) keys: Vec<String>,
}

impl Drop for NameLease {
    fn drop(&mut self) {
        let mut login = self.hub.login();
        for key in std::mem::take(&mut self.keys) {
            login.names.remove(&key);
            login.lost_names.remove(&key);
            // Under the lock: a claim of the same name that follows this release here follows
            // it on the other nodes too.
            self.hub.backplane().release_name(key);
        }
    }
}

/// A held generic token; dropping it releases the hold.
#[derive(Debug)]
pub struct TokenHold {
    pub(super) hub: Hub,
    pub(super) key: TokenKey,
}

impl Drop for TokenHold {
    fn drop(&mut self) {
        let mut login = self.hub.login();
        if let Some(count) = login.holds.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                login.holds.remove(&self.key);
                login.lost_holds.remove(&self.key);
            }
        }
        // Under the lock, as for names.
        if self.hub.inner.one_user_per_token {
            self.hub.backplane().release_hold(self.key);
        }
    }
}

/// A token page waiting for `tokenauth`; dropping it settles the page for good (410 from then
/// on).
#[derive(Debug)]
pub struct PageLease {
    pub(super) hub: Hub,
    pub(super) id: String,
    pub(super) token: String,
    /// Whether the page is this login's to settle (its id was not taken by another).
    pub(super) opened: bool,
}

impl PageLease {
    /// The page's id, the last segment of the `authmsg` link.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The temporary token the page shows.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for PageLease {
    fn drop(&mut self) {
        if self.opened {
            self.hub
                .backplane()
                .settle_page(std::mem::take(&mut self.id));
        }
    }
}

/// What a join or resume found, for the frames that follow `id`.
#[derive(Debug)]
pub(super) struct Welcome {
    /// The room's recent messages as of the join (or those missed, for a resume), and whether
    /// they are complete, for a member that asked for history.
    pub(super) recent: Option<(Vec<HistoryEntry>, bool)>,
    /// The newest message's number as of the join (or resume), when history is on.
    pub(super) newest: Option<u64>,
}

/// A place in the room. Dropping it leaves the room and announces the departure (unless the
/// hub already removed it, which announced it then).
#[derive(Debug)]
pub struct Membership {
    pub(super) hub: Hub,
    pub(super) id: u64,
    /// Its place in the room's ring of frames.
    pub(super) cursor: Cursor,
    pub(super) evicted: CancellationToken,
    pub(super) reason: Arc<OnceLock<String>>,
    /// What the join (or resume) found, for the frames after `id`: boxed, since it is read
    /// once and every connection keeps its membership for its whole life.
    pub(super) welcome: Option<Box<Welcome>>,
    /// Held for a resume: dropping it leaves the member in the room.
    pub(super) held: bool,
}

impl Membership {
    /// The room's recent messages as of the join (oldest first), or those missed since the
    /// number a resume gave, and whether they are complete; once: `None` if the member did not
    /// ask for history (or history is off), or after the first call.
    pub fn take_history(&mut self) -> Option<(Vec<HistoryEntry>, bool)> {
        self.welcome.as_mut()?.recent.take()
    }

    /// The newest message's number as of the join or resume, when history is on: the client
    /// has been given every message up to it.
    pub fn newest(&self) -> Option<u64> {
        self.welcome.as_ref()?.newest
    }

    /// Forgets what the join found, once its frames are sent.
    pub fn welcomed(&mut self) {
        self.welcome = None;
    }

    /// The connection's id, unique for the server's lifetime.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Completes when frames for this connection may be waiting ([`Membership::read`] may
    /// still find none, if they were its own): `true`, or `false` once the hub removed it from
    /// the room.
    pub async fn ready(&self) -> bool {
        self.cursor.ready().await
    }

    /// Appends up to `max` of the frames waiting for this connection to `out`, oldest first,
    /// each as its whole WebSocket frame (header, then text), and says how many there were.
    pub fn read(&self, max: usize, out: &mut Vec<u8>) -> usize {
        self.cursor.read(max, out)
    }

    /// Whether the hub removed this connection from the room (a slow consumer, kicked, banned,
    /// revoked): its session must stop, and reads nothing more.
    pub fn removed(&self) -> bool {
        self.cursor.closed()
    }

    /// Whether the frames waiting for this connection take half the room's ring or more: its
    /// own messages, sent faster than it writes, would push them out. Its session writes them
    /// before it reads more from its client.
    pub fn falls_behind(&self) -> bool {
        self.cursor.half_behind()
    }

    /// The next frame for this connection, as its text; `None` once the hub removed it from
    /// the room.
    pub async fn recv(&mut self) -> Option<Payload> {
        loop {
            if !self.ready().await {
                return None;
            }
            if let Some(payload) = self.try_recv() {
                return Some(payload);
            }
        }
    }

    /// Completes when the hub removes this connection: as a slow consumer (the session should
    /// close at once with code 1008, without writing its backlog), or for a
    /// [`Membership::removal_reason`] (kicked, banned, token revoked).
    pub fn evicted(&self) -> CancellationToken {
        self.evicted.clone()
    }

    /// [`Membership::evicted`], borrowed.
    pub fn evicted_token(&self) -> &CancellationToken {
        &self.evicted
    }

    /// Why the hub removed this connection, as a refusal to send it; `None` for a slow
    /// consumer (or while it is still in the room).
    pub fn removal_reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// The next frame already waiting for this connection, without waiting.
    pub fn try_recv(&mut self) -> Option<Payload> {
        let mut wire = Vec::new();
        if self.cursor.read(1, &mut wire) == 0 {
            return None;
        }
        // One unmasked frame: its header (2, 4 or 10 bytes, by the length code), then its text.
        let head = match wire[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        Some(Payload::from(
            String::from_utf8_lossy(&wire[head..]).into_owned(),
        ))
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if self.held {
            return;
        }
        let mut room = self.hub.room();
        // Not in the room any more: removed by the hub, which announced it then.
        if let Some((_name, dropped)) = room.remove(self.id, None, &self.hub.inner.closing) {
            drop(room);
            dropped.log();
        }
    }
}
