//! Cluster mode: several nodes share one room through Redis.
//!
//! The hub keeps its members and their queues in memory as always; this module is its
//! backplane to the other nodes ([`Redis`]). What must be the same everywhere lives in Redis (`docs/CLUSTER.md` has the
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
//! The Redis is one URL, or the master a set of Redis Sentinels names ([`connect`]); a node
//! asks them again each time it connects, so that it follows a failover. With replicas it
//! counts nothing as written or read before one has it ([`replicas`]), so that a failover
//! loses nothing a node acknowledged or delivered.
//!
//! One task per node owns the Redis connections ([`worker`]). The hub talks to it through a
//! queue of ops ([`link`]), which it writes in order, many to a pipeline ([`pipeline`]): a node's releases reach Redis before
//! the disconnect that announces them, and its messages reach the stream in the order their
//! senders sent them. While Redis cannot be reached the link is down: claims fail at once
//! (logins are refused), messages are refused, and the writes that must not be lost (releases,
//! departures) wait in a backlog. On reconnecting the node re-registers, re-claims what its
//! members hold, writes the backlog ([`sync`]) and reads the stream on from where it stopped
//! ([`stream`]). What the other nodes cause reaches the hub as events; the Lua scripts that make
//! claims and reaping atomic are in `lua/` ([`scripts`]).

mod connect;
mod link;
mod pipeline;
mod replicas;
mod scripts;
mod stream;
mod sync;
mod worker;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::auth::TokenKey;
use crate::config::{ClusterConfig, HistoryConfig, Role};
use crate::hub::backplane::{BoxFuture, Departure};
use crate::hub::{
    Backplane, Event, Kind, MemberInfo, NodeRequest, NodeStatus, PageView, Payload, Profile,
    RemoteHeld, Unavailable,
};
use clichat_proto::HistoryEntry;
use link::{Link, Said, Write};
use worker::{OpQueue, Worker};

/// Events waiting for the hub; past this the stream reader waits (and Redis keeps the rest).
const EVENTS_QUEUED: usize = 4096;

/// A member as the other nodes see it: what `who`, kicks and bans need, and the frame that
/// announces its departure should its node die.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemberRecord {
    id: u64,
    name: String,
    kind: Kind,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// The token's key as hex (its SHA-256, never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Where a member without a token connected from: what a ban of it names besides its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
    /// The `disconnect` frame to announce if the node dies.
    bye: String,
}

impl MemberRecord {
    /// The record of `member`, as JSON.
    fn json(member: &MemberInfo) -> String {
        let record = MemberRecord {
            id: member.id,
            name: member.name.clone(),
            kind: member.profile.kind,
            role: member.profile.role,
            label: member.profile.label.clone(),
            token: member.profile.token.map(|key| key.to_hex()),
            address: member
                .profile
                .token
                .is_none()
                .then(|| member.profile.peer.map(|peer| peer.ip()))
                .flatten(),
            bye: clichat_proto::ServerFrame::Disconnect(member.name.clone()).encode(),
        };
        serde_json::to_string(&record).expect("a record always serializes")
    }

    /// The member this record describes, on `node`.
    fn member(self, node: String) -> MemberInfo {
        MemberInfo {
            node: Some(node),
            id: self.id,
            name: self.name,
            profile: Profile {
                kind: self.kind,
                role: self.role,
                token: self.token.as_deref().and_then(TokenKey::from_hex),
                label: self.label,
                peer: self.address.map(|ip| SocketAddr::new(ip, 0)),
            },
        }
    }
}

/// The cluster's backplane: one node's view of the room the nodes share through Redis.
#[derive(Debug)]
pub(crate) struct Redis {
    link: Arc<Link>,
    /// Token pages opened here and not settled yet.
    pages: AtomicUsize,
    /// How much history the room keeps (`None`: off).
    history: Option<HistoryConfig>,
    /// This node's number for its next message (see `say.lua`): microseconds since the epoch
    /// at the start, so that a restarted node's numbers are past its earlier ones.
    said: std::sync::atomic::AtomicU64,
}

/// Starts this node's backplane: returns it at once, with the events the other nodes cause,
/// and connects (and keeps reconnecting) in the background. Must be called within a Tokio
/// runtime.
///
/// # Errors
/// The CA file (`ca_file`) cannot be read or holds no certificate.
pub(crate) fn start(
    config: &ClusterConfig,
    history: Option<HistoryConfig>,
) -> Result<(Arc<Redis>, mpsc::Receiver<Event>), crate::tls::TlsError> {
    let (link, mut worker, events) = prepare(config)?;
    worker.history = history;
    link.set_worker(tokio::spawn(worker.run()).abort_handle());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros());
    let redis = Redis {
        link,
        pages: AtomicUsize::new(0),
        history,
        said: std::sync::atomic::AtomicU64::new(u64::try_from(started).unwrap_or(u64::MAX)),
    };
    Ok((Arc::new(redis), events))
}

/// The link and its worker, not started.
fn prepare(
    config: &ClusterConfig,
) -> Result<(Arc<Link>, Worker, mpsc::Receiver<Event>), crate::tls::TlsError> {
    let target = connect::Target::new(config)?;
    let node = config.node_id.clone().unwrap_or_else(|| {
        let suffix: u32 = rand::random();
        format!("node-{suffix:08x}")
    });
    let (ops, rx) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::channel(EVENTS_QUEUED);
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
        target,
        ttl: config.node_ttl(),
        ops: OpQueue { rx, queued },
        events,
        inflight: Vec::new(),
        backlog: VecDeque::new(),
        cursor: None,
        history: None,
        replicas: replicas::Replicas::default(),
    };
    Ok((link, worker, events_rx))
}

impl Backplane for Redis {
    fn status(&self) -> Option<NodeStatus<'_>> {
        Some(NodeStatus {
            node: self.link.node(),
            up: self.link.is_up(),
        })
    }

    fn claim_name<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(self.link.claim_name(key))
    }

    fn release_name(&self, key: String) {
        self.link.write(Write::ReleaseName(key));
    }

    fn claim_hold(&self, key: TokenKey) -> BoxFuture<'_, Result<bool, Unavailable>> {
        Box::pin(async move { self.link.claim_hold(&key.to_hex()).await })
    }

    fn release_hold(&self, key: TokenKey) {
        self.link.write(Write::ReleaseHold(key.to_hex()));
    }

    fn open_page<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Unavailable>> {
        // Counted from the question on: the page's lease settles it, whatever the answer,
        // unless the id turns out to be another login's.
        self.pages.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let opened = self.link.open_page(id, token, ttl).await;
            if opened == Ok(false) {
                self.pages.fetch_sub(1, Ordering::Relaxed);
            }
            opened
        })
    }

    fn view_page<'a>(&'a self, id: &'a str, max_views: u32) -> BoxFuture<'a, PageView> {
        Box::pin(async move {
            self.link
                .view_page(id, max_views)
                .await
                .unwrap_or(PageView::Unavailable)
        })
    }

    fn settle_page(&self, id: String) {
        self.pages.fetch_sub(1, Ordering::Relaxed);
        self.link.write(Write::SettlePage(id));
    }

    fn pending_pages(&self) -> usize {
        self.pages.load(Ordering::Relaxed)
    }

    fn accepts_messages(&self) -> bool {
        self.link.accepts_messages()
    }

    fn publish(&self, frame: Payload) {
        self.link.write(Write::Frame(frame));
    }

    fn number(&self, sender: u64, from: &str, text: &str, time_ms: u64) -> Option<HistoryEntry> {
        let history = self.history.unwrap_or_default();
        let oldest_ms = crate::history_db::now_ms()
            .saturating_sub(u64::try_from(history.max_age().as_millis()).unwrap_or(u64::MAX));
        self.link.write(Write::Said(Said {
            member: sender,
            number: self.said.fetch_add(1, Ordering::Relaxed),
            time_ms,
            from: from.to_owned(),
            text: text.to_owned(),
            keep: history.keep,
            oldest_ms,
        }));
        None
    }

    fn clear_history(&self) {
        self.link.write(Write::ClearHistory);
        self.link.request(&NodeRequest::ClearHistory);
    }

    fn held(&self, key: &TokenKey, record: &RemoteHeld, window: Duration, stopping: bool) {
        let orphan = stopping.then(|| link::Orphan {
            member: record.keys[0].clone(),
            until_ms: record.session.until_ms,
            bye: Payload::from(
                clichat_proto::ServerFrame::Disconnect(record.session.name.clone()).encode(),
            ),
        });
        self.link.write(Write::Held {
            key: key.to_hex(),
            record: serde_json::to_string(record).expect("a held record serializes"),
            window_ms: pipeline::ms_u64(window),
            orphan,
        });
    }

    fn unheld(&self, key: &TokenKey) {
        self.link.write(Write::Unheld(key.to_hex()));
    }

    fn take_held<'a>(
        &'a self,
        key: &'a TokenKey,
    ) -> BoxFuture<'a, Result<Option<RemoteHeld>, Unavailable>> {
        Box::pin(async move {
            let record = self.link.take_held(&key.to_hex()).await?;
            Ok(record.and_then(|record| serde_json::from_str(&record).ok()))
        })
    }

    fn joined(&self, key: &str, member: &MemberInfo) {
        self.link.write(Write::Member {
            folded: key.to_owned(),
            record: MemberRecord::json(member),
        });
    }

    fn departed(&self, key: String, departure: Departure) {
        self.link.write(match departure {
            Departure::Announced(bye) => Write::Depart {
                folded: key,
                bye,
                always: false,
            },
            Departure::Silent => Write::Unmember(key),
        });
    }

    fn find<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<MemberInfo>, Unavailable>> {
        Box::pin(async move {
            Ok(match self.link.find(key).await? {
                // This node's own members are the hub's to find.
                Some((node, _)) if node == self.link.node() => None,
                Some((node, record)) => Some(record.member(node)),
                None => None,
            })
        })
    }

    fn others(&self) -> BoxFuture<'_, Result<Vec<MemberInfo>, Unavailable>> {
        Box::pin(async move {
            let mut others: Vec<(String, MemberRecord)> = self
                .link
                .who()
                .await?
                .into_iter()
                .filter(|(node, _)| node != self.link.node())
                .collect();
            others.sort_by(|a, b| (&a.0, a.1.id).cmp(&(&b.0, b.1.id)));
            Ok(others
                .into_iter()
                .map(|(node, record)| record.member(node))
                .collect())
        })
    }

    fn request(&self, request: &NodeRequest) {
        self.link.request(request);
    }

    fn leave(&self, within: Duration) -> BoxFuture<'_, ()> {
        Box::pin(self.link.leave(within))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use link::MAX_QUEUED_OPS;

    #[tokio::test]
    async fn messages_are_refused_while_the_op_queue_is_full() {
        let config = ClusterConfig {
            node_id: Some("n1".to_owned()),
            ..ClusterConfig::on_redis("redis://127.0.0.1:1/")
        };
        // The worker is not run: nothing takes the ops but the test.
        let (link, mut worker, _events) = prepare(&config).unwrap();
        link.up.store(true, Ordering::Release);
        assert!(link.accepts_messages());
        for _ in 0..MAX_QUEUED_OPS {
            link.write(Write::Request(String::new()));
        }
        assert!(!link.accepts_messages(), "a full queue refuses messages");
        assert!(worker.ops.try_recv().is_ok());
        assert!(link.accepts_messages(), "one taken frees one place");
        assert!(worker.ops.recv().await.is_some());
        assert_eq!(link.queued.load(Ordering::Relaxed), MAX_QUEUED_OPS - 2);
    }

    #[test]
    fn records_keep_what_moderation_needs() {
        let member = MemberInfo {
            node: None,
            id: 7,
            name: "[BOT] echo".into(),
            profile: Profile {
                kind: Kind::Bot,
                role: Role::Mod,
                token: Some(TokenKey::of("t")),
                label: Some("l".into()),
                peer: Some("127.0.0.1:1".parse().unwrap()),
            },
        };
        let json = MemberRecord::json(&member);
        assert!(json.contains(r#""kind":"bot""#), "{json}");
        let back: MemberRecord = serde_json::from_str(&json).unwrap();
        let remote = back.member("n2".into());
        assert_eq!(remote.node.as_deref(), Some("n2"));
        assert_eq!(remote.profile.peer, None);
        assert_eq!(
            MemberInfo {
                node: None,
                profile: Profile {
                    peer: member.profile.peer,
                    ..remote.profile
                },
                ..remote
            },
            member
        );
    }
}
