//! History and presence over the real wire, on a single server: `caps`, the `history` frame on
//! joining, numbered messages, the `members` frame, the history file across restarts (and a
//! SIGKILL), trimming, and clearing. The cluster's side is in `cluster_history.rs`.

mod common;

use common::{Client, TOKENS, TestServer, config, config_file, process};
use secure_server::history_db::{HistoryDb, now_ms};
use serde_json::{Value, json};

const BOTH: [&str; 2] = ["history", "presence"];

fn texts(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e[3].as_str().unwrap()).collect()
}

fn seqs(entries: &[Value]) -> Vec<u64> {
    entries.iter().map(|e| e[0].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_client_that_asks_gets_history_members_and_numbered_messages_and_others_do_not() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    alice.say("one").await;
    alice.say("two").await;
    bob.expect(json!(["message", "alice", "one"])).await;
    bob.expect(json!(["message", "alice", "two"])).await;
    bob.say("three").await;
    alice.expect(json!(["message", "bob", "three"])).await;

    let before = now_ms();
    let (mut carol, granted) = Client::login_asking(server.addr, "carol", TOKENS[2], &BOTH).await;
    assert_eq!(granted, BOTH);
    let history = Client::expect_history(&mut carol).await;
    assert_eq!(texts(&history), ["one", "two", "three"]);
    assert_eq!(history[0][2], "alice");
    assert_eq!(history[2][2], "bob");
    let numbers = seqs(&history);
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert!(history.iter().all(|e| e[1].as_u64().unwrap() <= now_ms()));
    assert_eq!(
        Client::expect_members(&mut carol).await,
        ["alice", "bob", "carol"]
    );

    // Old-style clients: the join, then three-element messages, and nothing else new.
    alice.expect(json!(["join", "carol"])).await;
    bob.expect(json!(["join", "carol"])).await;
    alice.say("four").await;
    bob.expect(json!(["message", "alice", "four"])).await;
    let live = carol.recv().await;
    assert_eq!(live.as_array().unwrap().len(), 5, "{live}");
    assert_eq!(
        live.as_array().unwrap()[..3],
        [json!("message"), json!("alice"), json!("four")]
    );
    assert!(live[3].as_u64().unwrap() > *numbers.last().unwrap());
    assert!(live[4].as_u64().unwrap() >= before);

    // Joins and departures keep the list current; `members` asks for it afresh.
    bob.close().await;
    carol.expect(json!(["disconnect", "bob"])).await;
    alice.expect(json!(["disconnect", "bob"])).await;
    carol.send(json!(["members"])).await;
    assert_eq!(Client::expect_members(&mut carol).await, ["alice", "carol"]);
    // An old client asking gets nothing: its next frame is a message.
    alice.send(json!(["members"])).await;
    carol.say("five").await;
    alice.expect(json!(["message", "carol", "five"])).await;
}

#[tokio::test]
async fn caps_only_as_the_first_frame_and_unknown_names_are_ignored() {
    let server = TestServer::start(config(json!({"history": null}))).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(json!(["caps", ["typing", "presence", "history", 7]]))
        .await;
    // History is off here: not granted.
    client.expect(json!(["caps", ["presence"]])).await;

    // A second `caps`, or one after another frame, is not answered: the next frame is the
    // `authmsg`.
    let mut late = Client::connect(server.addr).await;
    late.send(json!(["who"])).await;
    late.send(json!(["caps", ["presence"]])).await;
    let link = late.auth("late", TOKENS[1]).await;
    late.tokenauth(&link).await;
    late.say("hi").await;
    let mut bot = server.login_bot().await;
    late.expect(json!(["join", "[BOT] botusr"])).await;
    late.say("no members frame came before this").await;
    bot.expect(json!([
        "message",
        "late",
        "no members frame came before this"
    ]))
    .await;
}

#[tokio::test]
async fn members_can_be_asked_for_where_presence_is_not_announced() {
    let server = TestServer::start(config(json!({"announce_presence_up_to": 1}))).await;
    let (mut alice, _) = Client::login_asking(server.addr, "alice", TOKENS[0], &["presence"]).await;
    assert_eq!(Client::expect_members(&mut alice).await, ["alice"]);
    let _bob = server.login("bob", TOKENS[1]).await;
    let bot = server.login_bot().await;
    alice.send(json!(["members"])).await;
    assert_eq!(
        Client::expect_members(&mut alice).await,
        ["[BOT] botusr", "alice", "bob"]
    );
    // Its departure is not announced; once its close is answered, it is gone from the room.
    bot.close().await;
    alice.send(json!(["members"])).await;
    assert_eq!(Client::expect_members(&mut alice).await, ["alice", "bob"]);
}

#[tokio::test]
async fn refused_messages_never_enter_history_and_history_is_trimmed_to_keep() {
    let server = TestServer::start(config(json!({
        "max_message_length": 10,
        "history": {"on_join": 3, "keep": 5, "max_age_hours": 1},
    })))
    .await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    alice.say("far too long a message").await;
    let refusal = alice.recv().await;
    assert_eq!(refusal[0], "refusal");
    for i in 0..7 {
        alice.say(&format!("m{i}")).await;
    }
    for i in 0..7 {
        bob.expect(json!(["message", "alice", format!("m{i}")]))
            .await;
    }
    let (mut carol, _) = Client::login_asking(server.addr, "carol", TOKENS[2], &["history"]).await;
    let history = Client::expect_history(&mut carol).await;
    assert_eq!(texts(&history), ["m4", "m5", "m6"], "the newest on_join");
}

#[tokio::test]
async fn history_survives_a_restart_and_numbers_go_on() {
    let (_dir, path) = config_file(json!({}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let (mut bob, _) = Client::login_asking(server.addr, "bob", TOKENS[1], &["history"]).await;
    assert!(Client::expect_history(&mut bob).await.is_empty());
    alice.expect(json!(["join", "bob"])).await;
    alice.say("before").await;
    let first = bob.recv().await;
    assert_eq!(first[2], "before");
    server.stop().await;
    assert!(HistoryDb::path_for(&path).exists());

    let server = TestServer::start_from_file(&path).await;
    let (mut dave, _) = Client::login_asking(server.addr, "dave", TOKENS[3], &["history"]).await;
    let history = Client::expect_history(&mut dave).await;
    assert_eq!(texts(&history), ["before"]);
    assert_eq!(history[0][0], first[3], "the same number");
    let mut erin = server.login("erin", TOKENS[0]).await;
    dave.expect(json!(["join", "erin"])).await;
    erin.say("after").await;
    let after = dave.recv().await;
    assert!(
        after[3].as_u64() > first[3].as_u64(),
        "{after} after {first}"
    );
}

#[tokio::test]
async fn messages_past_their_age_are_not_shown() {
    let (_dir, path) =
        config_file(json!({"history": {"on_join": 50, "keep": 100, "max_age_hours": 1}}));
    let opened = HistoryDb::open(&HistoryDb::path_for(&path), Default::default()).unwrap();
    let entry = |seq, time_ms, text: &str| clichat_proto::HistoryEntry {
        stamp: clichat_proto::Stamp { seq, time_ms },
        from: "old".into(),
        text: text.into(),
    };
    opened
        .db
        .append(entry(1, now_ms() - 3 * 3_600_000, "stale"));
    opened.db.append(entry(2, now_ms(), "fresh"));
    opened.db.close();
    drop(opened);
    let server = TestServer::start_from_file(&path).await;
    let (mut alice, _) = Client::login_asking(server.addr, "alice", TOKENS[0], &["history"]).await;
    assert_eq!(texts(&Client::expect_history(&mut alice).await), ["fresh"]);
}

#[tokio::test]
async fn the_owner_can_clear_history_and_numbers_go_on() {
    let server = TestServer::start(config(json!({"admin_key": "k"}))).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let (mut bob, _) = Client::login_asking(server.addr, "bob", TOKENS[1], &["history"]).await;
    Client::expect_history(&mut bob).await;
    alice.expect(json!(["join", "bob"])).await;
    alice.say("secret plans").await;
    let said = bob.recv().await;
    let cleared = reqwest::Client::new()
        .post(server.url("/admin/history/clear"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let (mut carol, _) = Client::login_asking(server.addr, "carol", TOKENS[2], &["history"]).await;
    assert!(Client::expect_history(&mut carol).await.is_empty());
    alice.expect(json!(["join", "carol"])).await;
    alice.say("new").await;
    let next = carol.recv().await;
    assert!(next[3].as_u64() > said[3].as_u64(), "{next} after {said}");

    let off = TestServer::start(config(json!({"admin_key": "k", "history": null}))).await;
    let refused = reqwest::Client::new()
        .post(off.url("/admin/history/clear"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
}

/// The binary, killed with SIGKILL while messages flow: what it had delivered a moment before
/// is in the history after a restart, in order, with nothing but the newest possibly missing.
#[tokio::test]
async fn history_survives_sigkill_but_for_the_last_moment() {
    let (dir, path) = config_file(json!({}));
    let mut node = process::start(&path, "info").await;
    let mut alice = node.connect().await;
    let link = alice.auth("alice", TOKENS[0]).await;
    alice.tokenauth(&link).await;
    let mut bob = node.connect().await;
    let link = bob.auth("bob", TOKENS[1]).await;
    bob.tokenauth(&link).await;
    alice.expect(json!(["join", "bob"])).await;
    const SENT: usize = 200;
    for i in 0..SENT {
        alice.say(&format!("m{i}")).await;
    }
    for i in 0..SENT {
        bob.expect(json!(["message", "alice", format!("m{i}")]))
            .await;
    }
    node.signal("KILL").await;
    let _ = node.child.wait().await;

    let node = process::start(&path, "info").await;
    let mut carol = Client::connect(&node.addr).await;
    carol.send(json!(["caps", ["history"]])).await;
    carol.recv().await;
    let link = carol.auth("carol", TOKENS[2]).await;
    carol.tokenauth(&link).await;
    let history = Client::expect_history(&mut carol).await;
    let kept: Vec<usize> = texts(&history)
        .iter()
        .map(|text| text[1..].parse().unwrap())
        .collect();
    let newest = *kept
        .last()
        .expect("messages delivered before the kill were kept");
    let from = newest + 1 - kept.len();
    assert_eq!(
        kept,
        (from..=newest).collect::<Vec<_>>(),
        "in order, none missing"
    );
    assert_eq!(kept.len(), 50.min(newest + 1));
    println!("lost to SIGKILL: {} of {SENT} messages", SENT - 1 - newest);
    drop(dir);
}
