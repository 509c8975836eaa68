//! Smoke runs of every scenario, seconds each: the built `clichat-bench` binary against a real
//! `secure-server` started in this process on `127.0.0.1:0`, and against a small stand-in for
//! the original Node server (`SERVERIPHERE/<id>` links, `your token is ...` pages, bots welcomed
//! with `["id", ID]`). These show the tool works; they are not benchmarks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, State};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use test_support::TestServer;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

const BENCH: &str = env!("CARGO_BIN_EXE_clichat-bench");
/// No smoke run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A `secureconfig.json` written by `clichat-bench config`, and the directory it lives in.
struct ConfigFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

async fn generate_config(count: usize) -> ConfigFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let output = tokio::process::Command::new(BENCH)
        .args(["config", &count.to_string(), "--out"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    ConfigFile { dir, path }
}

/// A real secure-server in this process, on the config the bench generated at `config`.
async fn start_server(config: &Path) -> TestServer {
    let config = secure_server::Config::load(config).expect("the generated config loads");
    TestServer::start(config).await
}

/// Runs the bench's `scenario` against the server at `addr` with the credentials of the config
/// at `config`, and `args`; returns its exit code and report.
async fn run(scenario: &str, addr: SocketAddr, config: &Path, args: &[&str]) -> (i32, Value) {
    let addr = addr.to_string();
    let config = config.to_str().unwrap();
    let mut all = vec![scenario, "-s", &addr, "-c", config];
    all.extend_from_slice(args);
    bench(&all).await
}

/// Runs the bench's `scenario` with `args` against a server of its own, started on a config of
/// `connections` tokens and bots and stopped after; returns the bench's exit code and report.
async fn run_on_a_fresh_server(connections: usize, scenario: &str, args: &[&str]) -> (i32, Value) {
    let config = generate_config(connections).await;
    let server = start_server(&config.path).await;
    let outcome = run(scenario, server.addr, &config.path, args).await;
    server.stop().await;
    outcome
}

/// Runs the bench with `args` and `--json`; returns its exit code and report.
async fn bench(args: &[&str]) -> (i32, Value) {
    let mut command = tokio::process::Command::new(BENCH);
    command.args(args).arg("--json").kill_on_drop(true);
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("the run finishes in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}): stdout {stdout:?}, stderr {stderr:?}"));
    (output.status.code().unwrap_or(-1), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_generator_can_bound_presence_announcements() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let output = tokio::process::Command::new(BENCH)
        .args(["config", "2", "--announce-presence-up-to", "100", "--out"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let loaded = secure_server::Config::load(&path).unwrap();
    assert_eq!(loaded.announce_presence_up_to, Some(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_generator_writes_a_clusters_node_configs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("node.json");
    let output = tokio::process::Command::new(BENCH)
        .args([
            "config",
            "4",
            "--bots-only",
            "--cluster",
            "redis://127.0.0.1:6390/0",
        ])
        .args(["--nodes", "3", "--out"])
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut bots = Vec::new();
    for k in 1..=3 {
        let path = dir.path().join(format!("node-n{k}.json"));
        let loaded = secure_server::Config::load(&path).unwrap();
        assert!(loaded.tokens.is_empty(), "--bots-only");
        assert_eq!(loaded.bots.len(), 4);
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(file["cluster"]["node_id"], format!("n{k}"));
        bots.push(file["bots"].clone());
    }
    assert!(
        bots.windows(2).all(|w| w[0] == w[1]),
        "the same bots on every node"
    );
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_generator_writes_a_config_the_server_loads() {
    let config = generate_config(7).await;
    let loaded = secure_server::Config::load(&config.path).unwrap();
    assert_eq!(loaded.tokens.len(), 7);
    assert_eq!(loaded.bots.len(), 7);
    assert!(loaded.one_user_per_token);
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&config.path).unwrap()).unwrap();
    let mut bots: Vec<&str> = file["bots"]
        .as_object()
        .unwrap()
        .values()
        .map(|name| name.as_str().unwrap())
        .collect();
    bots.sort_unstable();
    assert_eq!(bots, ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]);
    assert!(loaded.announce_presence_up_to.is_none());
    // A second run does not clobber it.
    let again = std::process::Command::new(BENCH)
        .args(["config", "3", "--out"])
        .arg(&config.path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(
        secure_server::Config::load(&config.path)
            .unwrap()
            .tokens
            .len(),
        7
    );
    drop(config.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_everything_with_sauth2_logins() {
    let config = generate_config(12).await;
    let server = start_server(&config.path).await;
    let (code, report) = run(
        "fanout",
        server.addr,
        &config.path,
        &[
            "--receivers",
            "8",
            "--senders",
            "2",
            "--rate",
            "50",
            "--duration",
            "1",
            "--sample-every",
            "1",
            "--pid",
            &std::process::id().to_string(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    let sent = report["sent"].as_u64().unwrap();
    assert!((40..=110).contains(&sent), "{report}");
    assert_eq!(report["expected"].as_u64().unwrap(), sent * 9);
    assert_eq!(report["delivered"], report["expected"], "{report}");
    assert_eq!(report["complete_connections"], 10);
    assert_eq!(report["latency"]["samples"], report["delivered"]);
    assert!(report["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(report["cpu"]["server_pct"].is_number());
    // Read off the server's /metrics, which the generated config opens to loopback.
    assert!(report["server_writes"].as_u64().unwrap() > 0, "{report}");
    server.stop().await;
}

/// Receivers in worker processes, senders here: a steady phase and a burst, the latencies of
/// every process merged, the server's process given twice (as a cluster's nodes would be) and
/// once more as an `--also-pid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_worker_processes_with_a_burst() {
    let config = generate_config(12).await;
    let server = start_server(&config.path).await;
    let pid = std::process::id().to_string();
    let (code, report) = run(
        "fanout",
        server.addr,
        &config.path,
        &[
            "--login",
            "bot",
            "-r",
            "9",
            "-S",
            "2",
            "--rate",
            "20",
            "-d",
            "1",
            "--burst",
            "15",
            "--workers",
            "2",
            "--sample-every",
            "1",
            "--pid",
            &format!("{pid},{pid}"),
            "--also-pid",
            &format!("itself={pid}"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["workers"], 2);
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 0, "{report}");
    assert_eq!(report["expected"].as_u64().unwrap(), sent * 10);
    assert_eq!(report["delivered"], report["expected"], "{report}");
    assert_eq!(report["complete_connections"], 11, "{report}");
    // Every delivery was timed, in whichever process it arrived.
    assert_eq!(
        report["latency"]["samples"], report["delivered"],
        "{report}"
    );
    let burst = &report["burst"];
    assert_eq!(burst["sent"], 15, "{report}");
    assert_eq!(burst["expected"], 150);
    assert_eq!(burst["delivered"], 150, "{report}");
    assert_eq!(burst["lost"], 0);
    assert_eq!(burst["complete_connections"], 11, "{report}");
    assert_eq!(burst["latency"]["samples"], 150, "{report}");
    assert!(burst["time_to_all_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(burst["time_to_all_s"].as_f64().unwrap() < 10.0, "{report}");
    assert_eq!(report["cpu"]["servers_pct"].as_array().unwrap().len(), 2);
    assert!(report["cpu"]["also_pct"]["itself"].is_number(), "{report}");
    assert_eq!(report["cpu"]["bench_processes"], 3, "{report}");
    let memory = &report["memory"];
    assert_eq!(memory["members"], 11);
    assert!(memory["server_in_kib"].as_u64().unwrap() > 0, "{report}");
    assert!(memory["per_member_kib"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        memory["also_end_kib"]["itself"].as_u64().unwrap() > 0,
        "{report}"
    );
    server.stop().await;
}

/// `-d 0 --burst N`: only the burst, everyone in this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_burst_only() {
    let (code, report) = run_on_a_fresh_server(
        6,
        "fanout",
        &[
            "--login", "bot", "-r", "5", "-S", "1", "-d", "0", "--burst", "20",
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["workers"], 0);
    assert_eq!(report["sent"], 0);
    assert_eq!(report["burst"]["delivered"], 100, "{report}");
    assert_eq!(report["burst"]["complete_connections"], 6, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_with_bots() {
    let (code, report) = run_on_a_fresh_server(
        6,
        "fanout",
        &[
            "--login", "bot", "-r", "5", "-S", "1", "--rate", "100", "-d", "1",
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["login"], "bot");
    assert_eq!(report["delivered"], report["expected"], "{report}");
    assert!(report["delivered"].as_u64().unwrap() > 0);
}

/// Every receiver's connection cut at once (no close frame) halfway through: all resume, and
/// every receiver gets every message exactly once, the missed ones among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_every_connection_is_cut_loses_nothing() {
    let (code, report) = run_on_a_fresh_server(
        12,
        "resume",
        &[
            "--login", "bot", "-r", "10", "-m", "40", "--rate", "200", "--drain", "20",
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["scenario"], "resume");
    assert_eq!(report["receivers"], 10, "{report}");
    assert_eq!(report["resumed"], 10, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert!(report["resumes_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["missed_delivered"].as_u64().unwrap() > 0,
        "messages sent during the cut come with the resume: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_all_succeed_and_stay_open() {
    let (code, report) = run_on_a_fresh_server(
        30,
        "logins",
        &["-n", "30", "--concurrency", "4", "--settle", "0.2"],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["succeeded"], 30, "{report}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["held_at_end"], 30);
    assert_eq!(report["tenths"].as_array().unwrap().len(), 10);
    assert!(report["logins_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        report["steps"]["page"]["samples"], 30,
        "every login read its page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_answer_the_servers_pings() {
    // The server pings quiet connections every second and closes those that do not answer.
    let config = generate_config(6).await;
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(&config.path).unwrap()).unwrap();
    file["limits"]["ping_interval_secs"] = json!(1);
    std::fs::write(&config.path, file.to_string()).unwrap();
    let server = start_server(&config.path).await;
    let (code, report) = run(
        "logins",
        server.addr,
        &config.path,
        &["--login", "bot", "-n", "6", "--settle", "3.5"],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["held_at_end"], 6, "{report}");
    assert_eq!(report["closed"], json!({}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_are_grouped_by_the_servers_reason() {
    // The server knows one set of tokens, the bench uses another.
    let server_config = generate_config(3).await;
    let bench_config = generate_config(3).await;
    let server = start_server(&server_config.path).await;
    let (code, report) = run(
        "logins",
        server.addr,
        &bench_config.path,
        &["-n", "3", "--settle", "0"],
    )
    .await;
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["succeeded"], 0);
    assert_eq!(report["failures"], json!({"refused: Token refused": 3}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_over_worker_processes_reaches_everyone() {
    let (code, report) = run_on_a_fresh_server(
        41,
        "hold",
        &[
            "-n",
            "40",
            "--workers",
            "2",
            "--settle",
            "0.2",
            "--settle-max",
            "5",
            "--pid",
            &std::process::id().to_string(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["workers"], 2);
    assert_eq!(report["held"], 40, "{report}");
    assert_eq!(report["probe_received"], 40, "{report}");
    assert_eq!(report["open_at_end"], 40);
    assert!(report["rss_held_kib"].as_u64().unwrap() > 0);
    assert!(report["bytes_per_connection"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_in_process_with_bots() {
    let config = generate_config(11).await;
    let server = start_server(&config.path).await;
    let (code, report) = run(
        "hold",
        server.addr,
        &config.path,
        &[
            "--login",
            "bot",
            "-n",
            "10",
            "--workers",
            "0",
            "--settle",
            "0",
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["workers"], 0);
    assert_eq!(report["probe_received"], 10, "{report}");
    assert!(
        report["rss_before_kib"].is_null(),
        "no --pid, no memory reading"
    );
    server.stop().await;
}

// ---- A stand-in for the original Node server -------------------------------------------------

/// The original's behaviour on the wire, as far as the bench sees it: `SERVERIPHERE/<numeric id>`
/// links, a `your token is TOKEN` page on the same port, bots welcomed with `["id", ID]`, and
/// every broadcast going to every socket, logged in or not.
struct Original {
    tokens: Vec<String>,
    bots: HashMap<String, String>,
    pages: Mutex<HashMap<String, String>>,
    next_id: AtomicU64,
    room: broadcast::Sender<(u64, String)>,
}

async fn start_original(config: &Path) -> (SocketAddr, JoinHandle<()>) {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let original = Arc::new(Original {
        tokens: file["tokens"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect(),
        bots: file["bots"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(token, name)| (token.clone(), name.as_str().unwrap().to_owned()))
            .collect(),
        pages: Mutex::default(),
        next_id: AtomicU64::new(0),
        room: broadcast::channel(65_536).0,
    });
    let app = Router::new()
        .route("/", get(original_socket))
        .route("/{id}", get(original_page))
        .with_state(original);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

async fn original_page(
    State(original): State<Arc<Original>>,
    UrlPath(id): UrlPath<String>,
) -> String {
    match original.pages.lock().unwrap().get(&id) {
        Some(token) => format!("your token is {token}"),
        None => "shut up".to_owned(),
    }
}

async fn original_socket(
    State(original): State<Arc<Original>>,
    upgrade: WebSocketUpgrade,
) -> impl IntoResponse {
    upgrade.on_upgrade(move |socket| original_session(socket, original))
}

async fn original_session(mut socket: WebSocket, original: Arc<Original>) {
    let me = original.next_id.fetch_add(1, Ordering::Relaxed);
    let mut room = original.room.subscribe();
    let mut name = None;
    let mut pending: Option<(String, String)> = None; // (username, temporary token)
    let say = |frame: Value| Message::Text(frame.to_string().into());
    loop {
        tokio::select! {
            heard = room.recv() => match heard {
                Ok((from, text)) if from != me => {
                    if socket.send(Message::Text(text.into())).await.is_err() { return; }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            incoming = socket.recv() => {
                let Some(Ok(Message::Text(text))) = incoming else { return };
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let answer = match frame[0].as_str().unwrap_or_default() {
                    "auth" if original.tokens.iter().any(|t| frame[1]["token"] == **t) => {
                        let page = format!("{}", 100_000_000_000 + me);
                        let token: String = format!("{:0100}", me);
                        original.pages.lock().unwrap().insert(page.clone(), token.clone());
                        pending = Some((frame[1]["username"].as_str().unwrap().to_owned(), token));
                        json!(["authmsg", format!("SERVERIPHERE/{page}")])
                    }
                    "auth" => json!(["refusal", "Token refused"]),
                    "tokenauth" => match pending.take() {
                        Some((user, token)) if frame[1] == *token => {
                            let _ = original.room.send((me, json!(["join", user]).to_string()));
                            name = Some(user);
                            json!(["id", me, "s25032021 - Based on 25032021"])
                        }
                        _ => json!(["refusal", "refused"]),
                    },
                    "botauth" => {
                        let token = frame[1]["bottoken"].as_str().unwrap_or_default();
                        match original.bots.get(token) {
                            Some(bot) if frame[1]["botusername"] == **bot => {
                                let shown = format!("[BOT] {bot}");
                                let _ = original.room.send((me, json!(["join", shown]).to_string()));
                                name = Some(shown);
                                json!(["id", me])
                            }
                            _ => json!(["refusal", "bot refused"]),
                        }
                    }
                    "msg" if name.is_some() && frame[1]["id"] == me => {
                        let said = json!(["message", name.as_deref().unwrap(), frame[1]["msg"]]);
                        let _ = original.room.send((me, said.to_string()));
                        continue;
                    }
                    _ => continue,
                };
                if socket.send(say(answer)).await.is_err() { return; }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_against_the_original_resolve_serveriphere_links() {
    let config = generate_config(8).await;
    let (addr, server) = start_original(&config.path).await;
    let (code, report) = run(
        "logins",
        addr,
        &config.path,
        &["-n", "8", "--concurrency", "3", "--settle", "0"],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["succeeded"], 8, "{report}");
    assert_eq!(report["steps"]["page"]["samples"], 8);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_against_the_original_with_bots() {
    let config = generate_config(4).await;
    let (addr, server) = start_original(&config.path).await;
    let (code, report) = run(
        "fanout",
        addr,
        &config.path,
        &[
            "--login", "bot", "-r", "3", "-S", "1", "--rate", "20", "-d", "1",
        ],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["delivered"], report["expected"], "{report}");
    assert!(report["delivered"].as_u64().unwrap() >= 3 * 15);
    server.abort();
}
