//! History and presence in cluster mode, against a real `redis-server`: one order and one set
//! of numbers for every node, the same history wherever a person joins, members across nodes
//! (and after a node is killed), and clearing. Without `redis-server` the tests say so and skip
//! (under `CI=true` they fail).

mod common;

use common::redis::{Redis, node_process};
use common::status::wait_link;
use common::{Client, TOKENS, TestServer, config, config_json};
use serde_json::{Value, json};

/// Tokens besides the test config's four.
const MORE: [&str; 3] = ["token-five", "token-six", "token-seven"];

fn node_config(redis_url: &str, node: &str) -> Value {
    let tokens: serde_json::Map<String, Value> = TOKENS
        .iter()
        .chain(MORE.iter())
        .map(|t| (t.to_string(), json!({})))
        .collect();
    config_json(json!({
        "tokens": tokens,
        "cluster": {"redis": redis_url, "node_id": node, "node_ttl_secs": 2},
        "admin_key": "k",
    }))
}

async fn node(redis: &Redis, name: &str) -> TestServer {
    let server = TestServer::start(config(node_config(&redis.url(), name))).await;
    wait_link(&server.url("/_status"), "up").await;
    server
}

/// A user logged in at `addr` after asking for history and presence; its `history` entries
/// and `members` names are read.
async fn login_asking(
    addr: impl std::fmt::Display,
    name: &str,
    token: &str,
) -> (Client, Vec<Value>, Vec<String>) {
    let caps = ["history", "presence"];
    let (mut client, granted) = Client::login_asking(addr, name, token, &caps).await;
    assert_eq!(granted, caps);
    let history = client.expect_history().await;
    let members = client.expect_members().await;
    (client, history, members)
}

/// The next `count` messages `client` receives, as (seq, text).
async fn numbered(client: &mut Client, count: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while got.len() < count {
        let frame = client.recv().await;
        if frame[0] == "message" {
            got.push((
                frame[3].as_u64().unwrap(),
                frame[2].as_str().unwrap().to_owned(),
            ));
        }
    }
    got
}

#[tokio::test]
async fn two_nodes_number_one_room_and_show_the_same_history() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let (mut a, history, _) = login_asking(n1.addr, "a", TOKENS[0]).await;
    assert!(history.is_empty());
    let (mut b, _, members) = login_asking(n2.addr, "b", TOKENS[1]).await;
    assert_eq!(members, ["a", "b"]);
    a.expect(json!(["join", "b"])).await;
    // Old-style watchers on both nodes.
    let mut w1 = n1.login("w1", TOKENS[2]).await;
    let mut w2 = n2.login("w2", TOKENS[3]).await;
    for client in [&mut a, &mut b] {
        client.expect(json!(["join", "w1"])).await;
        client.expect(json!(["join", "w2"])).await;
    }
    w1.expect(json!(["join", "w2"])).await;

    // Both send at once; every receiver sees numbers strictly growing.
    const EACH: usize = 50;
    for i in 0..EACH {
        a.say(&format!("a{i}")).await;
        b.say(&format!("b{i}")).await;
    }
    let from_b = numbered(&mut a, EACH).await;
    let from_a = numbered(&mut b, EACH).await;
    for got in [&from_a, &from_b] {
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
    }
    // The old-style watchers see all of them, as three-element frames, in one order.
    let mut orders = Vec::new();
    for watcher in [&mut w1, &mut w2] {
        let mut texts = Vec::new();
        while texts.len() < 2 * EACH {
            let frame = watcher.recv().await;
            assert_eq!(frame.as_array().unwrap().len(), 3, "{frame}");
            texts.push(frame[2].as_str().unwrap().to_owned());
        }
        orders.push(texts);
    }
    assert_eq!(
        orders[0], orders[1],
        "every node delivers in the room's order"
    );

    // A person joining on either node sees the same history, with the same numbers: the
    // newest 50 of the room's order.
    let (_c, on_n1, _) = login_asking(n1.addr, "c", MORE[0]).await;
    let (_d, on_n2, _) = login_asking(n2.addr, "d", MORE[1]).await;
    assert_eq!(on_n1, on_n2);
    let texts: Vec<&str> = on_n1.iter().map(|e| e[3].as_str().unwrap()).collect();
    assert_eq!(texts, orders[0][EACH..]);

    // Cleared through one node: gone for a person joining on the other.
    let cleared = reqwest::Client::new()
        .post(n1.url("/admin/history/clear"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    drop((a, b, w1, w2));
    let (_e, after_clear, _) = login_asking(n2.addr, "e", MORE[2]).await;
    assert!(after_clear.is_empty(), "{after_clear:?}");
    n1.stop().await;
    n2.stop().await;
}

/// History survives every node's restart (it is in Redis), and a node started later gets it.
#[tokio::test]
async fn a_node_started_later_has_the_rooms_history_and_members_forget_a_killed_node() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut doomed = node_process(dir.path(), &node_config(&redis.url(), "doomed")).await;
    let (mut zed, _, _) = login_asking(&doomed.addr, "zed", TOKENS[0]).await;
    zed.say("said before the others came").await;
    // Sent once the message is in the room: the `members` answer follows it.
    zed.send(json!(["members"])).await;
    assert_eq!(zed.recv().await, json!(["members", ["zed"]]));

    let survivor = node(&redis, "survivor").await;
    let (mut watch, history, members) = login_asking(survivor.addr, "watch", TOKENS[1]).await;
    assert_eq!(members, ["watch", "zed"]);
    let texts: Vec<&str> = history.iter().map(|e| e[3].as_str().unwrap()).collect();
    assert_eq!(texts, ["said before the others came"]);

    doomed.child.start_kill().unwrap();
    watch.expect(json!(["disconnect", "zed"])).await;
    watch.send(json!(["members"])).await;
    assert_eq!(watch.recv().await, json!(["members", ["watch"]]));
    survivor.stop().await;
}

/// The owner API of any node shows the whole cluster: every node's members with their node,
/// and a token in use on another node as in use.
#[tokio::test]
async fn the_owner_sees_every_node() {
    let Some(redis) = Redis::start_if_installed().await else {
        return;
    };
    let n1 = node(&redis, "n1").await;
    let n2 = node(&redis, "n2").await;
    let mut a = n1.login("a", TOKENS[0]).await;
    let _b = n2.login("b", TOKENS[1]).await;
    a.expect(json!(["join", "b"])).await;
    let connections = common::admin_get(&n1.url("/admin/connections"), "k").await;
    let mut seen: Vec<(String, String)> = connections
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["node"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("n1".to_owned(), "a".to_owned()),
            ("n2".to_owned(), "b".to_owned())
        ]
    );
    let tokens = common::admin_get(&n1.url("/admin/tokens"), "k").await;
    let in_use: Vec<bool> = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            [TOKENS[0], TOKENS[1]]
                .iter()
                .any(|token| t["fingerprint"] == secure_server::secrets::fingerprint(token))
        })
        .map(|t| t["in_use"].as_bool().unwrap())
        .collect();
    assert_eq!(in_use, [true, true], "{tokens}");
    n1.stop().await;
    n2.stop().await;
}
