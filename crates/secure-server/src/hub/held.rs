//! Held sessions (extension `resume`): a member whose connection was lost stays in the room,
//! its name and token still reserved and nobody told it left, until it is resumed with its
//! resume token, replaced by a fresh login of the same name or token, or its window passes (then
//! its departure is announced).
//!
//! A held member keeps its place in the room's map, marked held, so fan-out neither wakes it nor
//! counts it as falling behind; what it missed is the room's history after the number the
//! resume gives, and a resume gives it a fresh place in the room's ring.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::leases::Welcome;
use super::ring::Cursor;
use super::room::Member;
use super::{Hub, Kind, Leases, Membership, Profile};
use crate::auth::TokenKey;
use crate::config::Role;
use crate::history_db::now_ms;

/// Why [`Hub::resume`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeRefused {
    /// No session is held under that token (never, used, or its window passed).
    Unknown,
    /// The session's token was revoked or banned meanwhile: its departure is announced now.
    Refused(String),
}

/// A session taken back by [`Hub::resume`].
#[derive(Debug)]
pub struct Resumed {
    /// Its place in the room, as before; [`Membership::take_history`] holds what it missed.
    pub membership: Membership,
    /// Its name.
    pub name: String,
    /// Who it is.
    pub profile: Profile,
}

/// A held session as a restarted single server keeps it (`<config stem>.sessions.json`): what
/// it takes to hold it again. The resume token is kept as its key (SHA-256), never itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSession {
    /// The resume token's key, as hex.
    pub resume: String,
    /// The member's name.
    pub name: String,
    /// A user or a bot.
    pub kind: Kind,
    /// Its role as it logged in.
    pub role: Role,
    /// Its token's key, as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Its token's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Whether it asked for numbered messages.
    pub stamped: bool,
    /// When the hold ends, Unix milliseconds.
    pub until_ms: u64,
}

/// A session held by a node of a cluster, as the others can take it (`clichat:held:<key>` in
/// Redis): who holds it, and what its names and token are claimed as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteHeld {
    /// The node that holds it.
    pub node: String,
    /// The member's id there.
    pub id: u64,
    /// Its name's keys, as claimed.
    pub keys: Vec<String>,
    /// Its token's key (hex), when it holds it under 1UPT.
    #[serde(default)]
    pub hold: Option<String>,
    /// The session.
    #[serde(flatten)]
    pub session: HeldSession,
}

impl Membership {
    /// Sets the key of this member's current resume token: the one a resume must present (an
    /// earlier one no longer works).
    pub fn set_resume(&self, key: TokenKey) {
        let mut room = self.hub.room();
        if let Some(member) = room.members.get_mut(&self.id) {
            member.resume = Some(Box::new(key));
        }
    }

    /// Holds this session for `window` instead of leaving the room, if it has a resume token
    /// and is still in the room; otherwise leaves as a drop does.
    pub fn hold(mut self, window: Duration) {
        let id = self.id;
        let mut room = self.hub.room();
        let key = match room.members.get_mut(&id) {
            Some(member) if member.resume.is_some() => {
                member.held = true;
                member.resume.as_deref().copied()
            }
            _ => None,
        };
        let Some(key) = key else {
            drop(room);
            return; // Dropped: leaves the room.
        };
        room.held.insert(key, id);
        if let (Some(status), Some(member)) = (room.backplane.status(), room.members.get(&id)) {
            let until_ms = now_ms().saturating_add(u64::try_from(window.as_millis()).unwrap_or(0));
            let record = RemoteHeld {
                node: status.node.to_owned(),
                id,
                keys: member.leases.name.keys.clone(),
                hold: member
                    .leases
                    .token
                    .as_ref()
                    .filter(|_| self.hub.inner.one_user_per_token)
                    .map(|hold| hold.key.to_hex()),
                session: member.held_session(key, until_ms),
            };
            let stopping = self.hub.inner.closing.load(Ordering::Relaxed);
            room.backplane.held(&key, &record, window, stopping);
        }
        drop(room);
        self.held = true;
        self.hub.expire_after(id, key, window);
    }
}

impl Hub {
    /// Ends the hold of member `id` (resume token `key`) after `window`, announcing its
    /// departure, unless it was resumed or removed meanwhile.
    fn expire_after(&self, id: u64, key: TokenKey, window: Duration) {
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            let mut room = hub.room();
            if room.held.get(&key) != Some(&id) {
                return;
            }
            let left = room.remove(id, None, &hub.inner.closing);
            drop(room);
            if let Some((name, dropped)) = left {
                dropped.log();
                tracing::info!(id, ?name, "held session expired");
            }
        });
    }

    /// Takes back the session held under the resume token `key`, with the messages numbered
    /// after `since` (if it asks for `history`). `admit` is asked under the room's lock, as at a
    /// join: a session whose token was revoked or banned meanwhile is refused, and its departure
    /// announced.
    ///
    /// # Errors
    /// [`ResumeRefused`].
    pub async fn resume(
        &self,
        key: &TokenKey,
        since: u64,
        history: bool,
        admit: impl FnOnce(&str, &Profile) -> Result<(), String>,
    ) -> Result<Resumed, ResumeRefused> {
        let here = self.room().held.contains_key(key);
        if !here {
            // Held by another node, perhaps: taken over, name, token and all.
            match self.backplane().take_held(key).await {
                Ok(Some(record)) => self.adopt(*key, record),
                _ => return Err(ResumeRefused::Unknown),
            }
        }
        let mut room = self.room();
        let ring = Arc::clone(&room.ring);
        let id = room.held.remove(key).ok_or(ResumeRefused::Unknown)?;
        room.backplane.unheld(key);
        let Some(member) = room.members.get_mut(&id) else {
            return Err(ResumeRefused::Unknown);
        };
        member.held = false;
        member.resume = None;
        if let Err(reason) = admit(&member.name, &member.profile) {
            let left = room.remove(id, None, &self.inner.closing);
            drop(room);
            if let Some((_, dropped)) = left {
                dropped.log();
            }
            return Err(ResumeRefused::Refused(reason));
        }
        let evicted = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        // A fresh place in the ring, under the room lock: what was missed comes from history.
        let reader = ring.reader();
        member.reader = Arc::clone(&reader);
        member.evicted = evicted.clone();
        member.reason = Arc::clone(&reason);
        let (name, profile) = (member.name.clone(), member.profile.clone());
        let stamped = history && self.inner.history.is_some();
        let cursor = Cursor::new(ring, reader, id, stamped);
        room.set_stamped(id, stamped);
        let recent = match &room.recent {
            Some(recent) if stamped => Some(recent.since(since, &name)),
            _ => None,
        };
        let newest = room.recent.as_ref().and_then(|recent| recent.newest());
        drop(room);
        let membership = Membership {
            hub: self.clone(),
            id,
            cursor,
            evicted,
            reason,
            welcome: Some(Box::new(Welcome { recent, newest })),
            held: false,
        };
        Ok(Resumed {
            membership,
            name,
            profile,
        })
    }

    /// Holds here a session another node held, whose names and token this node was just given
    /// (by `take_held`): in the room without a word, as it never left.
    fn adopt(&self, key: TokenKey, record: RemoteHeld) {
        let RemoteHeld {
            keys,
            hold,
            session,
            ..
        } = record;
        {
            let mut login = self.login();
            login.names.extend(keys.iter().cloned());
            if let Some(hold) = hold.as_deref().and_then(TokenKey::from_hex) {
                *login.holds.entry(hold).or_insert(0) += 1;
            }
        }
        let token = session.token.as_deref().and_then(TokenKey::from_hex);
        let leases = Leases {
            name: super::NameLease {
                hub: self.clone(),
                keys,
            },
            token: hold
                .as_deref()
                .and_then(TokenKey::from_hex)
                .map(|key| super::TokenHold {
                    hub: self.clone(),
                    key,
                }),
        };
        self.insert_held(key, session, token, leases);
    }

    /// Forgets held session `id` without a word: another node resumed it, and holds its name
    /// and token now (their releases here change nothing there).
    pub(super) fn forget_held(&self, id: u64) {
        let mut room = self.room();
        if room.members.get(&id).is_some_and(|member| member.held) {
            if let Some(member) = room.take(id) {
                let left = member.leave();
                tracing::info!(id, name = ?left.name, "held session resumed on another node");
            }
        }
    }

    /// Ends a held session that `matches` (a fresh login takes its name or token: its owner
    /// lost the resume token), announcing its departure. Returns whether there was one.
    pub(super) fn end_held(&self, matches: impl Fn(&Member) -> bool) -> bool {
        let mut room = self.room();
        let found = room
            .members
            .iter()
            .find(|(_, member)| member.held && matches(member))
            .map(|(&id, _)| id);
        let Some(id) = found else {
            return false;
        };
        let left = room.remove(id, None, &self.inner.closing);
        drop(room);
        if let Some((name, dropped)) = left {
            dropped.log();
            tracing::info!(id, ?name, "held session replaced by a fresh login");
        }
        true
    }

    /// The sessions held now, for a single server that stops to keep for its restart.
    pub fn held_sessions(&self, window: Duration) -> Vec<HeldSession> {
        let until_ms = now_ms().saturating_add(u64::try_from(window.as_millis()).unwrap_or(0));
        let room = self.room();
        room.held
            .iter()
            .filter_map(|(key, id)| Some(room.members.get(id)?.held_session(*key, until_ms)))
            .collect()
    }

    /// Holds again a session a single server kept across its restart (its window counted from
    /// when it stopped). Sessions whose window passed, or whose name or token is taken, are
    /// skipped. Nobody is told: the room never heard it left.
    pub async fn restore_held(&self, session: HeldSession) -> bool {
        let left = session.until_ms.saturating_sub(now_ms());
        let Some(key) = TokenKey::from_hex(&session.resume) else {
            return false;
        };
        if left == 0 {
            return false;
        }
        let Ok(name) = self.reserve_name(&session.name).await else {
            return false;
        };
        let token = session.token.as_deref().and_then(TokenKey::from_hex);
        let hold = match (session.kind, token) {
            (Kind::User, Some(token)) => match self.hold_token(token).await {
                Ok(hold) => Some(hold),
                Err(_) => return false,
            },
            _ => None,
        };
        let window = Duration::from_millis(left);
        let id = self.insert_held(key, session, token, Leases { name, token: hold });
        self.expire_after(id, key, window);
        true
    }

    /// Puts a held session in the room, as it was when its connection was lost; returns its
    /// id here.
    fn insert_held(
        &self,
        key: TokenKey,
        session: HeldSession,
        token: Option<TokenKey>,
        leases: Leases,
    ) -> u64 {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut room = self.room();
        // A place in the ring nobody reads: the session has no connection.
        let member = Member {
            name: session.name.clone(),
            profile: Profile {
                kind: session.kind,
                role: session.role,
                token,
                label: session.label,
                peer: None,
            },
            stamped: session.stamped && self.inner.history.is_some(),
            resume: Some(Box::new(key)),
            held: true,
            reader: room.ring.reader(),
            evicted: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
            key: leases.name.keys[0].clone(),
            leases,
        };
        room.backplane.joined(&member.key, &member.info(id));
        room.insert(id, member);
        room.held.insert(key, id);
        id
    }
}

impl Member {
    /// This member as a held session, under the resume token key `key`, held until `until_ms`.
    fn held_session(&self, key: TokenKey, until_ms: u64) -> HeldSession {
        HeldSession {
            resume: key.to_hex(),
            name: self.name.clone(),
            kind: self.profile.kind,
            role: self.profile.role,
            token: self.profile.token.map(|token| token.to_hex()),
            label: self.profile.label.clone(),
            stamped: self.stamped,
            until_ms,
        }
    }
}
