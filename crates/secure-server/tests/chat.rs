//! The room over the real wire: joins, fan-out without echo, message rules, bots, who hears
//! what, slow consumers, and shutdown.

mod common;

use std::time::Duration;

use common::{BOT_NAME, BOT_TOKEN, Closed, TOKENS, TestServer, config};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn messages_reach_everyone_else_and_never_the_sender() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    let mut carol = server.login("carol", TOKENS[2]).await;
    alice.expect(json!(["join", "carol"])).await;
    bob.expect(json!(["join", "carol"])).await;

    alice.say("hello <b>all</b> 100%").await;
    bob.expect(json!(["message", "alice", "hello <b>all</b> 100%"]))
        .await;
    carol
        .expect(json!(["message", "alice", "hello <b>all</b> 100%"]))
        .await;

    // Alice's next frame is Bob's message: her own never came back.
    bob.say("hi alice").await;
    alice.expect(json!(["message", "bob", "hi alice"])).await;
    carol.expect(json!(["message", "bob", "hi alice"])).await;
}

/// Past `announce_presence_up_to` members, joins and departures go unannounced; messages do
/// not. Each "nothing came" is shown by the next frame being a later message.
#[tokio::test]
async fn presence_is_announced_only_up_to_the_configured_room_size() {
    let server = TestServer::start(config(json!({"announce_presence_up_to": 2}))).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    let mut carol = server.login("carol", TOKENS[2]).await;
    carol.say("unannounced").await;
    for client in [&mut alice, &mut bob] {
        client
            .expect(json!(["message", "carol", "unannounced"]))
            .await;
    }
    // Carol leaves a room of three: not announced either.
    carol.close().await;
    bob.say("still here").await;
    alice.expect(json!(["message", "bob", "still here"])).await;
    // Bob leaves a room of two: announced.
    bob.close().await;
    alice.expect(json!(["disconnect", "bob"])).await;
}

#[tokio::test]
async fn one_senders_messages_arrive_in_order() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    for i in 0..200 {
        alice.say(&format!("m{i}")).await;
    }
    for i in 0..200 {
        bob.expect(json!(["message", "alice", format!("m{i}")]))
            .await;
    }
}

#[tokio::test]
async fn message_with_a_wrong_or_missing_id_is_ignored() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    let bob_id = bob.id.unwrap();
    alice
        .send(json!(["msg", {"id": bob_id, "msg": "spoofed"}]))
        .await;
    alice
        .send(json!(["msg", {"id": 999_999, "msg": "spoofed"}]))
        .await;
    alice.send(json!(["msg", {"msg": "no id"}])).await;
    alice
        .send(json!(["msg", {"id": alice.id.unwrap().to_string(), "msg": "string id"}]))
        .await;
    alice.send(json!(["msg", {"id": alice.id.unwrap()}])).await;
    alice.say("real").await;
    bob.expect(json!(["message", "alice", "real"])).await;
}

#[tokio::test]
async fn unauthenticated_sockets_hear_nothing_and_cannot_chat() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut lurker = server.connect().await;
    let mut pending = server.connect().await;
    let _link = pending.auth("pending", TOKENS[2]).await;

    lurker
        .send(json!(["msg", {"id": 0, "msg": "let me in"}]))
        .await;
    lurker
        .send(json!(["msg", {"id": alice.id.unwrap(), "msg": "spoof"}]))
        .await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    alice.say("secret").await;
    bob.expect(json!(["message", "alice", "secret"])).await;

    // The lurker's first frame is the answer to its own login: nothing was broadcast to it.
    lurker
        .send(json!(["auth", {"username": "lurker", "token": "wrong"}]))
        .await;
    lurker.expect_refusal_and_close("Token refused").await;
    // A pending login hears nothing either: the next thing it gets is its own refusal.
    pending.send(json!(["tokenauth", "wrong"])).await;
    pending.expect_refusal_and_close("refused").await;
}

#[tokio::test]
async fn too_long_message_is_refused_and_the_connection_stays() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;

    alice.say(&"x".repeat(201)).await;
    alice
        .expect(json!(["refusal", "message is too long [201/200]"]))
        .await;
    alice.say(&"é".repeat(250)).await;
    alice
        .expect(json!(["refusal", "message is too long [250/200]"]))
        .await;
    alice.say(&"é".repeat(200)).await;
    bob.expect(json!(["message", "alice", "é".repeat(200)]))
        .await;
}

#[tokio::test]
async fn message_limit_follows_the_config() {
    let server = TestServer::start(config(json!({"max_message_length": 5}))).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    alice.say("123456").await;
    alice
        .expect(json!(["refusal", "message is too long [6/5]"]))
        .await;
}

#[tokio::test]
async fn empty_and_filtered_messages_close_the_connection() {
    let server = TestServer::default().await;
    let mut watcher = server.login("watcher", TOKENS[3]).await;
    for (i, (text, reason)) in [
        ("", "No Empty Messages allowed!"),
        (" \t\n ", "No Empty Messages allowed!"),
        ("what a BadWord", "No profanity allowed!"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("user{i}");
        let mut client = server.login(&name, TOKENS[i]).await;
        watcher.expect(json!(["join", name])).await;
        client.say(text).await;
        client.expect_refusal_and_close(reason).await;
        watcher.expect(json!(["disconnect", name])).await;
    }
}

#[tokio::test]
async fn bots_log_in_join_chat_and_leave() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bot = server.login_bot().await;
    alice.expect(json!(["join", "[BOT] botusr"])).await;

    bot.say("beep").await;
    alice
        .expect(json!(["message", "[BOT] botusr", "beep"]))
        .await;
    alice.say("hi bot").await;
    bot.expect(json!(["message", "alice", "hi bot"])).await;

    bot.close().await;
    alice.expect(json!(["disconnect", "[BOT] botusr"])).await;
}

#[tokio::test]
async fn bot_refusals() {
    let server = TestServer::default().await;
    for frame in [
        json!(["botauth", {"botusername": BOT_NAME, "bottoken": "wrong"}]),
        json!(["botauth", {"botusername": "other", "bottoken": BOT_TOKEN}]),
        json!(["botauth", {"botusername": BOT_NAME, "bottoken": TOKENS[0]}]),
        json!(["botauth", {"botusername": BOT_NAME}]),
        json!(["botauth", {"bottoken": BOT_TOKEN}]),
        json!(["botauth", "nonsense"]),
        json!(["botauth"]),
    ] {
        server.expect_refused(frame, "bot refused").await;
    }
}

#[tokio::test]
async fn a_bot_name_is_unique_while_connected() {
    let server = TestServer::default().await;
    let bot = server.login_bot().await;
    server
        .expect_refused(
            json!(["botauth", {"botusername": BOT_NAME, "bottoken": BOT_TOKEN}]),
            "Username already taken.",
        )
        .await;
    bot.close().await;
    server.login_bot().await;
}

/// A receiver that stops reading is dropped once its queue fills; everyone else carries on.
#[tokio::test]
async fn slow_consumer_is_disconnected_with_1008() {
    // A small queue, and a write timeout long enough that only the queue can trigger the drop.
    let server = TestServer::start(config(
        json!({"outbound_queue": 8, "write_timeout_secs": 60}),
    ))
    .await;
    let mut sender = server.login("sender", TOKENS[0]).await;

    // The slow client: a tiny receive buffer, and it never reads until the end.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        format!("ws://{}/", server.addr),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut slow = common::Client { ws, id: None };
    let link = slow.auth("slow", TOKENS[1]).await;
    slow.tokenauth(&link).await;
    sender.expect(json!(["join", "slow"])).await;

    // Send until the room announces the slow client gone (bounded: about 40 MB at most).
    let text = "y".repeat(200);
    let mut sent = 0u32;
    let disconnect = loop {
        for _ in 0..100 {
            let frame = json!(["msg", {"id": sender.id, "msg": text}]).to_string();
            sender.ws.feed(Message::text(frame)).await.unwrap();
        }
        sender.ws.flush().await.unwrap();
        sent += 100;
        assert!(sent < 200_000, "the slow consumer was never dropped");
        if let Some(frame) = sender.ws.next().now_or_never() {
            break frame.unwrap().unwrap();
        }
    };
    assert_eq!(disconnect, Message::text(r#"["disconnect","slow"]"#));

    // The slow client gets what was queued before the drop, in order, then close 1008.
    let mut received = 0u32;
    let closed = loop {
        match tokio::time::timeout(common::WAIT, slow.ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(closed, Some(1008));
    assert!(
        received < sent,
        "received {received} of {sent}: not everything was buffered"
    );

    // The sender still chats, and the slow client's name and token are free. First let the
    // server work through the sender's messages still in flight: the answer to a too-long
    // message comes after all of them.
    sender.say(&"z".repeat(201)).await;
    sender
        .expect(json!(["refusal", "message is too long [201/200]"]))
        .await;
    let mut again = server.login("slow", TOKENS[1]).await;
    sender.expect(json!(["join", "slow"])).await;
    sender.say("still here").await;
    again
        .expect(json!(["message", "sender", "still here"]))
        .await;
}

#[tokio::test]
async fn shutdown_closes_every_session_with_1001() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut pending = server.connect().await;
    let _link = pending.auth("bob", TOKENS[1]).await;
    let mut idle = server.connect().await;

    let addr = server.addr;
    let stopping = tokio::spawn(server.stop());
    for client in [&mut alice, &mut pending, &mut idle] {
        assert_eq!(client.closed().await, Closed::Code(1001));
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );
}

/// Shutdown completes even when some clients never cooperate: one sent half an HTTP request,
/// one logged in and never reads, one is mid-login.
#[tokio::test]
async fn shutdown_completes_despite_stuck_clients() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::default().await;
    let mut half = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let _deaf = server.login("deaf", TOKENS[0]).await;
    let mut pending = server.connect().await;
    let _link = pending.auth("pending", TOKENS[1]).await;
    // The half request is in the server's hands before shutdown begins.
    server.login("marker", TOKENS[2]).await;

    let stopped = tokio::time::timeout(Duration::from_secs(20), server.stop()).await;
    assert!(stopped.is_ok(), "run returned");
    drop(half);
}
