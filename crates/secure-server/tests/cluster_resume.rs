//! Resume in cluster mode, against a real `redis-server`: a session held by one node is resumed
//! on another (as a load balancer may send the client elsewhere), with exactly the messages it
//! missed, and nobody on either node hears it leave. Without `redis-server` the test says so
//! and skips (under `CI=true` it fails).

mod common;

use common::redis::Redis;
use common::status::{wait_held, wait_link, wait_until};
use common::{Client, TOKENS, TestServer, config, config_json};
use serde_json::{Value, json};

const CAPS: [&str; 3] = ["history", "presence", "resume"];

fn node_config(redis: &Redis, name: &str, more: Value) -> Value {
    let mut config = config_json(json!({
        "cluster": {"redis": redis.url(), "node_id": name, "node_ttl_secs": 2},
        "1UPT": false,
    }));
    for (key, value) in more.as_object().unwrap() {
        config[key] = value.clone();
    }
    config
}

async fn node_with(redis: &Redis, name: &str, more: Value) -> TestServer {
    let server = TestServer::start(config(node_config(redis, name, more))).await;
    wait_link(&server.url("/_status"), "up").await;
    server
}

async fn node(redis: &Redis, name: &str) -> TestServer {
    node_with(redis, name, json!({})).await
}

#[tokio::test]
async fn a_session_held_on_one_node_resumes_on_another() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let mut alice = n2.login("alice", TOKENS[0]).await;
    let mut watch = n1.login("watch", TOKENS[2]).await;
    alice.expect(json!(["join", "watch"])).await;

    let (mut bob, _) = Client::login_asking(n1.addr, "bob", TOKENS[1], &CAPS).await;
    bob.expect_history().await;
    bob.expect_members().await;
    let (token, _) = bob.expect_session().await;
    alice.expect(json!(["join", "bob"])).await;
    watch.expect(json!(["join", "bob"])).await;
    alice.say("before").await;
    let before = bob.recv().await;
    let seen = before[3].as_u64().unwrap();

    // Bob's connection to n1 is cut; n1 holds the session.
    drop(bob);
    wait_held(&n1.url("/_status"), 1).await;
    for i in 0..5 {
        alice.say(&format!("missed {i}")).await;
    }
    watch.expect(json!(["message", "alice", "before"])).await;
    for i in 0..5 {
        watch
            .expect(json!(["message", "alice", format!("missed {i}")]))
            .await;
    }

    // He comes back through n2.
    let mut bob = Client::resume_at(n2.addr, &CAPS, &token, seen)
        .await
        .unwrap();
    let history = bob.expect_history().await;
    let texts: Vec<&str> = history.iter().map(|e| e[3].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["missed 0", "missed 1", "missed 2", "missed 3", "missed 4"]
    );
    bob.expect_members().await;
    bob.expect_session().await;

    // Nobody heard him leave: their next frames are his message.
    bob.say("back, through n2").await;
    alice
        .expect(json!(["message", "bob", "back, through n2"]))
        .await;
    watch
        .expect(json!(["message", "bob", "back, through n2"]))
        .await;
    // n1 forgot him; n2 has him, once.
    wait_until(&n1.url("/_status"), "n1 forgets bob", |status| {
        status["held_sessions"] == 0 && status["members"] == 1
    })
    .await;
    n1.stop().await;
    n2.stop().await;
}

/// A resumable user: logs in at `addr`, and keeps every message number and text it was given.
struct Person {
    client: Client,
    token: String,
    got: Vec<(u64, String)>,
}

impl Person {
    async fn login(addr: impl std::fmt::Display, name: &str) -> Person {
        let (client, _) = Client::login_asking(addr, name, TOKENS[0], &CAPS).await;
        let mut person = Person {
            client,
            token: String::new(),
            got: Vec::new(),
        };
        person.read_welcome().await;
        person
    }

    /// After `id`: the history (kept), the members, the session (its token kept).
    async fn read_welcome(&mut self) {
        let history = self.client.expect_kind("history").await;
        assert!(history.get(2).is_none(), "complete: {history}");
        for entry in history[1].as_array().unwrap() {
            let text = entry[3].as_str().unwrap().to_owned();
            self.got.push((entry[0].as_u64().unwrap(), text));
        }
        self.client.expect_members().await;
        self.token = self.client.expect_session().await.0;
    }

    /// Reads messages until it has `count` of the sender's, or the connection closes (then its
    /// close code).
    async fn read_until(&mut self, count: usize) -> Option<common::Closed> {
        while self.got.len() < count {
            let next = tokio::time::timeout(
                common::WAIT,
                futures_util::StreamExt::next(&mut self.client.ws),
            )
            .await
            .expect("a frame in time");
            match next {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(frame[0], "message", "nothing but messages: {frame}");
                    self.got.push((
                        frame[3].as_u64().unwrap(),
                        frame[2].as_str().unwrap().to_owned(),
                    ));
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(close)))) => {
                    return Some(common::Closed::Code(close.code.into()));
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
        None
    }

    /// Resumes at `addr` from the newest number it has.
    async fn resume(&mut self, addr: impl std::fmt::Display) {
        let since = self.got.last().map_or(0, |(seq, _)| *seq);
        self.client = Client::resume_at(addr, &CAPS, &self.token, since)
            .await
            .unwrap();
        self.read_welcome().await;
    }
}

/// A rolling restart: one of two nodes stops while 100 people chat (half on it); they are told to come back
/// (1012), resume on the other node, and every one of them gets every message exactly once, in
/// order; nobody on the other node hears anyone leave or join.
#[tokio::test]
async fn a_rolling_restart_loses_and_repeats_nothing() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    const PEOPLE: usize = 50;
    const BEFORE: usize = 20;
    const AFTER: usize = 20;
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let mut sender = n2.login("sender", TOKENS[1]).await;
    let mut stay = Vec::new();
    let mut moving = Vec::new();
    for i in 0..PEOPLE {
        stay.push(Person::login(n2.addr, &format!("s{i}")).await);
        moving.push(Person::login(n1.addr, &format!("m{i}")).await);
    }
    // Everyone is in: the last login's members frame listed all of them. Joins announced so far
    // are read off and forgotten.
    for person in stay.iter_mut().chain(moving.iter_mut()) {
        person.client.send(json!(["members"])).await;
        loop {
            let frame = person.client.recv().await;
            if frame[0] == "members" {
                assert_eq!(frame[1].as_array().unwrap().len(), 2 * PEOPLE + 1);
                break;
            }
            assert_eq!(frame[0], "join", "{frame}");
        }
    }
    for i in 0..BEFORE {
        sender.say(&format!("m{i}")).await;
    }
    for person in stay.iter_mut().chain(moving.iter_mut()) {
        assert_eq!(person.read_until(BEFORE).await, None);
    }

    // n1 stops, as a rolling deploy stops it, while the sender goes on.
    let stopping = tokio::spawn(n1.stop());
    for i in BEFORE..BEFORE + AFTER {
        sender.say(&format!("m{i}")).await;
    }
    stopping.await.unwrap();
    for person in &mut moving {
        assert_eq!(
            person.read_until(BEFORE + AFTER).await,
            Some(common::Closed::Code(1012))
        );
        person.resume(n2.addr).await;
    }
    sender.say("last").await;
    for person in stay.iter_mut().chain(moving.iter_mut()) {
        assert_eq!(person.read_until(BEFORE + AFTER + 1).await, None);
        let texts: Vec<&str> = person.got.iter().map(|(_, text)| text.as_str()).collect();
        let want: Vec<String> = (0..BEFORE + AFTER)
            .map(|i| format!("m{i}"))
            .chain(["last".to_owned()])
            .collect();
        assert_eq!(texts, want, "every message once, in order");
        assert!(person.got.windows(2).all(|w| w[0].0 < w[1].0));
    }
    n2.stop().await;
}

/// A session a stopping node left held, and nobody resumed: when its window passes, the other
/// nodes announce its departure, once, and its name is free.
#[tokio::test]
async fn an_unresumed_session_of_a_stopped_node_is_announced_gone_by_the_others() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let n1 = node_with(&redis, "n1", json!({"resume_window_secs": 1})).await;
    let n2 = node_with(&redis, "n2", json!({"resume_window_secs": 1})).await;
    let mut alice = n2.login("alice", TOKENS[0]).await;
    let mut bob = Person::login(n1.addr, "bob").await;
    alice.expect(json!(["join", "bob"])).await;
    n1.stop().await;
    assert_eq!(bob.read_until(1).await, Some(common::Closed::Code(1012)));
    // Not at once (he might come back), but when his second is up.
    alice.expect(json!(["disconnect", "bob"])).await;
    let _bob = n2.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    n2.stop().await;
}
