//! The hub: all state shared between connections, behind one small interface.
//!
//! Sessions ask the hub for a username, a token hold, a token page and a place in the room; each
//! comes back as a lease that gives it back when dropped, so every way a connection can end
//! (refusal, timeout, close, error, panic) releases what it held. Fan-out lives here too: a
//! broadcast is serialized once and the same bytes are queued for every receiver.
//!
//! This is the seam for a distributed backend: a cluster hub would implement the same leases and
//! broadcast over a broker, and session code would not change.
//!
//! Locks are `std::sync::Mutex`es held only for map operations and the fan-out loop, never
//! across an `.await`. Where both are taken, the room lock is taken before the login lock
//! (a member leaving releases its leases inside the room's critical section).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::extract::ws::Utf8Bytes;
use clichat_proto::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, TokenKey};
use crate::config::Role;

/// A serialized frame, shared by every receiver of a broadcast (cloning it is a reference-count
/// increment).
pub type Payload = Utf8Bytes;

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
    pending_pages: HashMap<String, PendingPage>,
    settled_pages: HashSet<String>,
    settled_order: VecDeque<String>,
}

#[derive(Debug, Default)]
struct Room {
    members: HashMap<u64, Member>,
    /// Frames queued for receivers, ever (counted under the lock the fan-out holds anyway).
    deliveries: u64,
    /// Members dropped as slow consumers, ever.
    queue_drops: u64,
}

#[derive(Debug)]
struct Member {
    name: String,
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
    /// The connection's id.
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
        Hub {
            inner: Arc::new(Inner {
                login: Mutex::default(),
                room: Mutex::default(),
                next_id: AtomicU64::new(0),
                closing: AtomicBool::new(false),
                one_user_per_token,
                queue_len,
            }),
        }
    }

    fn login(&self) -> MutexGuard<'_, LoginState> {
        // A panic while holding the lock cannot leave these maps half-updated in a way that
        // matters more than refusing all further logins would, so recover the guard.
        self.inner.login.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn room(&self) -> MutexGuard<'_, Room> {
        self.inner.room.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `name` (compared case-insensitively) until the lease is dropped; `None` if
    /// someone connected or mid-login has it.
    pub fn reserve_name(&self, name: &str) -> Option<NameLease> {
        let folded = name.to_lowercase();
        self.login()
            .names
            .insert(folded.clone())
            .then(|| NameLease {
                hub: self.clone(),
                folded,
            })
    }

    /// Holds a generic token until the lease is dropped; `None` if 1UPT is on and another
    /// connection holds it.
    pub fn hold_token(&self, key: TokenKey) -> Option<TokenHold> {
        let mut login = self.login();
        let count = login.holds.entry(key).or_insert(0);
        if self.inner.one_user_per_token && *count > 0 {
            return None;
        }
        *count += 1;
        Some(TokenHold {
            hub: self.clone(),
            key,
        })
    }

    /// Opens a token page showing `temp_token` under a fresh random id. Dropping the lease
    /// settles the page for good.
    pub fn open_page(&self, temp_token: String) -> PageLease {
        let mut login = self.login();
        let id = loop {
            let id = auth::generate_page_id();
            if !login.pending_pages.contains_key(&id) && !login.settled_pages.contains(&id) {
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
            token: temp_token,
        }
    }

    /// What the page `id` shows now; a pending page shows its token `max_views` times, so that
    /// a person may reload it but nobody can scrape it endlessly.
    pub fn view_page(&self, id: &str, max_views: u32) -> PageView {
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
    pub fn join(&self, name: &str, leases: Leases, profile: Profile) -> Membership {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.queue_len);
        let evicted = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        let member = Member {
            name: name.to_owned(),
            profile,
            tx,
            leases,
            evicted: evicted.clone(),
            reason: Arc::clone(&reason),
        };
        let payload = Payload::from(ServerFrame::Join(name.to_owned()).encode());
        let mut room = self.room();
        room.members.insert(id, member);
        let dropped = room.fan_out(id, payload);
        drop(room);
        log_dropped(dropped);
        Membership {
            hub: self.clone(),
            id,
            rx,
            evicted,
            reason,
        }
    }

    /// Everyone in the room, in the order they joined.
    pub fn members(&self) -> Vec<MemberInfo> {
        let room = self.room();
        let mut members: Vec<MemberInfo> = room
            .members
            .iter()
            .map(|(&id, member)| MemberInfo {
                id,
                name: member.name.clone(),
                profile: member.profile.clone(),
            })
            .collect();
        drop(room);
        members.sort_by_key(|member| member.id);
        members
    }

    /// The member called `name` (compared case-insensitively, as names are reserved).
    pub fn find(&self, name: &str) -> Option<MemberInfo> {
        let folded = name.to_lowercase();
        self.members()
            .into_iter()
            .find(|member| member.name.to_lowercase() == folded)
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

    /// Removes every member that logged in with the token `key`, as [`Hub::expel`] does.
    /// Returns their names.
    pub fn expel_token(&self, key: &TokenKey, reason: &str) -> Vec<String> {
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

    /// Sends `frame` to every member but `from`. The frame is serialized once.
    pub fn broadcast(&self, from: u64, frame: &ServerFrame) {
        let payload = Payload::from(frame.encode());
        let dropped = self.room().fan_out(from, payload);
        log_dropped(dropped);
    }

    /// Marks the server as shutting down: from now on departures are not announced.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Relaxed);
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
    /// Queues `payload` for every member but `except`. A member whose queue is full is a slow
    /// consumer: it is removed from the room at once (its leases released, its session told
    /// through its eviction token) and its disconnect is announced like any other. Returns the
    /// dropped members' ids and names, to be logged once the room is unlocked.
    #[must_use]
    fn fan_out(&mut self, except: u64, payload: Payload) -> Vec<(u64, String)> {
        let mut slow = Vec::new();
        let mut dropped = Vec::new();
        self.deliver(except, &payload, &mut slow);
        while let Some(id) = slow.pop() {
            if let Some(member) = self.members.remove(&id) {
                self.queue_drops += 1;
                member.evicted.cancel();
                let name = member.leave();
                let bye = Payload::from(ServerFrame::Disconnect(name.clone()).encode());
                self.deliver(id, &bye, &mut slow);
                dropped.push((id, name));
            }
        }
        dropped
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
        let name = member.leave();
        if closing.load(Ordering::Relaxed) {
            return Some((name, Vec::new()));
        }
        let bye = Payload::from(ServerFrame::Disconnect(name.clone()).encode());
        let dropped = self.fan_out(id, bye);
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
        tracing::warn!(id, %name, "outbound queue full; dropped a slow consumer");
    }
}

impl Member {
    /// Releases the member's leases and gives back its name for the announcement.
    fn leave(self) -> String {
        drop(self.leases);
        self.name
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
        self.hub.login().names.remove(&self.folded);
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
            }
        }
    }
}

/// A token page waiting for `tokenauth`; dropping it settles the page (410 from then on).
#[derive(Debug)]
pub struct PageLease {
    hub: Hub,
    id: String,
    token: String,
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
        login.settled_order.push_back(std::mem::take(&mut self.id));
        if login.settled_order.len() > SETTLED_PAGES_KEPT {
            if let Some(old) = login.settled_order.pop_front() {
                login.settled_pages.remove(&old);
            }
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

    fn leases(hub: &Hub, name: &str) -> Leases {
        Leases {
            name: hub.reserve_name(name).unwrap(),
            token: None,
        }
    }

    #[tokio::test]
    async fn departures_are_not_announced_while_closing() {
        let hub = Hub::new(true, 8);
        let mut a = hub.join("a", leases(&hub, "a"), Profile::default());
        let b = hub.join("b", leases(&hub, "b"), Profile::default());
        assert_eq!(a.recv().await.unwrap(), r#"["join","b"]"#);
        hub.close();
        drop(b);
        assert!(a.try_recv().is_none());
        assert!(hub.reserve_name("b").is_some(), "leases are still released");
    }

    #[test]
    fn names_are_case_insensitive_and_released() {
        let hub = Hub::new(true, 8);
        let lease = hub.reserve_name("Alice").unwrap();
        assert!(hub.reserve_name("aLICE").is_none());
        drop(lease);
        assert!(hub.reserve_name("alice").is_some());
    }

    #[test]
    fn token_holds_follow_1upt() {
        let key = TokenKey::of("t");
        let exclusive = Hub::new(true, 8);
        let hold = exclusive.hold_token(key).unwrap();
        assert!(exclusive.hold_token(key).is_none());
        drop(hold);
        assert!(exclusive.hold_token(key).is_some());
        assert_eq!(exclusive.stats().held_tokens, 0);

        let shared = Hub::new(false, 8);
        let _a = shared.hold_token(key).unwrap();
        let _b = shared.hold_token(key).unwrap();
    }

    #[test]
    fn pages_settle_for_good() {
        let hub = Hub::new(true, 8);
        let page = hub.open_page("tok".into());
        let id = page.id().to_owned();
        assert_eq!(hub.view_page(&id, 2), PageView::Pending("tok".into()));
        assert_eq!(hub.view_page(&id, 2), PageView::Pending("tok".into()));
        assert_eq!(hub.view_page(&id, 2), PageView::TooManyViews);
        drop(page);
        assert_eq!(hub.view_page(&id, 2), PageView::Settled);
        assert_eq!(hub.view_page("nope", 2), PageView::Unknown);
    }

    #[test]
    fn settled_pages_are_bounded() {
        let hub = Hub::new(true, 8);
        let first = hub.open_page("t".into()).id().to_owned();
        for _ in 0..SETTLED_PAGES_KEPT {
            drop(hub.open_page("t".into()));
        }
        assert_eq!(hub.view_page(&first, 1), PageView::Unknown);
        assert_eq!(
            hub.inner.login.lock().unwrap().settled_pages.len(),
            SETTLED_PAGES_KEPT
        );
    }

    #[tokio::test]
    async fn broadcast_skips_the_sender_and_drops_slow_consumers() {
        let hub = Hub::new(true, 2);
        let mut a = hub.join("a", leases(&hub, "a"), Profile::default());
        let mut b = hub.join("b", leases(&hub, "b"), Profile::default());
        assert_eq!(a.recv().await.unwrap(), r#"["join","b"]"#);
        hub.broadcast(
            a.id(),
            &ServerFrame::Message {
                from: "a".into(),
                text: "1".into(),
            },
        );
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
            );
        }
        assert_eq!(a.recv().await.unwrap(), r#"["disconnect","b"]"#);
        assert_eq!(hub.stats().members, 1);
        assert!(
            hub.reserve_name("b").is_some(),
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
