//! The owner API under `/admin/`, over real HTTP, against a server started from a config file.

mod common;

use common::{TOKENS, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

const KEY: &str = "owner-key-for-tests";

async fn server(overrides: Value) -> (TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let mut config = common::config_json(overrides);
    config["tokens"][TOKENS[0]] = json!({ "label": "alice's", "role": "mod" });
    std::fs::write(&path, config.to_string()).unwrap();
    let server = TestServer::start_from_file(&path).await;
    (dir, server)
}

/// Calls the API: `(status, body)`.
async fn call(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_with_key(server, method, path, body, Some(KEY)).await
}

async fn call_with_key(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = server.url(path);
    let mut request = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    };
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn the_api_is_off_without_a_key_and_locked_without_the_right_one() {
    let (_dir, off) = server(json!({})).await;
    let (status, body) = call(&off, "GET", "/admin/connections", None).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("admin_key"));

    let (_dir, on) = server(json!({ "admin_key": KEY })).await;
    for key in [None, Some("wrong"), Some("owner-key-for-test")] {
        let (status, body) = call_with_key(&on, "GET", "/admin/connections", None, key).await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["error"], "missing or wrong admin key");
    }
}

#[tokio::test]
async fn connections_are_listed_with_their_role_and_label() {
    let (_dir, server) = server(json!({ "admin_key": KEY })).await;
    let _alice = server.login("alice", TOKENS[0]).await;
    let _bot = server.login_bot().await;
    let (status, body) = call(&server, "GET", "/admin/connections", None).await;
    assert_eq!(status, 200);
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "alice");
    assert_eq!(list[0]["kind"], "user");
    assert_eq!(list[0]["role"], "mod");
    assert_eq!(list[0]["label"], "alice's");
    assert!(list[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(list[1]["name"], "[BOT] botusr");
    assert_eq!(list[1]["kind"], "bot");
}

#[tokio::test]
async fn kick_ban_and_unban_act_on_the_room() {
    let (_dir, server) = server(json!({ "admin_key": KEY })).await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;

    let kick = json!({ "username": "bob", "reason": "test" });
    let (status, body) = call(&server, "POST", "/admin/kick", Some(kick)).await;
    assert_eq!((status, &body), (200, &json!({ "kicked": "bob" })));
    bob.expect_refusal_and_close("kicked: test").await;
    alice.expect(json!(["disconnect", "bob"])).await;

    let (status, _) = call(
        &server,
        "POST",
        "/admin/kick",
        Some(json!({"username": "bob"})),
    )
    .await;
    assert_eq!(status, 404, "bob is gone");

    // The owner may ban a mod.
    let ban = json!({ "username": "alice", "reason": "owner says", "minutes": 10 });
    let (status, body) = call(&server, "POST", "/admin/ban", Some(ban)).await;
    assert_eq!(status, 200);
    let until = body["until"].as_str().unwrap().to_owned();
    let told = format!("banned until {until}: owner says");
    alice.expect_refusal_and_close(&told).await;
    server
        .expect_refused(
            json!(["auth", {"username": "alice", "token": TOKENS[0]}]),
            &told,
        )
        .await;

    let unban = json!({ "token_label": "alice's" });
    let (status, body) = call(&server, "POST", "/admin/unban", Some(unban)).await;
    assert_eq!((status, &body), (200, &json!({ "unbanned": 1 })));
    server.login("alice", TOKENS[0]).await;

    let (status, body) = call(&server, "POST", "/admin/ban", Some(json!({"nope": 1}))).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn tokens_are_added_listed_and_revoked_through_the_api() {
    let (dir, server) = server(json!({ "admin_key": KEY })).await;
    let mut alice = server.login("alice", TOKENS[0]).await;

    let new = json!({ "label": "carol's", "role": "user" });
    let (status, body) = call(&server, "POST", "/admin/tokens", Some(new)).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["label"], "carol's");
    // It works at once, and it is in the file.
    let mut carol = server.login("carol", &token).await;
    alice.expect(json!(["join", "carol"])).await;
    let file = std::fs::read_to_string(dir.path().join("secureconfig.json")).unwrap();
    assert!(file.contains(&token));

    let (status, body) = call(&server, "GET", "/admin/tokens", None).await;
    assert_eq!(status, 200);
    let listed = body.as_array().unwrap();
    let carols = listed.iter().find(|t| t["label"] == "carol's").unwrap();
    assert_eq!(carols["in_use"], true);
    assert!(
        !carols.to_string().contains(&token),
        "the list never shows a token"
    );
    let unused = listed
        .iter()
        .filter(|t| t["kind"] == "user" && t["in_use"] == false)
        .count();
    assert_eq!(unused, TOKENS.len() - 1, "alice's and carol's are in use");

    let revoke = json!({ "token_or_label": "carol's" });
    let (status, body) = call(&server, "POST", "/admin/tokens/revoke", Some(revoke)).await;
    assert_eq!((status, &body), (200, &json!({ "revoked": 1 })));
    carol
        .expect_refusal_and_close("Your token was revoked.")
        .await;
    alice.expect(json!(["disconnect", "carol"])).await;

    let bot = json!({ "bot": "helper", "role": "mod" });
    let (status, body) = call(&server, "POST", "/admin/tokens", Some(bot)).await;
    assert_eq!(status, 201, "{body}");
    let mut helper = server.connect().await;
    let frame = json!(["botauth", {"botusername": "helper", "bottoken": body["token"]}]);
    helper.send(frame).await;
    helper.expect_id().await;

    let (status, _) = call(
        &server,
        "POST",
        "/admin/tokens/revoke",
        Some(json!({"token_or_label": "nobody"})),
    )
    .await;
    assert_eq!(status, 404);
}
