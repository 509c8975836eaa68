//! Cluster mode against a real `redis-server`: nodes on their own ports sharing one room.
//!
//! Each test starts its own Redis (see `common::redis`), so they run side by side. Nodes run
//! in this process, except the one killed with SIGKILL, which is the real binary. Without
//! `redis-server` the tests say so in a line and skip (under `CI=true` they fail).

mod common;

use std::time::{Duration, Instant};

use clichat_proto::refusal::{
    CLUSTER_UNAVAILABLE, MESSAGE_NOT_SENT, TOKEN_REFUSED, USERNAME_TAKEN,
};
use common::redis::{Redis, Relay, node_process};
use common::status::wait_link;
use common::{BOT_NAME, BOT_TOKEN, TOKENS, TestServer, config, config_json, page_token, status};
use serde_json::{Value, json};

/// Seconds a silent node lives on: short, so that reaping is quick to test.
const NODE_TTL_SECS: u64 = 2;
const MOD_TOKEN: &str = "mod-token";

fn node_config(redis_url: &str, node: &str) -> Value {
    let mut tokens: serde_json::Map<String, Value> =
        TOKENS.iter().map(|t| (t.to_string(), json!({}))).collect();
    tokens.insert(MOD_TOKEN.into(), json!({"role": "mod"}));
    config_json(json!({
        "tokens": tokens,
        "cluster": {"redis": redis_url, "node_id": node, "node_ttl_secs": NODE_TTL_SECS},
        "metrics": {},
    }))
}

/// A node on `redis`, once its link is up.
async fn node(redis: &Redis, name: &str) -> TestServer {
    node_on(&redis.url(), name).await
}

/// A node on the Redis at `redis_url`, once its link is up.
async fn node_on(redis_url: &str, name: &str) -> TestServer {
    let server = TestServer::start(config(node_config(redis_url, name))).await;
    wait_link(&server.url("/_status"), "up").await;
    server
}

/// The same token page, asked of another node (as a load balancer might send the browser).
fn via(link: &str, node: &TestServer) -> String {
    let id = link.rsplit('/').next().unwrap();
    node.url(&format!("/{id}"))
}

async fn metrics(node: &TestServer) -> String {
    let response = reqwest::get(node.url("/metrics")).await.unwrap();
    response.text().await.unwrap()
}

fn message(from: &str, text: &str) -> Value {
    json!(["message", from, text])
}

#[tokio::test]
async fn three_nodes_share_one_room() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let n3 = node(&redis, "n3").await;

    // SAUTH2 on node 1, the page read through node 2.
    let mut alice = n1.connect().await;
    let link = alice.auth("alice", TOKENS[0]).await;
    assert!(link.starts_with(&n1.url("/")), "{link}");
    let temp = page_token(&via(&link, &n2)).await;
    alice.send(json!(["tokenauth", temp])).await;
    alice.expect_id().await;
    // Used: the page is closed on every node.
    assert_eq!(status(&via(&link, &n3)).await, 410);
    assert_eq!(status(&link).await, 410);

    let mut bob = n2.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    let mut carol = n3.login("carol", TOKENS[2]).await;
    alice.expect(json!(["join", "carol"])).await;
    bob.expect(json!(["join", "carol"])).await;

    // Every message reaches every other user once, in the order its sender sent.
    for i in 0..50 {
        alice.say(&format!("a{i}")).await;
    }
    for i in 0..50 {
        bob.expect(message("alice", &format!("a{i}"))).await;
        carol.expect(message("alice", &format!("a{i}"))).await;
    }
    bob.say("from 2").await;
    alice.expect(message("bob", "from 2")).await;
    carol.expect(message("bob", "from 2")).await;
    carol.say("from 3").await;
    alice.expect(message("carol", "from 3")).await;
    bob.expect(message("carol", "from 3")).await;

    // Names, tokens (1UPT) and bot names are unique across the cluster.
    let taken = json!(["auth", {"username": "ALICE", "token": TOKENS[3]}]);
    n3.expect_refused(taken, USERNAME_TAKEN).await;
    let held = json!(["auth", {"username": "eve", "token": TOKENS[0]}]);
    n2.expect_refused(held, TOKEN_REFUSED).await;
    let _bot = n1.login_bot().await;
    let bot_name = format!("[BOT] {BOT_NAME}");
    for user in [&mut alice, &mut bob, &mut carol] {
        user.expect(json!(["join", bot_name])).await;
    }
    let second_bot = json!(["botauth", {"botusername": BOT_NAME, "bottoken": BOT_TOKEN}]);
    n3.expect_refused(second_bot, USERNAME_TAKEN).await;

    // A departure is announced on every node and frees the name and token at once.
    bob.close().await;
    alice.expect(json!(["disconnect", "bob"])).await;
    carol.expect(json!(["disconnect", "bob"])).await;
    let bob = n3.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    carol.expect(json!(["join", "bob"])).await;

    // A node that shuts down announces its users' departures to the others.
    n3.stop().await;
    let mut gone = Vec::new();
    for _ in 0..2 {
        gone.push(alice.recv().await);
    }
    gone.sort_by_key(Value::to_string);
    assert_eq!(
        gone,
        [json!(["disconnect", "bob"]), json!(["disconnect", "carol"])]
    );
    // Nothing was delivered twice: the next frame alice gets is the next one sent.
    drop(bob);
    let mut dave = n2.login("dave", TOKENS[2]).await;
    alice.expect(json!(["join", "dave"])).await;
    dave.say("last").await;
    alice.expect(message("dave", "last")).await;
    n1.stop().await;
    n2.stop().await;
}

#[tokio::test]
async fn who_kicks_and_bans_span_nodes() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let n3 = node(&redis, "n3").await;
    let mut moderator = n1.login("mod", MOD_TOKEN).await;
    let mut target = n2.login("target", TOKENS[0]).await;
    moderator.expect(json!(["join", "target"])).await;
    let mut watcher = n3.login("watcher", TOKENS[1]).await;
    moderator.expect(json!(["join", "watcher"])).await;
    target.expect(json!(["join", "watcher"])).await;

    moderator.send(json!(["who"])).await;
    moderator
        .expect(json!(["users", ["mod", "target", "watcher"]]))
        .await;

    moderator
        .send(json!(["kick", {"username": "Target", "reason": "be nice"}]))
        .await;
    target.expect_refusal_and_close("kicked: be nice").await;
    moderator.expect(json!(["disconnect", "target"])).await;
    watcher.expect(json!(["disconnect", "target"])).await;
    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["users", ["mod", "watcher"]])).await;

    // A ban made on node 1 closes its target on node 3 and holds on node 2 as well.
    let mut bystander = n2.login("bystander", TOKENS[2]).await;
    moderator.expect(json!(["join", "bystander"])).await;
    watcher.expect(json!(["join", "bystander"])).await;
    moderator
        .send(json!(["ban", {"username": "watcher", "reason": "spam"}]))
        .await;
    let banned = "banned until lifted: spam";
    watcher.expect_refusal_and_close(banned).await;
    // The bystander's node has read the ban by the time it delivers the departure after it.
    bystander.expect(json!(["disconnect", "watcher"])).await;
    let again = json!(["auth", {"username": "watcher", "token": TOKENS[1]}]);
    n2.expect_refused(again, banned).await;
    moderator
        .send(json!(["unban", {"username": "watcher"}]))
        .await;
    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["disconnect", "watcher"])).await;
    moderator
        .expect(json!(["users", ["mod", "bystander"]]))
        .await;
    // The moderator's node wrote the unban before it answered `who`; the bystander's node
    // delivers a message from the moderator only after reading it.
    moderator.say("unbanned").await;
    bystander.expect(message("mod", "unbanned")).await;
    let _watcher = n2.login("watcher", TOKENS[1]).await;
    for node in [n1, n2, n3] {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_killed_node_is_reaped_within_its_ttl() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut doomed = node_process(dir.path(), &node_config(&redis.url(), "doomed")).await;
    let survivor = node(&redis, "survivor").await;

    let mut watch = survivor.login("watch", TOKENS[1]).await;
    let mut zed = doomed.connect().await;
    let link = zed.auth("zed", TOKENS[0]).await;
    zed.tokenauth(&link).await;
    watch.expect(json!(["join", "zed"])).await;

    doomed.child.start_kill().unwrap();
    let killed = Instant::now();
    watch.expect(json!(["disconnect", "zed"])).await;
    let took = killed.elapsed();
    // Its deadline passes within the TTL, and the next heartbeat (every TTL/5) reaps it. The
    // slack is for a loaded test machine; the point is the bound, far below WAIT.
    let bound = Duration::from_secs(NODE_TTL_SECS) + Duration::from_secs(NODE_TTL_SECS) / 5;
    assert!(
        took <= bound + Duration::from_millis(1500),
        "reaped after {took:?}"
    );
    // Its user's name and token are free again.
    let _zed = survivor.login("zed", TOKENS[0]).await;
    watch.expect(json!(["join", "zed"])).await;
    survivor.stop().await;
}

#[tokio::test]
async fn redis_outage_refuses_rather_than_loses() {
    let Some(mut redis) = Redis::start_if_installed().await else {
        return;
    };
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let mut a = n1.login("a", TOKENS[0]).await;
    let b = n2.login("b", TOKENS[1]).await;
    a.expect(json!(["join", "b"])).await;

    redis.kill().await;
    wait_link(&n1.url("/_status"), "down").await;
    wait_link(&n2.url("/_status"), "down").await;
    assert_eq!(status(&n1.url("/healthz")).await, 503);
    assert!(metrics(&n1).await.contains("clichat_cluster_link_up 0"));
    // Sessions stay; a message is refused, not delivered to some and lost to others.
    a.say("into the void").await;
    a.expect(json!(["refusal", MESSAGE_NOT_SENT])).await;
    // Logins cannot be checked against the other nodes, so they are refused.
    let login = json!(["auth", {"username": "c", "token": TOKENS[2]}]);
    n1.expect_refused(login, CLUSTER_UNAVAILABLE).await;
    // A user leaves while the link is down: the others hear of it once it is back.
    b.close().await;

    redis.restart().await;
    wait_link(&n1.url("/_status"), "up").await;
    wait_link(&n2.url("/_status"), "up").await;
    assert_eq!(status(&n1.url("/healthz")).await, 200);
    assert!(metrics(&n1).await.contains("clichat_cluster_link_up 1"));
    a.expect(json!(["disconnect", "b"])).await;
    // What a holds was claimed again in the empty Redis.
    let taken = json!(["auth", {"username": "A", "token": TOKENS[3]}]);
    n2.expect_refused(taken, USERNAME_TAKEN).await;
    let held = json!(["auth", {"username": "x", "token": TOKENS[0]}]);
    n2.expect_refused(held, TOKEN_REFUSED).await;
    // And the room works again, both ways; the refused message never arrives.
    let mut c = n2.login("c", TOKENS[2]).await;
    a.expect(json!(["join", "c"])).await;
    a.say("back").await;
    c.expect(message("a", "back")).await;
    c.say("hello").await;
    a.expect(message("c", "hello")).await;
    n1.stop().await;
    n2.stop().await;
}

/// A partition: one node loses Redis for longer than its TTL while the others keep it. They
/// declare it dead and announce its users' departures; when it comes back, it announces them
/// again, and its own users never hear that their neighbours left.
#[tokio::test]
async fn a_node_cut_off_past_its_ttl_rejoins() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let relay = Relay::start(&redis).await;
    let island = node_on(&relay.url(), "island").await;
    let mainland = node(&redis, "mainland").await;
    let mut a = island.login("a", TOKENS[0]).await;
    let mut neighbour = island.login("neighbour", TOKENS[1]).await;
    a.expect(json!(["join", "neighbour"])).await;
    let mut b = mainland.login("b", TOKENS[2]).await;
    a.expect(json!(["join", "b"])).await;
    neighbour.expect(json!(["join", "b"])).await;

    relay.cut();
    wait_link(&island.url("/_status"), "down").await;
    let mut gone = vec![b.recv().await, b.recv().await];
    gone.sort_by_key(Value::to_string);
    assert_eq!(
        gone,
        [
            json!(["disconnect", "a"]),
            json!(["disconnect", "neighbour"])
        ]
    );
    // Declared dead, its users' names are free on the mainland meanwhile; nobody takes them.

    relay.restore();
    wait_link(&island.url("/_status"), "up").await;
    let mut back = vec![b.recv().await, b.recv().await];
    back.sort_by_key(Value::to_string);
    assert_eq!(back, [json!(["join", "a"]), json!(["join", "neighbour"])]);
    // On the island nothing happened: the next thing a hears is its neighbour speaking.
    neighbour.say("still here").await;
    a.expect(message("neighbour", "still here")).await;
    b.expect(message("neighbour", "still here")).await;
    // And the names are the island's again.
    let taken = json!(["auth", {"username": "a", "token": TOKENS[3]}]);
    mainland.expect_refused(taken, USERNAME_TAKEN).await;
    island.stop().await;
    mainland.stop().await;
}

/// A node killed and started again at once under the same `node_id` (a process manager's
/// restart), long before its TTL: it announces the departures of the users it had.
#[tokio::test]
async fn a_node_restarted_under_its_name_announces_who_it_lost() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let mut config = node_config(&redis.url(), "phoenix");
    // Long enough that only the restart, not reaping, can explain the departure.
    config["cluster"]["node_ttl_secs"] = json!(60);
    std::fs::write(&path, config.to_string()).unwrap();
    let mut phoenix = common::process::start(&path, "info").await;
    wait_link(&format!("http://{}/_status", phoenix.addr), "up").await;
    let survivor = node(&redis, "survivor").await;
    let mut watch = survivor.login("watch", TOKENS[1]).await;
    let mut zed = phoenix.connect().await;
    let link = zed.auth("zed", TOKENS[0]).await;
    zed.tokenauth(&link).await;
    watch.expect(json!(["join", "zed"])).await;

    phoenix.child.kill().await.unwrap();
    let reborn = common::process::start(&path, "info").await;
    wait_link(&format!("http://{}/_status", reborn.addr), "up").await;
    watch.expect(json!(["disconnect", "zed"])).await;
    // zed's name and token are free, and the reborn node is a node like any other.
    let mut zed = reborn.connect().await;
    let link = zed.auth("zed", TOKENS[0]).await;
    zed.tokenauth(&link).await;
    watch.expect(json!(["join", "zed"])).await;
    zed.say("back").await;
    watch.expect(message("zed", "back")).await;
    survivor.stop().await;
}

/// Each node applies its own copy of the config; a revocation one node applies also closes the
/// token's holders on the others, before their copies catch up.
#[tokio::test]
async fn a_revocation_on_one_node_closes_holders_on_all() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, node_config(&redis.url(), name).to_string()).unwrap();
        let node = TestServer::start_from_file(&path).await;
        wait_link(&node.url("/_status"), "up").await;
        nodes.push((node, path));
    }
    let (n1, n1_path) = &nodes[0];
    let (n2, _) = &nodes[1];
    let mut stays = n1.login("stays", TOKENS[0]).await;
    let mut revoked = n2.login("revoked", TOKENS[1]).await;
    stays.expect(json!(["join", "revoked"])).await;

    // Only node 1's file changes.
    let mut config = node_config(&redis.url(), "n1");
    config["tokens"].as_object_mut().unwrap().remove(TOKENS[1]);
    std::fs::write(n1_path, config.to_string()).unwrap();

    revoked
        .expect_refusal_and_close("Your token was revoked.")
        .await;
    stays.expect(json!(["disconnect", "revoked"])).await;
    for (node, _) in nodes {
        node.stop().await;
    }
}
