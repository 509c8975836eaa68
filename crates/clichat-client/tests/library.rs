//! The library against real servers on `127.0.0.1:0`: this project's Secure Server for every
//! login mode, a small stand-in for the original Node servers (plain logins and the
//! `SERVERIPHERE/<id>` link, a `caps` frame ignored), and one for a server that grants the
//! extensions (`history`, `presence`) frame by frame as the protocol allows.
//!
//! Most tests here follow the classic protocol and log in without asking for extensions
//! ([`classic`]); the extension tests ask, as the library does by default.

mod common;

use common::{frame, next, send, within};
use std::net::SocketAddr;

use clichat_client::page::token_from_page;
use clichat_client::{
    Client, Closed, ConnectOptions, EXTENSIONS, Error, Event, HistoryEntry, LoginStep,
    ServerAddress, Stamp, connect, connect_with, message_length, refusal,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use test_support::{BOT_NAME, BOT_TOKEN, TOKENS, TestServer};
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

    /// A user through the whole SAUTH2 flow, the test playing the person who reads the page;
    /// the classic protocol.
    async fn user(&self, name: &str, token: &str) -> Client {
        self.user_with(name, token, &classic()).await
    }

    async fn user_with(&self, name: &str, token: &str, options: &ConnectOptions) -> Client {
        let connection = within(connect_with(&self.address, options)).await.unwrap();
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
        let connection = within(connect_with(&self.address, &classic()))
            .await
            .unwrap();
        within(connection.login_bot(BOT_NAME, BOT_TOKEN))
            .await
            .unwrap()
    }
}

/// Options that ask for no extensions: the protocol as the original spoke it.
fn classic() -> ConnectOptions {
    ConnectOptions::default().extensions(false)
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
/// sends `frames` as they are. A `caps` frame before `auth` (which the client must send first,
/// as the library does by default) gets no answer: the original ignored frame types it did not
/// know.
async fn original_server(secure: bool, frames: Vec<String>) -> (SocketAddr, JoinHandle<()>) {
    original_server_expecting(true, secure, frames).await
}

async fn original_server_expecting(
    caps: bool,
    secure: bool,
    frames: Vec<String>,
) -> (SocketAddr, JoinHandle<()>) {
    let (listener, addr) = common::listener().await;
    let task = tokio::spawn(async move {
        let (mut ws, _) = common::accept(&listener).await;
        let mut auth = frame(ws.next().await.unwrap().unwrap());
        if caps {
            assert_eq!(auth, json!(["caps", EXTENSIONS]), "caps first");
            auth = frame(ws.next().await.unwrap().unwrap());
        }
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
    let (listener, addr) = common::listener().await;
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

#[tokio::test]
async fn without_extensions_no_caps_frame_is_sent() {
    let (addr, original) = original_server_expecting(false, false, Vec::new()).await;
    let address = ServerAddress::parse(&addr.to_string()).unwrap();
    let connection = within(connect_with(&address, &classic())).await.unwrap();
    let LoginStep::Joined(mut alice) = within(connection.login("alice", None)).await.unwrap()
    else {
        panic!("a plain server lets the user in");
    };
    assert!(alice.welcome().extensions.is_empty());
    assert!(matches!(next(&mut alice).await, Event::Joined { .. }));
    alice.send("bye").await.unwrap();
    assert!(matches!(next(&mut alice).await, Event::Closed(_)));
    assert_eq!(alice.members(), None);
    assert_eq!(alice.last_stamp(), None);
    original.await.unwrap();
}

#[tokio::test]
async fn an_unanswered_caps_leaves_the_extensions_off() {
    let frames = vec![json!(["message", "bob", "hi"]).to_string()];
    let (addr, original) = original_server(true, frames).await;
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
    let mut alice = within(pending.token_auth("Gl8IMow5")).await.unwrap();
    assert!(alice.welcome().extensions.is_empty());
    assert!(!alice.welcome().granted("history"));
    assert!(matches!(next(&mut alice).await, Event::Joined { .. }));
    assert_eq!(
        next(&mut alice).await,
        Event::Message {
            from: "bob".into(),
            text: "hi".into()
        }
    );
    assert_eq!(alice.last_stamp(), None, "an unnumbered message");
    assert_eq!(alice.members(), None);
    alice.send("bye").await.unwrap();
    original.await.unwrap();
}

/// A server that knows the extensions, frame by frame: `caps` answered late (after `authmsg`,
/// still before `id`), then history, members, joins and leaves (one join of a name already
/// listed), a numbered message, and a fresh member list on `["members"]`.
#[tokio::test]
async fn granted_extensions_bring_history_members_and_numbers() {
    let (listener, addr) = common::listener().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = common::accept(&listener).await;
        let caps = frame(ws.next().await.unwrap().unwrap());
        assert_eq!(caps, json!(["caps", EXTENSIONS]));
        assert_eq!(frame(ws.next().await.unwrap().unwrap())[0], "auth");
        send(&mut ws, json!(["authmsg", "SERVERIPHERE/1"])).await;
        send(&mut ws, json!(["caps", ["history", "presence"]])).await;
        assert_eq!(
            frame(ws.next().await.unwrap().unwrap()),
            json!(["tokenauth", "T"])
        );
        for frame in [
            json!(["id", 3, "future"]),
            json!(["history", [[7, 1000, "bob", "old"], [9, 2000, "[BOT] x", "older?"]], {"complete": false}]),
            json!(["members", ["alice", "bob", "[BOT] x"]]),
            json!(["join", "carol"]),
            json!(["join", "bob"]),
            json!(["disconnect", "[BOT] x"]),
            json!(["message", "carol", "live", 10, 3000]),
        ] {
            send(&mut ws, frame).await;
        }
        assert_eq!(frame(ws.next().await.unwrap().unwrap()), json!(["members"]));
        send(&mut ws, json!(["members", ["alice", "dave"]])).await;
        assert_eq!(
            frame(ws.next().await.unwrap().unwrap()),
            json!(["msg", {"id": 3, "msg": "bye"}])
        );
        ws.close(None).await.unwrap();
    });

    let address = ServerAddress::parse(&addr.to_string()).unwrap();
    let LoginStep::TokenNeeded(pending) =
        within(connect(&address).await.unwrap().login("alice", Some("X")))
            .await
            .unwrap()
    else {
        panic!("expected a link");
    };
    let mut alice = within(pending.token_auth("T")).await.unwrap();
    assert_eq!(alice.welcome().extensions, ["history", "presence"]);
    assert!(alice.welcome().granted("presence"));
    assert!(matches!(
        next(&mut alice).await,
        Event::Joined { id: 3, .. }
    ));
    assert_eq!(
        next(&mut alice).await,
        Event::History {
            messages: vec![
                HistoryEntry {
                    stamp: Stamp {
                        seq: 7,
                        time_ms: 1000
                    },
                    from: "bob".into(),
                    text: "old".into()
                },
                HistoryEntry {
                    stamp: Stamp {
                        seq: 9,
                        time_ms: 2000
                    },
                    from: "[BOT] x".into(),
                    text: "older?".into()
                },
            ],
            complete: false,
        }
    );
    assert_eq!(alice.last_stamp().map(|s| s.seq), Some(9));
    assert_eq!(alice.members(), None, "no list before the members frame");
    assert_eq!(
        next(&mut alice).await,
        Event::Members(vec!["alice".into(), "bob".into(), "[BOT] x".into()])
    );
    let members =
        |client: &Client| -> Vec<String> { client.members().unwrap().iter().cloned().collect() };
    assert_eq!(members(&alice), ["[BOT] x", "alice", "bob"]);
    assert_eq!(next(&mut alice).await, Event::Join("carol".into()));
    assert_eq!(next(&mut alice).await, Event::Join("bob".into()));
    assert_eq!(next(&mut alice).await, Event::Disconnect("[BOT] x".into()));
    assert_eq!(members(&alice), ["alice", "bob", "carol"], "a set by name");
    assert_eq!(
        next(&mut alice).await,
        Event::Message {
            from: "carol".into(),
            text: "live".into()
        },
        "a numbered message reads as any other"
    );
    assert_eq!(
        alice.last_stamp(),
        Some(Stamp {
            seq: 10,
            time_ms: 3000
        })
    );
    alice.ask_members().await.unwrap();
    assert_eq!(
        next(&mut alice).await,
        Event::Members(vec!["alice".into(), "dave".into()])
    );
    assert_eq!(
        members(&alice),
        ["alice", "dave"],
        "a fresh list replaces the old"
    );
    alice.send("bye").await.unwrap();
    assert!(matches!(next(&mut alice).await, Event::Closed(_)));
    server.await.unwrap();
}

/// The next event that is not [`Event::Join`], [`Event::Disconnect`] or a member list.
async fn next_not_presence(client: &mut Client) -> Event {
    loop {
        match next(client).await {
            Event::Join(_) | Event::Disconnect(_) | Event::Members(_) => continue,
            event => return event,
        }
    }
}

/// This project's server, with the extensions the library asks for by default: a newcomer gets
/// the messages said before it came and the member list, kept current by joins and leaves.
#[tokio::test]
async fn the_secure_server_grants_history_and_presence() {
    let server = Server::start().await;
    let extensions = ConnectOptions::default();
    let mut alice = server.user_with("alice", TOKEN, &extensions).await;
    let granted = &alice.welcome().extensions;
    assert!(granted.iter().any(|e| e == "history") && granted.iter().any(|e| e == "presence"));
    assert!(matches!(next(&mut alice).await, Event::Joined { .. }));
    let Event::History { messages, complete } = next(&mut alice).await else {
        panic!("history right after id");
    };
    assert!(messages.is_empty() && complete, "a new room has no history");
    assert_eq!(next(&mut alice).await, Event::Members(vec!["alice".into()]));
    alice.send("said before bob came").await.unwrap();
    alice.send("and a second one").await.unwrap();

    let mut bob = server.user_with("bob", TOKENS[1], &extensions).await;
    assert!(matches!(next(&mut bob).await, Event::Joined { .. }));
    let Event::History { messages, complete } = next(&mut bob).await else {
        panic!("history right after id");
    };
    assert!(complete);
    let said: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.from.as_str(), m.text.as_str()))
        .collect();
    assert_eq!(
        said,
        [
            ("alice", "said before bob came"),
            ("alice", "and a second one")
        ]
    );
    assert!(messages[0].stamp.seq < messages[1].stamp.seq);
    let Event::Members(names) = next(&mut bob).await else {
        panic!("members after history");
    };
    let mut names = names;
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(alice.members().map(|m| m.len()), Some(1));
    assert_eq!(next(&mut alice).await, Event::Join("bob".into()));
    assert_eq!(
        alice.members().unwrap().iter().collect::<Vec<_>>(),
        ["alice", "bob"]
    );

    // A live message carries the next number.
    let before = bob.last_stamp().expect("history numbers the messages").seq;
    alice.send("live").await.unwrap();
    assert_eq!(
        next_not_presence(&mut bob).await,
        Event::Message {
            from: "alice".into(),
            text: "live".into()
        }
    );
    assert!(bob.last_stamp().unwrap().seq > before);

    // A bot, and its leaving; then a fresh list on request.
    let bot = server.bot().await;
    assert_eq!(next(&mut alice).await, Event::Join("[BOT] botusr".into()));
    drop(bot);
    assert_eq!(
        next(&mut alice).await,
        Event::Disconnect("[BOT] botusr".into())
    );
    assert_eq!(alice.members().unwrap().len(), 2);
    alice.ask_members().await.unwrap();
    let Event::Members(mut names) = next(&mut alice).await else {
        panic!("members on request");
    };
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    drop((alice, bob));
    server.stop().await;
}
