//! The hub: all state shared between connections, behind one small interface.
//!
//! Sessions ask the hub for a username, a token hold, a token page and a place in the room; each
//! comes back as a lease that gives it back when dropped (`leases`), so every way a connection
//! can end releases what it held. Fan-out lives here too (`room`): a broadcast is serialized
//! and framed once ([`Payload`]) and pushed once into the room's ring (`ring`), which every
//! receiver reads from its own cursor.
//!
//! What must hold beyond this process (names and tokens taken on other nodes, pages opened
//! through another node, frames for other nodes' members) the hub asks of its [`Backplane`]:
//! [`Local`] for a single server, another engine in cluster mode. The hub's code is the same for
//! both; what the other nodes cause comes back as [`Event`]s, which [`Hub::apply`] carries out.
//!
//! The room's other parts have files of their own: its recent messages (`history`), sessions
//! held for a resume (`held`), who is in it on every node (`lookup`), and what the other nodes
//! cause (`events`).
//!
//! Locks are `std::sync::Mutex`es held only for map operations and the fan-out loop, never
//! across an `.await`. Where both are taken, the room lock is taken before the login lock
//! (a member leaving releases its leases inside the room's critical section).

pub mod backplane;
mod events;
mod held;
mod history;
mod leases;
mod local;
mod lookup;
mod member;
mod payload;
mod ring;
mod room;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use clichat_proto::{HistoryEntry, ServerFrame};
use tokio_util::sync::CancellationToken;

pub use backplane::{Backplane, Event, Holdings, NodeRequest, NodeStatus, Unavailable};
pub use held::{HeldSession, RemoteHeld, ResumeRefused, Resumed};
pub use leases::{Leases, Membership, NameLease, PageLease, TokenHold};
pub use local::Local;
pub use member::{Kind, MemberInfo, Profile};
pub use payload::Payload;

use crate::auth::{self, TokenKey};
use crate::config::HistoryConfig;
use crate::history_db::now_ms;
use crate::names;
use history::Recent;
use ring::Cursor;
use room::{Dropped, Member, Room};

/// Shared state of one server: a cheap-to-clone handle.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Names and token holds: touched once or twice per login.
    login: Mutex<LoginState>,
    /// Who is in the room: touched by every broadcast.
    room: Mutex<Room>,
    next_id: AtomicU64,
    /// Set when the server shuts down: everyone is being closed, so departures are not
    /// announced (that would be N² deliveries for nobody).
    closing: AtomicBool,
    one_user_per_token: bool,
    /// How much history is kept and shown; `None`: history is off.
    history: Option<HistoryConfig>,
    backplane: Arc<dyn Backplane>,
}

/// Why the hub could not grant a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Someone (on any node) has it.
    #[error("taken")]
    Taken,
    /// The other nodes cannot be asked now.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why [`Hub::join`] refused a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    /// Another node was given the name or the token while this one was out of touch.
    Conflict,
    /// The login's check refused, with this refusal.
    Refused(String),
}

#[derive(Debug, Default)]
struct LoginState {
    /// Name keys of everyone connected or mid-login.
    names: HashSet<String>,
    /// Connections holding each token.
    holds: HashMap<TokenKey, u32>,
    /// Names and tokens this node held while out of touch with the others, and found taken by
    /// another node when it came back. A login holding one is refused at [`Hub::join`].
    lost_names: HashSet<String>,
    lost_holds: HashSet<TokenKey>,
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
    /// The other nodes cannot be asked now.
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
    /// Token pages waiting for `tokenauth` (opened here).
    pub pending_pages: usize,
    /// Sessions held for a resume (counted among the members).
    pub held_sessions: usize,
    /// Frames delivered to receivers (pushed to the room's ring for them) since the start.
    pub deliveries: u64,
    /// Members dropped as slow consumers since the start.
    pub queue_drops: u64,
}

impl Hub {
    /// A single server's hub, whose tokens are exclusive when `one_user_per_token` is set, and
    /// whose members may each have `queue_len` frames waiting.
    /// Its history is off.
    pub fn new(one_user_per_token: bool, queue_len: usize) -> Hub {
        Hub::with_backplane(one_user_per_token, queue_len, None, Arc::new(Local::new()))
    }

    /// As [`Hub::new`], keeping `history` (when it is on), and asking `backplane` what must hold
    /// beyond this process. What the other nodes cause comes from the backplane as [`Event`]s,
    /// for [`Hub::apply`].
    pub fn with_backplane(
        one_user_per_token: bool,
        queue_len: usize,
        history: Option<HistoryConfig>,
        backplane: Arc<dyn Backplane>,
    ) -> Hub {
        let recent = history.map(Recent::new);
        Hub {
            inner: Arc::new(Inner {
                login: Mutex::default(),
                room: Mutex::new(Room::new(Arc::clone(&backplane), recent, queue_len)),
                next_id: AtomicU64::new(0),
                closing: AtomicBool::new(false),
                one_user_per_token,
                history,
                backplane,
            }),
        }
    }

    /// Whether the room's history is kept (and may be granted to clients that ask).
    pub fn keeps_history(&self) -> bool {
        self.inner.history.is_some()
    }

    /// Starts the room's history from what was kept (before a restart, or by the other
    /// nodes), oldest first; messages not newer than the newest already here are skipped.
    pub fn remember(&self, kept: Vec<HistoryEntry>) {
        if let Some(recent) = self.room().recent.as_mut() {
            for entry in kept {
                recent.push(entry);
            }
        }
    }

    /// Drops the room's history, here and wherever it is kept (every node's, in a cluster).
    /// Numbers go on from where they were.
    pub fn clear_history(&self) {
        let mut room = self.room();
        if let Some(recent) = room.recent.as_mut() {
            recent.clear();
        }
        room.backplane.clear_history();
    }

    /// Sets `announce_presence_up_to`: joins and departures are announced while the room
    /// (this node's members, in a cluster), counting whoever joins or leaves, has at most
    /// `limit` members; `None` announces them always.
    pub fn announce_presence_up_to(&self, limit: Option<usize>) {
        self.room().announce_up_to = limit;
    }

    fn backplane(&self) -> &dyn Backplane {
        &*self.inner.backplane
    }

    /// Sends a request to the other nodes (none for a single server).
    pub fn request(&self, request: &NodeRequest) {
        self.backplane().request(request);
    }

    /// This node's name and link, when there are other nodes.
    pub fn node_status(&self) -> Option<NodeStatus<'_>> {
        self.backplane().status()
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
    /// (on any node) has a name that looks the same (one that shares a [`names::keys`] key).
    pub async fn reserve_name(&self, name: &str) -> Result<NameLease, Refused> {
        let keys = names::keys(name);
        let taken = |login: &LoginState| keys.iter().any(|key| login.names.contains(key));
        if taken(&self.login()) {
            // A held session of that name ends: its owner logs in afresh.
            let of_name =
                |member: &room::Member| member.leases.name.keys.iter().any(|k| keys.contains(k));
            if !self.end_held(of_name) {
                return Err(Refused::Taken);
            }
        }
        {
            let mut login = self.login();
            if taken(&login) {
                return Err(Refused::Taken);
            }
            login.names.extend(keys.iter().cloned());
        }
        // Made before asking the other nodes, so that a login abandoned meanwhile still
        // releases.
        let lease = NameLease {
            hub: self.clone(),
            keys,
        };
        for key in &lease.keys {
            if !self.backplane().claim_name(key).await? {
                return Err(Refused::Taken);
            }
        }
        Ok(lease)
    }

    /// Holds a generic token until the lease is dropped; refused if 1UPT is on and another
    /// connection (on any node) holds it.
    pub async fn hold_token(&self, key: TokenKey) -> Result<TokenHold, Refused> {
        let exclusive = self.inner.one_user_per_token;
        if exclusive && self.login().holds.contains_key(&key) {
            // A held session of that token ends: its owner logs in afresh.
            self.end_held(|member| member.profile.token == Some(key));
        }
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
        if self.inner.one_user_per_token && !self.backplane().claim_hold(key).await? {
            return Err(Refused::Taken);
        }
        Ok(hold)
    }

    /// Opens a token page showing `temp_token` under a fresh random id, for at most `ttl`.
    /// Dropping the lease settles the page for good.
    pub async fn open_page(&self, temp_token: String, ttl: Duration) -> Result<PageLease, Refused> {
        loop {
            // Settled by its lease from before the question: a login abandoned while it is
            // asked settles the page (the settling follows the opening).
            let mut lease = PageLease {
                hub: self.clone(),
                id: auth::generate_page_id(),
                token: temp_token.clone(),
                opened: true,
            };
            if self
                .backplane()
                .open_page(&lease.id, &temp_token, ttl)
                .await?
            {
                return Ok(lease);
            }
            // Another login has (or had) a page with that id: not ours to settle.
            lease.opened = false;
        }
    }

    /// What the page `id` shows now; a pending page shows its token `max_views` times, so that
    /// a person may reload it but nobody can scrape it endlessly. The page may belong to a
    /// login on any node.
    pub async fn view_page(&self, id: &str, max_views: u32) -> PageView {
        self.backplane().view_page(id, max_views).await
    }

    /// Adds an authenticated connection called `name` to the room and tells everyone else
    /// (`["join", name]`). Frames for it are read with [`Membership::ready`] and [`Membership::read`]. The room keeps
    /// `leases` while the connection is in it; leaving (dropping the membership, or being
    /// dropped as a slow consumer) releases them first and then announces
    /// `["disconnect", name]`, so that whoever hears of the departure may take the name and
    /// token at once.
    ///
    /// `admit` is asked under the room's lock, so that whatever it checks (the token is still
    /// configured and not banned) cannot change between the check and the join: a revocation
    /// or ban that removes the token's members after changing what `admit` reads either finds
    /// this member in the room or is seen by `admit`.
    ///
    /// With `history` (and history on), the member's messages carry their number and time, and
    /// [`Membership::take_history`] holds the room's recent messages as of the join: every
    /// message after them reaches the member, none before.
    ///
    /// # Errors
    /// The leases are released and [`JoinRefused::Conflict`] returned if another node was given
    /// the name or the token while this one was out of touch; [`JoinRefused::Refused`] if
    /// `admit` refused.
    pub fn join(
        &self,
        name: &str,
        leases: Leases,
        profile: Profile,
        history: bool,
        admit: impl FnOnce() -> Result<(), String>,
    ) -> Result<Membership, JoinRefused> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        let stamped = history && self.inner.history.is_some();
        let payload = Payload::from(ServerFrame::Join(name.to_owned()).encode());
        // Under the room lock, which `release_lost` holds too: a login is either refused here
        // or in the room when that looks.
        let mut room = self.room();
        if self.login().lost(&leases) {
            drop(room);
            return Err(JoinRefused::Conflict);
        }
        if let Err(reason) = admit() {
            drop(room);
            return Err(JoinRefused::Refused(reason));
        }
        // Under the room lock too: the member reads every frame pushed after the join.
        let reader = room.ring.reader();
        let cursor = Cursor::new(Arc::clone(&room.ring), Arc::clone(&reader), id, stamped);
        let member = Member {
            name: name.to_owned(),
            key: leases.name.keys[0].clone(),
            profile,
            stamped,
            resume: None,
            held: false,
            reader,
            leases,
            evicted: evicted.clone(),
            reason: Arc::clone(&reason),
        };
        room.backplane.joined(&member.key, &member.info(id));
        let recent = match &room.recent {
            Some(recent) if member.stamped => Some((recent.on_join(), true)),
            _ => None,
        };
        let newest = room.recent.as_ref().and_then(Recent::newest);
        room.insert(id, member);
        let dropped = if room.announces_presence(0) {
            room.fan_out(id, payload, true)
        } else {
            Dropped::none()
        };
        drop(room);
        dropped.log();
        Ok(Membership {
            hub: self.clone(),
            id,
            cursor,
            evicted,
            reason,
            welcome: Some(Box::new(leases::Welcome { recent, newest })),
            held: false,
        })
    }

    /// Removes `member` (found with [`Hub::find`]) from the room, on whichever node it is: its
    /// session is told to send `reason` as a refusal and close; everyone gets its departure.
    /// Returns whether it was here to remove; a member on another node is asked to leave, and
    /// `true` is returned.
    pub fn remove(&self, member: &MemberInfo, reason: &str) -> bool {
        match &member.node {
            Some(node) => {
                self.request(&NodeRequest::Remove {
                    node: node.clone(),
                    id: member.id,
                    reason: reason.to_owned(),
                });
                true
            }
            None => self.remove_here(member.id, reason).is_some(),
        }
    }

    /// Removes member `id` of this node, as [`Hub::remove`] does. Returns its name, or `None`
    /// if it is not in the room (any more).
    pub fn remove_here(&self, id: u64, reason: &str) -> Option<String> {
        let mut room = self.room();
        let (name, dropped) = room.remove(id, Some(reason), &self.inner.closing)?;
        drop(room);
        dropped.log();
        Some(name)
    }

    /// Removes every member that logged in with the token `key`, as [`Hub::remove`] does, here
    /// and on every other node. Returns the names of those removed here.
    pub fn remove_token(&self, key: &TokenKey, reason: &str) -> Vec<String> {
        self.request(&NodeRequest::RemoveToken {
            token: key.to_hex(),
            reason: reason.to_owned(),
        });
        self.remove_token_here(key, reason)
    }

    fn remove_token_here(&self, key: &TokenKey, reason: &str) -> Vec<String> {
        let ids: Vec<u64> = self
            .members()
            .into_iter()
            .filter(|member| member.profile.token.as_ref() == Some(key))
            .map(|member| member.id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.remove_here(id, reason))
            .collect()
    }

    /// Sends member `from`'s message (`name` said `text`) to every other member, here and on
    /// the other nodes, in the room's order. While history is on, the message is numbered and
    /// kept (and delivered with its number and time to those that asked for history). While
    /// the backplane cannot take it (the other nodes cannot be reached, or do not keep up), it
    /// is sent to nobody, kept nowhere, and refused. A member the room removed a moment ago
    /// (its session is being told) says nothing: the others have heard it leave.
    pub fn say(&self, from: u64, name: &str, text: String) -> Result<(), Unavailable> {
        if !self.backplane().accepts_messages() {
            return Err(Unavailable);
        }
        if self.inner.history.is_none() {
            let message = ServerFrame::Message {
                from: name.to_owned(),
                text,
                stamp: None,
            };
            let payload = Payload::from(message.encode());
            let mut room = self.room();
            if !room.members.contains_key(&from) {
                return Ok(());
            }
            let dropped = room.fan_out(from, payload, true);
            drop(room);
            dropped.log();
            return Ok(());
        }
        // Made before the room is locked; the numbered form needs the number, made under it.
        let message = ServerFrame::Message {
            from: name.to_owned(),
            text: text.clone(),
            stamp: None,
        };
        let plain = Payload::from(message.encode());
        let time_ms = now_ms();
        let mut room = self.room();
        if !room.members.contains_key(&from) {
            return Ok(());
        }
        let dropped = match room.backplane.number(from, name, &text, time_ms) {
            Some(entry) => room.said(from, entry, &plain),
            // Comes back numbered, as an event, in the order the nodes agreed on.
            None => Dropped::none(),
        };
        drop(room);
        dropped.log();
        Ok(())
    }

    /// Sends `frame` to every member but `from`, here and on the other nodes. The frame is
    /// serialized once. While the backplane cannot take it (the other nodes cannot be reached,
    /// or do not keep up), it is sent to nobody and refused.
    pub fn broadcast(&self, from: u64, frame: &ServerFrame) -> Result<(), Unavailable> {
        if !self.backplane().accepts_messages() {
            return Err(Unavailable);
        }
        let payload = Payload::from(frame.encode());
        let dropped = self.room().fan_out(from, payload, true);
        dropped.log();
        Ok(())
    }

    /// Marks the server as shutting down: from now on departures are not announced here (the
    /// other nodes still hear of them).
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Relaxed);
    }

    /// Once every session has ended: writes what is still queued for the other nodes and
    /// leaves them, waiting at most `within`.
    pub async fn leave(&self, within: Duration) {
        self.backplane().leave(within).await;
    }

    /// What the hub holds now.
    pub fn stats(&self) -> HubStats {
        let room = self.room();
        let (names, held_tokens) = {
            let login = self.login();
            (login.names.len(), login.holds.len())
        };
        HubStats {
            members: room.members.len(),
            held_sessions: room.held.len(),
            deliveries: room.deliveries,
            queue_drops: room.queue_drops,
            names,
            held_tokens,
            pending_pages: self.backplane().pending_pages(),
        }
    }
}

impl Member {
    fn info(&self, id: u64) -> MemberInfo {
        MemberInfo {
            node: None,
            id,
            name: self.name.clone(),
            profile: self.profile.clone(),
        }
    }
}

impl LoginState {
    /// Whether another node took one of these leases while this one was out of touch.
    fn lost(&self, leases: &Leases) -> bool {
        leases
            .name
            .keys
            .iter()
            .any(|key| self.lost_names.contains(key))
            || leases
                .token
                .as_ref()
                .is_some_and(|hold| self.lost_holds.contains(&hold.key))
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

    /// `name` in the room, by the plain protocol.
    async fn member(hub: &Hub, name: &str) -> Membership {
        let leases = leases(hub, name).await;
        hub.join(name, leases, Profile::default(), false, || Ok(()))
            .unwrap()
    }

    #[tokio::test]
    async fn departures_are_not_announced_while_closing() {
        let hub = Hub::new(true, 8);
        let mut a = member(&hub, "a").await;
        let b = member(&hub, "b").await;
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
        let refused = hub.join("a", leases, Profile::default(), false, || {
            Err("banned".into())
        });
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
    async fn broadcast_skips_the_sender_and_drops_slow_consumers() {
        let hub = Hub::new(true, 2);
        let mut a = member(&hub, "a").await;
        let mut b = member(&hub, "b").await;
        assert_eq!(a.recv().await.unwrap(), r#"["join","b"]"#);
        hub.broadcast(
            a.id(),
            &ServerFrame::Message {
                from: "a".into(),
                text: "1".into(),
                stamp: None,
            },
        )
        .unwrap();
        assert!(a.try_recv().is_none());
        assert_eq!(b.recv().await.unwrap(), r#"["message","a","1"]"#);
        // b reads nothing more: the ring of 2 fills, and the third frame evicts it. a, whose
        // own messages they are, never lags.
        for i in 0..3 {
            hub.broadcast(
                a.id(),
                &ServerFrame::Message {
                    from: "a".into(),
                    text: i.to_string(),
                    stamp: None,
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
        assert!(
            b.recv().await.is_none(),
            "an evicted member reads nothing more"
        );
        drop(b);
        assert!(a.try_recv().is_none(), "the eviction was announced once");
    }

    #[tokio::test]
    async fn a_sender_whose_own_messages_push_out_a_frame_it_has_not_read_is_dropped() {
        let hub = Hub::new(true, 2);
        let a = member(&hub, "a").await;
        let mut b = member(&hub, "b").await;
        let say = |from: &Membership, text: &str| {
            hub.broadcast(
                from.id(),
                &ServerFrame::Message {
                    from: "x".into(),
                    text: text.into(),
                    stamp: None,
                },
            )
            .unwrap();
        };
        // a has not read b's join; its own messages fill the ring of 2 behind it.
        say(&a, "1");
        assert!(a.falls_behind(), "its session would write now");
        assert!(!a.evicted().is_cancelled());
        assert_eq!(b.recv().await.unwrap(), r#"["message","x","1"]"#);
        say(&a, "2");
        assert!(
            a.evicted().is_cancelled(),
            "the join it never read was pushed out: a slow consumer, not a silent gap"
        );
        assert_eq!(b.recv().await.unwrap(), r#"["message","x","2"]"#);
        assert_eq!(b.recv().await.unwrap(), r#"["disconnect","a"]"#);
        let mut a = a;
        assert!(a.removed());
        assert!(
            a.try_recv().is_none(),
            "nothing after the gap (the disconnect follows it)"
        );
        hub.say(a.id(), "a", "after it left".into()).unwrap();
        assert!(b.try_recv().is_none(), "a removed member says nothing");
    }
}
