//! The worker: the one task that owns a node's Redis connections. It connects (and reconnects
//! with backoff, asking the sentinels each time which Redis is the master, if it has them),
//! then, while connected, writes the link's ops in batches, reads the room stream and renews
//! the node's registration, all at once; what fails ends the spell, and the next one starts
//! with a sync ([`super::sync`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::connect::Target;
use super::link::{Link, Op, Write};
use super::pipeline::{BATCH, heartbeat, ms, write_batch};
use super::replicas::Replicas;
use super::scripts::Scripts;
use super::stream::{Cursor, READ_BLOCK_MS, latest_id, read_forever, recent, recover};
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
    /// Where this node is in the room stream: where to read on from after a reconnect. `None`
    /// until the first connection.
    pub(super) cursor: Option<Cursor>,
    /// How much history the room keeps (`None`: off).
    pub(super) history: Option<HistoryConfig>,
    /// Whether writes and reads wait for a replica (see [`super::replicas`]).
    pub(super) replicas: Replicas,
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

    /// Connects to the Redis that is the master now (the URL's, or the one the sentinels name),
    /// once it has said it is one. With sentinels, a failed attempt has the next one ask
    /// another sentinel first.
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
        let mut writer = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // A master, whose replicas (if it has any) this node then waits for.
        self.replicas
            .connected(client.get_connection_info().addr.to_string());
        self.replicas.check(&mut writer).await?;
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
        // Back from an outage (which the other nodes may have shared, as in a failover): it
        // reaps nobody for a TTL, so that they have the time to come back too.
        let rejoined = self.cursor.is_some();
        if let Some(cursor) = &mut self.cursor {
            recover(&mut writer, cursor).await?;
        }
        self.sync(&mut writer).await?;
        if self.cursor.is_none() {
            self.cursor = Some(Cursor {
                id: latest_id(&mut writer).await?,
                seq: 0,
            });
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
            cursor,
            events,
            replicas,
            target,
            ..
        } = self;
        let replicas: &Replicas = replicas;
        let reap_from = Instant::now() + if rejoined { ttl } else { Duration::ZERO };
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
                let written = write_batch(&mut writer, &node, inflight, backlog, replicas);
                if let Some(ended) = written.await? {
                    return Ok(ended);
                }
            }
        };
        let reading = read_forever(
            &mut reader,
            &node,
            cursor.as_mut().expect("set above"),
            events,
            replicas,
        );
        let beating = async {
            let mut every = tokio::time::interval(ttl / 5);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let reap = Instant::now() >= reap_from;
                match heartbeat(&mut beat_conn, &node, ttl, reap).await {
                    Ok(0) => {
                        // Our deadline passed (a long stall, or Redis lost its data):
                        // reconnect and reconcile from scratch.
                        return Err::<Ended, _>(redis::RedisError::from((
                            redis::ErrorKind::ClientError,
                            "this node's registration lapsed",
                        )));
                    }
                    Ok(_) => {
                        // Still the master? And does a replica keep up (again)?
                        replicas.check(&mut beat_conn).await?;
                        // Within a beat's time: a sentinel that hangs must not hold up the
                        // heartbeats.
                        if !target.still_named(ttl / 5).await {
                            return Err(redis::RedisError::from((
                                redis::ErrorKind::ClientError,
                                "the sentinels name another master now",
                            )));
                        }
                    }
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
