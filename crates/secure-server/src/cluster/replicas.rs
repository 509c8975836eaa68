//! Waiting for a replica. Redis replicates asynchronously: the writes a master acknowledged
//! just before it died may be missing on the replica a failover promotes. So while the master
//! has a replica that keeps up, a node counts nothing as done before a replica has it
//! (`WAIT 1`, sent on the same connection right after the writes):
//!
//! - its batches of writes: their calls are answered, and their writes forgotten, only then;
//! - what it reads from the room stream: delivered, and the read position moved past it, only
//!   once a replica has it too (the reader makes a small write of its own, `SET
//!   clichat:node:<id>:read`, and waits for it: replication is one ordered stream, so a
//!   replica that has that write has everything before it).
//!
//! So what a node delivered survives a failover, with its number, and the message counter of
//! the new master is past every number delivered. A `WAIT` that no replica answers within
//! [`WAIT_MS`] counts as a broken connection: nothing of it is taken as done, its writes are
//! written again after reconnecting (the master may have been replaced meanwhile: its replica
//! left it to be promoted), and what was read is read again. Reconnected to the same master,
//! the node then does not wait (a stalled replica must not stall the room) until a heartbeat
//! finds a replica that keeps up: one that has acknowledged everything the master had written
//! by the heartbeat before. Each heartbeat asks the master for its role (`ROLE`, which never
//! blocks).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::aio::MultiplexedConnection;
use tracing::{info, warn};

use super::connect::not_a_master;

/// How long one `WAIT` may take.
pub(super) const WAIT_MS: u64 = 1000;

/// Whether the node waits for a replica now. Shared by the writer, the reader and the
/// heartbeat of one connected spell.
#[derive(Debug, Default)]
pub(super) struct Replicas {
    waiting: AtomicBool,
    /// The master's replication offset at the last check: what a replica that keeps up has
    /// acknowledged by the next one.
    offset: AtomicU64,
    /// The master connected to (its address), and the one whose replicas last failed to
    /// acknowledge a `WAIT`.
    masters: Mutex<(String, Option<String>)>,
    /// Warns once in a while, not once per stall.
    stalled: crate::limits::LogThrottle,
}

impl Replicas {
    /// Whether writes and reads wait for a replica now.
    pub(super) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// Adds `WAIT 1` to `pipe` if the node waits for replicas now; `true` if it did (its
    /// answer is then the pipeline's last).
    pub(super) fn add_wait(&self, pipe: &mut redis::Pipeline) -> bool {
        let waiting = self.waiting();
        if waiting {
            pipe.cmd("WAIT").arg(1).arg(WAIT_MS);
        }
        waiting
    }

    /// What a `WAIT` answered: how many replicas acknowledged.
    ///
    /// # Errors
    /// None did: an error that counts as a broken connection, and the waiting stops for
    /// this master.
    pub(super) fn acknowledged(&self, replicas: i64) -> redis::RedisResult<()> {
        if replicas >= 1 {
            return Ok(());
        }
        self.waiting.store(false, Ordering::Release);
        let mut masters = self.masters.lock().unwrap_or_else(PoisonError::into_inner);
        masters.1 = Some(masters.0.clone());
        drop(masters);
        if let Some(times) = self.stalled.hit() {
            warn!(
                times,
                "no replica acknowledged within {WAIT_MS} ms; reconnecting (through the \
                 sentinels, if any) and writing again what was not acknowledged"
            );
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "no replica acknowledged in time",
        )))
    }

    /// A new connection, to the master at `master`: it waits for replicas if the master has
    /// one (see [`Replicas::check`]), unless this master's replicas failed to acknowledge last
    /// time; then only once one keeps up.
    pub(super) fn connected(&self, master: String) {
        self.waiting.store(false, Ordering::Release);
        self.offset.store(0, Ordering::Release);
        let mut masters = self.masters.lock().unwrap_or_else(PoisonError::into_inner);
        if masters.1.as_ref() != Some(&master) {
            masters.1 = None;
        }
        masters.0 = master;
    }

    /// Asks the Redis behind `conn` for its role: `Err` unless it is a master. Turns the
    /// waiting off if it has no replica; on if a replica has acknowledged everything it had
    /// written at the last check, or, at the first check after connecting, if it has an online
    /// replica and none of its replicas failed to acknowledge last time. Otherwise leaves it
    /// as it is (a replica acknowledges once a second: one that lags a heartbeat is not
    /// stalled).
    pub(super) async fn check(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let role: redis::Role = redis::cmd("ROLE").query_async(conn).await?;
        let redis::Role::Primary {
            replication_offset,
            replicas,
        } = role
        else {
            return Err(not_a_master());
        };
        let before = self.offset.swap(replication_offset, Ordering::AcqRel);
        let mut masters = self.masters.lock().unwrap_or_else(PoisonError::into_inner);
        let stalled = masters.1.is_some();
        let keeping_up = replicas.iter().any(|replica| {
            let acknowledged = u64::try_from(replica.replication_offset).unwrap_or(0);
            acknowledged >= before && !(stalled && before == 0)
        });
        if keeping_up {
            masters.1 = None;
        }
        drop(masters);
        if replicas.is_empty() {
            if self.waiting.swap(false, Ordering::AcqRel) {
                info!("the master has no replica now; not waiting for one");
            }
        } else if keeping_up && !self.waiting.swap(true, Ordering::AcqRel) {
            info!("a replica keeps up; writes and deliveries wait for it");
        }
        Ok(())
    }
}
