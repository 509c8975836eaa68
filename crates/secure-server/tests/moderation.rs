//! APIv2 moderation over the wire: `who`, `kick`, `ban`, `unban`, for each role against each,
//! and bans that outlive a restart.

mod common;

use std::path::Path;

use common::{Client, TestServer};
use serde_json::{Value, json};

const NOT_PERMITTED: &str = "not permitted";

/// Two tokens of each role, labelled by who holds them.
fn tokens() -> Value {
    let mut tokens = serde_json::Map::new();
    for role in ["user", "mod", "admin"] {
        for n in 1..=2 {
            let entry = json!({ "label": format!("{role}{n}"), "role": role });
            tokens.insert(format!("{role}{n}-token"), entry);
        }
    }
    Value::Object(tokens)
}

async fn server() -> TestServer {
    TestServer::start(common::config(json!({ "tokens": tokens() }))).await
}

/// Logs in the holder of `label` (`user1`, `mod2`, ...) under that name.
async fn login(server: &TestServer, label: &str) -> Client {
    server.login(label, &format!("{label}-token")).await
}

async fn kick(actor: &mut Client, target: &str, reason: &str) {
    actor
        .send(json!(["kick", {"username": target, "reason": reason}]))
        .await;
}

#[tokio::test]
async fn who_answers_moderators_only() {
    let server = server().await;
    let mut user = login(&server, "user1").await;
    let mut moderator = login(&server, "mod1").await;
    user.expect(json!(["join", "mod1"])).await;
    let mut bot = server.login_bot().await;
    moderator.expect(json!(["join", "[BOT] botusr"])).await;

    moderator.send(json!(["who"])).await;
    moderator
        .expect(json!(["users", ["user1", "mod1", "[BOT] botusr"]]))
        .await;

    user.send(json!(["who"])).await;
    user.expect(json!(["join", "[BOT] botusr"])).await;
    user.expect(json!(["refusal", NOT_PERMITTED])).await;
    // The user stays.
    user.say("still here").await;
    bot.expect(json!(["message", "user1", "still here"])).await;
}

/// Who may kick whom: mods act on users, admins on users and mods, nobody on an equal or a
/// higher role.
#[tokio::test]
async fn kicks_follow_the_roles() {
    let cases = [
        ("user1", "user2", false),
        ("user1", "mod1", false),
        ("user1", "admin1", false),
        ("mod1", "user1", true),
        ("mod1", "mod2", false),
        ("mod1", "admin1", false),
        ("admin1", "user1", true),
        ("admin1", "mod1", true),
        ("admin1", "admin2", false),
    ];
    let server = server().await;
    for (actor_name, target_name, permitted) in cases {
        let mut actor = login(&server, actor_name).await;
        let mut target = login(&server, target_name).await;
        actor.expect(json!(["join", target_name])).await;
        kick(&mut actor, target_name, "be nice").await;
        if permitted {
            target.expect_refusal_and_close("kicked: be nice").await;
            actor.expect(json!(["disconnect", target_name])).await;
            actor.close().await;
        } else {
            actor.expect(json!(["refusal", NOT_PERMITTED])).await;
            // Both stay: a message still goes through.
            actor.say("sorry").await;
            target.expect(json!(["message", actor_name, "sorry"])).await;
            target.close().await;
            actor.expect(json!(["disconnect", target_name])).await;
            actor.close().await;
        }
    }
}

#[tokio::test]
async fn kicking_nobody_changes_nothing() {
    let server = server().await;
    let mut moderator = login(&server, "mod1").await;
    kick(&mut moderator, "ghost", "boo").await;
    moderator.send(json!(["kick", {"reason": "no name"}])).await;
    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["users", ["mod1"]])).await;
}

#[tokio::test]
async fn a_ban_closes_and_refuses_the_token_until_lifted() {
    let server = server().await;
    let mut moderator = login(&server, "mod1").await;
    let mut user = login(&server, "user1").await;
    moderator.expect(json!(["join", "user1"])).await;

    moderator
        .send(json!(["ban", {"username": "user1", "reason": "spam"}]))
        .await;
    user.expect_refusal_and_close("banned until lifted: spam")
        .await;
    moderator.expect(json!(["disconnect", "user1"])).await;

    // The token is refused at login, under any name; other tokens are not.
    server
        .expect_refused(
            json!(["auth", {"username": "someone", "token": "user1-token"}]),
            "banned until lifted: spam",
        )
        .await;
    let other = login(&server, "user2").await;
    moderator.expect(json!(["join", "user2"])).await;
    drop(other);

    moderator
        .send(json!(["unban", {"token_label": "user1"}]))
        .await;
    moderator.expect(json!(["disconnect", "user2"])).await;
    // The unban is in force once the moderator's next frame is answered.
    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["users", ["mod1"]])).await;
    login(&server, "user1").await;
}

#[tokio::test]
async fn a_timed_ban_says_until_when() {
    let server = server().await;
    let mut admin = login(&server, "admin1").await;
    let mut moderator = login(&server, "mod1").await;
    admin.expect(json!(["join", "mod1"])).await;
    admin
        .send(json!(["ban", {"username": "MOD1", "reason": "calm down", "minutes": 5}]))
        .await;
    let refusal = moderator.recv().await;
    admin.expect(json!(["disconnect", "mod1"])).await;
    let text = refusal[1].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("banned until 20") && text.ends_with("Z: calm down"),
        "{refusal}"
    );
    let mut again = server.connect().await;
    again
        .send(json!(["auth", {"username": "mod1", "token": "mod1-token"}]))
        .await;
    again.expect_refusal_and_close(&text).await;

    // A user cannot lift it; an admin can, by name.
    let mut user = login(&server, "user1").await;
    user.send(json!(["unban", {"username": "mod1"}])).await;
    user.expect(json!(["refusal", NOT_PERMITTED])).await;
    admin.expect(json!(["join", "user1"])).await;
    admin.send(json!(["unban", {"username": "mod1"}])).await;
    admin.send(json!(["who"])).await;
    admin.expect(json!(["users", ["admin1", "user1"]])).await;
    login(&server, "mod1").await;
}

#[tokio::test]
async fn bans_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let config = common::config_json(json!({ "tokens": tokens() }));
    std::fs::write(&path, config.to_string()).unwrap();

    let server = TestServer::start_from_file(&path).await;
    let mut moderator = server.login("mod1", "mod1-token").await;
    let mut user = server.login("user1", "user1-token").await;
    moderator.expect(json!(["join", "user1"])).await;
    moderator
        .send(json!(["ban", {"username": "user1", "reason": "spam"}]))
        .await;
    user.expect_refusal_and_close("banned until lifted: spam")
        .await;
    drop(moderator);
    server.stop().await;
    assert!(Path::new(&dir.path().join("secureconfig.bans.json")).exists());

    let server = TestServer::start_from_file(&path).await;
    server
        .expect_refused(
            json!(["auth", {"username": "user1", "token": "user1-token"}]),
            "banned until lifted: spam",
        )
        .await;
    server.login("user2", "user2-token").await;
}
