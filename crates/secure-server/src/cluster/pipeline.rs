//! Writing to Redis: each op of the link as commands in a pipeline, and one batch of ops as one
//! round trip, in order; the keys every command names.

use std::collections::VecDeque;
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use tracing::{info, warn};

use super::link::{Call, Op, Write};
use super::replicas::Replicas;
use super::scripts::{Script, Scripts};
use super::worker::Ended;
use crate::hub::Unavailable;

/// Prefix of every key this server writes. A second cluster on the same Redis uses another
/// database (`redis://host/1`).
pub(super) const PREFIX: &str = "clichat:";
/// Entries the room stream keeps (approximately): how far a node that stalls may fall behind
/// before it misses frames.
pub(super) const STREAM_MAX_LEN: u32 = 100_000;
/// Ops written in one pipeline, at most.
pub(super) const BATCH: usize = 512;
/// How long a settled token page keeps answering 410 rather than 404.
const SETTLED_PAGE_SECS: u32 = 3600;

pub(super) fn ms(millis: u32) -> Duration {
    Duration::from_millis(millis.into())
}

pub(super) fn ms_u64(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

pub(super) fn node_key(node: &str, what: &str) -> String {
    format!("{PREFIX}node:{node}:{what}")
}

/// Renews this node's registration, reaping the nodes past their deadline if `reap`: 0 if
/// this node's own deadline had passed.
pub(super) async fn heartbeat(
    conn: &mut MultiplexedConnection,
    node: &str,
    ttl: Duration,
    reap: bool,
) -> redis::RedisResult<i64> {
    reaping(&Scripts::get().heartbeat, node, ttl)
        .arg(u8::from(reap))
        .query_async(conn)
        .await
}

/// A call of a script that may reap nodes (the heartbeat, or a clean leave).
pub(super) fn reaping(script: &Script, node: &str, ttl: Duration) -> redis::Cmd {
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
        Write::Request(text) => add_xadd(pipe, "c", node, text),
        Write::Said(said) => {
            pipe.cmd("EVALSHA")
                .arg(scripts.say.hash)
                .arg(4)
                .arg(key("seq"))
                .arg(key("room"))
                .arg(key("history"))
                .arg(key("said"))
                .arg(node)
                .arg(said.member)
                .arg(said.number)
                .arg(said.time_ms)
                .arg(&said.from)
                .arg(&said.text)
                .arg(STREAM_MAX_LEN)
                .arg(said.keep)
                .arg(said.oldest_ms)
                .ignore();
        }
        Write::ClearHistory => {
            pipe.cmd("DEL").arg(key("history")).ignore();
        }
        Write::Held {
            key: resume,
            record,
            window_ms,
            orphan,
        } => {
            pipe.cmd("SET")
                .arg(key(&format!("held:{resume}")))
                .arg(record)
                .arg("PX")
                .arg((*window_ms).max(1))
                .ignore();
            if let Some(orphan) = orphan {
                // This node is stopping: the member's record goes without a word (its leave
                // announces nobody held), and whoever beats past the window announces it.
                pipe.cmd("HDEL")
                    .arg(node_key(node, "members"))
                    .arg(&orphan.member)
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(key("held_orphans"))
                    .arg(orphan.until_ms)
                    .arg(resume)
                    .ignore();
                pipe.cmd("HSET")
                    .arg(key("held_byes"))
                    .arg(resume)
                    .arg(orphan.bye.as_str())
                    .ignore();
            }
        }
        Write::Unheld(resume) => {
            pipe.cmd("DEL").arg(key(&format!("held:{resume}"))).ignore();
        }
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
        Call::TakeHeld(resume) => {
            pipe.cmd("EVALSHA")
                .arg(scripts.take_held.hash)
                .arg(4)
                .arg(key(&format!("held:{resume}")))
                .arg(key("names"))
                .arg(key("holds"))
                .arg(key("nodes"))
                .arg(node)
                .arg(PREFIX)
                .arg(STREAM_MAX_LEN)
                .arg(resume);
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

/// Writes one batch as one pipeline and answers its calls, emptying `batch`. While the node
/// waits for replicas, the pipeline ends with `WAIT`: its answers come once a replica has the
/// batch.
///
/// If the connection breaks, no replica acknowledges in time, or the Redis turns out not to be
/// the master (read-only, a replica that has lost its own, not enough replicas), the batch's
/// writes go to `backlog` (in order,
/// to be written after reconnecting: Redis may have run some, so those few may be written
/// twice) and its calls fail. If Redis answers another error (a bug, or a Redis that cannot
/// write: out of memory), it did run the rest of the pipeline: the writes are not repeated, the
/// calls fail, and the link is restarted, so that a Redis that keeps failing keeps the node
/// refusing.
pub(super) async fn write_batch(
    conn: &mut MultiplexedConnection,
    node: &str,
    batch: &mut Vec<Op>,
    backlog: &mut VecDeque<Write>,
    replicas: &Replicas,
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
    let waited = replicas.add_wait(&mut pipe);
    let mut replies: redis::RedisResult<Vec<Value>> = pipe.query_async(conn).await;
    if let (Ok(answers), true) = (&mut replies, waited) {
        let acknowledged = answers.pop().map(|answer| redis::from_redis_value(&answer));
        if let Err(error) = replicas.acknowledged(acknowledged.and_then(Result::ok).unwrap_or(0)) {
            replies = Err(error);
        }
    }
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

/// Whether `error` means the connection is gone, or that its Redis is no master to write to
/// (rather than Redis answering an error after running the rest of the pipeline): a replica,
/// or a master demoted by a failover, refuses every write (`READONLY`); a replica that lost its
/// master may refuse everything (`MASTERDOWN`); one still loading its data too (`LOADING`); a
/// master without enough replicas refuses writes (`NOREPLICAS`).
fn is_link_failure(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            redis::ErrorKind::ReadOnly
                | redis::ErrorKind::MasterDown
                | redis::ErrorKind::BusyLoadingError
        )
        || error.code() == Some("NOREPLICAS")
}
