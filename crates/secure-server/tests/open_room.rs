//! An open room (`"SAUTH2": false`): the plain CLIChat server's login, for the original plain
//! client and clichat.js bots, with every other rule of this server kept.

mod common;

use common::{
    BOT_NAME, BOT_TOKEN, Client, TOKENS, TestServer, WAIT, config_file, eventually, write_config,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// An open room on the test config, with `overrides`.
fn open(overrides: Value) -> secure_server::Config {
    let mut config = json!({"SAUTH2": false});
    for (key, value) in overrides.as_object().unwrap() {
        config[key] = value.clone();
    }
    common::config(config)
}

/// Logs `name` in with the plain login, as the original client sends it.
async fn join(server: &TestServer, name: &str) -> Client {
    let mut client = server.connect().await;
    client
        .send_text(&format!(r#"["auth",{{"ip":null,"username":"{name}"}}]"#))
        .await;
    client.expect_id().await;
    client
}

/// The next text frame as it is on the wire.
async fn raw_text(client: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(text) = message {
            return text.to_string();
        }
    }
}

#[tokio::test]
async fn the_original_plain_client_logs_in_and_chats() {
    let server = TestServer::start(open(json!({}))).await;
    let mut alice = join(&server, "alice").await;
    // The original client, byte for byte: compact JSON, `ip: null`, no token.
    let mut bob = server.connect().await;
    bob.send_text(r#"["auth",{"ip":null,"username":"bob"}]"#)
        .await;
    let id = raw_text(&mut bob).await;
    let id: Value = serde_json::from_str(&id).unwrap();
    assert_eq!(id[0], "id", "{id}");
    let bob_id = id[1].as_u64().unwrap();
    alice.expect(json!(["join", "bob"])).await;

    bob.send_text(&format!(r#"["msg",{{"id":{bob_id},"msg":"hello"}}]"#))
        .await;
    assert_eq!(raw_text(&mut alice).await, r#"["message","bob","hello"]"#);
    alice.say("hi bob").await;
    assert_eq!(raw_text(&mut bob).await, r#"["message","alice","hi bob"]"#);
}

#[tokio::test]
async fn clichat_js_bots_log_in_with_a_name_and_chat_with_bots_and_people() {
    let server = TestServer::start(open(json!({}))).await;
    // clichat.js, told the server is not secure: `auth` with a username and `ip: null`, then
    // messages with the id it was given.
    let mut js = server.connect().await;
    js.send(json!(["auth", {"username": "jsbot", "ip": null}]))
        .await;
    js.expect_id().await;
    let mut bot = server.login_bot().await;
    js.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;
    bot.say("beep").await;
    js.expect(json!(["message", format!("[BOT] {BOT_NAME}"), "beep"]))
        .await;
    js.say("boop").await;
    bot.expect(json!(["message", "jsbot", "boop"])).await;
    // A bot with a wrong token is still refused: bots keep their login.
    server
        .expect_refused(
            json!(["botauth", {"botusername": BOT_NAME, "bottoken": "wrong"}]),
            "bot refused",
        )
        .await;
}

#[tokio::test]
async fn a_token_is_ignored_no_page_is_made_and_tokenauth_is_ignored() {
    let server = TestServer::start(open(json!({}))).await;
    let mut alice = server.connect().await;
    alice.send(json!(["tokenauth", "x".repeat(100)])).await;
    alice
        .send(json!(["auth", {"username": "alice", "token": "not a token at all"}]))
        .await;
    alice.expect_id().await;
    let mut bob = join(&server, "bob").await;
    alice.expect(json!(["join", "bob"])).await;
    alice.send(json!(["tokenauth", "x".repeat(100)])).await;
    alice.say("still here").await;
    bob.expect(json!(["message", "alice", "still here"])).await;
    let status = reqwest::get(server.url("/_status")).await.unwrap();
    let status: Value = serde_json::from_str(&status.text().await.unwrap()).unwrap();
    assert_eq!(status["pending_pages"], 0, "{status}");
    assert_eq!(status["held_tokens"], 0, "no tokens, so 1UPT holds nothing");
}

#[tokio::test]
async fn the_username_rules_and_refusals_are_the_same() {
    let server = TestServer::start(open(json!({}))).await;
    let _alice = join(&server, "alice").await;
    let cases = [
        (
            json!(["auth", {"username": "ALICE"}]),
            "Username already taken.",
        ),
        (
            json!(["auth", {"username": "a1ice"}]),
            "Username already taken.",
        ),
        (
            json!(["auth", {"username": "abcdefghijklmnop"}]),
            "username is too long",
        ),
        (
            json!(["auth", {"username": "xbadwordx"}]),
            "No profanity allowed!",
        ),
        (
            json!(["auth", {"username": "[BOT] botusr"}]),
            "Invalid username.",
        ),
        (
            json!(["auth", {"username": "\u{0430}lice"}]),
            "Invalid username.",
        ),
        (json!(["auth", {}]), "Invalid username."),
        (json!(["auth"]), "Invalid username."),
    ];
    for (frame, refusal) in cases {
        server.expect_refused(frame, refusal).await;
    }
}

#[tokio::test]
async fn the_abuse_limits_apply() {
    let mut limits = common::generous_limits();
    limits["login_burst"] = json!(2);
    limits["logins_per_ip_per_minute"] = json!(1);
    limits["messages_per_second"] = json!(1);
    limits["message_burst"] = json!(1);
    let server = TestServer::start(open(json!({"limits": limits}))).await;
    let mut alice = join(&server, "alice").await;
    let _bob = join(&server, "bob").await;
    alice.expect(json!(["join", "bob"])).await;
    server
        .expect_refused(
            json!(["auth", {"username": "carol"}]),
            "Too many login attempts; try again later.",
        )
        .await;
    alice.say("one").await;
    alice.say("two").await;
    alice
        .expect(json!([
            "refusal",
            "You are sending messages too fast; slow down."
        ]))
        .await;
}

#[tokio::test]
async fn a_moderator_bot_bans_a_plain_user_by_name_and_address() {
    let bots = json!({BOT_TOKEN: BOT_NAME, "mod-bot-token": {"name": "guard", "role": "mod"}});
    let server = TestServer::start(open(json!({"bots": bots}))).await;
    let mut guard = server.connect().await;
    guard
        .send(json!(["botauth", {"botusername": "guard", "bottoken": "mod-bot-token"}]))
        .await;
    guard.expect_id().await;
    let mut troll = join(&server, "troll").await;
    guard.expect(json!(["join", "troll"])).await;
    guard
        .send(json!(["ban", {"username": "troll", "reason": "spam", "minutes": 5}]))
        .await;
    let refusal = troll.recv().await;
    assert!(
        refusal[1].as_str().unwrap().ends_with(": spam"),
        "{refusal}"
    );
    guard.expect(json!(["disconnect", "troll"])).await;
    // The name is refused from anywhere, and the address under any name.
    let banned =
        |frame: Value| async move { frame[1].as_str().unwrap().starts_with("banned until") };
    let mut again = server.connect().await;
    again.send(json!(["auth", {"username": "TROLL"}])).await;
    assert!(banned(again.recv().await).await);
    let mut other = server.connect().await;
    other.send(json!(["auth", {"username": "innocent"}])).await;
    assert!(
        banned(other.recv().await).await,
        "the address is banned too"
    );
    // The owner lifts it by name.
    guard.send(json!(["unban", {"username": "troll"}])).await;
    guard.send(json!(["who"])).await;
    guard.expect(json!(["users", ["[BOT] guard"]])).await;
    join(&server, "troll").await;
}

/// What a fresh connection's plain `auth` as `name` is answered first.
async fn plain_answer(server: &TestServer, name: &str) -> Value {
    let mut client = server.connect().await;
    client.send(json!(["auth", {"username": name}])).await;
    client.recv().await
}

#[tokio::test]
async fn closing_the_room_by_reload_asks_new_logins_for_tokens_and_keeps_those_in() {
    let (_dir, path) = config_file(json!({"SAUTH2": false}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = join(&server, "alice").await;

    write_config(&path, &common::config_json(json!({"SAUTH2": true})));
    eventually("the reload closes the room", async || {
        plain_answer(&server, "probe").await == json!(["refusal", "Token refused"])
    })
    .await;
    // A token login works as on any Secure Server; alice, already in, stays.
    let bob = server.login("bob", TOKENS[0]).await;
    // Past the probes that joined while the room was still open.
    loop {
        let frame = alice.recv().await;
        if frame == json!(["join", "bob"]) {
            break;
        }
        assert_eq!(frame[1], "probe", "{frame}");
    }
    alice.say("still in").await;
    drop(bob);

    write_config(&path, &common::config_json(json!({"SAUTH2": false})));
    eventually("the reload opens the room again", async || {
        plain_answer(&server, "carol").await[0] == "id"
    })
    .await;
}

#[tokio::test]
async fn the_server_says_at_start_that_the_room_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    write_config(&path, &common::config_json(json!({"SAUTH2": false})));
    let mut server = common::process::start(&path, "info").await;
    let line = server.log_line("open to anyone").await;
    assert!(line.contains("WARN"), "{line}");

    let secure = dir.path().join("secure.json");
    write_config(&secure, &common::config_json(json!({})));
    let (_status, _stdout, log) = server.stop().await;
    assert_eq!(log.matches("open to anyone").count(), 1);
    let server = common::process::start(&secure, "info").await;
    let (_status, _stdout, log) = server.stop().await;
    assert!(!log.contains("open to anyone"), "{log}");
}

#[tokio::test]
async fn the_web_client_learns_whether_the_room_is_open() {
    let server = TestServer::start(open(json!({}))).await;
    let info: Value = serde_json::from_str(
        &reqwest::get(server.url("/app/server.json"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["sauth2"], false, "{info}");
    assert_eq!(info["max_username_length"], 15);
    assert_eq!(info["max_message_length"], 200);
    let secure = TestServer::default().await;
    let info: Value = serde_json::from_str(
        &reqwest::get(secure.url("/app/server.json"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["sauth2"], true, "{info}");
}
