//! The library against real servers on `127.0.0.1:0`: this project's Secure Server for every
//! login mode, and a small stand-in for the original Node servers (plain logins and the
//! `SERVERIPHERE/<id>` link).

use std::future::Future;
use std::net::SocketAddr;

use clichat_client::page::token_from_page;
use clichat_client::{
    Client, Closed, Error, Event, LoginStep, ServerAddress, connect, message_length, refusal,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use test_support::{BOT_NAME, BOT_TOKEN, TOKENS, TestServer, WAIT};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = TOKENS[0];

/// This project's server on the test config, stopped by dropping or calling [`Server::stop`],
/// and this library's logins on it.
struct Server {
    address: ServerAddress,
    server: TestServer,
}

impl Server {
    async fn start() -> Server {
        let server = TestServer::default().await;
        Server {
            address: ServerAddress::parse(&server.address()).unwrap(),
            server,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }

    /// A user through the whole SAUTH2 flow, the test playing the person who reads the page.
    async fn user(&self, name: &str, token: &str) -> Client {
        let connection = within(connect(&self.address)).await.unwrap();
        let LoginStep::TokenNeeded(pending) =
            within(connection.login(name, Some(token))).await.unwrap()
        else {
            panic!("a Secure Server asks for the page's token");
        };
        let page = reqwest::get(pending.link())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let temporary = token_from_page(&page).expect("the page shows a token");
        within(pending.token_auth(&format!("  {temporary}\n")))
            .await
            .unwrap()
    }

    async fn bot(&self) -> Client {
        let connection = within(connect(&self.address)).await.unwrap();
        within(connection.login_bot(BOT_NAME, BOT_TOKEN))
            .await
            .unwrap()
    }
}

async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("no answer in time")
}

async fn next(client: &mut Client) -> Event {
    within(client.next_event())
        .await
        .expect("an event before the end")
}

#[tokio::test]
async fn sauth2_login_hands_out_the_link_then_joins() {
    let server = Server::start().await;
    let connection = connect(&server.address).await.unwrap();
    let LoginStep::TokenNeeded(pending) = connection.login("alice", Some(TOKEN)).await.unwrap()
    else {
        panic!("expected a link");
    };
    let authority = server.address.authority();
    assert!(
        pending.link().starts_with(&format!("http://{authority}/")),
        "{}",
        pending.link()
    );
    let page = reqwest::get(pending.link())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let temporary = token_from_page(&page).unwrap().to_owned();
    assert_eq!(temporary.len(), 100);

    let mut alice = within(pending.token_auth(&temporary)).await.unwrap();
    assert_eq!(alice.welcome().username, "alice");
    let Event::Joined { id, version } = next(&mut alice).await else {
        panic!("the first event is Joined");
    };
    assert_eq!(id, alice.welcome().id);
    assert!(version.unwrap().starts_with("secure-server"));
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn events_follow_the_room_and_send_fills_in_the_id() {
    let server = Server::start().await;
    let mut bot = server.bot().await;
    assert_eq!(bot.welcome().username, "[BOT] botusr");
    assert!(matches!(next(&mut bot).await, Event::Joined { .. }));

    let mut alice = server.user("alice", TOKEN).await;
    assert_eq!(next(&mut bot).await, Event::Join("alice".into()));
    assert!(matches!(next(&mut alice).await, Event::Joined { .. }));

    alice.send("hello, bot").await.unwrap();
    assert_eq!(
        next(&mut bot).await,
        Event::Message {
            from: "alice".into(),
            text: "hello, bot".into()
        }
    );
    bot.send("hello, alice").await.unwrap();
    assert_eq!(
        next(&mut alice).await,
        Event::Message {
            from: "[BOT] botusr".into(),
            text: "hello, alice".into()
        }
    );

    alice.close().await.unwrap();
    assert_eq!(next(&mut bot).await, Event::Disconnect("alice".into()));
    assert!(matches!(next(&mut alice).await, Event::Closed(_)));
    assert_eq!(
        within(alice.next_event()).await,
        None,
        "nothing after Closed"
    );
    drop(bot);
    server.stop().await;
}

#[tokio::test]
async fn split_halves_work_from_different_tasks() {
    let server = Server::start().await;
    let mut bot = server.bot().await;
    next(&mut bot).await;
    let alice = server.user("alice", TOKEN).await;
    assert_eq!(next(&mut bot).await, Event::Join("alice".into()));

    let (sender, mut events) = alice.split();
    let writer = tokio::spawn(async move {
        for n in 0..3 {
            sender.send(&format!("line {n}")).await.unwrap();
        }
        sender
    });
    for n in 0..3 {
        assert_eq!(
            next(&mut bot).await,
            Event::Message {
                from: "alice".into(),
                text: format!("line {n}")
            }
        );
    }
    let sender = writer.await.unwrap();
    assert_eq!(sender.welcome().username, "alice");
    assert!(matches!(
        within(events.next_event()).await,
        Some(Event::Joined { .. })
    ));
    drop((bot, sender, events));
    server.stop().await;
}

#[tokio::test]
async fn refusals_carry_the_servers_exact_text() {
    let server = Server::start().await;

    let refused = connect(&server.address)
        .await
        .unwrap()
        .login("alice", Some("not-a-token"))
        .await
        .unwrap_err();
    assert!(matches!(&refused, Error::Refused(text) if text == refusal::TOKEN_REFUSED));

    let refused = connect(&server.address)
        .await
        .unwrap()
        .login_bot(BOT_NAME, "wrong")
        .await
        .unwrap_err();
    assert!(matches!(&refused, Error::Refused(text) if text == refusal::BOT_REFUSED));

    let LoginStep::TokenNeeded(pending) = connect(&server.address)
        .await
        .unwrap()
        .login("alice", Some(TOKEN))
        .await
        .unwrap()
    else {
        panic!("expected a link");
    };
    let refused = pending.token_auth("wrong").await.unwrap_err();
    assert!(matches!(&refused, Error::Refused(text) if text == refusal::TEMP_TOKEN_REFUSED));
    assert_eq!(refused.to_string(), "refused by the server: refused");
    server.stop().await;
}

#[tokio::test]
async fn a_long_message_is_a_refusal_event_and_the_connection_stays() {
    let server = Server::start().await;
    let mut bot = server.bot().await;
    next(&mut bot).await;
    let long = "x".repeat(201);
    assert_eq!(message_length(&long), 201);
    bot.send(&long).await.unwrap();
    assert_eq!(
        next(&mut bot).await,
        Event::Refusal(refusal::message_too_long(201, 200))
    );

    let mut alice = server.user("alice", TOKEN).await;
    assert_eq!(next(&mut bot).await, Event::Join("alice".into()));
    bot.send("still here").await.unwrap();
    next(&mut alice).await;
    assert_eq!(
        next(&mut alice).await,
        Event::Message {
            from: "[BOT] botusr".into(),
            text: "still here".into()
        }
    );
    drop((bot, alice));
    server.stop().await;
}

#[tokio::test]
async fn the_server_shutting_down_is_a_closed_event() {
    let server = Server::start().await;
    let mut bot = server.bot().await;
    next(&mut bot).await;
    let stopping = tokio::spawn(server.stop());
    assert_eq!(
        next(&mut bot).await,
        Event::Closed(Closed {
            code: Some(1001),
            reason: "server shutting down".into()
        })
    );
    stopping.await.unwrap();
}

/// A stand-in for the original Node servers: it answers `auth` the original's way and then
/// sends `frames` as they are.
async fn original_server(secure: bool, frames: Vec<String>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let auth = frame(ws.next().await.unwrap().unwrap());
        assert_eq!(auth[0], "auth");
        if secure {
            assert_eq!(auth[1]["token"], "SOME_TOKEN");
            send(&mut ws, json!(["authmsg", "SERVERIPHERE/320886518076"])).await;
            let tokenauth = frame(ws.next().await.unwrap().unwrap());
            assert_eq!(tokenauth, json!(["tokenauth", "Gl8IMow5"]));
        } else {
            assert_eq!(auth[1].get("token"), None, "plain logins carry no token");
        }
        send(&mut ws, json!(["id", 0, "s25032021 - Based on 25032021"])).await;
        for text in frames {
            ws.send(Message::text(text)).await.unwrap();
        }
        let msg = frame(ws.next().await.unwrap().unwrap());
        assert_eq!(msg, json!(["msg", {"id": 0, "msg": "bye"}]));
        ws.close(None).await.unwrap();
    });
    (addr, task)
}

fn frame(message: Message) -> Value {
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

async fn send<S>(ws: &mut S, value: Value)
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    ws.send(Message::text(value.to_string())).await.unwrap();
}

#[tokio::test]
async fn original_plain_servers_let_a_tokenless_user_straight_in() {
    let future_frames = vec![
        json!(["typing", "bob", true]).to_string(),
        json!(["message", "bob", "hi", "extra"]).to_string(),
        "not json".to_owned(),
    ];
    let (addr, original) = original_server(false, future_frames).await;
    let address = ServerAddress::parse(&addr.to_string()).unwrap();
    let LoginStep::Joined(mut alice) =
        within(connect(&address).await.unwrap().login("alice", None))
            .await
            .unwrap()
    else {
        panic!("a plain server lets the user in");
    };
    assert!(matches!(
        next(&mut alice).await,
        Event::Joined { id: 0, .. }
    ));
    assert_eq!(
        next(&mut alice).await,
        Event::Unknown {
            kind: "typing".into(),
            args: vec![json!("bob"), json!(true)]
        },
        "unknown frame types are passed through"
    );
    assert_eq!(
        next(&mut alice).await,
        Event::Message {
            from: "bob".into(),
            text: "hi".into()
        },
        "extra trailing elements are ignored"
    );
    assert!(matches!(next(&mut alice).await, Event::Invalid { text, .. } if text == "not json"));
    alice.send("bye").await.unwrap();
    assert!(matches!(next(&mut alice).await, Event::Closed(_)));
    original.await.unwrap();
}

#[tokio::test]
async fn the_original_placeholder_link_is_rewritten_to_the_server() {
    let (addr, original) = original_server(true, Vec::new()).await;
    let address = ServerAddress::parse(&addr.to_string()).unwrap();
    let LoginStep::TokenNeeded(pending) = within(
        connect(&address)
            .await
            .unwrap()
            .login("alice", Some("SOME_TOKEN")),
    )
    .await
    .unwrap() else {
        panic!("expected a link");
    };
    assert_eq!(pending.link(), format!("http://{addr}/320886518076"));
    let alice = within(pending.token_auth("Gl8IMow5")).await.unwrap();
    assert_eq!(
        alice.welcome().version.as_deref(),
        Some("s25032021 - Based on 25032021")
    );
    alice.send("bye").await.unwrap();
    original.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let address = ServerAddress::parse(&addr.to_string()).unwrap();
    let err = connect(&address).await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err}");
}

#[tokio::test]
async fn a_connection_opened_by_the_caller_logs_in() {
    let server = Server::start().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let port = server
        .address
        .authority()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stream = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    assert_eq!(stream.local_addr().unwrap().ip().to_string(), "127.0.0.2");
    let options = clichat_client::ConnectOptions::default();
    let connection = clichat_client::connect_on(stream, &server.address, &options)
        .await
        .unwrap();
    let mut bot = within(connection.login_bot(BOT_NAME, BOT_TOKEN))
        .await
        .unwrap();
    assert!(matches!(next(&mut bot).await, Event::Joined { .. }));
    drop(bot);
    server.stop().await;
}
