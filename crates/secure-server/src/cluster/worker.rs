//! The worker: the one task that owns a node's Redis connections. It connects (and reconnects
//! with backoff, asking the sentinels each time which Redis is the master, if it has them),
//! then, while connected, writes the link's ops in batches, reads the room stream and renews
//! the node's registration, all at once; what fails ends the spell, and the next one starts
//! with a sync ([`super::sync`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::connect::Target;
use super::link::{Link, Op, Write};
use super::pipeline::{BATCH, heartbeat, ms, write_batch};
use super::scripts::Scripts;
use super::stream::{READ_BLOCK_MS, latest_id, read_forever, recent};
use crate::config::HistoryConfig;
use crate::hub::{Event, Unavailable};

/// Writes kept while Redis is unreachable; beyond this the oldest are dropped (and logged).
const BACKLOG_MAX: usize = 100_000;
/// How long a connection attempt to Redis, or one reply, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits between reconnection attempts: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// The longest wait between attempts with sentinels: asking them is cheap, and a node should
/// find a newly promoted master soon.
const SENTINEL_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// The task that owns the node's Redis connections.
pub(super) struct Worker {
    pub(super) link: Arc<Link>,
    /// Where the Redis is.
    pub(super) target: Target,
    pub(super) ttl: Duration,
    pub(super) ops: OpQueue,
    /// Where what the other nodes cause goes, for the hub.
    pub(super) events: mpsc::Sender<Event>,
    /// The batch being written: kept here, not in the future writing it, so that a spell
    /// ended by the reader or the heartbeat does not lose it.
    pub(super) inflight: Vec<Op>,
    /// Writes made while Redis was unreachable, oldest first.
    pub(super) backlog: VecDeque<Write>,
    /// The last stream entry this node has read: where to read on from after a reconnect.
    pub(super) last_id: Option<String>,
    /// How much history the room keeps (`None`: off).
    pub(super) history: Option<HistoryConfig>,
}

/// The worker's end of the op queue, which keeps [`Link`]'s count of queued ops.
pub(super) struct OpQueue {
    pub(super) rx: mpsc::UnboundedReceiver<Op>,
    pub(super) queued: Arc<AtomicUsize>,
}

impl OpQueue {
    pub(super) async fn recv(&mut self) -> Option<Op> {
        let op = self.rx.recv().await;
        self.taken(op.is_some());
        op
    }

    pub(super) fn try_recv(&mut self) -> Result<Op, mpsc::error::TryRecvError> {
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
pub(super) enum Ended {
    /// The node left the cluster (shutdown).
    Left,
    /// The hub is gone (every handle on the link dropped, or nobody reads the events).
    Dropped,
}

impl Worker {
    /// Connects, serves, and reconnects with backoff, until the node leaves the cluster.
    pub(super) async fn run(mut self) {
        info!(node = %self.link.node, redis = %self.target.describe(), "cluster node starting");
        let longest = if self.target.is_sentinel() {
            SENTINEL_BACKOFF_MAX
        } else {
            BACKOFF.1
        };
        let mut backoff = BACKOFF.0;
        let unreachable = crate::limits::LogThrottle::default();
        loop {
            match self.connect().await {
                Ok(conns) => {
                    backoff = BACKOFF.0;
                    let served = self.serve(conns).await;
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
            backoff = (backoff * 2).min(longest);
        }
    }

    /// Connects to the Redis that is the master now (the URL's, or the one the sentinels name).
    /// With sentinels, a failed attempt has the next one ask another sentinel first.
    async fn connect(
        &mut self,
    ) -> redis::RedisResult<(MultiplexedConnection, MultiplexedConnection)> {
        let connected = self.connect_once().await;
        if connected.is_err() {
            self.target.failed();
        }
        connected
    }

    async fn connect_once(
        &mut self,
    ) -> redis::RedisResult<(MultiplexedConnection, MultiplexedConnection)> {
        let client = self.target.master().await?;
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

    pub(super) fn keep(&mut self, write: Write) {
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
    ) -> redis::RedisResult<Ended> {
        let scripts = Scripts::get();
        for script in scripts.all() {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.code)
                .query_async::<String>(&mut writer)
                .await?;
        }
        self.sync(&mut writer).await?;
        if self.last_id.is_none() {
            self.last_id = Some(latest_id(&mut writer).await?);
            // Before anyone can log in here: the room's history so far. What is added after the
            // stream position just read comes from the stream too, and is kept once.
            if let Some(history) = self.history {
                let kept = recent(&mut writer, history.keep).await?;
                let _ = self.events.send(Event::Recent(kept)).await;
            }
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
            events,
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
            events,
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
}
