//! Cluster mode: several nodes share one room through Redis.
//!
//! The hub keeps its members and their queues in memory as always; this module is its link to
//! the other nodes. What must be the same everywhere lives in Redis (`docs/CLUSTER.md` has the
//! keys and the reasoning):
//!
//! - the room is a stream (`clichat:room`): every frame a node's members cause (messages, joins,
//!   disconnects) is added once, and every node reads the stream and delivers what other nodes
//!   added to its own members;
//! - names, 1UPT holds and token pages are claimed with Lua scripts, so that two nodes can never
//!   both win;
//! - each node renews a deadline in `clichat:nodes`; a node past its deadline is reaped by the
//!   next heartbeat of any other node, which releases what it held and announces its members'
//!   disconnects, atomically.
//!
//! One task per node owns the Redis connections. The hub talks to it through a queue of
//! [`Op`]s, which it writes in order, many to a pipeline: a node's releases reach Redis before
//! the disconnect that announces them, and its messages reach the stream in the order their
//! senders sent them. While Redis cannot be reached the link is down: claims fail at once
//! (logins are refused), messages are refused, and the writes that must not be lost (releases,
//! departures) wait in a backlog. On reconnecting the node re-registers, re-claims what its
//! members hold, writes the backlog and reads the stream on from where it stopped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config::{ClusterConfig, Role};
use crate::hub::{Hub, Payload, Profile};

/// Prefix of every key this server writes. A second cluster on the same Redis uses another
/// database (`redis://host/1`).
const PREFIX: &str = "clichat:";
/// Entries the room stream keeps (approximately): how far a node that stalls may fall behind
/// before it misses frames.
const STREAM_MAX_LEN: u32 = 100_000;
/// Ops written in one pipeline, at most.
const BATCH: usize = 512;
/// Stream entries read at once, at most.
const READ_COUNT: u32 = 1024;
/// How long one read of the stream waits for news, in milliseconds.
const READ_BLOCK_MS: u32 = 1000;
/// Writes kept while Redis is unreachable; beyond this the oldest are dropped (and logged).
const BACKLOG_MAX: usize = 100_000;
/// How long a settled token page keeps answering 410 rather than 404.
const SETTLED_PAGE_SECS: u32 = 3600;
/// Ops waiting for the worker past which new messages are refused as if Redis were unreachable:
/// Redis is not keeping up with the room, and a queue without a bound would hold the node's
/// memory. Logins, departures and moderation still queue (one or a few per connection).
const MAX_QUEUED_OPS: usize = 50_000;
/// How long a connection attempt to Redis, or one reply, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits between reconnection attempts: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The cluster could not be asked: Redis is unreachable (or this node is between connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cluster's Redis is unreachable")]
pub struct Unavailable;

/// A member as the other nodes see it: what `who`, kicks and bans need, and the frame that
/// announces its departure should its node die.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MemberRecord {
    pub id: u64,
    pub name: String,
    pub kind: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The token's key as hex (its SHA-256, never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The `disconnect` frame to announce if the node dies.
    pub bye: String,
}

impl MemberRecord {
    /// The record of member `id` called `name`, as JSON.
    pub fn json(id: u64, name: &str, profile: &Profile) -> String {
        let record = MemberRecord {
            id,
            name: name.to_owned(),
            kind: profile.kind.to_owned(),
            role: profile.role,
            label: profile.label.clone(),
            token: profile.token.map(|key| key.to_hex()),
            bye: clichat_proto::ServerFrame::Disconnect(name.to_owned()).encode(),
        };
        serde_json::to_string(&record).expect("a record always serializes")
    }
}

/// A message between nodes that is not a frame for the room.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Control {
    /// Node `node` should remove its member `id`, telling it `reason`.
    Expel {
        node: String,
        id: u64,
        reason: String,
    },
    /// Every node should close the holders of this token (hex key), telling them `reason`.
    ExpelToken { token: String, reason: String },
    /// Every node should refuse this token until the ban ends (and keep it in its ban list).
    Ban { ban: crate::bans::Ban },
    /// Every node should lift its bans of these tokens (hex keys).
    Unban { tokens: Vec<String> },
}

/// Writes that are not answered, in the order they were made.
#[derive(Debug)]
pub(crate) enum Write {
    /// A frame for the room from one of this node's members.
    Frame(Payload),
    /// A message for the other nodes.
    Control(String),
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

/// Questions, answered in order with the writes.
#[derive(Debug)]
enum Call {
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
}

#[derive(Debug)]
enum Op {
    Write(Write),
    Call(Call, oneshot::Sender<Result<Value, Unavailable>>),
    /// Answered once everything queued before it is written; then the node leaves the
    /// cluster (its registration and anything left of its state are removed).
    Leave(oneshot::Sender<()>),
}

/// What a token page shows, as Redis knows it.
pub(crate) enum RemotePage {
    Pending(String),
    TooManyViews,
    Settled,
    Unknown,
}

/// The hub's handle on the link: cheap to call from any task.
#[derive(Debug)]
pub(crate) struct Link {
    node: String,
    ops: mpsc::UnboundedSender<Op>,
    /// Ops sent and not yet taken by the worker.
    queued: Arc<AtomicUsize>,
    up: AtomicBool,
    /// The worker task, to stop it if it cannot leave in time.
    worker: std::sync::OnceLock<tokio::task::AbortHandle>,
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

    pub fn control(&self, control: &Control) {
        let text = serde_json::to_string(control).expect("a Control always serializes");
        self.write(Write::Control(text));
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

    /// Claims a case-folded name cluster-wide: `false` if a live node has it.
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
    pub async fn view_page(&self, id: &str, max_views: u32) -> Result<RemotePage, Unavailable> {
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
            (Some(1), Some(token)) => RemotePage::Pending(token),
            (Some(2), _) => RemotePage::TooManyViews,
            (Some(3), _) => RemotePage::Settled,
            _ => RemotePage::Unknown,
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

    /// The member called `folded` anywhere in the cluster, with its node's name.
    pub async fn find(&self, folded: &str) -> Result<Option<(String, MemberRecord)>, Unavailable> {
        let found: Option<(String, String)> =
            redis::from_redis_value(&self.call(Call::Find(folded.to_owned())).await?)
                .map_err(|_| Unavailable)?;
        Ok(found.and_then(|(node, record)| Some((node, serde_json::from_str(&record).ok()?))))
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

/// Starts the link for `hub`'s node: returns the handle at once, and connects (and keeps
/// reconnecting) in the background.
pub(crate) fn start(config: &ClusterConfig) -> (Arc<Link>, Worker) {
    let node = config.node_id.clone().unwrap_or_else(|| {
        let suffix: u32 = rand::random();
        format!("node-{suffix:08x}")
    });
    let (ops, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let link = Arc::new(Link {
        node,
        ops,
        queued: Arc::clone(&queued),
        up: AtomicBool::new(false),
        worker: std::sync::OnceLock::new(),
    });
    let worker = Worker {
        link: Arc::clone(&link),
        url: config.redis.clone(),
        ttl: config.node_ttl(),
        ops: OpQueue { rx, queued },
        inflight: Vec::new(),
        backlog: VecDeque::new(),
        last_id: None,
    };
    (link, worker)
}

/// The task that owns the node's Redis connections.
pub(crate) struct Worker {
    link: Arc<Link>,
    url: String,
    ttl: Duration,
    ops: OpQueue,
    /// The batch being written: kept here, not in the future writing it, so that a spell
    /// ended by the reader or the heartbeat does not lose it.
    inflight: Vec<Op>,
    /// Writes made while Redis was unreachable, oldest first.
    backlog: VecDeque<Write>,
    /// The last stream entry this node has read: where to read on from after a reconnect.
    last_id: Option<String>,
}

/// The worker's end of the op queue, which keeps [`Link`]'s count of queued ops.
struct OpQueue {
    rx: mpsc::UnboundedReceiver<Op>,
    queued: Arc<AtomicUsize>,
}

impl OpQueue {
    async fn recv(&mut self) -> Option<Op> {
        let op = self.rx.recv().await;
        self.taken(op.is_some());
        op
    }

    fn try_recv(&mut self) -> Result<Op, mpsc::error::TryRecvError> {
        let op = self.rx.try_recv();
        self.taken(op.is_ok());
        op
    }

    fn taken(&self, one: bool) {
        if one {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Why a connected spell ended.
enum Ended {
    /// The node left the cluster (shutdown).
    Left,
    /// The hub is gone.
    Dropped,
}

impl Worker {
    /// Connects, serves, and reconnects with backoff, until the node leaves the cluster.
    pub async fn run(mut self, hub: Hub) {
        info!(node = %self.link.node, "cluster node starting");
        let mut backoff = BACKOFF.0;
        let unreachable = crate::limits::LogThrottle::default();
        loop {
            match self.connect().await {
                Ok(conns) => {
                    backoff = BACKOFF.0;
                    let served = self.serve(conns, &hub).await;
                    self.link.up.store(false, Ordering::Release);
                    if self.requeue_inflight() {
                        return;
                    }
                    match served {
                        Ok(Ended::Left | Ended::Dropped) => return,
                        Err(error) => warn!(%error, "lost the cluster's Redis; reconnecting"),
                    }
                }
                Err(error) => {
                    if let Some(attempts) = unreachable.hit() {
                        warn!(%error, attempts, "cannot reach the cluster's Redis; logins are refused until it answers");
                    }
                }
            }
            self.link.up.store(false, Ordering::Release);
            if self.wait(backoff).await.is_err() {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    async fn connect(&self) -> redis::RedisResult<(MultiplexedConnection, MultiplexedConnection)> {
        let client = redis::Client::open(self.url.as_str())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let writer = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // The reader blocks in XREAD: its own connection, with room for the wait.
        let reader_config = config.set_response_timeout(RESPONSE_TIMEOUT + ms(READ_BLOCK_MS));
        let reader = client
            .get_multiplexed_async_connection_with_config(&reader_config)
            .await?;
        Ok((writer, reader))
    }

    /// Waits out a backoff while unconnected: calls fail at once, writes go to the backlog.
    /// `Err` if the node left meanwhile.
    async fn wait(&mut self, backoff: Duration) -> Result<(), ()> {
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return Ok(()),
                op = self.ops.recv() => match op {
                    None => return Err(()),
                    Some(Op::Write(write)) => self.keep(write),
                    Some(Op::Call(_, reply)) => {
                        let _ = reply.send(Err(Unavailable));
                    }
                    Some(Op::Leave(done)) => {
                        let _ = done.send(());
                        return Err(());
                    }
                },
            }
        }
    }

    /// After a spell: the batch that was being written goes to the backlog (its calls fail).
    /// `true` if it held the node's leave, which is then done.
    fn requeue_inflight(&mut self) -> bool {
        let mut left = false;
        for op in std::mem::take(&mut self.inflight) {
            match op {
                Op::Write(write) => self.keep(write),
                Op::Call(_, reply) => {
                    let _ = reply.send(Err(Unavailable));
                }
                Op::Leave(done) => {
                    let _ = done.send(());
                    left = true;
                }
            }
        }
        left
    }

    fn keep(&mut self, write: Write) {
        if self.backlog.len() >= BACKLOG_MAX {
            self.backlog.pop_front();
            warn!("cluster backlog full; dropped its oldest write");
        }
        self.backlog.push_back(write);
    }

    /// One connected spell: register, reconcile, then write, read and beat until something
    /// fails.
    async fn serve(
        &mut self,
        (mut writer, mut reader): (MultiplexedConnection, MultiplexedConnection),
        hub: &Hub,
    ) -> redis::RedisResult<Ended> {
        let scripts = Scripts::get();
        for script in scripts.all() {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.code)
                .query_async::<String>(&mut writer)
                .await?;
        }
        self.sync(&mut writer, hub).await?;
        if self.last_id.is_none() {
            self.last_id = Some(latest_id(&mut writer).await?);
        }
        self.link.up.store(true, Ordering::Release);
        info!(node = %self.link.node, "cluster link up");

        let node = self.link.node.clone();
        let ttl = self.ttl;
        let Worker {
            ops,
            inflight,
            backlog,
            last_id,
            ..
        } = self;
        let mut beat_conn = writer.clone();
        let writing = async {
            loop {
                if inflight.is_empty() {
                    let Some(first) = ops.recv().await else {
                        return Ok(Ended::Dropped);
                    };
                    inflight.push(first);
                }
                while inflight.len() < BATCH {
                    match ops.try_recv() {
                        Ok(op) => inflight.push(op),
                        Err(_) => break,
                    }
                }
                if let Some(ended) = write_batch(&mut writer, &node, inflight, backlog).await? {
                    return Ok(ended);
                }
            }
        };
        let reading = read_forever(
            &mut reader,
            &node,
            last_id.as_mut().expect("set above"),
            hub,
        );
        let beating = async {
            let mut every = tokio::time::interval(ttl / 5);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match heartbeat(&mut beat_conn, &node, ttl).await {
                    Ok(0) => {
                        // Our deadline passed (a long stall, or Redis lost its data):
                        // reconnect and reconcile from scratch.
                        return Err::<Ended, _>(redis::RedisError::from((
                            redis::ErrorKind::ClientError,
                            "this node's registration lapsed",
                        )));
                    }
                    Ok(_) => {}
                    Err(error) => return Err(error),
                }
            }
        };
        tokio::select! {
            ended = writing => ended,
            ended = reading => ended,
            ended = beating => ended,
        }
    }

    /// Registers the node and makes Redis agree with what it holds now, announcing the
    /// departures Redis still lists; closes the members and logins whose names or tokens
    /// another node took meanwhile; writes the backlog.
    ///
    /// Everything queued before it joins the backlog first, and the hub's state is read right
    /// after, so that every departure is either in the backlog or absent from the state. Then
    /// it depends on what Redis remembers of this node:
    /// - still registered (a short outage): the backlog goes first, so that messages and
    ///   departures keep their order, then the state is claimed;
    /// - declared dead (its tombstone): the others announced all its members' departures. It
    ///   claims its state back, announces its members again (joins), and then writes the
    ///   backlog, whose departures are then silent and whose messages arrive late, not never;
    /// - neither (Redis lost its data, or a first start): the backlog's departures are
    ///   announced whatever Redis holds, then the state is claimed.
    async fn sync(
        &mut self,
        conn: &mut MultiplexedConnection,
        hub: &Hub,
    ) -> redis::RedisResult<()> {
        let node = self.link.node.clone();
        let (reaped, registered): (bool, Option<f64>) = redis::pipe()
            .cmd("EXISTS")
            .arg(key(&format!("reaped:{node}")))
            .cmd("ZSCORE")
            .arg(key("nodes"))
            .arg(&node)
            .query_async(conn)
            .await?;
        while let Ok(op) = self.ops.try_recv() {
            match op {
                Op::Write(write) => self.keep(write),
                Op::Call(_, reply) => {
                    let _ = reply.send(Err(Unavailable));
                }
                leave @ Op::Leave(_) => {
                    // Written first once connected: the node is leaving.
                    self.inflight.push(leave);
                    break;
                }
            }
        }
        let state = hub.cluster_state();
        if reaped {
            for write in &mut self.backlog {
                if let Write::Depart { folded, .. } = write {
                    *write = Write::Unmember(std::mem::take(folded));
                }
            }
        } else {
            if registered.is_none() {
                for write in &mut self.backlog {
                    if let Write::Depart { always, .. } = write {
                        *always = true;
                    }
                }
            }
            self.write_backlog(conn).await?;
        }
        let scripts = Scripts::get();
        let mut invocation = redis::cmd("EVALSHA");
        invocation
            .arg(scripts.sync.hash)
            .arg(7)
            .arg(key("nodes"))
            .arg(key("names"))
            .arg(key("holds"))
            .arg(node_key(&node, "names"))
            .arg(node_key(&node, "holds"))
            .arg(node_key(&node, "members"))
            .arg(key("room"))
            .arg(&node)
            .arg(ms_u64(self.ttl))
            .arg(PREFIX)
            .arg(STREAM_MAX_LEN)
            .arg(state.names.len())
            .arg(state.holds.len())
            .arg(&state.names)
            .arg(&state.holds);
        for (folded, record) in &state.members {
            invocation.arg(folded).arg(record);
        }
        let (lost_names, lost_holds): (Vec<String>, Vec<String>) =
            invocation.query_async(conn).await?;
        if !lost_names.is_empty() || !lost_holds.is_empty() {
            warn!(
                names = lost_names.len(),
                tokens = lost_holds.len(),
                "taken by other nodes while this one was out of touch; closing their holders"
            );
        }
        let expelled = hub.expel_lost(&lost_names, &lost_holds);
        if reaped {
            info!(
                members = state.members.len() - expelled.len(),
                "rejoining the cluster after being declared dead"
            );
            let mut joins: VecDeque<Write> = state
                .members
                .iter()
                .filter(|(folded, _)| !expelled.contains(folded))
                .filter_map(|(_, record)| serde_json::from_str::<MemberRecord>(record).ok())
                .map(|member| {
                    let join = clichat_proto::ServerFrame::Join(member.name).encode();
                    Write::Frame(Payload::from(join))
                })
                .collect();
            joins.push_back(Write::ClearTombstone);
            joins.append(&mut self.backlog);
            self.backlog = joins;
            self.write_backlog(conn).await?;
        }
        Ok(())
    }

    /// Writes the backlog, oldest first. What a broken connection leaves unwritten stays in it.
    async fn write_backlog(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        while !self.backlog.is_empty() {
            let count = self.backlog.len().min(BATCH);
            let mut chunk: Vec<Op> = self.backlog.drain(..count).map(Op::Write).collect();
            let mut again = VecDeque::new();
            if let Err(error) = write_batch(conn, &self.link.node, &mut chunk, &mut again).await {
                again.append(&mut self.backlog);
                self.backlog = again;
                return Err(error);
            }
        }
        Ok(())
    }
}

/// What the hub holds, for [`Worker::sync`].
pub(crate) struct ClusterState {
    /// Case-folded names, of members and of logins under way.
    pub names: Vec<String>,
    /// Held tokens (hex keys), under 1UPT.
    pub holds: Vec<String>,
    /// Members: case-folded name and [`MemberRecord`] JSON.
    pub members: Vec<(String, String)>,
}

fn ms(millis: u32) -> Duration {
    Duration::from_millis(millis.into())
}

fn ms_u64(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn node_key(node: &str, what: &str) -> String {
    format!("{PREFIX}node:{node}:{what}")
}

/// The newest entry of the room stream, or `0-0`: where a starting node begins to read.
async fn latest_id(conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    let newest: Value = redis::cmd("XREVRANGE")
        .arg(key("room"))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    let id = match newest {
        Value::Array(entries) => entries.into_iter().next().and_then(|entry| match entry {
            Value::Array(mut parts) if !parts.is_empty() => {
                redis::from_redis_value::<String>(&parts.swap_remove(0)).ok()
            }
            _ => None,
        }),
        _ => None,
    };
    Ok(id.unwrap_or_else(|| "0-0".to_owned()))
}

async fn heartbeat(
    conn: &mut MultiplexedConnection,
    node: &str,
    ttl: Duration,
) -> redis::RedisResult<i64> {
    reaping(&Scripts::get().heartbeat, node, ttl)
        .query_async(conn)
        .await
}

/// A call of a script that may reap nodes (the heartbeat, or a clean leave).
fn reaping(script: &Script, node: &str, ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.hash)
        .arg(4)
        .arg(key("nodes"))
        .arg(key("names"))
        .arg(key("holds"))
        .arg(key("room"))
        .arg(node)
        .arg(ms_u64(ttl))
        .arg(PREFIX)
        .arg(STREAM_MAX_LEN);
    cmd
}

/// Adds `write` to a pipeline.
fn add_write(pipe: &mut redis::Pipeline, node: &str, write: &Write) {
    let scripts = Scripts::get();
    match write {
        Write::Frame(payload) => add_xadd(pipe, "f", node, payload.as_str()),
        Write::Control(text) => add_xadd(pipe, "c", node, text),
        Write::ReleaseName(folded) => add_release(pipe, scripts, node, "names", folded),
        Write::ReleaseHold(key_hex) => add_release(pipe, scripts, node, "holds", key_hex),
        Write::Member { folded, record } => {
            pipe.cmd("HSET")
                .arg(node_key(node, "members"))
                .arg(folded)
                .arg(record)
                .ignore();
        }
        Write::Depart {
            folded,
            bye,
            always: true,
        } => {
            pipe.cmd("HDEL")
                .arg(node_key(node, "members"))
                .arg(folded)
                .ignore();
            add_xadd(pipe, "f", node, bye.as_str());
        }
        Write::Depart {
            folded,
            bye,
            always: false,
        } => {
            pipe.cmd("EVALSHA")
                .arg(scripts.depart.hash)
                .arg(2)
                .arg(node_key(node, "members"))
                .arg(key("room"))
                .arg(node)
                .arg(folded)
                .arg(bye.as_str())
                .arg(STREAM_MAX_LEN)
                .ignore();
        }
        Write::ClearTombstone => {
            pipe.cmd("DEL").arg(key(&format!("reaped:{node}"))).ignore();
        }
        Write::Unmember(folded) => {
            pipe.cmd("HDEL")
                .arg(node_key(node, "members"))
                .arg(folded)
                .ignore();
        }
        Write::SettlePage(id) => {
            pipe.cmd("DEL").arg(key(&format!("page:{id}"))).ignore();
            pipe.cmd("SET")
                .arg(key(&format!("settled:{id}")))
                .arg(1)
                .arg("EX")
                .arg(SETTLED_PAGE_SECS)
                .ignore();
        }
    }
}

fn add_xadd(pipe: &mut redis::Pipeline, field: &str, node: &str, text: &str) {
    pipe.cmd("XADD")
        .arg(key("room"))
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAX_LEN)
        .arg("*")
        .arg("o")
        .arg(node)
        .arg(field)
        .arg(text)
        .ignore();
}

fn add_release(pipe: &mut redis::Pipeline, scripts: &Scripts, node: &str, what: &str, item: &str) {
    pipe.cmd("EVALSHA")
        .arg(scripts.release.hash)
        .arg(2)
        .arg(key(what))
        .arg(node_key(node, what))
        .arg(node)
        .arg(item)
        .ignore();
}

/// Adds `call` to a pipeline; its answer is the pipeline's next reply.
fn add_call(pipe: &mut redis::Pipeline, node: &str, call: &Call) {
    let scripts = Scripts::get();
    match call {
        Call::ClaimName(folded) => add_claim(pipe, scripts, node, "names", folded),
        Call::ClaimHold(key_hex) => add_claim(pipe, scripts, node, "holds", key_hex),
        Call::OpenPage { id, token, ttl_ms } => {
            pipe.cmd("EVALSHA")
                .arg(scripts.open_page.hash)
                .arg(2)
                .arg(key(&format!("page:{id}")))
                .arg(key(&format!("settled:{id}")))
                .arg(token)
                .arg(ttl_ms);
        }
        Call::ViewPage { id, max_views } => {
            pipe.cmd("EVALSHA")
                .arg(scripts.view_page.hash)
                .arg(2)
                .arg(key(&format!("page:{id}")))
                .arg(key(&format!("settled:{id}")))
                .arg(max_views);
        }
        Call::Who => {
            pipe.cmd("EVALSHA")
                .arg(scripts.who.hash)
                .arg(1)
                .arg(key("nodes"))
                .arg(PREFIX);
        }
        Call::Find(folded) => {
            pipe.cmd("EVALSHA")
                .arg(scripts.find.hash)
                .arg(2)
                .arg(key("names"))
                .arg(key("nodes"))
                .arg(PREFIX)
                .arg(folded);
        }
    }
}

fn add_claim(pipe: &mut redis::Pipeline, scripts: &Scripts, node: &str, what: &str, item: &str) {
    pipe.cmd("EVALSHA")
        .arg(scripts.claim.hash)
        .arg(3)
        .arg(key("nodes"))
        .arg(key(what))
        .arg(node_key(node, what))
        .arg(node)
        .arg(item);
}

/// Writes one batch as one pipeline and answers its calls, emptying `batch`.
///
/// If the connection breaks, the batch's writes go to `backlog` (in order, to be written after
/// reconnecting: Redis may have run some, so those few may be written twice) and its calls
/// fail. If Redis answers an error (a bug, or a Redis that cannot write: out of memory, read
/// only), it did run the rest of the pipeline: the writes are not repeated, the calls fail, and
/// the link is restarted, so that a Redis that keeps failing keeps the node refusing.
async fn write_batch(
    conn: &mut MultiplexedConnection,
    node: &str,
    batch: &mut Vec<Op>,
    backlog: &mut VecDeque<Write>,
) -> redis::RedisResult<Option<Ended>> {
    let mut pipe = redis::pipe();
    for op in batch.iter() {
        match op {
            Op::Write(write) => add_write(&mut pipe, node, write),
            Op::Call(call, _) => add_call(&mut pipe, node, call),
            Op::Leave(_) => {
                pipe.add_command(reaping(&Scripts::get().leave, node, Duration::ZERO))
                    .ignore();
                // Nothing after a leave is written: the node is gone.
                break;
            }
        }
    }
    let replies: redis::RedisResult<Vec<Value>> = pipe.query_async(conn).await;
    let (mut replies, failed) = match replies {
        Ok(replies) => (replies.into_iter(), None),
        Err(error) => (Vec::new().into_iter(), Some(error)),
    };
    let link_broke = failed.as_ref().is_some_and(is_link_failure);
    if let Some(error) = failed.as_ref().filter(|_| !link_broke) {
        warn!(%error, writes = batch.len(), "Redis refused part of a batch; restarting the link");
    }
    for op in batch.drain(..) {
        match op {
            Op::Write(write) if link_broke => backlog.push_back(write),
            Op::Write(_) => {}
            Op::Call(_, reply) => {
                let answer = match &failed {
                    None => replies.next().ok_or(Unavailable),
                    Some(_) => Err(Unavailable),
                };
                let _ = reply.send(answer);
            }
            Op::Leave(done) => {
                info!("left the cluster");
                let _ = done.send(());
                return Ok(Some(Ended::Left));
            }
        }
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(None),
    }
}

/// Whether `error` means the connection is gone (rather than Redis answering an error).
fn is_link_failure(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

/// Reads the room stream until reading fails.
async fn read_forever(
    conn: &mut MultiplexedConnection,
    node: &str,
    last_id: &mut String,
    hub: &Hub,
) -> redis::RedisResult<Ended> {
    loop {
        read_stream(conn, node, last_id, hub).await?;
    }
}

/// Reads what is new in the room stream and delivers what other nodes wrote.
async fn read_stream(
    conn: &mut MultiplexedConnection,
    node: &str,
    last_id: &mut String,
    hub: &Hub,
) -> redis::RedisResult<()> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(READ_COUNT)
        .arg("BLOCK")
        .arg(READ_BLOCK_MS)
        .arg("STREAMS")
        .arg(key("room"))
        .arg(last_id.as_str())
        .query_async(conn)
        .await?;
    // [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing came.
    let Value::Array(streams) = reply else {
        return Ok(());
    };
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        let Some(Value::Array(entries)) = parts.pop() else {
            continue;
        };
        for entry in entries {
            let Value::Array(mut entry) = entry else {
                continue;
            };
            let (Some(Value::Array(fields)), Some(id)) = (entry.pop(), entry.pop()) else {
                continue;
            };
            if let Ok(id) = redis::from_redis_value::<String>(&id) {
                *last_id = id;
            }
            deliver(node, fields, hub);
        }
    }
    Ok(())
}

/// Delivers one stream entry (`o` origin, then `f` frame or `c` control) to this node.
fn deliver(node: &str, fields: Vec<Value>, hub: &Hub) {
    let mut origin = None;
    let mut body = None;
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let (Value::BulkString(name), Value::BulkString(value)) = (name, value) else {
            continue;
        };
        match name.as_slice() {
            b"o" => origin = Some(value),
            b"f" | b"c" => body = Some((name[0], value)),
            _ => {}
        }
    }
    let (Some(origin), Some((kind, body))) = (origin, body) else {
        return;
    };
    let Ok(body) = String::from_utf8(body) else {
        return;
    };
    match kind {
        // Frames from this node's members were delivered here when they were made.
        b'f' if origin != node.as_bytes() => hub.deliver_remote(Payload::from(body)),
        b'c' => match serde_json::from_str::<Control>(&body) {
            Ok(control) => hub.obey(node, control),
            Err(error) => debug!(%error, "ignored an unreadable control message"),
        },
        _ => {}
    }
}

/// A Lua script: its text and SHA-1, loaded once per connection.
struct Script {
    code: &'static str,
    hash: &'static str,
}

struct Scripts {
    claim: Script,
    release: Script,
    depart: Script,
    heartbeat: Script,
    leave: Script,
    sync: Script,
    open_page: Script,
    view_page: Script,
    who: Script,
    find: Script,
}

impl Scripts {
    fn get() -> &'static Scripts {
        static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| {
            let make = |body: &str| {
                let code: &'static str = Box::leak(format!("{LUA_PRELUDE}{body}").into_boxed_str());
                let hash: &'static str = Box::leak(
                    redis::Script::new(code)
                        .get_hash()
                        .to_owned()
                        .into_boxed_str(),
                );
                Script { code, hash }
            };
            Scripts {
                claim: make(LUA_CLAIM),
                release: make(LUA_RELEASE),
                depart: make(LUA_DEPART),
                heartbeat: make(LUA_HEARTBEAT),
                leave: make(LUA_LEAVE),
                sync: make(LUA_SYNC),
                open_page: make(LUA_OPEN_PAGE),
                view_page: make(LUA_VIEW_PAGE),
                who: make(LUA_WHO),
                find: make(LUA_FIND),
            }
        });
        &SCRIPTS
    }

    fn all(&self) -> [&Script; 10] {
        [
            &self.claim,
            &self.release,
            &self.depart,
            &self.heartbeat,
            &self.leave,
            &self.sync,
            &self.open_page,
            &self.view_page,
            &self.who,
            &self.find,
        ]
    }
}

/// Helpers every script shares. Times come from Redis (`TIME`), so that node clocks never
/// matter.
const LUA_PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function alive(nodes, node, now)
  local deadline = redis.call('ZSCORE', nodes, node)
  return deadline and tonumber(deadline) >= now
end
-- Removes node d: what it claimed, its members (announcing each one's departure on the room
-- stream, as if d had written it: should d come back, it does not deliver them to its own
-- members, who are still there), its registration; leaves a tombstone so that d, should it
-- come back, knows.
-- KEYS: nodes, names, holds, room. prefix, stream length: the arguments.
local function reap(d, prefix, maxlen)
  redis.call('ZREM', KEYS[1], d)
  local base = prefix .. 'node:' .. d
  for _, n in ipairs(redis.call('SMEMBERS', base .. ':names')) do
    if redis.call('HGET', KEYS[2], n) == d then redis.call('HDEL', KEYS[2], n) end
  end
  for _, h in ipairs(redis.call('SMEMBERS', base .. ':holds')) do
    if redis.call('HGET', KEYS[3], h) == d then redis.call('HDEL', KEYS[3], h) end
  end
  for _, record in ipairs(redis.call('HVALS', base .. ':members')) do
    local ok, member = pcall(cjson.decode, record)
    if ok and type(member) == 'table' and type(member.bye) == 'string' then
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'o', d, 'f', member.bye)
    end
  end
  redis.call('DEL', base .. ':names', base .. ':holds', base .. ':members')
  redis.call('SET', prefix .. 'reaped:' .. d, '1', 'EX', 86400)
end
"#;

/// KEYS: nodes, index (names or holds), this node's set of them. ARGV: node, item.
/// 1 claimed, 0 a live node has it, -1 this node is not registered.
const LUA_CLAIM: &str = r#"
local now = now_ms()
if not alive(KEYS[1], ARGV[1], now) then return -1 end
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if owner and owner ~= ARGV[1] and alive(KEYS[1], owner, now) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"#;

/// KEYS: index, this node's set. ARGV: node, item. Releases only what this node holds.
const LUA_RELEASE: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[2]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"#;

/// KEYS: node's members, room. ARGV: node, case-folded name, `disconnect` frame, stream length.
/// Announces the departure only if the member's record was there: once, however many paths
/// (the session, the backlog, a sync) report it.
const LUA_DEPART: &str = r#"
if redis.call('HDEL', KEYS[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'o', ARGV[1], 'f', ARGV[3])
end
return 1
"#;

/// KEYS: nodes, names, holds, room. ARGV: node, ttl ms, prefix, stream length.
/// Reaps every node past its deadline, then renews this one's. 0 if this node's own deadline
/// had passed (it must sync again), else 1.
const LUA_HEARTBEAT: &str = r#"
local now = now_ms()
local was_alive = alive(KEYS[1], ARGV[1], now)
for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do
  if d ~= ARGV[1] then reap(d, ARGV[3], ARGV[4]) end
end
if not was_alive then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"#;

/// KEYS: nodes, names, holds, room. ARGV: node, (unused), prefix, stream length. A clean
/// shutdown.
const LUA_LEAVE: &str = r#"
reap(ARGV[1], ARGV[3], ARGV[4])
redis.call('DEL', ARGV[3] .. 'reaped:' .. ARGV[1])
return 1
"#;

/// KEYS: nodes, names, holds, node's names, node's holds, node's members, room.
/// ARGV: node, ttl ms, prefix, stream length, #names, #holds, names..., holds...,
/// (folded name, record)...
/// Registers the node and replaces what Redis says it holds by what it holds. Members Redis
/// still lists but the node no longer has (it restarted within its TTL, or the departures'
/// announcements were lost) are announced as gone. Returns {names taken by others, holds taken
/// by others}.
const LUA_SYNC: &str = r#"
local now = now_ms()
local me = ARGV[1]
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), me)
local counts = {tonumber(ARGV[5]), tonumber(ARGV[6])}
local first_member = 7 + counts[1] + counts[2]
local present = {}
for k = first_member, #ARGV - 1, 2 do present[ARGV[k]] = true end
local old = redis.call('HGETALL', KEYS[6])
for k = 1, #old, 2 do
  if not present[old[k]] then
    local ok, member = pcall(cjson.decode, old[k + 1])
    if ok and type(member) == 'table' and type(member.bye) == 'string' then
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[4], '*', 'o', me, 'f', member.bye)
    end
  end
end
for _, n in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('HGET', KEYS[2], n) == me then redis.call('HDEL', KEYS[2], n) end
end
for _, h in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if redis.call('HGET', KEYS[3], h) == me then redis.call('HDEL', KEYS[3], h) end
end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
local lost = {{}, {}}
local i = 7
for which = 1, 2 do
  local index, mine = KEYS[1 + which], KEYS[3 + which]
  for _ = 1, counts[which] do
    local item = ARGV[i]
    i = i + 1
    local owner = redis.call('HGET', index, item)
    if owner and owner ~= me and alive(KEYS[1], owner, now) then
      table.insert(lost[which], item)
    else
      redis.call('HSET', index, item, me)
      redis.call('SADD', mine, item)
    end
  end
end
while i < #ARGV do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return lost
"#;

/// KEYS: page, settled marker. ARGV: temporary token, ttl ms. 1 opened, 0 id in use.
const LUA_OPEN_PAGE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'v', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// KEYS: page, settled marker. ARGV: most views. {1, token} pending (this view counted),
/// {2} viewed too often, {3} settled, {4} unknown.
const LUA_VIEW_PAGE: &str = r#"
local token = redis.call('HGET', KEYS[1], 't')
if token then
  if tonumber(redis.call('HGET', KEYS[1], 'v')) >= tonumber(ARGV[1]) then return {2} end
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  return {1, token}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {3} end
return {4}
"#;

/// KEYS: nodes. ARGV: prefix. {node, record, node, record, ...} for every live node's members.
const LUA_WHO: &str = r#"
local out = {}
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now_ms(), '+inf')) do
  for _, record in ipairs(redis.call('HVALS', ARGV[1] .. 'node:' .. n .. ':members')) do
    table.insert(out, n)
    table.insert(out, record)
  end
end
return out
"#;

/// KEYS: names, nodes. ARGV: prefix, folded name. {node, record} of that member, or nil (also
/// when its node is past its deadline: it cannot act on a kick).
const LUA_FIND: &str = r#"
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if not owner or not alive(KEYS[2], owner, now_ms()) then return false end
local record = redis.call('HGET', ARGV[1] .. 'node:' .. owner .. ':members', ARGV[2])
if not record then return false end
return {owner, record}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_are_refused_while_the_op_queue_is_full() {
        let config = ClusterConfig {
            redis: "redis://127.0.0.1:1/".to_owned(),
            node_id: Some("n1".to_owned()),
            node_ttl_secs: 10,
        };
        // The worker is not run: nothing takes the ops but the test.
        let (link, mut worker) = start(&config);
        link.up.store(true, Ordering::Release);
        assert!(link.accepts_messages());
        for _ in 0..MAX_QUEUED_OPS {
            link.write(Write::Control(String::new()));
        }
        assert!(!link.accepts_messages(), "a full queue refuses messages");
        assert!(worker.ops.try_recv().is_ok());
        assert!(link.accepts_messages(), "one taken frees one place");
        assert!(worker.ops.recv().await.is_some());
        assert_eq!(link.queued.load(Ordering::Relaxed), MAX_QUEUED_OPS - 2);
    }
}
