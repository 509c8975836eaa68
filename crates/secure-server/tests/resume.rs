//! Resume over the real wire, on a single server: a connection cut without a close frame is
//! held, resumed with exactly the messages it missed, and the room never hears it left; used,
//! expired, revoked and banned resumes are refused; the window passing announces the departure;
//! a fresh login replaces a held session; and a restart within the window resumes too. The
//! cluster's side is in `cluster_resume.rs`.

mod common;

use clichat_proto::refusal::RESUME_REFUSED;
use common::status::wait_held;
use common::{Client, TOKENS, TestServer, config, config_file, config_json, write_config};
use serde_json::{Value, json};

const CAPS: [&str; 3] = ["history", "presence", "resume"];

/// What a resumable login holds: its client, its resume token, and the newest number it saw.
struct Resumable {
    client: Client,
    token: String,
    seq: u64,
}

/// Logs in through SAUTH2 asking for history, presence and resume; reads up to the `session`.
async fn login(addr: impl std::fmt::Display, name: &str, token: &str) -> Resumable {
    let (mut client, granted) = Client::login_asking(addr, name, token, &CAPS).await;
    assert_eq!(granted, CAPS);
    client.expect_history().await;
    client.expect_members().await;
    let (token, seq) = client.expect_session().await;
    Resumable {
        client,
        token,
        seq: seq.unwrap_or(0),
    }
}

/// Resumes with `token` from `since` on a new connection: the history frame it is given, and
/// the fresh session's token, or the refusal.
async fn resume(
    addr: impl std::fmt::Display,
    token: &str,
    since: u64,
) -> Result<(Client, Value, String), String> {
    let mut client = Client::resume_at(addr, &CAPS, token, since).await?;
    let history = client.expect_kind("history").await;
    client.expect_members().await;
    let (token, _) = client.expect_session().await;
    Ok((client, history, token))
}

/// Waits until the server holds `count` sessions.
async fn held(server: &TestServer, count: u64) {
    wait_held(&server.url("/_status"), count).await;
}

fn texts(history: &Value) -> Vec<String> {
    history[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[3].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_cut_connection_resumes_with_exactly_what_it_missed_and_nobody_saw_it_leave() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut watch = server.login("watch", TOKENS[2]).await;
    alice.expect(json!(["join", "watch"])).await;
    let bob = login(server.addr, "bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    watch.expect(json!(["join", "bob"])).await;
    alice.say("before the cut").await;
    let Resumable {
        mut client, token, ..
    } = bob;
    let before = client.recv().await;
    let seen = before[3].as_u64().unwrap();

    // The TCP connection ends without a close frame.
    drop(client);
    held(&server, 1).await;
    for i in 0..5 {
        alice.say(&format!("missed {i}")).await;
    }
    // Once the watcher has them, the room has numbered them all.
    watch
        .expect(json!(["message", "alice", "before the cut"]))
        .await;
    for i in 0..5 {
        watch
            .expect(json!(["message", "alice", format!("missed {i}")]))
            .await;
    }
    // Alice hears no departure: her next frame is the message Bob sends after resuming.
    let (mut bob, history, fresh) = resume(server.addr, &token, seen).await.unwrap();
    assert_eq!(
        texts(&history),
        (0..5).map(|i| format!("missed {i}")).collect::<Vec<_>>()
    );
    assert!(history.get(2).is_none(), "complete: {history}");
    assert_ne!(fresh, token, "a fresh token");
    bob.say("back").await;
    alice.expect(json!(["message", "bob", "back"])).await;
    alice.say("welcome back").await;
    let live = bob.recv().await;
    assert_eq!(live[2], "welcome back");

    // The token worked once.
    assert_eq!(
        resume(server.addr, &token, seen).await.err().as_deref(),
        Some(RESUME_REFUSED)
    );
}

#[tokio::test]
async fn the_window_passing_announces_the_departure_and_the_token_then_fails() {
    let server = TestServer::start(config(json!({"resume_window_secs": 1}))).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let bob = login(server.addr, "bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    let Resumable { client, token, seq } = bob;
    drop(client);
    alice.expect(json!(["disconnect", "bob"])).await;
    assert_eq!(
        resume(server.addr, &token, seq).await.err().as_deref(),
        Some(RESUME_REFUSED)
    );
    // The name and token are free again.
    let _bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
}

#[tokio::test]
async fn a_fresh_login_replaces_a_held_session() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let bob = login(server.addr, "bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    let Resumable { client, token, seq } = bob;
    drop(client);
    held(&server, 1).await;
    // Bob's client crashed and lost its token: he logs in again, by name and token.
    let _bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["disconnect", "bob"])).await;
    alice.expect(json!(["join", "bob"])).await;
    assert_eq!(
        resume(server.addr, &token, seq).await.err().as_deref(),
        Some(RESUME_REFUSED)
    );
}

#[tokio::test]
async fn a_revoked_or_banned_session_is_not_resumed() {
    let (_dir, path) = config_file(json!({"admin_key": "k"}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let bob = login(server.addr, "bob", TOKENS[1]).await;
    let carol = login(server.addr, "carol", TOKENS[2]).await;
    alice.expect(json!(["join", "bob"])).await;
    alice.expect(json!(["join", "carol"])).await;
    let (
        Resumable {
            client: b,
            token: bob_token,
            seq: bob_seq,
        },
        Resumable {
            client: c,
            token: carol_token,
            seq: carol_seq,
        },
    ) = (bob, carol);
    drop(b);
    drop(c);
    held(&server, 2).await;

    // Bob's token is revoked while he is away: his departure is announced then.
    let mut revoked = config_json(json!({"admin_key": "k"}));
    revoked["tokens"].as_object_mut().unwrap().remove(TOKENS[1]);
    write_config(&path, &revoked);
    alice.expect(json!(["disconnect", "bob"])).await;
    assert_eq!(
        resume(server.addr, &bob_token, bob_seq)
            .await
            .err()
            .as_deref(),
        Some(RESUME_REFUSED)
    );

    // Carol is banned while away (the owner API finds held members).
    let banned = reqwest::Client::new()
        .post(server.url("/admin/ban"))
        .bearer_auth("k")
        .header("content-type", "application/json")
        .body(json!({"username": "carol", "reason": "spam"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(banned.status(), 200);
    alice.expect(json!(["disconnect", "carol"])).await;
    assert_eq!(
        resume(server.addr, &carol_token, carol_seq)
            .await
            .err()
            .as_deref(),
        Some(RESUME_REFUSED)
    );
}

#[tokio::test]
async fn a_client_that_closes_on_purpose_is_not_held_and_old_clients_get_no_session() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let bob = login(server.addr, "bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    bob.client.close().await;
    alice.expect(json!(["disconnect", "bob"])).await;
    assert_eq!(
        resume(server.addr, &bob.token, 0).await.err().as_deref(),
        Some(RESUME_REFUSED)
    );
    // A resume without asking for `resume` first is refused too.
    let mut bare = Client::connect(server.addr).await;
    bare.send(json!(["resume", {"token": "x", "since": 0}]))
        .await;
    bare.expect_refusal_and_close(RESUME_REFUSED).await;
}

#[tokio::test]
async fn a_single_server_restarted_within_the_window_resumes() {
    let (_dir, path) = config_file(json!({}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = login(server.addr, "alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.client.expect(json!(["join", "bob"])).await;
    bob.say("before the restart").await;
    let said = alice.client.recv().await;
    let seen = said[3].as_u64().unwrap();
    server.stop().await;
    // Told to come back: 1012.
    assert_eq!(alice.client.closed().await, common::Closed::Code(1012));
    assert!(secure_server::held_file::path_for(&path).exists());

    let server = TestServer::start_from_file(&path).await;
    let (mut alice, history, _) = resume(server.addr, &alice.token, seen).await.unwrap();
    assert!(texts(&history).is_empty(), "nothing was said meanwhile");
    let mut carol = server.login("carol", TOKENS[2]).await;
    alice.expect(json!(["join", "carol"])).await;
    alice.say("still me").await;
    carol.expect(json!(["message", "alice", "still me"])).await;
    assert!(
        !secure_server::held_file::path_for(&path).exists(),
        "read once"
    );
}
