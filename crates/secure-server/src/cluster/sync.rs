//! The sync: what a node does each time it (re)connects, so that Redis agrees with what it
//! holds and the other nodes hear of what changed while it was away.

use std::collections::VecDeque;

use redis::aio::MultiplexedConnection;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::MemberRecord;
use super::link::{Op, Write};
use super::pipeline::{BATCH, PREFIX, STREAM_MAX_LEN, key, ms_u64, node_key, write_batch};
use super::scripts::Scripts;
use super::worker::Worker;
use crate::auth::TokenKey;
use crate::hub::{Event, Payload, Unavailable};

/// What the hub holds, as the sync script takes it.
struct State {
    /// Name keys, of members and of logins under way.
    names: Vec<String>,
    /// Held tokens (hex keys), under 1UPT.
    holds: Vec<String>,
    /// Members: name key and [`MemberRecord`] JSON.
    members: Vec<(String, String)>,
}

/// The error that ends a spell whose hub has gone (the server is shutting down).
fn hub_gone() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::ClientError, "the hub is gone"))
}

impl Worker {
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
    pub(super) async fn sync(
        &mut self,
        conn: &mut MultiplexedConnection,
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
        let state = self.holdings().await?;
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
        let expelled = self.release_lost(lost_names, &lost_holds).await?;
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

    /// What the hub holds now, as the sync script takes it.
    async fn holdings(&self) -> redis::RedisResult<State> {
        let (tx, rx) = oneshot::channel();
        self.ask_hub(Event::Holdings(tx)).await?;
        let holdings = rx.await.map_err(|_| hub_gone())?;
        Ok(State {
            names: holdings.names,
            holds: holdings.holds.iter().map(TokenKey::to_hex).collect(),
            members: holdings
                .members
                .iter()
                .map(|(key, member)| (key.clone(), MemberRecord::json(member)))
                .collect(),
        })
    }

    /// Has the hub close the holders of the names (keys) and tokens (hex keys) other nodes
    /// took; returns the name keys of the members it closed.
    async fn release_lost(
        &self,
        names: Vec<String>,
        holds: &[String],
    ) -> redis::RedisResult<Vec<String>> {
        let (tx, rx) = oneshot::channel();
        let holds = holds
            .iter()
            .filter_map(|hex| TokenKey::from_hex(hex))
            .collect();
        let event = Event::Lost {
            names,
            holds,
            removed: tx,
        };
        self.ask_hub(event).await?;
        rx.await.map_err(|_| hub_gone())
    }

    async fn ask_hub(&self, event: Event) -> redis::RedisResult<()> {
        self.events.send(event).await.map_err(|_| hub_gone())
    }

    /// Writes the backlog, oldest first. What a broken connection leaves unwritten stays in it.
    async fn write_backlog(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        while !self.backlog.is_empty() {
            let count = self.backlog.len().min(BATCH);
            let mut chunk: Vec<Op> = self.backlog.drain(..count).map(Op::Write).collect();
            let mut again = VecDeque::new();
            let written = write_batch(
                conn,
                &self.link.node,
                &mut chunk,
                &mut again,
                &self.replicas,
            );
            if let Err(error) = written.await {
                again.append(&mut self.backlog);
                self.backlog = again;
                return Err(error);
            }
        }
        Ok(())
    }
}
