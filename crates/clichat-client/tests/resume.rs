//! Resuming a lost connection (extension `resume`), against stand-in servers on
//! `127.0.0.1:0` that speak the protocol frame by frame: they cut TCP connections without a
//! close frame, close with `1012` or `1008`, refuse a token, or go away for good; and against
//! this project's server, where a receiver's socket is shut down under it.

mod common;

use common::{Ws, accept, frame, next, send, within};
use std::net::SocketAddr;
use std::time::Duration;

use clichat_client::{
    Client, ConnectOptions, EXTENSIONS, Event, ServerAddress, connect_on, connect_with, refusal,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Fast retries, so that a test does not wait out the default backoff.
fn fast() -> ConnectOptions {
    ConnectOptions::default().resume_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        match within(ws.next()).await.unwrap().unwrap() {
            message @ Message::Text(_) => return frame(message),
            _ => continue,
        }
    }
}

/// Cuts a connection the way a network does: no close frame, the TCP connection just ends.
fn cut(ws: Ws) {
    drop(ws.into_inner());
}

/// The stand-in's side of a bot login with every extension granted, ending with a `session`.
async fn log_in(ws: &mut Ws, id: u64, token: &str, seq: u64) {
    assert_eq!(recv(ws).await, json!(["caps", EXTENSIONS]), "caps first");
    let auth = recv(ws).await;
    assert_eq!(auth[0], "botauth");
    send(ws, json!(["caps", EXTENSIONS])).await;
    send(ws, json!(["id", id, "stand-in"])).await;
    send(ws, json!(["history", [[seq, 1000, "bob", "one"]]])).await;
    send(ws, json!(["members", ["bob", "[BOT] echo"]])).await;
    send(
        ws,
        json!(["session", {"resume": token, "expires_in": 30, "seq": seq}]),
    )
    .await;
}

/// The stand-in's side of a resume: the caps, then `resume` with `token` and `since`.
async fn expect_resume(ws: &mut Ws, token: &str, since: u64) {
    assert_eq!(recv(ws).await, json!(["caps", EXTENSIONS]), "caps first");
    assert_eq!(
        recv(ws).await,
        json!(["resume", {"token": token, "since": since}])
    );
}

async fn bot(addr: SocketAddr, options: &ConnectOptions) -> Client {
    let address = ServerAddress::parse(&addr.to_string()).unwrap();
    let connection = within(connect_with(&address, options)).await.unwrap();
    within(connection.login_bot("echo", "T")).await.unwrap()
}

/// A connection cut without a close frame is taken back: the resume sends the held token and
/// the newest number seen; what the server sends back is handed out in order, without what we
/// saw already and without our own messages; the room's members come after; sending goes over
/// the new connection with its id; a `1012` close is resumed too, with the fresh token, and a
/// refusal ends it.
#[tokio::test]
async fn a_cut_connection_is_resumed_with_the_missed_messages_in_order() {
    let (listener, addr) = common::listener().await;
    let server: JoinHandle<()> = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        log_in(&mut ws, 5, "R1", 1).await;
        send(&mut ws, json!(["message", "bob", "two", 2, 2000])).await;
        // Wait until the client read it, then cut.
        assert_eq!(
            recv(&mut ws).await,
            json!(["msg", {"id": 5, "msg": "got two"}])
        );
        cut(ws);

        let (mut ws, _) = accept(&listener).await;
        expect_resume(&mut ws, "R1", 2).await;
        send(&mut ws, json!(["caps", EXTENSIONS])).await;
        send(&mut ws, json!(["id", 6, "stand-in"])).await;
        let missed = json!([
            [2, 2000, "bob", "two"],
            [3, 3000, "bob", "three"],
            [4, 4000, "[BOT] echo", "mine"],
            [5, 5000, "carol", "four"]
        ]);
        send(&mut ws, json!(["history", missed])).await;
        send(&mut ws, json!(["members", ["bob", "carol", "[BOT] echo"]])).await;
        send(
            &mut ws,
            json!(["session", {"resume": "R2", "expires_in": 30, "seq": 5}]),
        )
        .await;
        send(&mut ws, json!(["message", "carol", "live", 6, 6000])).await;
        assert_eq!(
            recv(&mut ws).await,
            json!(["msg", {"id": 6, "msg": "back"}])
        );
        let restarting = CloseFrame {
            code: CloseCode::from(clichat_proto::CLOSE_RESTARTING),
            reason: "restarting".into(),
        };
        ws.close(Some(restarting)).await.unwrap();
        while ws.next().await.is_some() {}

        let (mut ws, _) = accept(&listener).await;
        expect_resume(&mut ws, "R2", 6).await;
        send(&mut ws, json!(["refusal", refusal::RESUME_REFUSED])).await;
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    });

    let mut echo = bot(addr, &fast()).await;
    assert!(echo.welcome().granted("resume"));
    assert!(matches!(next(&mut echo).await, Event::Joined { id: 5, .. }));
    assert!(matches!(next(&mut echo).await, Event::History { .. }));
    assert!(matches!(next(&mut echo).await, Event::Members(_)));
    assert_eq!(
        next(&mut echo).await,
        Event::Message {
            from: "bob".into(),
            text: "two".into()
        },
        "the session frame is no event"
    );
    let debug = format!("{echo:?}");
    assert!(!debug.contains("R1"), "no token in Debug output: {debug}");
    echo.send("got two").await.unwrap();

    let Event::Reconnecting(lost) = next(&mut echo).await else {
        panic!("a cut connection is resumed");
    };
    assert_eq!(lost.code, None, "no close frame");
    assert_eq!(
        next(&mut echo).await,
        Event::Resumed {
            id: 6,
            missed: 2,
            complete: true
        }
    );
    for (from, text) in [("bob", "three"), ("carol", "four")] {
        assert_eq!(
            next(&mut echo).await,
            Event::Message {
                from: from.into(),
                text: text.into()
            }
        );
    }
    assert_eq!(echo.last_stamp().map(|s| s.seq), Some(5));
    assert!(matches!(next(&mut echo).await, Event::Members(m) if m.len() == 3));
    assert_eq!(
        next(&mut echo).await,
        Event::Message {
            from: "carol".into(),
            text: "live".into()
        }
    );
    echo.send("back").await.unwrap();

    let Event::Reconnecting(restart) = next(&mut echo).await else {
        panic!("a restarting server's session is resumed");
    };
    assert_eq!(restart.code, Some(1012));
    assert_eq!(
        next(&mut echo).await,
        Event::ResumeFailed {
            reason: refusal::RESUME_REFUSED.into()
        }
    );
    let Event::Closed(closed) = next(&mut echo).await else {
        panic!("closed after a failed resume");
    };
    assert_eq!(closed.code, Some(1012), "the loss that started it");
    assert_eq!(within(echo.next_event()).await, None);
    server.await.unwrap();
}

/// A server that does not come back within `expires_in` ends the attempts: the session
/// expired, then the connection is closed.
#[tokio::test]
async fn a_server_gone_for_longer_than_the_session_is_held_ends_it() {
    let (listener, addr) = common::listener().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        assert_eq!(recv(&mut ws).await[0], "caps");
        assert_eq!(recv(&mut ws).await[0], "botauth");
        send(&mut ws, json!(["caps", ["resume"]])).await;
        send(&mut ws, json!(["id", 1])).await;
        send(
            &mut ws,
            json!(["session", {"resume": "R", "expires_in": 1}]),
        )
        .await;
        send(&mut ws, json!(["join", "bob"])).await;
        // The listener goes with the connection: nothing answers at this address any more.
        drop(listener);
        cut(ws);
    });
    let mut echo = bot(addr, &fast()).await;
    assert!(matches!(next(&mut echo).await, Event::Joined { .. }));
    assert_eq!(next(&mut echo).await, Event::Join("bob".into()));
    server.await.unwrap();
    assert!(matches!(next(&mut echo).await, Event::Reconnecting(_)));
    let started = tokio::time::Instant::now();
    let Event::ResumeFailed { reason } = next(&mut echo).await else {
        panic!("the session expires");
    };
    assert!(reason.contains("expired"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gives up once expires_in (1 s) has passed: {:?}",
        started.elapsed()
    );
    assert!(matches!(next(&mut echo).await, Event::Closed(_)));
}

/// A deliberate close is not resumed: the server's `1008`, or our own close.
#[tokio::test]
async fn a_deliberate_close_is_not_resumed() {
    let (listener, addr) = common::listener().await;
    let server = tokio::spawn(async move {
        for id in [1, 2] {
            let (mut ws, _) = accept(&listener).await;
            log_in(&mut ws, id, "R", 1).await;
            if id == 1 {
                let policy = CloseFrame {
                    code: CloseCode::Policy,
                    reason: "banned".into(),
                };
                ws.close(Some(policy)).await.unwrap();
            }
            while ws.next().await.is_some() {}
        }
        // No third connection: a resume attempt would be accepted here and fail the test.
        let third = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(third.is_err(), "no resume after a deliberate close");
    });
    let mut first = bot(addr, &fast()).await;
    let mut events = Vec::new();
    while let Some(event) = within(first.next_event()).await {
        events.push(event);
    }
    let Some(Event::Closed(closed)) = events.last() else {
        panic!("ends closed: {events:?}");
    };
    assert_eq!(closed.code, Some(1008));
    assert!(!events.iter().any(|e| matches!(e, Event::Reconnecting(_))));

    let mut second = bot(addr, &fast()).await;
    assert!(matches!(next(&mut second).await, Event::Joined { .. }));
    second.close().await.unwrap();
    let mut events = Vec::new();
    while let Some(event) = within(second.next_event()).await {
        events.push(event);
    }
    assert!(
        matches!(events.last(), Some(Event::Closed(_))),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Reconnecting(_))));
    server.await.unwrap();
}

/// The resume runs in a task of its own: a caller that gives up waiting for an event (as a
/// `select!` does) and asks again does not spend the token twice, and the resume dials from
/// the local address the caller chose for the first connection.
#[tokio::test]
async fn a_resume_survives_cancelled_waits_and_keeps_the_local_address() {
    let (listener, addr) = common::listener().await;
    let local: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let server = tokio::spawn(async move {
        let (mut ws, first_peer) = accept(&listener).await;
        log_in(&mut ws, 1, "R", 1).await;
        cut(ws);
        let (mut ws, peer) = accept(&listener).await;
        assert_eq!(peer.ip(), first_peer.ip(), "the same local address");
        expect_resume(&mut ws, "R", 1).await;
        // A slow answer: the client's waits time out meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        send(&mut ws, json!(["id", 2])).await;
        send(&mut ws, json!(["history", [[2, 2000, "bob", "two"]]])).await;
        send(
            &mut ws,
            json!(["session", {"resume": "R2", "expires_in": 30, "seq": 2}]),
        )
        .await;
        let more = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(more.is_err(), "one resume, not one per cancelled wait");
        ws
    });
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let address = ServerAddress::parse(&addr.to_string()).unwrap();
    let connection = within(connect_on(stream, &address, &fast())).await.unwrap();
    let mut echo = within(connection.login_bot("echo", "T")).await.unwrap();
    assert!(matches!(next(&mut echo).await, Event::Joined { .. }));
    assert!(matches!(next(&mut echo).await, Event::History { .. }));
    assert!(matches!(next(&mut echo).await, Event::Members(_)));
    assert!(matches!(next(&mut echo).await, Event::Reconnecting(_)));
    let mut cancelled = 0;
    let resumed = loop {
        match tokio::time::timeout(Duration::from_millis(20), echo.next_event()).await {
            Ok(event) => break event,
            Err(_) => cancelled += 1,
        }
    };
    assert!(
        cancelled > 3,
        "the waits were cancelled mid-resume ({cancelled})"
    );
    assert_eq!(
        resumed,
        Some(Event::Resumed {
            id: 2,
            missed: 1,
            complete: true
        })
    );
    assert_eq!(
        next(&mut echo).await,
        Event::Message {
            from: "bob".into(),
            text: "two".into()
        }
    );
    let _ws = server.await.unwrap();
}

/// This project's server: a receiver whose socket is shut down under it (no close frame)
/// resumes, gets the messages said meanwhile in order and exactly once, and the room sees no
/// leave and no join.
#[tokio::test]
async fn the_secure_server_resumes_a_cut_connection() {
    use test_support::{BOT_NAME, BOT_TOKEN, TestServer};

    let server = TestServer::default().await;
    let address = ServerAddress::parse(&server.address()).unwrap();
    let addr = address.authority();

    // The receiver, a bot, on a socket the test keeps a second handle to, to cut it.
    let stream = std::net::TcpStream::connect(&addr).unwrap();
    let handle = stream.try_clone().unwrap();
    stream.set_nonblocking(true).unwrap();
    let stream = TcpStream::from_std(stream).unwrap();
    let connection = within(connect_on(stream, &address, &fast())).await.unwrap();
    let mut bot = within(connection.login_bot(BOT_NAME, BOT_TOKEN))
        .await
        .unwrap();
    assert!(bot.welcome().granted("resume"), "{:?}", bot.welcome());
    assert!(matches!(next(&mut bot).await, Event::Joined { .. }));

    // The sender, on the classic protocol: it sees joins and leaves, so it would see the
    // bot leave and come back.
    let classic = ConnectOptions::default().extensions(false);
    let connection = within(connect_with(&address, &classic)).await.unwrap();
    let clichat_client::LoginStep::TokenNeeded(pending) =
        within(connection.login("alice", Some(test_support::TOKENS[0])))
            .await
            .unwrap()
    else {
        panic!("a Secure Server sends a link");
    };
    let temporary = test_support::page_token(pending.link()).await;
    let mut alice = within(pending.token_auth(&temporary)).await.unwrap();
    assert!(matches!(next(&mut alice).await, Event::Joined { .. }));

    let message = |text: &str| Event::Message {
        from: "alice".into(),
        text: text.into(),
    };
    alice.send("m1").await.unwrap();
    loop {
        if next(&mut bot).await == message("m1") {
            break;
        }
    }
    handle.shutdown(std::net::Shutdown::Both).unwrap();
    for text in ["m2", "m3"] {
        alice.send(text).await.unwrap();
    }
    let Event::Reconnecting(lost) = next(&mut bot).await else {
        panic!("the cut is noticed");
    };
    assert_eq!(lost.code, None);
    // m2 may have been delivered live before the server noticed the cut; what is read here is
    // every message after m1 exactly once, in order.
    let mut seen = Vec::new();
    let Event::Resumed {
        missed: resumed, ..
    } = next(&mut bot).await
    else {
        panic!("Resumed follows Reconnecting");
    };
    assert!(resumed <= 2);
    alice.send("m4").await.unwrap();
    while seen.len() < 3 {
        match next(&mut bot).await {
            Event::Message { text, .. } => seen.push(text),
            Event::Members(_) | Event::Join(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["m2", "m3", "m4"]);
    bot.send("back").await.unwrap();
    assert_eq!(
        next(&mut alice).await,
        Event::Message {
            from: format!("[BOT] {BOT_NAME}"),
            text: "back".into()
        },
        "the room saw no leave or join of the bot"
    );
    drop(alice);
    drop(bot);
    server.stop().await;
}
