//! The hub: all state shared between connections, behind one small interface.
//!
//! Sessions ask the hub for a username, a token hold, a token page and a place in the room; each
//! comes back as a lease that gives it back when dropped, so every way a connection can end
//! (refusal, timeout, close, error, panic) releases what it held. Fan-out lives here too: a
//! broadcast is serialized once and the same bytes are queued for every receiver.
//!
//! In cluster mode ([`Hub::clustered`]) the same interface spans every node: claims are also
//! made in Redis, and what members cause is also written to the cluster's room stream, through
//! the `cluster` module. Session code does not know which it has.
//!
//! Locks are `std::sync::Mutex`es held only for map operations and the fan-out loop, never
//! across an `.await`. Where both are taken, the room lock is taken before the login lock
//! (a member leaving releases its leases inside the room's critical section).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use clichat_proto::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::auth::{self, TokenKey};
use crate::cluster::{self, Control, Link, MemberRecord, RemotePage, Write};
use crate::config::{ClusterConfig, Role};
use crate::names;

/// A frame for the room, serialized once and framed once: the JSON text and the header of the
/// WebSocket text frame that carries it. A server's frames are not masked, so the header and
/// text are the same bytes for every receiver, and a session copies them to its socket as they
/// are. Cloning is a reference-count increment.
///
/// One pointer wide, so that each receiver's queue (blocks of 32 slots, which a queue keeps once
/// a burst has grown it) stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(Arc<Framed>);

#[derive(Debug, PartialEq, Eq)]
struct Framed {
    /// The frame header: 2 bytes, or 4 for a text of 126 bytes or more (10 past 64 KiB).
    head: [u8; MAX_HEAD],
    head_len: usize,
    text: String,
}

/// The longest header of an unmasked WebSocket frame.
const MAX_HEAD: usize = 10;

impl Payload {
    /// The frame's text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The whole WebSocket frame, as written to a socket: its header, then its text.
    pub fn wire(&self) -> [&[u8]; 2] {
        [&self.0.head[..self.0.head_len], self.0.text.as_bytes()]
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Payload {
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        let mut head = [0; MAX_HEAD];
        let mut rest = &mut head[..];
        header
            .format(text.len() as u64, &mut rest)
            .expect("an unmasked frame header fits in 10 bytes");
        let head_len = MAX_HEAD - rest.len();
        Payload(Arc::new(Framed {
            head,
            head_len,
            text,
        }))
    }
}

impl PartialEq<&str> for Payload {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How many settled token pages are remembered so that they answer 410 instead of 404. The
/// oldest are forgotten first, so the memory this takes is bounded.
const SETTLED_PAGES_KEPT: usize = 10_000;

/// Shared state of one server: a cheap-to-clone handle.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Names, token holds and pages: touched once or twice per login.
    login: Mutex<LoginState>,
    /// Who is in the room: touched by every broadcast.
    room: Mutex<Room>,
    next_id: AtomicU64,
    /// Set when the server shuts down: everyone is being closed, so departures are not
    /// announced (that would be N² deliveries for nobody).
    closing: AtomicBool,
    one_user_per_token: bool,
    queue_len: usize,
    /// The link to the other nodes, in cluster mode.
    link: Option<Arc<Link>>,
    /// Carries out the other nodes' requests the hub cannot carry out itself (bans).
    for_server: OnceLock<ServerHook>,
}

/// What the server does with other nodes' bans and unbans.
struct ServerHook(Box<dyn Fn(Control) + Send + Sync>);

impl std::fmt::Debug for ServerHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerHook")
    }
}

/// Why the hub could not grant a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Someone (on any node) has it.
    #[error("taken")]
    Taken,
    /// Cluster mode, and the cluster cannot be asked now.
    #[error(transparent)]
    Unavailable(#[from] cluster::Unavailable),
}

/// Why [`Hub::join`] refused a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    /// Cluster mode: another node was given the name or the token while this one was out of
    /// touch.
    Conflict,
    /// The login's check refused, with this refusal.
    Refused(String),
}

#[derive(Debug)]
struct PendingPage {
    token: String,
    views: u32,
}

#[derive(Debug, Default)]
struct LoginState {
    /// Case-folded names of everyone connected or mid-login.
    names: HashSet<String>,
    /// Connections holding each token.
    holds: HashMap<TokenKey, u32>,
    /// Page id -> temporary token and views so far, while the login waits for `tokenauth`.
    /// (In cluster mode the pages live in Redis, and this only counts this node's.)
    pending_pages: HashMap<String, PendingPage>,
    settled_pages: HashSet<String>,
    settled_order: VecDeque<String>,
    /// Cluster mode: names and tokens this node held while out of touch, and found taken by
    /// another node when it came back. A login holding one is refused at [`Hub::join`].
    lost_names: HashSet<String>,
    lost_holds: HashSet<TokenKey>,
}

#[derive(Debug, Default)]
struct Room {
    members: HashMap<u64, Member>,
    /// Where what this node's members cause is also written, in cluster mode.
    link: Option<Arc<Link>>,
    /// Frames queued for receivers, ever (counted under the lock the fan-out holds anyway).
    deliveries: u64,
    /// Members dropped as slow consumers, ever.
    queue_drops: u64,
    /// `announce_presence_up_to`: joins and departures are announced while the room, counting
    /// whoever joins or leaves, has at most this many members here. `None`: always.
    announce_up_to: Option<usize>,
}

#[derive(Debug)]
struct Member {
    name: String,
    /// The name as reserved (its [`names::key`]): the member's key in the cluster.
    folded: String,
    profile: Profile,
    tx: mpsc::Sender<Payload>,
    /// Released when the member leaves the room, before its disconnect is announced.
    leases: Leases,
    /// Cancelled when the hub removes the member (slow consumer, kick, ban, revocation).
    evicted: CancellationToken,
    /// Why the hub removed the member, when it was not for being slow: the refusal to send.
    reason: Arc<OnceLock<String>>,
}

/// Who a member is, beyond its name: for moderation, the owner API and revocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// `"user"` or `"bot"`.
    pub kind: &'static str,
    /// What the member may do.
    pub role: Role,
    /// The token it logged in with (generic or bot).
    pub token: Option<TokenKey>,
    /// The owner's label for that token.
    pub label: Option<String>,
    /// Where it connected from.
    pub peer: Option<SocketAddr>,
}

/// A member as the owner API and moderators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The cluster node it is connected to; `None` for this one.
    pub node: Option<String>,
    /// The connection's id (unique on its node).
    pub id: u64,
    /// The display name.
    pub name: String,
    /// Who it is.
    pub profile: Profile,
}

/// What a logged-in connection holds: its name, and for users its token.
#[derive(Debug)]
pub struct Leases {
    /// The reserved display name.
    pub name: NameLease,
    /// The held generic token (`None` for bots).
    pub token: Option<TokenHold>,
}

/// What a token page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageView {
    /// The login is waiting: show this temporary token.
    Pending(String),
    /// The login is waiting, but the page has been viewed too often to show the token again.
    TooManyViews,
    /// The token was used, refused, or expired.
    Settled,
    /// No such page (or settled too long ago to be remembered).
    Unknown,
    /// Cluster mode, and the cluster cannot be asked now.
    Unavailable,
}

/// Counts of what the hub holds, for status reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct HubStats {
    /// Authenticated connections in the room.
    pub members: usize,
    /// Names reserved by connected or logging-in clients.
    pub names: usize,
    /// Distinct tokens held.
    pub held_tokens: usize,
    /// Token pages waiting for `tokenauth`.
    pub pending_pages: usize,
    /// Frames queued for receivers by broadcasts since the start.
    pub deliveries: u64,
    /// Members dropped as slow consumers since the start.
    pub queue_drops: u64,
}

impl Hub {
    /// A hub whose tokens are exclusive when `one_user_per_token` is set, and whose members may
    /// each have `queue_len` frames waiting.
    pub fn new(one_user_per_token: bool, queue_len: usize) -> Hub {
        Hub::with_link(one_user_per_token, queue_len, None)
    }

    /// A hub that is one node of the cluster `config` describes. It connects (and keeps
    /// reconnecting) in the background; until it is connected, claims are refused as
    /// [`Refused::Unavailable`]. Must be called within a Tokio runtime.
    pub fn clustered(one_user_per_token: bool, queue_len: usize, config: &ClusterConfig) -> Hub {
        let (link, worker) = cluster::start(config);
        let hub = Hub::with_link(one_user_per_token, queue_len, Some(Arc::clone(&link)));
        link.set_worker(tokio::spawn(worker.run(hub.clone())).abort_handle());
        hub
    }

    fn with_link(one_user_per_token: bool, queue_len: usize, link: Option<Arc<Link>>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                login: Mutex::default(),
                room: Mutex::new(Room {
                    link: link.clone(),
                    ..Room::default()
                }),
                next_id: AtomicU64::new(0),
                closing: AtomicBool::new(false),
                one_user_per_token,
                queue_len,
                link,
                for_server: OnceLock::new(),
            }),
        }
    }

    /// Sets `announce_presence_up_to`: joins and departures are announced while the room
    /// (this node's members, in a cluster), counting whoever joins or leaves, has at most
    /// `limit` members; `None` announces them always.
    pub fn announce_presence_up_to(&self, limit: Option<usize>) {
        self.room().announce_up_to = limit;
    }

    /// Sets what to do with the other nodes' bans and unbans (once, at start). It is called
    /// in stream order, before anything the same node wrote after them is delivered.
    pub(crate) fn on_requests_from_nodes(&self, hook: impl Fn(Control) + Send + Sync + 'static) {
        let _ = self.inner.for_server.set(ServerHook(Box::new(hook)));
    }

    /// In cluster mode, tells the other nodes (bans and unbans); otherwise does nothing.
    pub(crate) fn tell_nodes(&self, control: &Control) {
        if let Some(link) = self.link() {
            link.control(control);
        }
    }

    fn link(&self) -> Option<&Link> {
        self.inner.link.as_deref()
    }

    /// In cluster mode: this node's name, and whether its link to Redis is up.
    pub fn cluster_status(&self) -> Option<(&str, bool)> {
        self.link().map(|link| (link.node(), link.is_up()))
    }

    fn login(&self) -> MutexGuard<'_, LoginState> {
        // A panic while holding the lock cannot leave these maps half-updated in a way that
        // matters more than refusing all further logins would, so recover the guard.
        self.inner.login.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn room(&self) -> MutexGuard<'_, Room> {
        self.inner.room.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `name` until the lease is dropped; refused if someone connected or mid-login
    /// (on any node) has a name that looks the same (an equal [`names::key`]).
    pub async fn reserve_name(&self, name: &str) -> Result<NameLease, Refused> {
        let folded = names::key(name);
        if !self.login().names.insert(folded.clone()) {
            return Err(Refused::Taken);
        }
        // Made before asking the cluster, so that a login abandoned meanwhile still releases.
        let lease = NameLease {
            hub: self.clone(),
            folded,
        };
        if let Some(link) = self.link() {
            if !link.claim_name(&lease.folded).await? {
                return Err(Refused::Taken);
            }
        }
        Ok(lease)
    }

    /// Holds a generic token until the lease is dropped; refused if 1UPT is on and another
    /// connection (on any node) holds it.
    pub async fn hold_token(&self, key: TokenKey) -> Result<TokenHold, Refused> {
        {
            let mut login = self.login();
            let count = login.holds.entry(key).or_insert(0);
            if self.inner.one_user_per_token && *count > 0 {
                return Err(Refused::Taken);
            }
            *count += 1;
        }
        let hold = TokenHold {
            hub: self.clone(),
            key,
        };
        if let Some(link) = self.link().filter(|_| self.inner.one_user_per_token) {
            if !link.claim_hold(&key.to_hex()).await? {
                return Err(Refused::Taken);
            }
        }
        Ok(hold)
    }

    /// Opens a token page showing `temp_token` under a fresh random id, for at most `ttl`.
    /// Dropping the lease settles the page for good.
    pub async fn open_page(&self, temp_token: String, ttl: Duration) -> Result<PageLease, Refused> {
        loop {
            let mut lease = {
                let mut login = self.login();
                let id = loop {
                    let id = auth::generate_page_id();
                    if !login.pending_pages.contains_key(&id) && !login.settled_pages.contains(&id)
                    {
                        break id;
                    }
                };
                let page = PendingPage {
                    token: temp_token.clone(),
                    views: 0,
                };
                login.pending_pages.insert(id.clone(), page);
                PageLease {
                    hub: self.clone(),
                    id,
                    token: temp_token.clone(),
                    // Set when the page is written to Redis (cluster mode).
                    shared: false,
                }
            };
            match self.link() {
                None => return Ok(lease),
                Some(link) => {
                    // Shared from before the question: a login abandoned while it is asked
                    // settles the page (the settling follows the opening in Redis).
                    lease.shared = true;
                    if link.open_page(&lease.id, &temp_token, ttl).await? {
                        return Ok(lease);
                    }
                    // Another node has (or had) a page with that id: not ours to settle.
                    lease.shared = false;
                }
            }
        }
    }

    /// What the page `id` shows now; a pending page shows its token `max_views` times, so that
    /// a person may reload it but nobody can scrape it endlessly. In cluster mode the page may
    /// belong to a login on any node.
    pub async fn view_page(&self, id: &str, max_views: u32) -> PageView {
        if let Some(link) = self.link() {
            return match link.view_page(id, max_views).await {
                Ok(RemotePage::Pending(token)) => PageView::Pending(token),
                Ok(RemotePage::TooManyViews) => PageView::TooManyViews,
                Ok(RemotePage::Settled) => PageView::Settled,
                Ok(RemotePage::Unknown) => PageView::Unknown,
                Err(cluster::Unavailable) => PageView::Unavailable,
            };
        }
        let mut login = self.login();
        if let Some(page) = login.pending_pages.get_mut(id) {
            if page.views >= max_views {
                return PageView::TooManyViews;
            }
            page.views += 1;
            PageView::Pending(page.token.clone())
        } else if login.settled_pages.contains(id) {
            PageView::Settled
        } else {
            PageView::Unknown
        }
    }

    /// Adds an authenticated connection called `name` to the room and tells everyone else
    /// (`["join", name]`). Frames for it arrive on [`Membership::recv`]. The room keeps
    /// `leases` while the connection is in it; leaving (dropping the membership, or being
    /// dropped as a slow consumer) releases them first and then announces
    /// `["disconnect", name]`, so that whoever hears of the disconnect may take the name and
    /// token at once.
    ///
    /// `admit` is asked under the room's lock, so that whatever it checks (the token is still
    /// configured and not banned) cannot change between the check and the join: a revocation
    /// or ban that removes the token's members after changing what `admit` reads either finds
    /// this member in the room or is seen by `admit`.
    ///
    /// # Errors
    /// The leases are released and [`JoinRefused::Conflict`] returned if, in cluster mode,
    /// another node was given the name or the token while this one was out of touch;
    /// [`JoinRefused::Refused`] if `admit` refused.
    pub fn join(
        &self,
        name: &str,
        leases: Leases,
        profile: Profile,
        admit: impl FnOnce() -> Result<(), String>,
    ) -> Result<Membership, JoinRefused> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.queue_len);
        let evicted = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        let record = self.link().map(|_| MemberRecord::json(id, name, &profile));
        let member = Member {
            name: name.to_owned(),
            folded: leases.name.folded.clone(),
            profile,
            tx,
            leases,
            evicted: evicted.clone(),
            reason: Arc::clone(&reason),
        };
        let payload = Payload::from(ServerFrame::Join(name.to_owned()).encode());
        // Under the room lock, which a sync's `expel_lost` holds too: a login is either
        // refused here or in the room when that looks.
        let mut room = self.room();
        if self.login().lost(&member.leases) {
            drop(room);
            return Err(JoinRefused::Conflict);
        }
        if let Err(reason) = admit() {
            drop(room);
            return Err(JoinRefused::Refused(reason));
        }
        if let (Some(link), Some(record)) = (self.link(), record) {
            let folded = member.folded.clone();
            link.write(Write::Member { folded, record });
        }
        room.members.insert(id, member);
        let dropped = if room.announces_presence(0) {
            room.fan_out(id, payload, true)
        } else {
            Vec::new()
        };
        drop(room);
        log_dropped(dropped);
        Ok(Membership {
            hub: self.clone(),
            id,
            rx,
            evicted,
            reason,
        })
    }

    /// Everyone in the room, in the order they joined.
    pub fn members(&self) -> Vec<MemberInfo> {
        let room = self.room();
        let mut members: Vec<MemberInfo> = room
            .members
            .iter()
            .map(|(&id, member)| MemberInfo {
                node: None,
                id,
                name: member.name.clone(),
                profile: member.profile.clone(),
            })
            .collect();
        drop(room);
        members.sort_by_key(|member| member.id);
        members
    }

    /// The member called `name` (or a name that looks the same: compared by [`names::key`], as
    /// names are reserved), on any node.
    pub async fn find(&self, name: &str) -> Result<Option<MemberInfo>, Refused> {
        let folded = names::key(name);
        let local = || {
            self.members()
                .into_iter()
                .find(|member| names::key(&member.name) == folded)
        };
        let Some(link) = self.link() else {
            return Ok(local());
        };
        Ok(match link.find(&folded).await? {
            Some((node, _)) if node == link.node() => local(),
            Some((node, record)) => Some(remote_member(node, record)),
            None => None,
        })
    }

    /// The names of everyone in the room, on every node: this node's in the order they
    /// joined, then the others'.
    pub async fn who(&self) -> Result<Vec<String>, Refused> {
        let local: Vec<String> = self.members().into_iter().map(|m| m.name).collect();
        let Some(link) = self.link() else {
            return Ok(local);
        };
        let mut others: Vec<(String, MemberRecord)> = link
            .who()
            .await?
            .into_iter()
            .filter(|(node, _)| node != link.node())
            .collect();
        others.sort_by(|a, b| (&a.0, a.1.id).cmp(&(&b.0, b.1.id)));
        Ok(local
            .into_iter()
            .chain(others.into_iter().map(|(_, record)| record.name))
            .collect())
    }

    /// Removes `member` (found with [`Hub::find`]) from the room, on whichever node it is, as
    /// [`Hub::expel`] does. Returns whether it was here to remove; a member on another node is
    /// asked to leave, and `true` is returned.
    pub fn expel_member(&self, member: &MemberInfo, reason: &str) -> bool {
        match (&member.node, self.link()) {
            (Some(node), Some(link)) => {
                link.control(&Control::Expel {
                    node: node.clone(),
                    id: member.id,
                    reason: reason.to_owned(),
                });
                true
            }
            _ => self.expel(member.id, reason).is_some(),
        }
    }

    /// Removes member `id` from the room: its session is told to send `reason` as a refusal
    /// and close; everyone else gets its disconnect. Returns its name, or `None` if it is not
    /// in the room (any more).
    pub fn expel(&self, id: u64, reason: &str) -> Option<String> {
        let mut room = self.room();
        let (name, dropped) = room.expel(id, Some(reason), &self.inner.closing)?;
        drop(room);
        log_dropped(dropped);
        Some(name)
    }

    /// Removes every member that logged in with the token `key`, as [`Hub::expel`] does, here
    /// and (in cluster mode) on every other node. Returns the names of those removed here.
    pub fn expel_token(&self, key: &TokenKey, reason: &str) -> Vec<String> {
        if let Some(link) = self.link() {
            link.control(&Control::ExpelToken {
                token: key.to_hex(),
                reason: reason.to_owned(),
            });
        }
        self.expel_local_token(key, reason)
    }

    fn expel_local_token(&self, key: &TokenKey, reason: &str) -> Vec<String> {
        let ids: Vec<u64> = self
            .members()
            .into_iter()
            .filter(|member| member.profile.token.as_ref() == Some(key))
            .map(|member| member.id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.expel(id, reason))
            .collect()
    }

    /// The tokens held now (under 1UPT, or not), for "in use" reports.
    pub fn held_tokens(&self) -> Vec<TokenKey> {
        self.login().holds.keys().copied().collect()
    }

    /// Sends `frame` to every member but `from`. The frame is serialized once. In cluster
    /// mode, while the cluster cannot be reached or does not keep up (the writes waiting for
    /// Redis are past their bound), it is sent to nobody and refused.
    pub fn broadcast(&self, from: u64, frame: &ServerFrame) -> Result<(), cluster::Unavailable> {
        if self.link().is_some_and(|link| !link.accepts_messages()) {
            return Err(cluster::Unavailable);
        }
        let payload = Payload::from(frame.encode());
        let dropped = self.room().fan_out(from, payload, true);
        log_dropped(dropped);
        Ok(())
    }

    /// Delivers a frame another node's member caused to every member here.
    pub(crate) fn deliver_remote(&self, payload: Payload) {
        let dropped = self.room().fan_out(u64::MAX, payload, false);
        log_dropped(dropped);
    }

    /// Carries out another node's request.
    pub(crate) fn obey(&self, node: &str, control: Control) {
        match control {
            Control::Expel {
                node: to,
                id,
                reason,
            } if to == node => {
                if let Some(name) = self.expel(id, &reason) {
                    tracing::info!(?name, ?reason, "removed at another node's request");
                }
            }
            Control::Expel { .. } => {}
            Control::Ban { .. } | Control::Unban { .. } => {
                if let Some(hook) = self.inner.for_server.get() {
                    (hook.0)(control);
                }
            }
            Control::ExpelToken { token, reason } => {
                if let Some(key) = TokenKey::from_hex(&token) {
                    for name in self.expel_local_token(&key, &reason) {
                        tracing::info!(?name, ?reason, "removed at another node's request");
                    }
                }
            }
        }
    }

    /// What this node holds, for the cluster to re-claim after a reconnect.
    pub(crate) fn cluster_state(&self) -> cluster::ClusterState {
        let room = self.room();
        let members = room
            .members
            .iter()
            .map(|(&id, member)| {
                let record = MemberRecord::json(id, &member.name, &member.profile);
                (member.folded.clone(), record)
            })
            .collect();
        let login = self.login();
        let holds = if self.inner.one_user_per_token {
            login.holds.keys().map(TokenKey::to_hex).collect()
        } else {
            Vec::new()
        };
        cluster::ClusterState {
            names: login.names.iter().cloned().collect(),
            holds,
            members,
        }
    }

    /// Closes the members whose names (case-folded) or tokens (hex keys) another node took
    /// while this one was out of touch, and marks them so that logins under way with them are
    /// refused at [`Hub::join`]. The departures are announced here only: the other nodes heard
    /// of them when this one was declared dead (or, if it was not, the name now belongs to
    /// someone else there). Returns the names of the members closed.
    pub(crate) fn expel_lost(&self, names: &[String], holds: &[String]) -> Vec<String> {
        let mut room = self.room();
        {
            let mut login = self.login();
            for name in names {
                if login.names.contains(name) {
                    login.lost_names.insert(name.clone());
                }
            }
            for key in holds.iter().filter_map(|hex| TokenKey::from_hex(hex)) {
                if login.holds.contains_key(&key) {
                    login.lost_holds.insert(key);
                }
            }
        }
        let lost: Vec<u64> = room
            .members
            .iter()
            .filter(|(_, member)| {
                names.contains(&member.folded)
                    || member
                        .profile
                        .token
                        .is_some_and(|key| holds.contains(&key.to_hex()))
            })
            .map(|(&id, _)| id)
            .collect();
        let mut expelled = Vec::new();
        let mut dropped = Vec::new();
        for id in lost {
            if let Some(member) = room.members.remove(&id) {
                let _ = member
                    .reason
                    .set(clichat_proto::refusal::CLUSTER_CONFLICT.to_owned());
                member.evicted.cancel();
                let (name, folded) = member.leave();
                if let Some(link) = &room.link {
                    link.write(Write::Unmember(folded.clone()));
                }
                let bye = Payload::from(ServerFrame::Disconnect(name).encode());
                dropped.extend(room.fan_out(id, bye, false));
                expelled.push(folded);
            }
        }
        drop(room);
        log_dropped(dropped);
        expelled
    }

    /// Marks the server as shutting down: from now on departures are not announced here (the
    /// other nodes of a cluster still hear of them).
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Relaxed);
    }

    /// In cluster mode, once every session has ended: writes what is still queued and takes
    /// this node out of the cluster, waiting at most `within`.
    pub async fn leave_cluster(&self, within: Duration) {
        if let Some(link) = self.link() {
            link.leave(within).await;
        }
    }

    /// What the hub holds now.
    pub fn stats(&self) -> HubStats {
        let room = self.room();
        let (names, held_tokens, pending_pages) = {
            let login = self.login();
            (
                login.names.len(),
                login.holds.len(),
                login.pending_pages.len(),
            )
        };
        HubStats {
            members: room.members.len(),
            deliveries: room.deliveries,
            queue_drops: room.queue_drops,
            names,
            held_tokens,
            pending_pages,
        }
    }
}

impl Room {
    /// Queues `payload` for every member but `except`, and, when it is this node's to
    /// `publish`, for the cluster's other nodes. A member whose queue is full is a slow
    /// consumer: it is removed from the room at once (its leases released, its session told
    /// through its eviction token) and its disconnect is announced like any other. Returns the
    /// dropped members' ids and names, to be logged once the room is unlocked.
    #[must_use]
    fn fan_out(&mut self, except: u64, payload: Payload, publish: bool) -> Vec<(u64, String)> {
        let mut slow = Vec::new();
        let mut dropped = Vec::new();
        self.deliver(except, &payload, &mut slow);
        if publish {
            self.publish(payload);
        }
        while let Some(id) = slow.pop() {
            if let Some(member) = self.members.remove(&id) {
                self.queue_drops += 1;
                member.evicted.cancel();
                let (name, folded) = member.leave();
                if self.announces_presence(1) {
                    let bye = Payload::from(ServerFrame::Disconnect(name.clone()).encode());
                    self.deliver(id, &bye, &mut slow);
                    self.publish_departure(folded, bye);
                } else {
                    self.unpublish_member(folded);
                }
                dropped.push((id, name));
            }
        }
        dropped
    }

    /// Whether a join or departure is announced, the room now having `gone` fewer members
    /// than counting the one who joins or leaves.
    fn announces_presence(&self, gone: usize) -> bool {
        self.announce_up_to
            .is_none_or(|limit| self.members.len() + gone <= limit)
    }

    /// In cluster mode, removes a departed member's record without announcing the departure.
    fn unpublish_member(&self, folded: String) {
        if let Some(link) = &self.link {
            link.write(Write::Unmember(folded));
        }
    }

    /// In cluster mode, writes a frame this node's members caused to the room stream.
    fn publish(&self, payload: Payload) {
        if let Some(link) = &self.link {
            link.write(Write::Frame(payload));
        }
    }

    /// In cluster mode, removes a departed member's record and announces its departure (once:
    /// a sync that finds the record gone does not announce it again).
    fn publish_departure(&self, folded: String, bye: Payload) {
        if let Some(link) = &self.link {
            link.write(Write::Depart {
                folded,
                bye,
                always: false,
            });
        }
    }

    /// Removes member `id` for `reason` (told to its session) and announces its departure
    /// (unless the server is closing). Returns its name and any slow consumers dropped by the
    /// announcement.
    fn expel(
        &mut self,
        id: u64,
        reason: Option<&str>,
        closing: &AtomicBool,
    ) -> Option<(String, Vec<(u64, String)>)> {
        let member = self.members.remove(&id)?;
        if let Some(reason) = reason {
            let _ = member.reason.set(reason.to_owned());
            member.evicted.cancel();
        }
        let (name, folded) = member.leave();
        if !self.announces_presence(1) {
            self.unpublish_member(folded);
            return Some((name, Vec::new()));
        }
        let bye = Payload::from(ServerFrame::Disconnect(name.clone()).encode());
        // The other nodes' members hear of it even while everyone here is leaving too.
        self.publish_departure(folded, bye.clone());
        if closing.load(Ordering::Relaxed) {
            return Some((name, Vec::new()));
        }
        let dropped = self.fan_out(id, bye, false);
        Some((name, dropped))
    }

    fn deliver(&mut self, except: u64, payload: &Payload, slow: &mut Vec<u64>) {
        let mut delivered = 0;
        for (&id, member) in &self.members {
            if id == except {
                continue;
            }
            match member.tx.try_send(payload.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => slow.push(id),
                // Closed: the session is ending and its Membership drop will remove it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        self.deliveries += delivered;
    }
}

/// Logs slow consumers dropped by a fan-out; called with the room unlocked, so that a slow log
/// never stalls the room.
fn log_dropped(dropped: Vec<(u64, String)>) {
    for (id, name) in dropped {
        tracing::warn!(id, ?name, "outbound queue full; dropped a slow consumer");
    }
}

impl Member {
    /// Releases the member's leases and gives back its name, for the announcement, and its
    /// case-folded name, for its record in the cluster.
    fn leave(self) -> (String, String) {
        drop(self.leases);
        (self.name, self.folded)
    }
}

impl LoginState {
    /// Whether a sync found one of these leases taken by another node.
    fn lost(&self, leases: &Leases) -> bool {
        self.lost_names.contains(&leases.name.folded)
            || leases
                .token
                .as_ref()
                .is_some_and(|hold| self.lost_holds.contains(&hold.key))
    }
}

/// A member of another node, as [`Hub::find`] reports it.
fn remote_member(node: String, record: MemberRecord) -> MemberInfo {
    MemberInfo {
        node: Some(node),
        id: record.id,
        name: record.name,
        profile: Profile {
            kind: if record.kind == "bot" { "bot" } else { "user" },
            role: record.role,
            token: record.token.as_deref().and_then(TokenKey::from_hex),
            label: record.label,
            peer: None,
        },
    }
}

/// A reserved username; dropping it frees the name.
#[derive(Debug)]
pub struct NameLease {
    hub: Hub,
    folded: String,
}

impl Drop for NameLease {
    fn drop(&mut self) {
        let mut login = self.hub.login();
        login.names.remove(&self.folded);
        login.lost_names.remove(&self.folded);
        // Queued under the lock: a claim of the same name that follows this release locally
        // follows it in Redis too.
        if let Some(link) = self.hub.link() {
            link.write(Write::ReleaseName(std::mem::take(&mut self.folded)));
        }
    }
}

/// A held generic token; dropping it releases the hold.
#[derive(Debug)]
pub struct TokenHold {
    hub: Hub,
    key: TokenKey,
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
        // Queued under the lock, as for names.
        if let Some(link) = self
            .hub
            .link()
            .filter(|_| self.hub.inner.one_user_per_token)
        {
            link.write(Write::ReleaseHold(self.key.to_hex()));
        }
    }
}

/// A token page waiting for `tokenauth`; dropping it settles the page (410 from then on).
#[derive(Debug)]
pub struct PageLease {
    hub: Hub,
    id: String,
    token: String,
    /// In cluster mode: the page is in Redis, to be settled there when this drops.
    shared: bool,
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
        let mut login = self.hub.login();
        login.pending_pages.remove(&self.id);
        login.settled_pages.insert(self.id.clone());
        login.settled_order.push_back(self.id.clone());
        if login.settled_order.len() > SETTLED_PAGES_KEPT {
            if let Some(old) = login.settled_order.pop_front() {
                login.settled_pages.remove(&old);
            }
        }
        drop(login);
        if let Some(link) = self.hub.link().filter(|_| self.shared) {
            link.write(Write::SettlePage(std::mem::take(&mut self.id)));
        }
    }
}

/// A place in the room. Dropping it leaves the room and announces the disconnect (unless the
/// hub already removed it as a slow consumer, which announced it then).
#[derive(Debug)]
pub struct Membership {
    hub: Hub,
    id: u64,
    rx: mpsc::Receiver<Payload>,
    evicted: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Membership {
    /// The connection's id, unique for the server's lifetime.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next frame queued for this connection; `None` once the hub removed it as a slow
    /// consumer and the queue is empty.
    pub async fn recv(&mut self) -> Option<Payload> {
        self.rx.recv().await
    }

    /// Completes when the hub removes this connection: as a slow consumer (the session should
    /// close at once with code 1008, without writing its backlog), or for a
    /// [`Membership::removal_reason`] (kicked, banned, token revoked).
    pub fn evicted(&self) -> CancellationToken {
        self.evicted.clone()
    }

    /// Why the hub removed this connection, as a refusal to send it; `None` for a slow
    /// consumer (or while it is still in the room).
    pub fn removal_reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// A frame already queued, without waiting; used to batch writes.
    pub fn try_recv(&mut self) -> Option<Payload> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut room = self.hub.room();
        // Not in the room any more: removed by the hub, which announced it then.
        if let Some((_name, dropped)) = room.expel(self.id, None, &self.hub.inner.closing) {
            drop(room);
            log_dropped(dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn leases(hub: &Hub, name: &str) -> Leases {
        Leases {
            name: hub.reserve_name(name).await.unwrap(),
            token: None,
        }
    }

    #[tokio::test]
    async fn departures_are_not_announced_while_closing() {
        let hub = Hub::new(true, 8);
        let mut a = hub
            .join("a", leases(&hub, "a").await, Profile::default(), || Ok(()))
            .unwrap();
        let b = hub
            .join("b", leases(&hub, "b").await, Profile::default(), || Ok(()))
            .unwrap();
        assert_eq!(a.recv().await.unwrap(), r#"["join","b"]"#);
        hub.close();
        drop(b);
        assert!(a.try_recv().is_none());
        assert!(
            hub.reserve_name("b").await.is_ok(),
            "leases are still released"
        );
    }

    #[tokio::test]
    async fn a_join_its_check_refuses_releases_the_leases() {
        let hub = Hub::new(true, 8);
        let key = TokenKey::of("t");
        let leases = Leases {
            name: hub.reserve_name("a").await.unwrap(),
            token: Some(hub.hold_token(key).await.unwrap()),
        };
        let refused = hub.join("a", leases, Profile::default(), || Err("banned".into()));
        assert_eq!(refused.err(), Some(JoinRefused::Refused("banned".into())));
        assert_eq!(hub.stats().members, 0);
        assert!(hub.reserve_name("A").await.is_ok(), "the name is free");
        assert!(hub.hold_token(key).await.is_ok(), "and the token");
    }

    #[tokio::test]
    async fn names_are_case_insensitive_and_released() {
        let hub = Hub::new(true, 8);
        let lease = hub.reserve_name("Alice").await.unwrap();
        assert!(hub.reserve_name("aLICE").await.is_err());
        assert!(hub.reserve_name("a1ice").await.is_err(), "a look-alike");
        drop(lease);
        assert!(hub.reserve_name("alice").await.is_ok());
    }

    #[tokio::test]
    async fn token_holds_follow_1upt() {
        let key = TokenKey::of("t");
        let exclusive = Hub::new(true, 8);
        let hold = exclusive.hold_token(key).await.unwrap();
        assert!(exclusive.hold_token(key).await.is_err());
        drop(hold);
        assert!(exclusive.hold_token(key).await.is_ok());
        assert_eq!(exclusive.stats().held_tokens, 0);

        let shared = Hub::new(false, 8);
        let _a = shared.hold_token(key).await.unwrap();
        let _b = shared.hold_token(key).await.unwrap();
    }

    #[tokio::test]
    async fn pages_settle_for_good() {
        let hub = Hub::new(true, 8);
        let page = hub
            .open_page("tok".into(), Duration::from_secs(60))
            .await
            .unwrap();
        let id = page.id().to_owned();
        assert_eq!(hub.view_page(&id, 2).await, PageView::Pending("tok".into()));
        assert_eq!(hub.view_page(&id, 2).await, PageView::Pending("tok".into()));
        assert_eq!(hub.view_page(&id, 2).await, PageView::TooManyViews);
        drop(page);
        assert_eq!(hub.view_page(&id, 2).await, PageView::Settled);
        assert_eq!(hub.view_page("nope", 2).await, PageView::Unknown);
    }

    #[tokio::test]
    async fn settled_pages_are_bounded() {
        let hub = Hub::new(true, 8);
        let first = hub
            .open_page("t".into(), Duration::from_secs(60))
            .await
            .unwrap()
            .id()
            .to_owned();
        for _ in 0..SETTLED_PAGES_KEPT {
            drop(
                hub.open_page("t".into(), Duration::from_secs(60))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(hub.view_page(&first, 1).await, PageView::Unknown);
        assert_eq!(
            hub.inner.login.lock().unwrap().settled_pages.len(),
            SETTLED_PAGES_KEPT
        );
    }

    /// Every header length (7-bit, 16-bit and 64-bit payload lengths) parses back as one
    /// final, unmasked text frame carrying exactly the text.
    #[test]
    fn payloads_are_whole_text_frames() {
        for len in [0, 125, 126, 200, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let payload = Payload::from(text.clone());
            let [head, body] = payload.wire();
            let mut wire = std::io::Cursor::new([head, body].concat());
            let (header, length) = FrameHeader::parse(&mut wire).unwrap().unwrap();
            assert!(header.is_final && header.mask.is_none(), "{len}");
            assert_eq!(header.opcode, OpCode::Data(Data::Text), "{len}");
            assert_eq!(length, len as u64);
            assert_eq!(wire.position() as usize, head.len());
            assert_eq!(body, text.as_bytes());
        }
    }

    #[tokio::test]
    async fn broadcast_skips_the_sender_and_drops_slow_consumers() {
        let hub = Hub::new(true, 2);
        let mut a = hub
            .join("a", leases(&hub, "a").await, Profile::default(), || Ok(()))
            .unwrap();
        let mut b = hub
            .join("b", leases(&hub, "b").await, Profile::default(), || Ok(()))
            .unwrap();
        assert_eq!(a.recv().await.unwrap(), r#"["join","b"]"#);
        hub.broadcast(
            a.id(),
            &ServerFrame::Message {
                from: "a".into(),
                text: "1".into(),
            },
        )
        .unwrap();
        assert!(a.try_recv().is_none());
        assert_eq!(b.recv().await.unwrap(), r#"["message","a","1"]"#);
        // b reads nothing more: its queue of 2 fills, and the third frame evicts it.
        for i in 0..3 {
            hub.broadcast(
                a.id(),
                &ServerFrame::Message {
                    from: "a".into(),
                    text: i.to_string(),
                },
            )
            .unwrap();
        }
        assert_eq!(a.recv().await.unwrap(), r#"["disconnect","b"]"#);
        assert_eq!(hub.stats().members, 1);
        assert!(
            hub.reserve_name("b").await.is_ok(),
            "the evicted member's name is free"
        );
        assert!(b.evicted().is_cancelled(), "the session is told");
        assert!(b.recv().await.is_some());
        assert!(b.recv().await.is_some());
        assert!(b.recv().await.is_none(), "an evicted member's queue ends");
        drop(b);
        assert!(a.try_recv().is_none(), "the eviction was announced once");
    }
}
