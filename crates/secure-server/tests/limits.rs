//! The abuse limits over the real wire: connection caps, login, message and page rates, the
//! first-`auth` deadline, the HTTP header deadline, pings, and the status report.

mod common;

use common::{TOKENS, TestServer, WAIT, eventually, generous_limits};
use secure_server::VERSION;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

/// A server whose limits are the generous test ones with `overrides` merged over them.
async fn server_with(overrides: Value) -> TestServer {
    let mut limits = generous_limits();
    for (key, value) in overrides.as_object().unwrap() {
        limits[key] = value.clone();
    }
    TestServer::start(common::config(json!({ "limits": limits }))).await
}

/// What a WebSocket handshake got: 101 (`None`) or the HTTP status of a refusal.
async fn handshake_status(server: &TestServer) -> Option<u16> {
    match tokio_tungstenite::connect_async(format!("ws://{}/", server.addr)).await {
        Ok(_) => None,
        Err(tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

async fn status_json(server: &TestServer) -> Value {
    common::status::report(&server.url("/_status")).await
}

/// Polls the status report until `key` has the value `want`.
async fn wait_for_count(server: &TestServer, key: &str, want: u64) {
    eventually(format!("{key} becoming {want}"), async || {
        let status = status_json(server).await;
        if status[key] == want {
            Ok(())
        } else {
            Err(status)
        }
    })
    .await;
}

#[tokio::test]
async fn connections_over_the_per_address_limit_get_503_until_one_closes() {
    let server = server_with(json!({ "max_connections_per_ip": 2 })).await;
    let alice = server.login("alice", TOKENS[0]).await;
    let _idle = server.connect().await;
    assert_eq!(handshake_status(&server).await, Some(503));
    let page = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(page.status(), 503, "pages too: the limit counts sockets");
    assert_eq!(page.headers()["retry-after"], "10");

    alice.close().await;
    // The status report is one connection itself, so one place must be free for it.
    eventually("a freed place taken again", async || {
        handshake_status(&server).await.is_none()
    })
    .await;
}

#[tokio::test]
async fn the_total_connection_limit_applies_across_addresses() {
    let server = server_with(json!({ "max_connections": 1 })).await;
    let _first = server.connect().await;
    assert_eq!(handshake_status(&server).await, Some(503));
}

#[tokio::test]
async fn wrong_tokens_spend_the_login_budget_five_times_faster() {
    // A budget of six: six good logins would pass, but a wrong token costs five.
    let server = server_with(json!({ "login_burst": 6, "logins_per_ip_per_minute": 1 })).await;
    server
        .expect_refused(
            json!(["auth", {"username": "guesser", "token": "wrong"}]),
            "Token refused",
        )
        .await;
    let alice = server.login("alice", TOKENS[0]).await;
    server
        .expect_refused(
            json!(["auth", {"username": "bob", "token": TOKENS[1]}]),
            "Too many login attempts; try again later.",
        )
        .await;
    server
        .expect_refused(
            json!(["botauth", {"botusername": common::BOT_NAME, "bottoken": common::BOT_TOKEN}]),
            "Too many login attempts; try again later.",
        )
        .await;
    drop(alice);
}

#[tokio::test]
async fn good_logins_fill_the_budget_only_one_each() {
    let server = server_with(json!({ "login_burst": 4, "logins_per_ip_per_minute": 1 })).await;
    let mut clients = Vec::new();
    for (n, token) in TOKENS.iter().enumerate() {
        clients.push(server.login(&format!("user{n}"), token).await);
    }
    server
        .expect_refused(
            json!(["botauth", {"botusername": common::BOT_NAME, "bottoken": common::BOT_TOKEN}]),
            "Too many login attempts; try again later.",
        )
        .await;
}

#[tokio::test]
async fn messages_over_the_rate_are_refused_then_a_flood_is_closed() {
    let server = server_with(json!({
        "messages_per_second": 1,
        "message_burst": 3,
        "slow_downs_per_minute": 2,
    }))
    .await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    alice.expect(json!(["join", "bob"])).await;
    for n in 0..3 {
        alice.say(&format!("burst {n}")).await;
        bob.expect(json!(["message", "alice", format!("burst {n}")]))
            .await;
    }
    let slow_down = "You are sending messages too fast; slow down.";
    for _ in 0..2 {
        alice.say("too fast").await;
        alice.expect(json!(["refusal", slow_down])).await;
    }
    alice.say("flood").await;
    alice
        .expect_refusal_and_close("Flooding; disconnected.")
        .await;
    bob.expect(json!(["disconnect", "alice"])).await;
}

#[tokio::test]
async fn a_connection_that_never_logs_in_is_refused_after_the_deadline() {
    let server = server_with(json!({ "auth_timeout_secs": 1 })).await;
    let mut silent = server.connect().await;
    // Frames that are not a login do not extend the deadline.
    silent.send_text("[\"nosuchframe\"]").await;
    silent
        .expect_refusal_and_close("Authentication timed out.")
        .await;
}

#[tokio::test]
async fn a_half_sent_request_head_is_dropped_after_the_deadline() {
    let server = server_with(json!({ "http_timeout_secs": 1 })).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server hangs up in time")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let server = TestServer::default().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let server = server_with(json!({ "ping_interval_secs": 1 })).await;
    // Alice never reads again, so her client never answers a ping.
    let _alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    // Bob reads (and so answers pings) the whole time, and stays.
    bob.expect(json!(["disconnect", "alice"])).await;
    let mut carol = server.login("carol", TOKENS[2]).await;
    bob.expect(json!(["join", "carol"])).await;
    carol.say("still there?").await;
    bob.expect(json!(["message", "carol", "still there?"]))
        .await;
}

#[tokio::test]
async fn a_token_page_shows_its_token_a_few_times_only() {
    let server = server_with(json!({ "max_page_views": 2 })).await;
    let mut alice = server.connect().await;
    let link = alice.auth("alice", TOKENS[0]).await;
    let first = common::page_token(&link).await;
    let again = common::page_token(&link).await;
    assert_eq!(first, again, "a reload shows the same token");
    let third = reqwest::get(&link).await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(!third.text().await.unwrap().contains(&first));
    // The person who saw it can still log in.
    alice.send(json!(["tokenauth", first])).await;
    alice.expect_id().await;
}

#[tokio::test]
async fn guessing_page_ids_is_slowed_for_that_address() {
    // A budget of ten requests: a miss costs five.
    let server = server_with(json!({ "page_requests_per_ip_per_minute": 10 })).await;
    let mut alice = server.connect().await;
    let link = alice.auth("alice", TOKENS[0]).await;
    for n in 0..2 {
        let miss = server.url(&format!("/{n:032x}"));
        assert_eq!(common::status(&miss).await, 404);
    }
    assert_eq!(
        common::status(&link).await,
        429,
        "once slowed, even a real page is refused, so guesses cannot be told apart"
    );
}

#[tokio::test]
async fn the_status_report_counts_what_the_server_holds() {
    let server = TestServer::default().await;
    let alice = server.login("alice", TOKENS[0]).await;
    let mut pending = server.connect().await;
    pending.auth("bob", TOKENS[1]).await;
    let status = status_json(&server).await;
    assert_eq!(status["version"], VERSION);
    assert_eq!(status["members"], 1);
    assert_eq!(status["names"], 2);
    assert_eq!(status["held_tokens"], 2);
    assert_eq!(status["pending_pages"], 1);
    assert_eq!(status["sessions"], 2);
    // Two WebSockets and the status request's own connection, and perhaps the page
    // requests' connections, not yet noticed closed.
    assert!(status["connections"].as_u64().unwrap() >= 3, "{status}");

    alice.close().await;
    pending.close().await;
    wait_for_count(&server, "sessions", 0).await;
    let status = status_json(&server).await;
    for key in ["members", "names", "held_tokens", "pending_pages"] {
        assert_eq!(status[key], 0, "{key}");
    }
    wait_for_count(&server, "connections", 1).await;
}
