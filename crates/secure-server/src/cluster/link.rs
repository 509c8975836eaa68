//! The link: the hub's side of the node's Redis connections. Every operation is queued, in
//! order, for the one task that owns the connections ([`super::worker`]); questions come back on
//! a oneshot channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::MemberRecord;
use crate::hub::{NodeRequest, PageView, Payload, Unavailable};

/// Ops waiting for the worker past which new messages are refused as if Redis were unreachable:
/// Redis is not keeping up with the room, and a queue without a bound would hold the node's
/// memory. Logins, departures and moderation still queue (one or a few per connection).
pub(super) const MAX_QUEUED_OPS: usize = 50_000;

/// Writes that are not answered, in the order they were made.
#[derive(Debug)]
pub(super) enum Write {
    /// A frame for the room from one of this node's members.
    Frame(Payload),
    /// A message of one of this node's members, to be numbered and kept (history on).
    Said(Said),
    /// The history stream goes.
    ClearHistory,
    /// A session held here for a resume, so that another node can take it: its record (JSON),
    /// under its resume token's key (hex), for `window_ms`.
    Held {
        key: String,
        record: String,
        window_ms: u64,
        /// Set when this node is stopping: nobody here will end the hold.
        orphan: Option<Orphan>,
    },
    /// A held session's record goes (resumed here, or ended).
    Unheld(String),
    /// A request for the other nodes ([`NodeRequest`] as JSON).
    Request(String),
    ReleaseName(String),
    ReleaseHold(String),
    /// A member joined: its record, for `who`, kicks and reaping.
    Member {
        folded: String,
        record: String,
    },
    /// A member left: its record goes, and `bye` is announced if the record was there (so that
    /// a departure is announced once, however many paths report it), or whatever Redis holds
    /// when `always` (set for the backlog when Redis lost its data).
    Depart {
        folded: String,
        bye: Payload,
        always: bool,
    },
    /// A member's record goes without an announcement.
    Unmember(String),
    SettlePage(String),
    /// The others' announcement of this node's death has been answered with joins.
    ClearTombstone,
}

/// A held session this node leaves behind as it stops.
#[derive(Debug)]
pub(super) struct Orphan {
    /// The member's name key (its member record's field).
    pub(super) member: String,
    /// When its window ends, Unix ms.
    pub(super) until_ms: u64,
    /// The `disconnect` frame to announce then, if nobody resumed it.
    pub(super) bye: Payload,
}

/// A message for `say.lua`.
#[derive(Debug)]
pub(super) struct Said {
    /// The member's id here.
    pub(super) member: u64,
    /// This node's number for it: growing, so that a message written twice is kept once.
    pub(super) number: u64,
    pub(super) time_ms: u64,
    pub(super) from: String,
    pub(super) text: String,
    /// Messages the history stream keeps.
    pub(super) keep: usize,
    /// Entries older than this (ms) leave the history stream.
    pub(super) oldest_ms: u64,
}

/// Questions, answered in order with the writes.
#[derive(Debug)]
pub(super) enum Call {
    ClaimName(String),
    ClaimHold(String),
    OpenPage {
        id: String,
        token: String,
        ttl_ms: u64,
    },
    ViewPage {
        id: String,
        max_views: u32,
    },
    Who,
    Find(String),
    /// Takes the session held under this resume token key (hex), wherever it is held.
    TakeHeld(String),
}

#[derive(Debug)]
pub(super) enum Op {
    Write(Write),
    Call(Call, oneshot::Sender<Result<Value, Unavailable>>),
    /// Answered once everything queued before it is written; then the node leaves the
    /// cluster (its registration and anything left of its state are removed).
    Leave(oneshot::Sender<()>),
}

/// The hub's handle on the link: cheap to call from any task.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) node: String,
    pub(super) ops: mpsc::UnboundedSender<Op>,
    /// Ops sent and not yet taken by the worker.
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) up: AtomicBool,
    /// The worker task, to stop it if it cannot leave in time.
    pub(super) worker: std::sync::OnceLock<tokio::task::AbortHandle>,
}

impl Link {
    /// This node's name in the cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether Redis is reachable now (and this node registered).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Whether a new message may be published: Redis is reachable and keeping up.
    pub fn accepts_messages(&self) -> bool {
        self.is_up() && self.queued.load(Ordering::Relaxed) < MAX_QUEUED_OPS
    }

    pub fn write(&self, write: Write) {
        // The worker lives as long as the process; a send fails only while it shuts down.
        let _ = self.send(Op::Write(write));
    }

    /// Queues `op` for the worker, counted until the worker takes it.
    fn send(&self, op: Op) -> Result<(), Unavailable> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.ops.send(op).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            Unavailable
        })
    }

    /// Sends a request to the other nodes, on the room stream.
    pub fn request(&self, request: &NodeRequest) {
        let text = serde_json::to_string(request).expect("a request always serializes");
        self.write(Write::Request(text));
    }

    async fn call(&self, call: Call) -> Result<Value, Unavailable> {
        if !self.is_up() {
            return Err(Unavailable);
        }
        let (tx, rx) = oneshot::channel();
        self.send(Op::Call(call, tx))?;
        rx.await.unwrap_or(Err(Unavailable))
    }

    async fn claim(&self, call: Call) -> Result<bool, Unavailable> {
        match self.call(call).await? {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            // -1: this node's registration lapsed; it re-registers before claiming again.
            _ => Err(Unavailable),
        }
    }

    /// Claims a name (its key) cluster-wide: `false` if a live node has it.
    pub async fn claim_name(&self, folded: &str) -> Result<bool, Unavailable> {
        self.claim(Call::ClaimName(folded.to_owned())).await
    }

    /// Claims a token (hex key) cluster-wide, for 1UPT: `false` if a live node holds it.
    pub async fn claim_hold(&self, key: &str) -> Result<bool, Unavailable> {
        self.claim(Call::ClaimHold(key.to_owned())).await
    }

    /// Publishes a token page; `false` if the id is taken (pending or settled).
    pub async fn open_page(
        &self,
        id: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let call = Call::OpenPage {
            id: id.to_owned(),
            token: token.to_owned(),
            ttl_ms,
        };
        self.claim(call).await
    }

    /// What page `id` shows now, counting this view.
    pub async fn view_page(&self, id: &str, max_views: u32) -> Result<PageView, Unavailable> {
        let call = Call::ViewPage {
            id: id.to_owned(),
            max_views,
        };
        // {state} or {1, token}.
        let reply: Vec<Value> =
            redis::from_redis_value(&self.call(call).await?).map_err(|_| Unavailable)?;
        let state = reply
            .first()
            .and_then(|v| redis::from_redis_value::<i64>(v).ok());
        let token = reply
            .get(1)
            .and_then(|v| redis::from_redis_value::<String>(v).ok());
        Ok(match (state, token) {
            (Some(1), Some(token)) => PageView::Pending(token),
            (Some(2), _) => PageView::TooManyViews,
            (Some(3), _) => PageView::Settled,
            _ => PageView::Unknown,
        })
    }

    /// Every member of the cluster, with its node's name.
    pub async fn who(&self) -> Result<Vec<(String, MemberRecord)>, Unavailable> {
        let flat: Vec<String> =
            redis::from_redis_value(&self.call(Call::Who).await?).map_err(|_| Unavailable)?;
        Ok(flat
            .chunks_exact(2)
            .filter_map(|pair| Some((pair[0].clone(), serde_json::from_str(&pair[1]).ok()?)))
            .collect())
    }

    /// The member whose name has the key `folded`, anywhere in the cluster, with its node's name.
    pub async fn find(&self, folded: &str) -> Result<Option<(String, MemberRecord)>, Unavailable> {
        let found: Option<(String, String)> =
            redis::from_redis_value(&self.call(Call::Find(folded.to_owned())).await?)
                .map_err(|_| Unavailable)?;
        Ok(found.and_then(|(node, record)| Some((node, serde_json::from_str(&record).ok()?))))
    }

    /// Takes the session another node holds under the resume token key `key` (hex): its record.
    pub async fn take_held(&self, key: &str) -> Result<Option<String>, Unavailable> {
        redis::from_redis_value(&self.call(Call::TakeHeld(key.to_owned())).await?)
            .map_err(|_| Unavailable)
    }

    /// Writes everything queued, then takes this node out of the cluster and stops its
    /// worker. Waits at most `within`.
    pub async fn leave(&self, within: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.send(Op::Leave(tx)).is_ok() && tokio::time::timeout(within, rx).await.is_err() {
            warn!("could not leave the cluster in time; the other nodes will reap this one");
        }
        self.up.store(false, Ordering::Release);
        if let Some(worker) = self.worker.get() {
            worker.abort();
        }
    }

    pub fn set_worker(&self, worker: tokio::task::AbortHandle) {
        let _ = self.worker.set(worker);
    }
}
