//! Soak: hundreds of clients against the real binary, connecting, logging in, abandoning logins
//! midway, chatting, flooding, sending garbage and disconnecting at random. Afterwards, with
//! every client gone, the server must hold nothing (connections, sessions, names, tokens, pages),
//! must not have panicked, and its memory must be back near where it started.
//!
//! CI runs it for a few seconds. For the long run:
//!
//! ```text
//! SOAK_SECS=600 cargo test --release -p secure-server --test soak -- --nocapture
//! ```
//!
//! `SOAK_CLIENTS` sets the number of clients (default 200).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::eventually_within;
use common::process::{Running, start};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one wait for the server may take, under load.
const PATIENCE: Duration = Duration::from_secs(30);
const BOTS: usize = 20;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What happened to each kind of action, counted; a client that saw anything else panics.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, u64>>);

impl Tally {
    fn add(&self, outcome: &'static str) {
        *self.0.lock().unwrap().entry(outcome).or_default() += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let seconds = env_number("SOAK_SECS", 5);
    let clients = env_number("SOAK_CLIENTS", 200) as usize;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("secureconfig.json");
    let tokens: serde_json::Map<String, Value> = (0..clients)
        .map(|i| (format!("soak-token-{i}"), json!({})))
        .collect();
    let bots: serde_json::Map<String, Value> = (0..BOTS)
        .map(|i| (format!("soak-bot-token-{i}"), json!(format!("sbot{i}"))))
        .collect();
    let limits = json!({
        // Everyone comes from 127.0.0.1; the message limits stay at their defaults, so that
        // floods are cut off as they would be in the wild.
        "max_connections_per_ip": 100_000,
        "logins_per_ip_per_minute": 10_000_000,
        "login_burst": 10_000_000,
        "page_requests_per_ip_per_minute": 10_000_000,
    });
    let text = json!({ "tokens": tokens, "bots": bots, "limits": limits }).to_string();
    std::fs::write(&config, text).unwrap();

    // The listening line, and warnings; not a line per connection.
    let server = start(
        &config,
        "warn,secure_server=info,secure_server::session=warn",
    )
    .await;
    let pid = server.child.id().unwrap();
    let rss_at_start = rss_kib(pid);
    // The server closes a keep-alive connection that sends no request for
    // `limits.http_timeout_secs` (10 s); a pool that kept it longer would race that close.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let client = SoakClient {
                addr: server.addr.clone(),
                http: http.clone(),
                tally: Arc::clone(&tally),
                index: i,
                rng: StdRng::seed_from_u64(i as u64),
            };
            tokio::spawn(client.run(deadline))
        })
        .collect();
    for task in tasks {
        task.await.expect("no client saw an unexpected answer");
    }
    drop(http);
    let rss_peak = peak_rss_kib(pid);

    let status = settled_status(&server).await;
    let rss_at_end = rss_kib(pid);
    let tally = tally.0.lock().unwrap().clone();
    println!(
        "soak: {seconds} s, {clients} clients; outcomes {tally:?}; status {status}; \
         RSS {rss_at_start} KiB at start, {rss_peak} KiB peak, {rss_at_end} KiB at end"
    );
    for key in [
        "sessions",
        "members",
        "names",
        "held_tokens",
        "pending_pages",
    ] {
        assert_eq!(status[key], 0, "{key} after every client left: {status}");
    }
    assert!(
        tally["chatted"] > 0 && tally["flood closed"] > 0,
        "{tally:?}"
    );
    // glibc keeps some freed memory for reuse; what must not happen is growth with the load.
    assert!(
        rss_at_end < rss_at_start + (rss_peak - rss_at_start) / 2 + 8 * 1024,
        "RSS {rss_at_start} KiB at start, {rss_peak} KiB peak, {rss_at_end} KiB at end"
    );
    let (_, _, log) = server.stop().await;
    assert!(!log.contains("panicked"), "{log}");
}

/// Polls the status report until only its own connection is open.
async fn settled_status(server: &Running) -> Value {
    let url = format!("http://{}/_status", server.addr);
    let what = "the server letting go of every connection";
    eventually_within(PATIENCE, what, async || {
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let status: Value = serde_json::from_str(&body).unwrap();
        if status["connections"] == 1 && status["sessions"] == 0 {
            Ok(status)
        } else {
            Err(status)
        }
    })
    .await
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

struct SoakClient {
    addr: String,
    http: reqwest::Client,
    tally: Arc<Tally>,
    index: usize,
    rng: StdRng,
}

impl SoakClient {
    async fn run(mut self, deadline: Instant) {
        while Instant::now() < deadline {
            let outcome = match self.rng.random_range(0..10) {
                0..=3 => self.chat().await,
                4 => self.abandon_after_authmsg().await,
                5 => self.abandon_after_page().await,
                6 => self.flood().await,
                7 => self.garbage().await,
                8 => self.wrong_token().await,
                _ => self.bot().await,
            };
            self.tally.add(outcome);
        }
    }

    async fn connect(&self) -> Ws {
        let url = format!("ws://{}/", self.addr);
        let (ws, _) = within(tokio_tungstenite::connect_async(url))
            .await
            .expect("connects");
        ws
    }

    /// A full SAUTH2 login; `None` when this client's own name or token is still held by a
    /// connection it abandoned a moment ago (the server notices a dropped socket on its own
    /// time).
    async fn login(&mut self) -> Option<(Ws, u64)> {
        let mut ws = self.connect().await;
        let name = format!("u{}", self.index);
        let token = format!("soak-token-{}", self.index);
        send(&mut ws, json!(["auth", {"username": name, "token": token}])).await;
        let answer = next_frame(&mut ws).await?;
        if answer[0] == "refusal" {
            let reason = answer[1].as_str().unwrap();
            assert!(
                reason == "Username already taken." || reason == "Token refused",
                "{answer}"
            );
            return None;
        }
        assert_eq!(answer[0], "authmsg", "{answer}");
        let page = self.page(answer[1].as_str().unwrap()).await;
        let temporary = common::token_in(&page);
        send(&mut ws, json!(["tokenauth", temporary])).await;
        let id = loop {
            let frame = next_frame(&mut ws).await.expect("id after tokenauth");
            if frame[0] == "id" {
                break frame[1].as_u64().unwrap();
            }
        };
        Some((ws, id))
    }

    async fn page(&self, link: &str) -> String {
        let response = within(self.http.get(link).send()).await.unwrap();
        assert_eq!(response.status(), 200, "{link}");
        response.text().await.unwrap()
    }

    async fn chat(&mut self) -> &'static str {
        let Some((mut ws, id)) = self.login().await else {
            return "name or token still held";
        };
        for n in 0..self.rng.random_range(1..=5) {
            let frame = json!(["msg", {"id": id, "msg": format!("hello {n}")}]);
            if ws.send(Message::text(frame.to_string())).await.is_err() {
                return "dropped as a slow consumer";
            }
            // Read what the room says for a moment, as a person's client would. A client that
            // reads this little in a busy room may fill its outbound queue: the server then
            // drops it (close 1008), which is the defined answer.
            let pause = Duration::from_millis(self.rng.random_range(10..100));
            let reading = async {
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return None,
                    }
                }
            };
            if let Ok(code) = tokio::time::timeout(pause, reading).await {
                assert_eq!(
                    code,
                    Some(1008),
                    "a chatting client is only dropped as slow"
                );
                return "dropped as a slow consumer";
            }
        }
        if self.rng.random_bool(0.5) {
            close(ws).await;
        }
        "chatted"
    }

    async fn abandon_after_authmsg(&mut self) -> &'static str {
        let mut ws = self.connect().await;
        let name = format!("u{}", self.index);
        let token = format!("soak-token-{}", self.index);
        send(&mut ws, json!(["auth", {"username": name, "token": token}])).await;
        let _ = next_frame(&mut ws).await;
        "abandoned after authmsg"
    }

    async fn abandon_after_page(&mut self) -> &'static str {
        let mut ws = self.connect().await;
        let name = format!("u{}", self.index);
        let token = format!("soak-token-{}", self.index);
        send(&mut ws, json!(["auth", {"username": name, "token": token}])).await;
        match next_frame(&mut ws).await {
            Some(frame) if frame[0] == "authmsg" => {
                self.page(frame[1].as_str().unwrap()).await;
                "abandoned after the page"
            }
            _ => "name or token still held",
        }
    }

    async fn flood(&mut self) -> &'static str {
        let Some((mut ws, id)) = self.login().await else {
            return "name or token still held";
        };
        for n in 0..200 {
            let frame = json!(["msg", {"id": id, "msg": format!("flood {n}")}]);
            if ws.send(Message::text(frame.to_string())).await.is_err() {
                break;
            }
        }
        // The server refuses, then closes: read until the flood refusal. A flooder that does
        // not read may instead fill its outbound queue first and be dropped as a slow consumer
        // (close 1008): under this much chatter, that is the other right answer.
        loop {
            match within(ws.next()).await {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str() == r#"["refusal","Flooding; disconnected."]"# {
                        return "flood closed";
                    }
                }
                Some(Ok(Message::Close(Some(frame)))) if u16::from(frame.code) == 1008 => {
                    return "flood dropped as a slow consumer";
                }
                Some(Ok(Message::Close(other))) => panic!("a flood closed with {other:?}"),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => panic!("a flood of 200 messages was not cut off"),
            }
        }
    }

    async fn garbage(&mut self) -> &'static str {
        let mut ws = self.connect().await;
        let junk = [
            Message::text("not json"),
            Message::text("[\"auth\"]"),
            Message::text("[\"msg\", {\"id\": 0, \"msg\": \"not logged in\"}]"),
            Message::binary(vec![0xff; 100]),
        ];
        for message in junk {
            ws.send(message).await.expect("the server ignores garbage");
        }
        close(ws).await;
        "garbage ignored"
    }

    async fn wrong_token(&mut self) -> &'static str {
        let mut ws = self.connect().await;
        let name = format!("w{}", self.index);
        send(
            &mut ws,
            json!(["auth", {"username": name, "token": "wrong"}]),
        )
        .await;
        let answer = next_frame(&mut ws).await.expect("an answer");
        assert!(
            answer == json!(["refusal", "Token refused"])
                || answer == json!(["refusal", "Username already taken."]),
            "{answer}"
        );
        "wrong token refused"
    }

    async fn bot(&mut self) -> &'static str {
        let bot = self.index % BOTS;
        let mut ws = self.connect().await;
        let frame = json!(["botauth", {
            "botusername": format!("sbot{bot}"),
            "bottoken": format!("soak-bot-token-{bot}"),
        }]);
        send(&mut ws, frame).await;
        let answer = next_frame(&mut ws).await.expect("an answer");
        if answer[0] == "refusal" {
            // Another client is this bot right now.
            assert_eq!(answer[1], "Username already taken.", "{answer}");
            return "bot name in use";
        }
        assert_eq!(answer[0], "id", "{answer}");
        let id = answer[1].as_u64().unwrap();
        send(&mut ws, json!(["msg", {"id": id, "msg": "beep"}])).await;
        close(ws).await;
        "bot chatted"
    }
}

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("the server answers in time")
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("sent");
}

/// The next text frame as JSON, or `None` once the connection is over.
async fn next_frame(ws: &mut Ws) -> Option<Value> {
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Closes and waits for the server's answer, by which time it has let go of this connection.
async fn close(mut ws: Ws) {
    let _ = ws.close(None).await;
    let _ = within(async { while let Some(Ok(_)) = ws.next().await {} }).await;
}
