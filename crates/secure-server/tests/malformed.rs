//! Bad input over the real wire: each gets its defined answer (ignored, refused, or closed with
//! a specific code), and the server keeps serving a logged-in pair throughout.

mod common;

use common::{Closed, TOKENS, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

/// Frames that mean nothing; they are ignored before login and after it alike.
fn ignored_frames() -> Vec<Message> {
    // Nesting far deeper than serde_json's recursion limit, within the frame limit.
    let deep = format!("{}{}", "[".repeat(8_000), "]".repeat(8_000));
    let mut frames: Vec<Message> = [
        "",
        "not json",
        "{\"auth\": 1}",
        "\"auth\"",
        "42",
        "null",
        "[]",
        "[1, 2]",
        "[null]",
        "[[\"auth\"]]",
        "[\"nosuchframe\", 1, 2, 3]",
        "[\"msg\"]",
        "[\"msg\", \"hello\"]",
        "[\"msg\", {\"id\": -1, \"msg\": \"x\"}]",
        "[\"msg\", {\"id\": 1e400, \"msg\": \"x\"}]",
        "[\"tokenauth\", \"stray\"]",
        "[\"msg\", {\"id\": 0, \"msg\": \"x\"}",
        "[\"auth\", {\"username\": \"x\", \"token\": \"y\"}] trailing",
    ]
    .into_iter()
    .map(Message::text)
    .collect();
    frames.push(Message::text(deep));
    frames.push(Message::text(format!("[{}]", vec!["1"; 3000].join(","))));
    frames.push(Message::binary(
        b"[\"auth\",{\"username\":\"bin\",\"token\":\"token-three\"}]".to_vec(),
    ));
    frames.push(Message::binary(vec![0xff; 64]));
    frames
}

/// A pair that logs in first and must keep chatting whatever else happens.
async fn pair(server: &TestServer) -> (common::Client, common::Client) {
    let mut alice = server.login("alice", TOKENS[0]).await;
    let bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    (alice, bob)
}

async fn still_chatting(alice: &mut common::Client, bob: &mut common::Client, n: usize) {
    let text = format!("still here {n}");
    alice.say(&text).await;
    bob.expect(json!(["message", "alice", text])).await;
}

#[tokio::test]
async fn meaningless_frames_before_login_are_ignored() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut client = server.connect().await;
    for (n, frame) in ignored_frames().into_iter().enumerate() {
        client.send_raw(frame).await;
        still_chatting(&mut alice, &mut bob, n).await;
    }
    // The same connection can still log in: nothing above was taken as a login.
    let link = client.auth("carol", TOKENS[2]).await;
    client.tokenauth(&link).await;
}

#[tokio::test]
async fn meaningless_frames_after_login_are_ignored() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut carol = server.login("carol", TOKENS[2]).await;
    alice.expect(json!(["join", "carol"])).await;
    bob.expect(json!(["join", "carol"])).await;
    let mut frames = ignored_frames();
    // After login, another login attempt is meaningless too.
    frames.push(Message::text(
        json!(["auth", {"username": "x", "token": TOKENS[3]}]).to_string(),
    ));
    frames.push(Message::text(
        json!(["botauth", {"botusername": "b", "bottoken": "t"}]).to_string(),
    ));
    for frame in frames {
        carol.send_raw(frame).await;
    }
    // Carol's garbage produced nothing for anyone: the next frame everyone sees is real.
    carol.say("after the garbage").await;
    alice
        .expect(json!(["message", "carol", "after the garbage"]))
        .await;
    bob.expect(json!(["message", "carol", "after the garbage"]))
        .await;
    alice.say("to carol").await;
    carol.expect(json!(["message", "alice", "to carol"])).await;
    bob.expect(json!(["message", "alice", "to carol"])).await;
}

#[tokio::test]
async fn malformed_logins_are_refused() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let cases = [
        ("[\"auth\"]", "Invalid username."),
        ("[\"auth\", null]", "Invalid username."),
        ("[\"auth\", \"alice\"]", "Invalid username."),
        (
            "[\"auth\", {\"username\": {\"a\": 1}, \"token\": \"token-three\"}]",
            "Invalid username.",
        ),
        (
            "[\"auth\", {\"username\": \"x\", \"token\": null}]",
            "Token refused",
        ),
        ("[\"botauth\", []]", "bot refused"),
        (
            "[\"botauth\", {\"botusername\": 1, \"bottoken\": 2}]",
            "bot refused",
        ),
    ];
    for (n, (text, reason)) in cases.into_iter().enumerate() {
        let frame = serde_json::from_str(text).expect("each case is JSON");
        server.expect_refused(frame, reason).await;
        still_chatting(&mut alice, &mut bob, n).await;
    }
}

#[tokio::test]
async fn frame_over_the_limit_closes_with_1009() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;

    // Exactly at the limit is fine (and ignored: it is not JSON); one byte more is not.
    let mut client = server.connect().await;
    client.send_text(&"x".repeat(16 * 1024)).await;
    still_chatting(&mut alice, &mut bob, 100).await;
    let link = client.auth("carol", TOKENS[2]).await;
    client.send_text(&"x".repeat(16 * 1024 + 1)).await;
    assert_eq!(client.closed().await, Closed::Code(1009));
    assert_eq!(common::status(&link).await, 410);

    let mut client = server.connect().await;
    client.send_text(&"x".repeat(17 * 1024)).await;
    assert_eq!(client.closed().await, Closed::Code(1009));

    // A fragmented message whose parts are small but whose whole is over the limit.
    let mut client = server.connect().await;
    let part = vec![b'x'; 8 * 1024];
    let first = Frame::message(part.clone(), OpCode::Data(Data::Text), false);
    let middle = Frame::message(part.clone(), OpCode::Data(Data::Continue), false);
    let last = Frame::message(part, OpCode::Data(Data::Continue), true);
    for frame in [first, middle, last] {
        let _ = futures_util::SinkExt::send(&mut client.ws, Message::Frame(frame)).await;
    }
    assert_eq!(client.closed().await, Closed::Code(1009));

    // Logged in, the same.
    let mut carol = server.login("carol", TOKENS[2]).await;
    carol
        .send_text(&format!(
            "[\"msg\", {{\"id\": {}, \"msg\": \"{}\"}}]",
            carol.id.unwrap(),
            "x".repeat(20_000)
        ))
        .await;
    assert_eq!(carol.closed().await, Closed::Code(1009));
    for client in [&mut alice, &mut bob] {
        client.expect(json!(["join", "carol"])).await;
        client.expect(json!(["disconnect", "carol"])).await;
    }
    still_chatting(&mut alice, &mut bob, 0).await;
}

#[tokio::test]
async fn a_fragmented_message_within_the_limit_is_fine() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let text = json!(["msg", {"id": alice.id.unwrap(), "msg": "in three parts"}]).to_string();
    let (a, rest) = text.split_at(5);
    let (b, c) = rest.split_at(10);
    for (bytes, opcode, fin) in [
        (a, OpCode::Data(Data::Text), false),
        (b, OpCode::Data(Data::Continue), false),
        (c, OpCode::Data(Data::Continue), true),
    ] {
        let frame = Frame::message(bytes.as_bytes().to_vec(), opcode, fin);
        futures_util::SinkExt::send(&mut alice.ws, Message::Frame(frame))
            .await
            .unwrap();
    }
    bob.expect(json!(["message", "alice", "in three parts"]))
        .await;
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_with_1007() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut client = server.connect().await;
    let frame = Frame::message(vec![b'[', 0xc3, 0x28, b']'], OpCode::Data(Data::Text), true);
    futures_util::SinkExt::send(&mut client.ws, Message::Frame(frame))
        .await
        .unwrap();
    assert_eq!(client.closed().await, Closed::Code(1007));
    still_chatting(&mut alice, &mut bob, 0).await;
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    // A continuation with nothing to continue.
    let mut client = server.connect().await;
    let frame = Frame::message(b"x".to_vec(), OpCode::Data(Data::Continue), true);
    futures_util::SinkExt::send(&mut client.ws, Message::Frame(frame))
        .await
        .unwrap();
    assert_eq!(client.closed().await, Closed::Code(1002));
    // A frame with a reserved bit set.
    let mut client = server.connect().await;
    let header = FrameHeader {
        rsv1: true,
        ..FrameHeader::default()
    };
    let frame = Frame::from_payload(header, b"[]".to_vec().into());
    futures_util::SinkExt::send(&mut client.ws, Message::Frame(frame))
        .await
        .unwrap();
    assert_eq!(client.closed().await, Closed::Code(1002));
    still_chatting(&mut alice, &mut bob, 0).await;
}

/// Raw HTTP: sends `request` and returns the status line (or "" if the server just closed).
async fn raw_http(server: &TestServer, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(common::WAIT, async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    });
    read.await.expect("the server answers or closes");
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn http_garbage_and_broken_upgrades_get_errors() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let host = server.addr;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (vec![0u8; 512], "HTTP/1.1 400"),
        (b"GET / HTTP/9.9\r\n\r\n".to_vec(), "HTTP/1.1 "),
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n").into_bytes(),
            "HTTP/1.1 400",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n").into_bytes(),
            "HTTP/1.1 400",
        ),
        (
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n").into_bytes(),
            "HTTP/1.1 405",
        ),
        (format!("DELETE /abc HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(), "HTTP/1.1 405"),
    ];
    for (n, (request, want)) in cases.into_iter().enumerate() {
        let status = raw_http(&server, &request).await;
        if want != "HTTP/1.1 " {
            assert!(
                status.starts_with(want),
                "case {n}: got {status:?}, want {want}"
            );
        }
        still_chatting(&mut alice, &mut bob, n).await;
    }
}

#[tokio::test]
async fn websocket_upgrade_works_on_any_path() {
    let server = TestServer::default().await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/some/path?x=1", server.addr))
        .await
        .unwrap();
    let mut client = common::Client { ws, id: None };
    let link = client.auth("carol", TOKENS[2]).await;
    client.tokenauth(&link).await;
}
