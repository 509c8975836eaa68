//! Live reload over the wire: a server started from a config file picks up changes to it
//! without dropping anyone.

mod common;

use common::{TOKENS, TestServer, config_file, eventually, write_config};
use serde_json::{Value, json};

/// What a first `auth` with `token` gets: the frame type (`authmsg` or `refusal`).
async fn auth_answer(server: &TestServer, name: &str, token: &str) -> Value {
    let mut client = server.connect().await;
    client
        .send(json!(["auth", {"username": name, "token": token}]))
        .await;
    client.recv().await
}

/// Tries `auth` with `token` until the answer is of type `want` (the reload happens when the
/// server notices the file changed).
async fn wait_for_auth(server: &TestServer, token: &str, want: &str) {
    eventually(format!("auth with {token} answered {want}"), async || {
        let answer = auth_answer(server, "probe", token).await;
        if answer[0] == want {
            Ok(())
        } else {
            Err(answer)
        }
    })
    .await;
}

#[tokio::test]
async fn a_new_token_works_without_a_restart() {
    let (_dir, path) = config_file(json!({}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    assert_eq!(
        auth_answer(&server, "bob", "fresh-token").await[0],
        "refusal"
    );

    let mut config = common::config_json(json!({}));
    config["tokens"]["fresh-token"] = json!({ "label": "fresh" });
    write_config(&path, &config);
    wait_for_auth(&server, "fresh-token", "authmsg").await;

    // Alice was not disturbed, and the new token logs in for real.
    let bob = server.login("bob", "fresh-token").await;
    alice.expect(json!(["join", "bob"])).await;
    drop(bob);
    alice.expect(json!(["disconnect", "bob"])).await;
}

#[tokio::test]
async fn a_revoked_tokens_holder_is_told_and_closed() {
    let (_dir, path) = config_file(json!({}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;

    let mut config = common::config_json(json!({}));
    config["tokens"].as_object_mut().unwrap().remove(TOKENS[1]);
    write_config(&path, &config);

    bob.expect_refusal_and_close("Your token was revoked.")
        .await;
    alice.expect(json!(["disconnect", "bob"])).await;
    server
        .expect_refused(
            json!(["auth", {"username": "bob", "token": TOKENS[1]}]),
            "Token refused",
        )
        .await;
    alice.say("still here").await;
}

#[tokio::test]
async fn a_login_waiting_for_its_page_is_refused_if_its_token_is_revoked() {
    let (_dir, path) = config_file(json!({}));
    let server = TestServer::start_from_file(&path).await;
    let mut carol = server.connect().await;
    let link = carol.auth("carol", TOKENS[2]).await;
    let temporary = common::page_token(&link).await;

    // The new token marks the moment the change is in force (the revoked one is held by
    // carol, so it is refused either way).
    let mut config = common::config_json(json!({}));
    let tokens = config["tokens"].as_object_mut().unwrap();
    tokens.remove(TOKENS[2]);
    tokens.insert("marker-token".into(), json!({}));
    write_config(&path, &config);
    wait_for_auth(&server, "marker-token", "authmsg").await;

    carol.send(json!(["tokenauth", temporary])).await;
    carol
        .expect_refusal_and_close("Your token was revoked.")
        .await;
}

#[tokio::test]
async fn a_broken_file_is_refused_and_the_last_good_config_kept() {
    let (_dir, path) = config_file(json!({}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = server.login("alice", TOKENS[0]).await;

    std::fs::write(&path, "{\"tokens\": {\"half-written\": ").unwrap();
    // Nothing observable may change; then a good file is taken again, which shows that the
    // broken one was read (and refused) and the watch goes on.
    let mut config = common::config_json(json!({}));
    config["tokens"]["after-the-fix"] = json!({});
    std::fs::write(&path, "{\"tokens\": 5}").unwrap();
    assert_eq!(auth_answer(&server, "bob", TOKENS[1]).await[0], "authmsg");
    write_config(&path, &config);
    wait_for_auth(&server, "after-the-fix", "authmsg").await;
    alice.say("never noticed").await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    bob.say("hi").await;
    alice.expect(json!(["message", "bob", "hi"])).await;
}

#[tokio::test]
async fn new_limits_and_filters_apply_to_new_input() {
    let (_dir, path) = config_file(json!({}));
    let server = TestServer::start_from_file(&path).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    bob.say("kumquat").await;
    alice.expect(json!(["message", "bob", "kumquat"])).await;

    let config = common::config_json(json!({ "filter": ["kumquat"], "port": 1 }));
    write_config(&path, &config);
    // The filter applies to usernames too: wait until a filtered name is refused.
    eventually("the new filter in force", async || {
        let answer = auth_answer(&server, "kumquat", TOKENS[2]).await;
        if answer == json!(["refusal", "No profanity allowed!"]) {
            Ok(())
        } else {
            Err(answer)
        }
    })
    .await;
    bob.say("kumquat").await;
    bob.expect_refusal_and_close("No profanity allowed!").await;
    // The port change waits for a restart: the server still serves where it did.
    alice.say("hello").await;
    assert_eq!(auth_answer(&server, "carol", TOKENS[2]).await[0], "authmsg");
}
