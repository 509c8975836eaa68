//! Cluster mode on Redis replicated and watched by Redis Sentinel, through failovers, and over
//! TLS. Each test starts its own Redis processes on free loopback ports (see
//! `common::sentinel`); the nodes run in this process.
//!
//! What a failover must not do: lose a message a sender was not refused for, deliver one
//! twice, deliver one that the new master then lacks, or hand out a number twice. Every
//! message is sent, and then `["members"]`, whose answer comes after the message's refusal if
//! it was refused: so each sender knows which of its messages were taken. Without
//! `redis-server` or `redis-sentinel` the tests say so in a line and skip (under `CI=true` they
//! fail).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use clichat_proto::refusal::MESSAGE_NOT_SENT;
use common::sentinel::{MASTER_NAME, Replicated, Setup, connect};
use common::status::wait_link;
use common::{Client, TOKENS, TestServer, WAIT, config, config_json};
use serde_json::{Value, json};

const NODE_TTL_SECS: u64 = 2;
/// How often each chatting client sends: paces the load (it synchronizes nothing).
const PACE: Duration = Duration::from_millis(5);
/// Messages each sender has taken before the master fails, and after the new one is named.
const TAKEN_BEFORE: usize = 20;
const TAKEN_AFTER: usize = 20;

fn node_config(replicated: &Replicated, node: &str) -> Value {
    let mut cluster = json!({
        "sentinels": replicated.sentinel_addrs(),
        "master": MASTER_NAME,
        "node_id": node,
        "node_ttl_secs": NODE_TTL_SECS,
    });
    if let Some(tls) = &replicated.tls {
        cluster["tls"] = json!(true);
        cluster["ca_file"] = json!(tls.ca);
    }
    config_json(json!({"cluster": cluster}))
}

/// A node on the sentinels' master, once its link is up.
async fn node(replicated: &Replicated, name: &str) -> TestServer {
    let server = TestServer::start(config(node_config(replicated, name))).await;
    wait_link(&server.url("/_status"), "up").await;
    server
}

/// A message as one receiver got it.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    seq: u64,
    from: String,
    text: String,
}

/// One message a client sent.
#[derive(Debug)]
struct Sent {
    text: String,
    /// Not refused.
    taken: bool,
    at: Instant,
}

/// A client logged in with `history` and `presence`: what it sent, and what it received.
struct Chatter {
    client: Client,
    name: String,
    sent: Vec<Sent>,
    got: Vec<Got>,
    /// `disconnect` frames: nobody leaves in these tests.
    gone: Vec<String>,
}

impl Chatter {
    async fn login(node: &TestServer, name: &str, token: &str) -> Chatter {
        let caps = ["history", "presence"];
        let (mut client, granted) = Client::login_asking(node.addr, name, token, &caps).await;
        assert_eq!(granted, caps);
        client.expect_history().await;
        client.expect_members().await;
        Chatter {
            client,
            name: name.to_owned(),
            sent: Vec::new(),
            got: Vec::new(),
            gone: Vec::new(),
        }
    }

    /// Sends its next message, then `["members"]`; a refusal before the answer says the
    /// message was refused. What arrives meanwhile is recorded.
    async fn say_next(&mut self) {
        let text = format!("{}{}", self.name, self.sent.len());
        let at = Instant::now();
        self.client.say(&text).await;
        self.client.send(json!(["members"])).await;
        let mut taken = true;
        loop {
            let frame = self.client.recv().await;
            match frame[0].as_str() {
                Some("members") => break,
                Some("refusal") => {
                    assert_eq!(frame[1], MESSAGE_NOT_SENT, "{}: {frame}", self.name);
                    taken = false;
                }
                _ => self.note(&frame),
            }
        }
        self.sent.push(Sent { text, taken, at });
    }

    /// Sends its next message and nothing after it, for a test that must not wait on Redis
    /// and knows otherwise that the message was taken.
    async fn say_only(&mut self) {
        let text = format!("{}{}", self.name, self.sent.len());
        self.client.say(&text).await;
        self.sent.push(Sent {
            text,
            taken: true,
            at: Instant::now(),
        });
    }

    /// Records a frame that answers nothing this client asked.
    fn note(&mut self, frame: &Value) {
        match frame[0].as_str() {
            Some("message") => self.got.push(Got {
                seq: frame[3]
                    .as_u64()
                    .expect("numbered: the client asked for history"),
                from: frame[1].as_str().unwrap().to_owned(),
                text: frame[2].as_str().unwrap().to_owned(),
            }),
            Some("disconnect") => self.gone.push(frame[1].as_str().unwrap().to_owned()),
            Some("join") => {}
            _ => panic!("{}: unexpected {frame}", self.name),
        }
    }

    /// Reads until every message of `texts` has arrived.
    async fn receive_all(&mut self, texts: &HashSet<String>) {
        loop {
            let missing: Vec<&String> = texts
                .iter()
                .filter(|text| !self.got.iter().any(|got| &got.text == *text))
                .collect();
            if missing.is_empty() {
                return;
            }
            // Less than the client's own wait, to say what is missing.
            let next = tokio::time::timeout(WAIT - Duration::from_secs(1), self.client.recv());
            let Ok(frame) = next.await else {
                panic!("{} never got {missing:?}; got {:?}", self.name, self.got);
            };
            self.note(&frame);
        }
    }

    fn taken(&self) -> impl Iterator<Item = &Sent> {
        self.sent.iter().filter(|sent| sent.taken)
    }

    /// The taken messages sent at or after `since`.
    fn taken_since(&self, since: Instant) -> usize {
        self.taken().filter(|sent| sent.at >= since).count()
    }

    /// From the first refusal to the first message taken after it, if any was refused.
    fn refused_for(&self) -> Option<Duration> {
        let first = self.sent.iter().position(|sent| !sent.taken)?;
        let back = self.sent[first..].iter().find(|sent| sent.taken)?;
        Some(back.at - self.sent[first].at)
    }

    fn refused(&self) -> usize {
        self.sent.iter().filter(|sent| !sent.taken).count()
    }
}

/// Every message each receiver should have (the others' taken ones) arrived, once, and
/// nothing else; numbers grow at every receiver, and a message has one number everywhere;
/// receivers that see the same messages see them in one order.
async fn check_deliveries(chatters: &mut [&mut Chatter]) {
    let taken: HashMap<String, HashSet<String>> = chatters
        .iter()
        .map(|c| (c.name.clone(), c.taken().map(|s| s.text.clone()).collect()))
        .collect();
    let mut numbers: HashMap<String, u64> = HashMap::new();
    for chatter in chatters.iter_mut() {
        let expected: HashSet<String> = taken
            .iter()
            .filter(|(name, _)| **name != chatter.name)
            .flat_map(|(_, texts)| texts.iter().cloned())
            .collect();
        chatter.receive_all(&expected).await;
        let got: Vec<&str> = chatter.got.iter().map(|g| g.text.as_str()).collect();
        let distinct: HashSet<&str> = got.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            got.len(),
            "{} got a message twice",
            chatter.name
        );
        let extra: Vec<&&str> = distinct
            .iter()
            .filter(|text| !expected.contains(**text))
            .collect();
        assert!(
            extra.is_empty(),
            "{} got messages never taken (refused, or its own): {extra:?}",
            chatter.name
        );
        assert!(
            chatter.got.windows(2).all(|w| w[0].seq < w[1].seq),
            "{}: numbers do not grow: {:?}",
            chatter.name,
            chatter.got
        );
        for got in &chatter.got {
            let number = *numbers.entry(got.text.clone()).or_insert(got.seq);
            assert_eq!(number, got.seq, "{} numbered differently", got.text);
            assert!(got.text.starts_with(&got.from), "{got:?}");
        }
        assert!(
            chatter.gone.is_empty(),
            "{}: {:?}",
            chatter.name,
            chatter.gone
        );
    }
    // One number, one message.
    let mut by_number: HashMap<u64, &str> = HashMap::new();
    for (text, number) in &numbers {
        let other = by_number.insert(*number, text);
        assert!(other.is_none(), "{number} given to {text} and {other:?}");
    }
}

/// How a master stops being the master.
enum Failure {
    /// SIGKILL: it dies, and the sentinels promote its replica.
    Kill,
    /// `SENTINEL FAILOVER`: the sentinels promote a replica and make the old master a replica
    /// of it (a demoted master, alive and read-only).
    Handover,
}

/// Two clients chat, one on each node, and a watcher on each listens; the master fails once
/// both senders have had [`TAKEN_BEFORE`] messages taken; the chat goes on until both have had
/// [`TAKEN_AFTER`] taken since the sentinels named the new master. Then every delivery is
/// checked. Returns the senders, for what else a test checks.
async fn chat_through(failure: Failure, tls: bool) -> Option<(Chatter, Chatter)> {
    let setup = match failure {
        Failure::Kill => Setup {
            tls,
            ..Setup::default()
        },
        // A handover leaves the old master running: refusing writes once it has lost its
        // replicas keeps it from taking any between the promotion and its demotion; a second
        // replica gives the new master one at once.
        Failure::Handover => Setup {
            more_replicas: 1,
            min_replicas_to_write: true,
            tls,
            ..Setup::default()
        },
    };
    let mut replicated = Replicated::start_if_installed(setup).await?;
    let n1 = node(&replicated, "n1").await;
    let n2 = node(&replicated, "n2").await;
    let mut a = Chatter::login(&n1, "a", TOKENS[0]).await;
    let mut b = Chatter::login(&n2, "b", TOKENS[1]).await;
    let mut w1 = Chatter::login(&n1, "w1", TOKENS[2]).await;
    let mut w2 = Chatter::login(&n2, "w2", TOKENS[3]).await;
    let old_master = replicated.master.port;
    let mut sentinel = replicated.connect(replicated.sentinels[0].port).await;

    let mut pace = tokio::time::interval(PACE);
    let mut failed_at = None;
    let mut named_at = None;
    let deadline = Instant::now() + 6 * WAIT;
    loop {
        assert!(Instant::now() < deadline, "the chat never recovered");
        pace.tick().await;
        a.say_next().await;
        b.say_next().await;
        match (failed_at, named_at) {
            (None, _) if a.taken().count() >= TAKEN_BEFORE && b.taken().count() >= TAKEN_BEFORE => {
                match failure {
                    Failure::Kill => replicated.kill_master().await,
                    Failure::Handover => {
                        let _: String = redis::cmd("SENTINEL")
                            .arg("FAILOVER")
                            .arg(MASTER_NAME)
                            .query_async(&mut sentinel)
                            .await
                            .unwrap();
                    }
                }
                failed_at = Some(Instant::now());
            }
            (Some(_), None) => {
                if Replicated::named_master(&mut sentinel).await != old_master {
                    named_at = Some(Instant::now());
                }
            }
            (Some(_), Some(named)) => {
                if a.taken_since(named) >= TAKEN_AFTER && b.taken_since(named) >= TAKEN_AFTER {
                    break;
                }
            }
            (None, _) => {}
        }
    }
    let (failed_at, named_at) = (failed_at.unwrap(), named_at.unwrap());
    // Every sentinel agrees, and both nodes are on the new master.
    replicated.wait_new_master().await;
    for node in [&n1, &n2] {
        wait_link(&node.url("/_status"), "up").await;
    }
    check_deliveries(&mut [&mut a, &mut b, &mut w1, &mut w2]).await;
    // The watchers, which see everything, see it in one order.
    assert_eq!(w1.got, w2.got);
    // Messages sent after the new master was named reached the other node.
    for (sender, receiver) in [(&a, &b), (&b, &a)] {
        let late: HashSet<&str> = sender
            .taken()
            .filter(|sent| sent.at >= named_at)
            .map(|sent| sent.text.as_str())
            .collect();
        assert_eq!(
            receiver
                .got
                .iter()
                .filter(|got| late.contains(got.text.as_str()))
                .count(),
            late.len()
        );
    }
    let named_after = named_at - failed_at;
    eprintln!(
        "failover measured: the sentinels named the new master {named_after:?} after the \
         master failed; a (n1) had {} of {} messages refused, for {:?}; b (n2) {} of {}, for {:?}",
        a.refused(),
        a.sent.len(),
        a.refused_for(),
        b.refused(),
        b.sent.len(),
        b.refused_for(),
    );
    n1.stop().await;
    n2.stop().await;
    Some((a, b))
}

#[tokio::test]
async fn nodes_follow_the_sentinels_when_the_master_is_killed() {
    let Some((a, b)) = chat_through(Failure::Kill, false).await else {
        return;
    };
    // With no master, messages are refused rather than lost.
    for sender in [&a, &b] {
        assert!(sender.refused() > 0, "{} was never refused", sender.name);
    }
}

#[tokio::test]
async fn nodes_leave_a_demoted_master_for_the_promoted_replica() {
    chat_through(Failure::Handover, false).await;
}

/// `"tls": true` with sentinels: the nodes speak TLS to the sentinels and to every Redis,
/// trusting `ca_file`, and follow a failover as without TLS.
#[tokio::test]
async fn nodes_follow_the_sentinels_over_tls() {
    chat_through(Failure::Kill, true).await;
}

/// The replica misses the master's newest writes (its replication link is held), and the
/// master dies: what the nodes had delivered, and what the senders were not refused for, is
/// still all there on the new master, once, with numbers that never repeat.
#[tokio::test]
async fn a_failover_to_a_replica_that_missed_the_newest_writes_loses_nothing() {
    let held = Setup {
        held: true,
        ..Setup::default()
    };
    let Some(mut replicated) = Replicated::start_if_installed(held).await else {
        return;
    };
    let n1 = node(&replicated, "n1").await;
    let n2 = node(&replicated, "n2").await;
    let mut a = Chatter::login(&n1, "a", TOKENS[0]).await;
    let mut b = Chatter::login(&n2, "b", TOKENS[1]).await;
    let mut w = Chatter::login(&n1, "w", TOKENS[2]).await;
    for _ in 0..5 {
        a.say_next().await;
        b.say_next().await;
    }
    let mut master = connect(replicated.master.port).await;
    let counter = async |conn: &mut redis::aio::MultiplexedConnection| -> u64 {
        redis::cmd("GET")
            .arg("clichat:seq")
            .query_async::<Option<u64>>(conn)
            .await
            .unwrap()
            .unwrap_or(0)
    };
    // Everything so far is on the replica too: the nodes waited for it.
    let before = counter(&mut master).await;
    assert_eq!(before, 10);
    let replica = replicated.replicas[0].port;
    assert_eq!(counter(&mut connect(replica).await).await, before);

    // From now on the replica gets nothing. One message from each sender reaches the master
    // (and so was taken: a refused message is written nowhere), and not the replica. The
    // nodes must not deliver them before a replica has them, nor lose them.
    replicated.hold.as_ref().unwrap().hold();
    let held_at = Instant::now();
    a.say_only().await;
    b.say_only().await;
    common::eventually("the held messages written to the master", async || {
        counter(&mut master).await == before + 2
    })
    .await;
    assert_eq!(counter(&mut connect(replica).await).await, before);
    replicated.kill_master().await;
    let killed_after = held_at.elapsed();
    assert_eq!(replicated.wait_new_master().await, replica);
    // The nodes follow, and the chat goes on.
    for node in [&n1, &n2] {
        wait_link(&node.url("/_status"), "up").await;
    }
    for _ in 0..5 {
        a.say_next().await;
        b.say_next().await;
    }
    check_deliveries(&mut [&mut a, &mut b, &mut w]).await;
    eprintln!("held writes: the master was killed {killed_after:?} after the replica stopped");
    n1.stop().await;
    n2.stop().await;
}

/// `rediss://` with a CA of the owner's own: a node connects over TLS, checking Redis's
/// certificate against `ca_file`, and the cluster works as on plain Redis.
#[tokio::test]
async fn nodes_speak_tls_to_redis_trusting_their_own_ca() {
    if common::require_program("redis-server", "redis-server").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = common::sentinel::TlsFiles::new();
    let redis = common::sentinel::tls_redis(dir.path(), &tls).await;

    let tls_node = async |name: &str| {
        let cluster = json!({
            "redis": format!("rediss://127.0.0.1:{}/", redis.port),
            "ca_file": tls.ca,
            "node_id": name,
            "node_ttl_secs": NODE_TTL_SECS,
        });
        let server = TestServer::start(config(config_json(json!({"cluster": cluster})))).await;
        wait_link(&server.url("/_status"), "up").await;
        server
    };
    let n1 = tls_node("n1").await;
    let n2 = tls_node("n2").await;
    let mut a = Chatter::login(&n1, "a", TOKENS[0]).await;
    let mut b = Chatter::login(&n2, "b", TOKENS[1]).await;
    for _ in 0..5 {
        a.say_next().await;
        b.say_next().await;
    }
    check_deliveries(&mut [&mut a, &mut b]).await;
    n1.stop().await;
    n2.stop().await;

    // A node that trusts another CA does not take Redis's certificate: it says so, and stays
    // out of the cluster.
    let other = common::sentinel::TlsFiles::new();
    let cluster = json!({
        "redis": format!("rediss://127.0.0.1:{}/", redis.port),
        "ca_file": other.ca,
        "node_id": "n3",
    });
    let path = dir.path().join("secureconfig.json");
    common::write_config(&path, &config_json(json!({"cluster": cluster})));
    let mut n3 = common::process::start(&path, "info").await;
    let line = n3.log_line("cannot reach the cluster's Redis").await;
    assert!(line.contains("certificate"), "{line}");
    let status = common::status::report(&format!("http://{}/_status", n3.addr)).await;
    assert_eq!(status["cluster"]["link"], "down");
    n3.stop().await;
}
