//! `/metrics` (read with a real Prometheus text parser) and `/healthz`, over real HTTP.

mod common;

use common::{TOKENS, TestServer};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::json;

async fn scrape(server: &TestServer, key: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(server.url("/metrics"));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The metrics, parsed.
async fn samples(server: &TestServer) -> Vec<Sample> {
    let (status, text) = scrape(server, None).await;
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    Scrape::parse(lines).expect("Prometheus text").samples
}

/// The value of `name` whose labels include `labels`; 0 when there is none yet.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
            _ => panic!("{name} is neither a counter nor a gauge"),
        })
        .sum()
}

#[tokio::test]
async fn counters_move_with_a_login_a_message_and_a_refusal() {
    let server = TestServer::start(common::config(json!({ "metrics": {} }))).await;
    let before = samples(&server).await;
    assert!(value(&before, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&before, "process_open_fds", &[]) > 0.0);

    let mut alice = server.login("alice", TOKENS[0]).await;
    let bob = server.login_bot().await;
    alice.expect(json!(["join", "[BOT] botusr"])).await;
    alice.say("hello").await;
    server
        .expect_refused(
            json!(["auth", {"username": "eve", "token": "wrong"}]),
            "Token refused",
        )
        .await;
    // Carol's login waits for its token: a pending page, a held token.
    let mut carol = server.connect().await;
    let link = carol.auth("carol", TOKENS[2]).await;
    common::page_token(&link).await;

    let after = samples(&server).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(moved("clichat_logins_total", &[("outcome", "user")]), 1.0);
    assert_eq!(moved("clichat_logins_total", &[("outcome", "bot")]), 1.0);
    assert_eq!(
        moved("clichat_logins_total", &[("outcome", "refused")]),
        1.0
    );
    assert_eq!(
        moved("clichat_refusals_total", &[("reason", "token_refused")]),
        1.0
    );
    assert_eq!(moved("clichat_messages_received_total", &[]), 1.0);
    // The bot's join reached alice, and alice's message reached the bot.
    assert_eq!(moved("clichat_deliveries_total", &[]), 2.0);
    assert_eq!(moved("clichat_page_views_total", &[("status", "200")]), 2.0);
    assert_eq!(value(&after, "clichat_members", &[]), 2.0);
    assert_eq!(value(&after, "clichat_pending_token_pages", &[]), 1.0);
    assert_eq!(value(&after, "clichat_tokens_held", &[]), 2.0);
    assert!(value(&after, "clichat_connections_open", &[]) >= 3.0);
    drop((bob, carol));
}

#[tokio::test]
async fn metrics_are_off_unless_enabled_and_keyed_for_other_addresses() {
    let off = TestServer::default().await;
    assert_eq!(scrape(&off, None).await.0, 404);

    let keyed = json!({ "metrics": { "allow_from": [], "key": "scrape-key" } });
    let server = TestServer::start(common::config(keyed)).await;
    assert_eq!(scrape(&server, None).await.0, 404, "loopback is not listed");
    assert_eq!(scrape(&server, Some("wrong")).await.0, 404);
    let (status, text) = scrape(&server, Some("scrape-key")).await;
    assert_eq!(status, 200);
    assert!(text.contains("clichat_connections_open"));
}

#[tokio::test]
async fn health_is_ok_while_serving() {
    let server = TestServer::default().await;
    let response = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
}
