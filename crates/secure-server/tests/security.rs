//! What an attacker found, each over real sockets: look-alike names, bans that left sessions
//! behind, demoted moderators, forged log lines, junk frames that burned a core, a ban that
//! panicked, loopback-only endpoints open behind a proxy, and cross-site WebSockets.

mod common;

use common::{Client, Closed, TOKENS, TestServer, WAIT, config_file, write_config};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const INVALID: &str = "Invalid username.";
const TAKEN: &str = "Username already taken.";

/// Tokens by role, for the moderation cases: `mod-token` and `admin-token` moderate.
fn roles() -> Value {
    json!({
        "mod-token": {"label": "mod", "role": "mod"},
        "admin-token": {"label": "admin", "role": "admin"},
        "bob-token": {"label": "bob"},
        "carol-token": {"label": "carol"},
    })
}

fn frame_text(frame: &Value) -> String {
    frame[1].as_str().unwrap_or_default().to_owned()
}

/// The next frame that is not a room event (a join or departure of someone else).
async fn past_room_events(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame[0] != "join" && frame[0] != "disconnect" {
            return frame;
        }
    }
}

/// A WebSocket to `server` whose upgrade request carries `headers`; the server's answer to the
/// upgrade if it refused it.
async fn connect_with(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> Result<Client, u16> {
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws, id: None }),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("upgrade failed: {error}"),
    }
}

#[tokio::test]
async fn look_alike_and_invisible_names_are_refused_or_taken() {
    let server = TestServer::default().await;
    let mut alice = server.login("alice", TOKENS[0]).await;
    let bot = server.login_bot().await;
    alice.expect(json!(["join", "[BOT] botusr"])).await;

    let cases = [
        ("alice\u{fe0f}", INVALID),
        ("\u{0430}lice", INVALID),
        ("ａｌｉｃｅ", INVALID),
        ("𝐚𝐥𝐢𝐜𝐞", INVALID),
        ("ᴀlice", INVALID),
        ("ali\u{600}ce", INVALID),
        ("alice\u{1bca0}", INVALID),
        ("\u{2800}", INVALID),
        ("\u{0391}LICE", INVALID),
        ("alic\u{0435}", INVALID),
        ("[B\u{041e}T] botusr", INVALID),
        ("［BOT］ botusr", INVALID),
        ("[B0T] botusr", INVALID),
        ("\u{300}[BOT] botusr", INVALID),
        ("[\u{0412}\u{041e}\u{0422}] b\u{043e}tusr", INVALID),
        ("\u{1d159}", INVALID),
        ("\u{1d159}[BOT] botusr", INVALID),
        ("ALICE", TAKEN),
        ("a1ice", TAKEN),
        ("aIice", TAKEN),
        ("Alice", TAKEN),
    ];
    for (name, refusal) in cases {
        let mut client = server.connect().await;
        client
            .send(json!(["auth", {"username": name, "token": TOKENS[1]}]))
            .await;
        let answer = client.recv().await;
        assert_eq!(answer, json!(["refusal", refusal]), "{name:?}");
    }
    // Real names in other scripts are fine, and nobody above ever joined.
    for name in ["José", "山田", "Ωμέγα"] {
        let person = server.login(name, TOKENS[1]).await;
        alice.expect(json!(["join", name])).await;
        person.close().await;
        alice.expect(json!(["disconnect", name])).await;
    }
    drop(bot);
}

#[tokio::test]
async fn a_wrong_token_learns_nothing_of_who_is_online() {
    let server = TestServer::default().await;
    let _alice = server.login("alice", TOKENS[0]).await;
    for name in ["alice", "nobody"] {
        server
            .expect_refused(
                json!(["auth", {"username": name, "token": "wrong"}]),
                "Token refused",
            )
            .await;
    }
}

#[tokio::test]
async fn a_ban_closes_every_session_and_pending_login_of_the_token() {
    let server = TestServer::start(common::config(json!({"1UPT": false, "tokens": roles()}))).await;
    let mut moderator = server.login("mod", "mod-token").await;
    let mut bob = server.login("bob", "bob-token").await;
    let mut bob_again = server.login("bobby", "bob-token").await;
    // A login on the same token, started before the ban, waiting for its token page.
    let mut pending = server.connect().await;
    let link = pending.auth("robert", "bob-token").await;
    let temporary = common::page_token(&link).await;
    moderator.expect(json!(["join", "bob"])).await;
    moderator.expect(json!(["join", "bobby"])).await;
    bob.expect(json!(["join", "bobby"])).await;

    moderator
        .send(json!(["ban", {"username": "BOB", "reason": "spam"}]))
        .await;
    let told = "banned until lifted: spam";
    for client in [&mut bob, &mut bob_again, &mut pending] {
        assert_eq!(past_room_events(client).await, json!(["refusal", told]));
        assert_eq!(client.closed().await, Closed::Code(1000));
    }
    let left: Vec<Value> = vec![moderator.recv().await, moderator.recv().await];
    assert!(left.contains(&json!(["disconnect", "bob"])), "{left:?}");
    assert!(left.contains(&json!(["disconnect", "bobby"])), "{left:?}");

    // The page's token no longer logs anyone in, and nor does the token.
    assert_ne!(common::status(&link).await, 200, "{temporary}");
    server
        .expect_refused(
            json!(["auth", {"username": "b", "token": "bob-token"}]),
            told,
        )
        .await;
    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["users", ["mod"]])).await;
}

/// Waits until `token` logs in (`auth` answers `authmsg`): the moment a reload that added it
/// is in force.
async fn wait_for_token(server: &TestServer, token: &str) {
    tokio::time::timeout(WAIT, async {
        loop {
            let mut client = server.connect().await;
            client
                .send(json!(["auth", {"username": "probe", "token": token}]))
                .await;
            if client.recv().await[0] == "authmsg" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the reload in time");
}

#[tokio::test]
async fn a_demoted_moderator_stops_moderating_at_the_reload() {
    let (_dir, path) = config_file(json!({"tokens": roles()}));
    let server = TestServer::start_from_file(&path).await;
    let mut moderator = server.login("mod", "mod-token").await;
    let mut bob = server.login("bob", "bob-token").await;
    moderator.expect(json!(["join", "bob"])).await;
    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["users", ["mod", "bob"]])).await;

    let mut tokens = roles();
    tokens["mod-token"]["role"] = json!("user");
    tokens["marker-token"] = json!({});
    write_config(&path, &common::config_json(json!({"tokens": tokens})));
    wait_for_token(&server, "marker-token").await;

    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["refusal", "not permitted"])).await;
    moderator
        .send(json!(["kick", {"username": "bob", "reason": "x"}]))
        .await;
    moderator.expect(json!(["refusal", "not permitted"])).await;
    bob.say("still here").await;
    moderator
        .expect(json!(["message", "bob", "still here"]))
        .await;
}

#[tokio::test]
async fn the_largest_ban_is_clamped_not_a_panic() {
    let config = json!({"tokens": roles(), "admin_key": "admin-key-0123456789"});
    let server = TestServer::start(common::config(config)).await;
    let mut moderator = server.login("mod", "mod-token").await;
    let mut bob = server.login("bob", "bob-token").await;
    moderator.expect(json!(["join", "bob"])).await;
    moderator
        .send(json!(["ban", {"username": "bob", "reason": "forever", "minutes": u64::MAX}]))
        .await;
    let refusal = bob.recv().await;
    let text = frame_text(&refusal);
    assert!(
        text.starts_with("banned until ") && text.ends_with(": forever"),
        "{refusal}"
    );
    let year: u32 = text["banned until ".len()..][..4].parse().unwrap();
    assert!(year > 2900, "about a thousand years: {text}");
    assert_eq!(bob.closed().await, Closed::Code(1000));
    moderator.expect(json!(["disconnect", "bob"])).await;
    moderator.send(json!(["who"])).await;
    moderator.expect(json!(["users", ["mod"]])).await;

    let _carol = server.login("carol", "carol-token").await;
    moderator.expect(json!(["join", "carol"])).await;
    let answer = reqwest::Client::new()
        .post(server.url("/admin/ban"))
        .bearer_auth("admin-key-0123456789")
        .body(json!({"username": "carol", "minutes": u64::MAX}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert!(body["until"].as_str().unwrap() > "2900", "{body}");
    moderator.expect(json!(["disconnect", "carol"])).await;
}

/// Limits as the harness's, with a small frame budget and messages no faster than it.
fn frame_limits(frames: u32, burst: u32, bytes: u32) -> Value {
    let mut limits = common::generous_limits();
    limits["messages_per_second"] = json!(1);
    limits["message_burst"] = json!(1);
    limits["frames_per_second"] = json!(frames);
    limits["frame_burst"] = json!(burst);
    limits["bytes_per_second"] = json!(bytes);
    limits
}

async fn expect_too_many_frames(client: &mut Client, frame: Message, most: usize) {
    use futures_util::SinkExt;
    for _ in 0..most {
        if client.ws.send(frame.clone()).await.is_err() {
            break;
        }
    }
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match client.ws.next().await {
                Some(Ok(Message::Close(Some(close)))) => return Some(close),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("closed in time");
    let close = end.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "too many frames");
}

#[tokio::test]
async fn junk_frames_past_the_budget_close_the_connection() {
    let limits = frame_limits(5, 10, 1 << 20);
    let server = TestServer::start(common::config(json!({"limits": limits}))).await;
    let junk = Message::text(json!(["junk", "x".repeat(100)]).to_string());

    // Before login: ignored frames are not free.
    let mut stranger = server.connect().await;
    expect_too_many_frames(&mut stranger, junk.clone(), 40).await;

    // After login, and pings too.
    let mut bot = server.login_bot().await;
    expect_too_many_frames(&mut bot, Message::Ping(Default::default()), 40).await;
    let mut bot = server.login_bot().await;
    expect_too_many_frames(&mut bot, junk.clone(), 40).await;

    // Within the budget, nothing happens.
    let mut alice = server.login("alice", TOKENS[0]).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    for _ in 0..5 {
        bob.send_raw(junk.clone()).await;
    }
    bob.say("fine").await;
    alice.expect(json!(["join", "bob"])).await;
    alice.expect(json!(["message", "bob", "fine"])).await;
}

#[tokio::test]
async fn reconnecting_does_not_buy_fresh_budgets_without_end() {
    let mut limits = common::generous_limits();
    limits["websockets_per_ip_per_minute"] = json!(1);
    limits["max_connections_per_ip"] = json!(3);
    let server = TestServer::start(common::config(json!({"limits": limits}))).await;
    // As many at once as may be open from one address, then one a minute.
    for _ in 0..3 {
        connect_with(server.addr, &[]).await.unwrap().close().await;
    }
    assert_eq!(connect_with(server.addr, &[]).await.err(), Some(429));
}

/// A message begun and never finished, followed by empty continuation frames as fast as they
/// go: no message ever completes, so the bytes are charged as the socket is read.
#[tokio::test]
async fn empty_fragments_are_charged_as_they_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = frame_limits(1_000, 1_000, 1_000);
    let config = json!({"limits": limits, "max_frame_bytes": 512});
    let server = TestServer::start(common::config(config)).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut junk = vec![0x01, 0x80, 0, 0, 0, 0];
    for _ in 0..2_000 {
        junk.extend_from_slice(&[0x00, 0x80, 0, 0, 0, 0]);
    }
    // The server may close before it has read it all.
    let _ = tcp.write_all(&junk).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut chunk = [0; 4096];
        while let Ok(n @ 1..) = tcp.read(&mut chunk).await {
            answer.extend_from_slice(&chunk[..n]);
        }
    });
    read.await.expect("the server closes in time");
    let close = b"\x03\xf0too many frames";
    assert!(
        answer.windows(close.len()).any(|w| w == close),
        "a close 1008 `too many frames`: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn bytes_past_the_budget_close_the_connection() {
    let limits = frame_limits(1_000, 1_000, 1_000);
    let config = json!({"limits": limits, "max_frame_bytes": 512});
    let server = TestServer::start(common::config(config)).await;
    let mut stranger = server.connect().await;
    let big = Message::text(json!(["junk", "x".repeat(400)]).to_string());
    expect_too_many_frames(&mut stranger, big, 10).await;
}

#[tokio::test]
async fn the_loopback_endpoints_are_closed_to_proxied_requests() {
    let metrics = json!({"metrics": {}});
    let direct = TestServer::start(common::config(metrics.clone())).await;
    assert_eq!(common::status(&direct.url("/_status")).await, 200);
    assert_eq!(common::status(&direct.url("/metrics")).await, 200);

    let mut config = metrics;
    config["trusted_proxies"] = json!(["127.0.0.1", "::1"]);
    config["metrics"] = json!({"key": "metrics-key-0123456789"});
    let proxied = TestServer::start(common::config(config)).await;
    assert_eq!(common::status(&proxied.url("/_status")).await, 404);
    assert_eq!(common::status(&proxied.url("/metrics")).await, 404);
    let keyed = reqwest::Client::new()
        .get(proxied.url("/metrics"))
        .bearer_auth("metrics-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200, "the key still works");
}

/// How many `auth`s from a client that says it is `forwarded_for` get an `authmsg` before the
/// address's login budget (two at once) refuses one.
async fn logins_allowed(server: &TestServer, forwarded_for: &str) -> usize {
    static NAMES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for n in 0..5 {
        let name = NAMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut client = connect_with(server.addr, &[("x-forwarded-for", forwarded_for)])
            .await
            .unwrap();
        client
            .send(json!(["auth", {"username": format!("u{name}"), "token": TOKENS[n % 4]}]))
            .await;
        if client.recv().await[0] != "authmsg" {
            return n;
        }
    }
    5
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_clients_address_and_nobody_else_does() {
    let mut limits = common::generous_limits();
    limits["login_burst"] = json!(2);
    limits["logins_per_ip_per_minute"] = json!(1);
    let config = |trusted: Value| {
        common::config(json!({"limits": limits, "trusted_proxies": trusted, "1UPT": false}))
    };

    let behind = TestServer::start(config(json!(["127.0.0.0/8"]))).await;
    assert_eq!(logins_allowed(&behind, "203.0.113.1").await, 2);
    assert_eq!(
        logins_allowed(&behind, "203.0.113.2, 127.0.0.1").await,
        2,
        "each client its own budget; trusted hops are skipped"
    );
    assert_eq!(
        logins_allowed(&behind, "203.0.113.1, 198.51.100.7").await,
        2,
        "the rightmost untrusted hop: a forged left part changes nothing"
    );

    // From an address that is not a trusted proxy, the header is the client's own words.
    let exposed = TestServer::start(config(json!(["192.0.2.1"]))).await;
    assert_eq!(logins_allowed(&exposed, "203.0.113.1").await, 2);
    assert_eq!(
        logins_allowed(&exposed, "203.0.113.2").await,
        0,
        "one budget"
    );
}

#[tokio::test]
async fn a_trusted_proxy_decides_the_link_and_the_per_address_connection_cap() {
    let mut limits = common::generous_limits();
    limits["max_connections_per_ip"] = json!(2);
    let config = json!({"limits": limits, "trusted_proxies": ["127.0.0.1"]});
    let server = TestServer::start(common::config(config)).await;
    let forwarded = [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "chat.example.com"),
    ];
    let mut client = connect_with(server.addr, &forwarded).await.unwrap();
    let link = client.auth("alice", TOKENS[0]).await;
    assert!(link.starts_with("https://chat.example.com/"), "{link}");

    // The cap counts the client's address, not the proxy's.
    let _second = connect_with(server.addr, &forwarded).await.unwrap();
    assert_eq!(connect_with(server.addr, &forwarded).await.err(), Some(503));
    let addr = server.addr;
    let others: Vec<Client> = futures_util::future::join_all(
        ["203.0.113.10", "203.0.113.11"]
            .map(|ip| async move { connect_with(addr, &[("x-forwarded-for", ip)]).await }),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert_eq!(others.len(), 2);

    // Without trusted proxies, the same headers are ignored.
    let plain = TestServer::default().await;
    let mut client = connect_with(plain.addr, &forwarded).await.unwrap();
    let link = client.auth("alice", TOKENS[0]).await;
    let own = format!("http://{}/", plain.addr);
    assert!(link.starts_with(&own), "{link}");
}

#[tokio::test]
async fn pages_on_other_sites_cannot_open_websockets() {
    let config = json!({"allowed_origins": ["https://friends.example"]});
    let server = TestServer::start(common::config(config)).await;
    let own = format!("http://{}", server.addr);
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let refused = connect_with(server.addr, &[("origin", origin)]).await;
        assert_eq!(refused.err(), Some(403), "{origin}");
    }
    for origin in [own.as_str(), "https://friends.example"] {
        let mut client = connect_with(server.addr, &[("origin", origin)])
            .await
            .unwrap_or_else(|status| panic!("{origin}: {status}"));
        assert!(!client.auth("alice", TOKENS[0]).await.is_empty());
        client.close().await;
    }
    // No Origin: not a browser.
    server.login("bob", TOKENS[1]).await;
}

/// Every line of the log is one event the server wrote: it starts with a timestamp and a level,
/// and holds no terminal escape.
fn assert_lines_are_events(log: &str) {
    for line in log.lines() {
        assert!(!line.contains('\u{1b}'), "an escape in {line:?}");
        let (time, rest) = line.split_once(' ').expect("a timestamp");
        assert!(
            time.len() > 20 && time.as_bytes()[4] == b'-' && time.ends_with('Z'),
            "not an event: {line:?}"
        );
        assert!(!time.starts_with("1999"), "a forged event: {line:?}");
        let level = rest.trim_start().split(' ').next().unwrap();
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line:?}"
        );
    }
}

#[tokio::test]
async fn nothing_a_client_sends_can_forge_or_colour_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    write_config(&path, &common::config_json(json!({"tokens": roles()})));
    let mut server = common::process::start(&path, "debug").await;

    let forged = "spam\n1999-01-01T00:00:00.000000Z  INFO secure_server::session: logged in \
                  peer=1.2.3.4:5 id=0 name=root kind=\"user\" role=admin\u{1b}[31m";
    let mut moderator = server.connect().await;
    let link = moderator.auth("mod", "mod-token").await;
    moderator.tokenauth(&link).await;
    let hostile_names = ["y peer=6.6.6.6", "q\"uote", "a\\b"];
    let mut victims = Vec::new();
    for (name, token) in hostile_names
        .iter()
        .zip(["bob-token", "carol-token", "admin-token"])
    {
        let mut victim = server.connect().await;
        let link = victim.auth(name, token).await;
        victim.tokenauth(&link).await;
        moderator.expect(json!(["join", name])).await;
        victims.push(victim);
    }
    let line = server.log_line("logged in").await;
    assert!(line.contains("name=\"mod\""), "{line}");
    let line = server.log_line("logged in").await;
    assert!(line.contains(r#"name="y peer=6.6.6.6""#), "{line}");
    let line = server.log_line("logged in").await;
    assert!(line.contains(r#"name="q\"uote""#), "{line}");

    // Frames whose text is hostile: malformed JSON quoting a newline and an escape.
    moderator
        .send_text("[\"x\n\u{1b}[31m1999-01-01T00:00:00Z ERROR forged\"")
        .await;
    moderator
        .send(json!(["kick", {"username": hostile_names[0], "reason": forged}]))
        .await;
    moderator
        .send(json!(["ban", {"username": hostile_names[1], "reason": forged, "minutes": 1}]))
        .await;
    moderator.send(json!(["unban", {"username": forged}])).await;
    for victim in &mut victims[..2] {
        let refusal = past_room_events(victim).await;
        assert!(frame_text(&refusal).ends_with(forged), "{refusal}");
    }
    server.log_line("banned").await;
    let mut refused = server.connect().await;
    refused
        .send(json!(["auth", {"username": forged, "token": "wrong"}]))
        .await;
    refused.recv().await;

    let (_status, _stdout, log) = server.stop().await;
    assert_lines_are_events(&log);
    assert!(
        log.contains(r#"reason="spam\n1999"#),
        "escaped, on one line:\n{log}"
    );
}
