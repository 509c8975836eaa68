//! The backplane: what the hub needs from the world beyond this process, behind one trait.
//!
//! The hub keeps its members and their queues in memory, and decides every question it can
//! answer alone. What must be the same on every node of a server (a name taken anywhere, a
//! token held anywhere, a token page opened on one node and viewed through another, a frame for
//! the whole room) it asks of its backplane. A single server's backplane is [`Local`]: every
//! claim is granted (the hub's own maps already refused a local conflict), pages live in
//! memory, and there are no other nodes. Cluster mode has another engine, in its own module,
//! that shares these through Redis.
//!
//! What other nodes cause arrives as a stream of [`Event`]s, in the order the nodes caused it,
//! which the server consumes (`Hub::apply` for the room's, the ban list for bans); a backplane
//! never calls into the hub.
//!
//! Guarantees every engine gives:
//! - a claim granted here is not granted to anyone else until it is released (or, in a cluster,
//!   until this node is declared dead, which the hub then hears of as [`Event::Lost`]);
//! - what [`Backplane::publish`] is given reaches every other node's members at most once, in the
//!   order it was given; a backplane that cannot take it says so before
//!   ([`Backplane::accepts_messages`]) rather than lose it;
//! - releases and departures given before a claim or frame are written before it.
//!
//! [`Local`]: super::Local

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use clichat_proto::HistoryEntry;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{MemberInfo, PageView, Payload, RemoteHeld};
use crate::auth::TokenKey;

/// A future a backplane returns: boxed, so that the trait can be used as `dyn Backplane`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The other nodes cannot be asked now (cluster mode, while its link is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the other nodes cannot be reached")]
pub struct Unavailable;

/// This node as its backplane sees it: for status reports and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStatus<'a> {
    /// This node's name among the others.
    pub node: &'a str,
    /// Whether the other nodes can be reached now.
    pub up: bool,
}

/// How a member's departure is told to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Departure {
    /// With this `disconnect` frame, once (however many paths report it).
    Announced(Payload),
    /// Without an announcement (the room is past `announce_presence_up_to`).
    Silent,
}

/// A request this node makes of the other nodes; it reaches them as [`Event`]s. On the wire
/// between nodes (JSON tagged by `op`) the removals keep the names earlier versions used
/// (`expel`, `expeltoken`), so that nodes of both can share a cluster during a rolling upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum NodeRequest {
    /// Node `node` should remove its member `id`, telling it `reason`.
    #[serde(rename = "expel")]
    Remove {
        /// The member's node.
        node: String,
        /// The member's id there.
        id: u64,
        /// The refusal to send it.
        reason: String,
    },
    /// Every node should remove the members that logged in with this token (hex key).
    #[serde(rename = "expeltoken")]
    RemoveToken {
        /// The token's key, as [`TokenKey::to_hex`] writes it.
        token: String,
        /// The refusal to send them.
        reason: String,
    },
    /// Every node should refuse this token until the ban ends (and keep it in its ban list).
    Ban {
        /// The ban.
        ban: crate::bans::Ban,
    },
    /// Every node should forget the room's history (the kept copy is already gone).
    #[serde(rename = "clearhistory")]
    ClearHistory,
    /// Node `node` should forget its held session `id` without a word: another node resumed it
    /// (and has its name and token now).
    Forget {
        /// The node that held it.
        node: String,
        /// The member's id there.
        id: u64,
    },
    /// Every node should lift its bans of these tokens (hex keys), and of these logins without
    /// a token (by the name banned).
    Unban {
        /// The tokens' keys.
        tokens: Vec<String>,
        /// The names of the logins without a token.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
}

/// What the hub holds, as a backplane re-claims it after losing touch with the other nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Name keys of members and of logins under way.
    pub names: Vec<String>,
    /// Held tokens (under 1UPT).
    pub holds: Vec<TokenKey>,
    /// The members: their name keys and who they are.
    pub members: Vec<(String, MemberInfo)>,
}

/// What the other nodes caused, in the order they caused it.
#[derive(Debug)]
pub enum Event {
    /// A frame another node's member caused, for every member here.
    Deliver(Payload),
    /// A message of the room, numbered, for every member here but its sender (`sender`: its id,
    /// when it was this node's member). Only when the backplane numbers messages itself
    /// ([`Backplane::number`] answered `None`).
    Said {
        /// This node's member who said it, if it was one.
        sender: Option<u64>,
        /// The message.
        entry: HistoryEntry,
    },
    /// The room's history as kept beyond this node, oldest first, when the node starts: for the
    /// hub to start from (nothing is delivered).
    Recent(Vec<HistoryEntry>),
    /// A request of another node (a removal here, a ban, an unban).
    Request(NodeRequest),
    /// The backplane is re-claiming what this node holds: answer with it.
    Holdings(oneshot::Sender<Holdings>),
    /// While this node was out of touch, other nodes took these names (keys) and tokens: close
    /// their holders here and refuse the logins under way with them; answer with the name keys
    /// of the members removed.
    Lost {
        /// Name keys taken elsewhere.
        names: Vec<String>,
        /// Tokens taken elsewhere.
        holds: Vec<TokenKey>,
        /// The name keys of the members removed here.
        removed: oneshot::Sender<Vec<String>>,
    },
}

/// What the room needs beyond this process. See the module's documentation for what every
/// engine guarantees.
pub trait Backplane: Send + Sync + std::fmt::Debug {
    /// This node's name and link, when there are other nodes.
    fn status(&self) -> Option<NodeStatus<'_>>;

    /// Claims a name (by its key) on every other node: `Ok(false)` if another has it.
    fn claim_name<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>>;

    /// Gives a claimed name back. Called under the hub's login lock, so that a claim of the
    /// same name made after this release here follows it everywhere.
    fn release_name(&self, key: String);

    /// Claims a token (under 1UPT) on every other node: `Ok(false)` if another holds it.
    fn claim_hold(&self, key: TokenKey) -> BoxFuture<'_, Result<bool, Unavailable>>;

    /// Gives a held token back; called under the hub's login lock, as names are.
    fn release_hold(&self, key: TokenKey);

    /// Opens the token page `id` showing `token`, for at most `ttl`: `Ok(false)` if the id is
    /// taken (pending or settled), anywhere.
    fn open_page<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Unavailable>>;

    /// What page `id` shows now, counting this view (a pending page shows its token at most
    /// `max_views` times), wherever it was opened.
    fn view_page<'a>(&'a self, id: &'a str, max_views: u32) -> BoxFuture<'a, PageView>;

    /// Settles page `id` for good: it answers [`PageView::Settled`] from now on (for a while).
    fn settle_page(&self, id: String);

    /// Pages opened here and not settled yet.
    fn pending_pages(&self) -> usize;

    /// Whether a frame for the room may be published now (the other nodes can be reached and
    /// keep up). A message the backplane cannot take is refused, never lost.
    fn accepts_messages(&self) -> bool;

    /// Sends a frame one of this node's members caused to every other node's members. Called
    /// under the room's lock: frames leave in the order the room delivered them here.
    fn publish(&self, frame: Payload);

    /// Gives a message of this node's member `sender` its place in the room's history, which
    /// keeps it (while history is on). Called under the room's lock. `Some`: numbered and kept
    /// now, for the hub to deliver here at once (a single server). `None`: the order is decided
    /// beyond this node, and the message comes back numbered, as [`Event::Said`], to every node
    /// (this one included) in that order.
    fn number(&self, sender: u64, from: &str, text: &str, time_ms: u64) -> Option<HistoryEntry>;

    /// Drops every message kept, for every node (numbers go on from where they were).
    fn clear_history(&self);

    /// A session is held here for a resume, for `window`: another node may take it. `stopping`:
    /// this node is shutting down, so the others must end the hold if nobody resumes it (and
    /// this node's leaving must not announce it).
    fn held(&self, key: &TokenKey, record: &RemoteHeld, window: Duration, stopping: bool);

    /// The session held here under `key` is not any more (resumed here, or ended).
    fn unheld(&self, key: &TokenKey);

    /// Takes the session another node holds under the resume token key `key`: its name and
    /// token become this node's, and its node forgets it. `Ok(None)`: no node holds it.
    fn take_held<'a>(
        &'a self,
        key: &'a TokenKey,
    ) -> BoxFuture<'a, Result<Option<RemoteHeld>, Unavailable>>;

    /// A member joined here: the other nodes can find it from now on.
    fn joined(&self, key: &str, member: &MemberInfo);

    /// A member left here (by itself or removed); the other nodes hear of it as `departure`
    /// says.
    fn departed(&self, key: String, departure: Departure);

    /// The member whose name has this key, on another node (`None`: on none of them).
    fn find<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<MemberInfo>, Unavailable>>;

    /// The members of every other node, each node's in the order they joined.
    fn others(&self) -> BoxFuture<'_, Result<Vec<MemberInfo>, Unavailable>>;

    /// Sends a request to the other nodes.
    fn request(&self, request: &NodeRequest);

    /// Writes what is queued and takes this node out of the others' view, waiting at most
    /// `within`. Called once, after every session ended.
    fn leave(&self, within: Duration) -> BoxFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The requests read as the ones nodes of earlier versions send.
    #[test]
    fn requests_keep_their_wire_names() {
        let remove: NodeRequest =
            serde_json::from_str(r#"{"op":"expel","node":"n1","id":3,"reason":"kicked: x"}"#)
                .unwrap();
        assert!(matches!(remove, NodeRequest::Remove { id: 3, .. }));
        let text = serde_json::to_string(&NodeRequest::RemoveToken {
            token: "ab".into(),
            reason: "r".into(),
        })
        .unwrap();
        assert_eq!(text, r#"{"op":"expeltoken","token":"ab","reason":"r"}"#);
        let clear = serde_json::to_string(&NodeRequest::ClearHistory).unwrap();
        assert_eq!(clear, r#"{"op":"clearhistory"}"#);
        let unban = NodeRequest::Unban {
            tokens: vec![],
            names: vec![],
        };
        let unban = serde_json::to_string(&unban).unwrap();
        assert_eq!(unban, r#"{"op":"unban","tokens":[]}"#);
    }
}
