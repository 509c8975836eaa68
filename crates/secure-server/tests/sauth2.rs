//! SAUTH2 user login over the real wire: the auth -> authmsg -> page -> tokenauth flow, the
//! token page's life cycle, username and token refusals, and 1UPT holds released in every way a
//! connection can end.

mod common;

use common::{Client, TOKENS, TestServer, config, page_token, status, wait_for_status};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn full_login_then_the_page_stops_showing_the_token() {
    let server = TestServer::default().await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;

    let prefix = format!("http://{}/", server.addr);
    assert!(
        link.starts_with(&prefix),
        "link {link} uses the Host the client connected to"
    );
    let id = &link[prefix.len()..];
    assert!(
        id.len() >= 22 && id.bytes().all(|c| c.is_ascii_alphanumeric()),
        "page id {id}"
    );

    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["x-robots-tag"]
            .to_str()
            .unwrap()
            .contains("noindex")
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );

    let temp = page_token(&link).await;
    assert_eq!(temp.len(), 100);
    assert!(
        temp.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.'),
        "{temp}"
    );
    assert_eq!(
        page_token(&link).await,
        temp,
        "a person may reload the page before using it"
    );

    // Spacing inside the frame does not matter (the original compared raw JSON text).
    client
        .send_text(&format!("[ \"tokenauth\" , \"{temp}\" ]"))
        .await;
    let frame = client.recv().await;
    assert_eq!(frame[0], "id");
    assert!(frame[1].is_u64());
    assert!(frame[2].as_str().unwrap().contains("secure-server"));

    let gone = reqwest::get(&link).await.unwrap();
    assert_eq!(gone.status(), 410);
    assert!(
        !gone.text().await.unwrap().contains(&temp),
        "the token is never shown again"
    );
}

#[tokio::test]
async fn unknown_page_is_404_and_index_answers() {
    let server = TestServer::default().await;
    assert_eq!(
        status(&server.url("/0123456789abcdef0123456789abcdef")).await,
        404
    );
    assert_eq!(status(&server.url("/a/b")).await, 404);
    assert_eq!(status(&server.url("/")).await, 200);
}

#[tokio::test]
async fn public_url_is_the_link_base() {
    let server =
        TestServer::start(config(json!({"public_url": "https://chat.example.com/"}))).await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;
    assert!(link.starts_with("https://chat.example.com/"), "{link}");
    assert!(!link.starts_with("https://chat.example.com//"), "{link}");
}

#[tokio::test]
async fn wrong_temporary_token_is_refused_and_the_page_dies() {
    let server = TestServer::default().await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;
    let temp = page_token(&link).await;
    let wrong = temp.replace(&temp[..1], if temp.starts_with('a') { "b" } else { "a" });
    client.send(json!(["tokenauth", wrong])).await;
    client.expect_refusal_and_close("refused").await;
    assert_eq!(status(&link).await, 410);
    // The name and the token are free again.
    server.login("alice", TOKENS[0]).await;
}

#[tokio::test]
async fn any_other_frame_after_authmsg_is_refused() {
    let server = TestServer::default().await;
    for frame in [
        Message::text(r#"["msg",{"id":0,"msg":"hi"}]"#),
        Message::text(r#"["tokenauth",5]"#),
        Message::text(r#"["tokenauth"]"#),
        Message::text("not json"),
        Message::binary(vec![1, 2, 3]),
        Message::text(r#"["auth",{"username":"again","token":"token-two"}]"#),
    ] {
        let mut client = server.connect().await;
        let link = client.auth("alice", TOKENS[0]).await;
        client.send_raw(frame.clone()).await;
        client.expect_refusal_and_close("refused").await;
        assert_eq!(status(&link).await, 410, "after {frame:?}");
    }
}

#[tokio::test]
async fn tokenauth_timeout_refuses_and_releases() {
    let server = TestServer::start(config(json!({"tokenauth_timeout_secs": 1}))).await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;
    client
        .expect_refusal_and_close("Token authentication timed out.")
        .await;
    assert_eq!(status(&link).await, 410);
    server.login("alice", TOKENS[0]).await;
}

#[tokio::test]
async fn token_refusals() {
    let server = TestServer::default().await;
    for auth in [
        json!(["auth", {"username": "alice", "token": "no-such-token"}]),
        json!(["auth", {"username": "alice"}]),
        json!(["auth", {"username": "alice", "token": 12}]),
        json!(["auth", {"username": "alice", "token": "token-one "}]),
        json!(["auth", {"username": "alice", "token": BOT_TOKEN_TEXT}]),
    ] {
        server.expect_refused(auth, "Token refused").await;
    }
}

const BOT_TOKEN_TEXT: &str = common::BOT_TOKEN;

#[tokio::test]
async fn username_refusals_come_before_the_token() {
    let server = TestServer::start(config(json!({"max_username_length": 15}))).await;
    let cases = [
        (json!("abcdefghijklmnop"), "username is too long"),
        (json!("xBADWORDx"), "No profanity allowed!"),
        (json!("BadWord"), "No profanity allowed!"),
        (json!(""), "Invalid username."),
        (json!("   "), "Invalid username."),
        (json!("tab\there"), "Invalid username."),
        (json!("[BOT] fake"), "Invalid username."),
        (json!(" [BOT] botusr"), "Invalid username."),
        (json!("alice "), "Invalid username."),
        (json!("al\u{200B}ice"), "Invalid username."),
        (json!(42), "Invalid username."),
    ];
    for (name, reason) in cases {
        let mut client = server.connect().await;
        // A wrong token too: the username rule is what is reported.
        client
            .send(json!(["auth", {"username": name, "token": "wrong"}]))
            .await;
        client.expect_refusal_and_close(reason).await;
    }
    // Fifteen scalar values is within the limit even when they are multi-byte.
    server.login("ééééééééééééééé", TOKENS[0]).await;
}

#[tokio::test]
async fn bare_auth_is_refused_not_a_crash() {
    let server = TestServer::default().await;
    server
        .expect_refused(json!(["auth"]), "Invalid username.")
        .await;
    server.login("alice", TOKENS[0]).await;
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively_including_mid_login() {
    let server = TestServer::default().await;
    let mut first = server.connect().await;
    let link = first.auth("Alice", TOKENS[0]).await;

    server
        .expect_refused(
            json!(["auth", {"username": "aLiCe", "token": TOKENS[1]}]),
            "Username already taken.",
        )
        .await;

    first.tokenauth(&link).await;

    server
        .expect_refused(
            json!(["auth", {"username": "ALICE", "token": TOKENS[2]}]),
            "Username already taken.",
        )
        .await;
}

#[tokio::test]
async fn one_user_per_token_holds_from_auth_until_close() {
    let server = TestServer::default().await;
    let mut first = server.connect().await;
    let link = first.auth("alice", TOKENS[0]).await;

    // Held mid-login...
    server
        .expect_refused(
            json!(["auth", {"username": "bob", "token": TOKENS[0]}]),
            "Token refused",
        )
        .await;

    // ...and once logged in.
    first.tokenauth(&link).await;
    server
        .expect_refused(
            json!(["auth", {"username": "bob", "token": TOKENS[0]}]),
            "Token refused",
        )
        .await;

    // A close releases it.
    first.close().await;
    server.login("bob", TOKENS[0]).await;
}

#[tokio::test]
async fn without_1upt_a_token_serves_many() {
    let server = TestServer::start(config(json!({"1UPT": false}))).await;
    let _a = server.login("alice", TOKENS[0]).await;
    let _b = server.login("bob", TOKENS[0]).await;
}

#[tokio::test]
async fn hold_is_released_when_a_pending_login_drops_its_socket() {
    let server = TestServer::default().await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;
    drop(client); // No close frame: the TCP connection just ends.
    // The page closes only after the name and token are free again.
    wait_for_status(&link, 410).await;
    server.login("alice", TOKENS[0]).await;
}

#[tokio::test]
async fn hold_is_released_when_a_pending_login_closes() {
    let server = TestServer::default().await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;
    client.close().await;
    assert_eq!(status(&link).await, 410);
    server.login("alice", TOKENS[0]).await;
}

#[tokio::test]
async fn hold_is_released_when_a_logged_in_socket_drops() {
    let server = TestServer::default().await;
    let mut watcher = server.login("watcher", TOKENS[1]).await;
    let client = server.login("alice", TOKENS[0]).await;
    watcher.expect(json!(["join", "alice"])).await;
    drop(client);
    // The disconnect is announced only after the name and token are free.
    watcher.expect(json!(["disconnect", "alice"])).await;
    server.login("alice", TOKENS[0]).await;
}

#[tokio::test]
async fn hold_is_released_when_the_server_closes_the_connection() {
    let server = TestServer::default().await;
    let mut client = server.login("alice", TOKENS[0]).await;
    client.say("   ").await;
    client
        .expect_refusal_and_close("No Empty Messages allowed!")
        .await;
    server.login("alice", TOKENS[0]).await;
}

#[tokio::test]
async fn ids_are_unique_and_never_reused() {
    let server = TestServer::default().await;
    let a = server.login("alice", TOKENS[0]).await;
    let a_id = a.id.unwrap();
    a.close().await;
    let b = server.login("alice", TOKENS[0]).await;
    let bot = server.login_bot().await;
    let ids = [a_id, b.id.unwrap(), bot.id.unwrap()];
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
}

#[tokio::test]
async fn logins_do_not_interfere() {
    let server = TestServer::default().await;
    let mut clients: Vec<Client> = Vec::new();
    let mut links = Vec::new();
    for (i, token) in TOKENS.iter().enumerate() {
        let mut client = server.connect().await;
        links.push(client.auth(&format!("user{i}"), token).await);
        clients.push(client);
    }
    // Finish them in reverse order: each page shows its own login's token.
    for (client, link) in clients.iter_mut().zip(&links).rev() {
        client.tokenauth(link).await;
    }
}

#[tokio::test]
async fn pings_between_authmsg_and_tokenauth_are_not_frames() {
    let server = TestServer::default().await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;
    client
        .send_raw(Message::Ping(b"still there?".to_vec().into()))
        .await;
    // The pong comes back, and the login goes on.
    let pong = tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut client.ws))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"still there?".to_vec().into()));
    client.tokenauth(&link).await;
}

#[tokio::test]
async fn a_host_header_that_is_not_a_plain_host_is_not_echoed() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::default().await;
    let mut request = format!("ws://{}/", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("host", "user@evil.example".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut client = Client { ws, id: None };
    let link = client.auth("alice", TOKENS[0]).await;
    assert!(
        link.starts_with(&format!("http://{}/", server.addr)),
        "{link}"
    );
}

/// Many clients racing for one token or one name: exactly one wins each race.
#[tokio::test]
async fn concurrent_logins_race_fairly() {
    let server = TestServer::default().await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.connect().await);
    }
    // Twenty names, one token.
    let answers =
        futures_util::future::join_all(clients.iter_mut().enumerate().map(|(i, c)| async move {
            c.send(json!(["auth", {"username": format!("racer{i}"), "token": TOKENS[0]}]))
                .await;
            c.recv().await
        }))
        .await;
    let winners = answers.iter().filter(|a| a[0] == "authmsg").count();
    let refused = answers
        .iter()
        .filter(|a| **a == json!(["refusal", "Token refused"]))
        .count();
    assert_eq!((winners, refused), (1, 19), "{answers:?}");

    // One name, twenty tokens (1UPT off so that tokens are not the limit).
    let server = TestServer::start(config(json!({"1UPT": false}))).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.connect().await);
    }
    let answers = futures_util::future::join_all(clients.iter_mut().map(|c| async move {
        c.send(json!(["auth", {"username": "SameName", "token": TOKENS[1]}]))
            .await;
        c.recv().await
    }))
    .await;
    let winners = answers.iter().filter(|a| a[0] == "authmsg").count();
    let taken = answers
        .iter()
        .filter(|a| **a == json!(["refusal", "Username already taken."]))
        .count();
    assert_eq!((winners, taken), (1, 19), "{answers:?}");
}

/// The token page looks like the app (its style sheets, light and dark), offers a copy button
/// from the app's own script, and has no inline code for its CSP to forbid.
#[tokio::test]
async fn the_token_page_is_the_apps_with_a_copy_button() {
    let server = TestServer::default().await;
    let mut client = server.connect().await;
    let link = client.auth("alice", TOKENS[0]).await;
    let page = reqwest::get(&link).await.unwrap().text().await.unwrap();
    for part in [
        "href=\"/app/app.css\"",
        "href=\"/app/token.css\"",
        "src=\"/app/token.js\"",
        "id=\"copy\"",
        "Copy this token and paste it",
    ] {
        assert!(page.contains(part), "{part} in {page}");
    }
    assert!(!page.contains(" style="), "no inline style: {page}");
    assert_eq!(
        page.matches("<script").count(),
        1,
        "one script, by src: {page}"
    );
    for asset in ["/app/token.js", "/app/token.css"] {
        assert_eq!(status(&server.url(asset)).await, 200, "{asset}");
    }
    client.tokenauth(&link).await;
    let closed = reqwest::get(&link).await.unwrap();
    assert_eq!(closed.status(), 410);
    assert!(closed.text().await.unwrap().contains("/app/app.css"));
}
