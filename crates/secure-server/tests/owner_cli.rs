//! The owner's subcommands, run as the real binary on a temporary config: `tokens add`, `list`,
//! `show` and `revoke` (and that an added token logs in against the server started on that
//! file), and `admin ...` against a stand-in of the owner API that records what it is sent.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use common::process::{BIN, start};
use secure_server::Config;
use secure_server::config::Role;
use secure_server::config_file::fingerprint;
use serde_json::{Value, json};
use tokio::process::Command;

/// A token already in the test config.
const OLD_TOKEN: &str = "an-old-token-that-was-there-before";

/// What one run of the binary did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `secure-server --config CONFIG ARGS...` to the end; no admin key in its environment.
async fn run(config: &Path, args: &[&str]) -> Ran {
    run_with(config, args, None).await
}

async fn run_with(config: &Path, args: &[&str], env_key: Option<&str>) -> Ran {
    let mut command = Command::new(BIN);
    command.arg("--config").arg(config).args(args);
    command.env_remove("CLICHAT_ADMIN_KEY");
    if let Some(key) = env_key {
        command.env("CLICHAT_ADMIN_KEY", key);
    }
    let output = tokio::time::timeout(common::WAIT, command.output())
        .await
        .expect("the subcommand ends in time")
        .unwrap();
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

impl Ran {
    #[track_caller]
    fn ok(self) -> Ran {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    fn failed(self, code: i32) -> Ran {
        assert_eq!(
            self.code,
            Some(code),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The one line of stdout: a new token.
    #[track_caller]
    fn token(&self) -> String {
        let token = self.stdout.trim_end_matches('\n');
        assert!(
            token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()),
            "stdout is the token alone: {:?}",
            self.stdout
        );
        token.to_owned()
    }
}

/// A config with keys the owner set by hand, in an order of their own.
fn config_text(port: u16) -> String {
    format!(
        r#"{{
  "port": {port},
  "max_username_length": 20,
  "tokens": {{ "{OLD_TOKEN}": {{ "label": "old" }} }},
  "filter": ["badword"],
  "limits": {limits}
}}
"#,
        limits = common::generous_limits()
    )
}

fn write_config(dir: &tempfile::TempDir, port: u16) -> PathBuf {
    let path = dir.path().join("secureconfig.json");
    std::fs::write(&path, config_text(port)).unwrap();
    path
}

/// The top-level keys of a pretty-printed JSON file, in their order.
fn top_level_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("  \"")?.split_once("\":"))
        .map(|(key, _)| key.to_owned())
        .collect()
}

/// The first 4 characters of a token and `…`: how lists show it.
fn masked(token: &str) -> String {
    format!("{}…", &token[..4])
}

/// The line of a table that holds `needle`.
#[track_caller]
fn line_with<'a>(table: &'a str, needle: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{table}"))
}

/// `tokens add` writes the new token into the file beside every other key (in their order),
/// prints it once on stdout; it then logs in through SAUTH2 (or `botauth`) against the server
/// started on that file, and `tokens list` / `show` show it masked, with its label and role,
/// and in use while it is held.
#[tokio::test]
async fn added_tokens_keep_the_file_log_in_and_show_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, 7999);
    let keys_before = top_level_keys(&path);
    assert_eq!(
        keys_before,
        ["port", "max_username_length", "tokens", "filter", "limits"]
    );

    let added = run(
        &path,
        &["tokens", "add", "--label", "alice", "--role", "mod"],
    )
    .await
    .ok();
    let alice = added.token();
    assert!(added.stderr.contains("alice"), "{}", added.stderr);
    assert!(!added.stderr.contains(&alice), "stderr: {}", added.stderr);
    let bot = run(
        &path,
        &["tokens", "add", "--bot", "helper", "--role", "admin"],
    )
    .await
    .ok()
    .token();

    let config = Config::load(&path).unwrap();
    assert_eq!(config.port, 7999, "other keys are kept");
    assert_eq!(config.max_username_length, 20);
    assert_eq!(config.filter, ["badword"]);
    assert_eq!(config.tokens.len(), 2);
    assert_eq!(config.tokens[OLD_TOKEN].label.as_deref(), Some("old"));
    assert_eq!(config.tokens[&alice].label.as_deref(), Some("alice"));
    assert_eq!(config.tokens[&alice].role, Role::Mod);
    assert_eq!(config.bots[&bot].name(), "helper");
    assert_eq!(config.bots[&bot].role(), Role::Admin);
    let keys_after = top_level_keys(&path);
    assert_eq!(
        keys_after[..keys_before.len()],
        keys_before,
        "key order kept"
    );

    // Without a server: in use is unknown, and said so.
    let list = run(&path, &["tokens", "list", "--port", "1"]).await.ok();
    assert!(
        list.stdout.contains("in use: unknown (server not running)"),
        "{}",
        list.stdout
    );

    let server = start(&path, "info").await;
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let mut user = server.connect().await;
    let link = user.auth("alice", &alice).await;
    user.tokenauth(&link).await;
    let mut helper = server.connect().await;
    helper
        .send(json!(["botauth", {"botusername": "helper", "bottoken": bot}]))
        .await;
    helper.expect_id().await;

    let list = run(&path, &["tokens", "list", "--port", &port]).await.ok();
    let table = &list.stdout;
    assert!(!table.contains(&alice) && !table.contains(&bot), "{table}");
    let row: Vec<&str> = line_with(table, "alice").split_whitespace().collect();
    assert_eq!(
        row,
        [
            "user",
            "alice",
            "mod",
            &masked(&alice),
            &fingerprint(&alice),
            "yes"
        ]
    );
    let row: Vec<&str> = line_with(table, "old").split_whitespace().collect();
    assert_eq!(
        row,
        [
            "user",
            "old",
            "user",
            &masked(OLD_TOKEN),
            &fingerprint(OLD_TOKEN),
            "no"
        ]
    );
    let row: Vec<&str> = line_with(table, "helper").split_whitespace().collect();
    assert_eq!(
        row[..5],
        ["bot", "helper", "admin", &masked(&bot), &fingerprint(&bot)]
    );
    assert!(!table.contains("unknown"), "{table}");

    // Without --port: the running server said where it listens, beside its config.
    let found = run(&path, &["tokens", "list"]).await.ok();
    let row: Vec<&str> = line_with(&found.stdout, "alice")
        .split_whitespace()
        .collect();
    assert_eq!(row.last(), Some(&"yes"), "{}", found.stdout);

    let list = run(&path, &["tokens", "list", "--json", "--port", &port])
        .await
        .ok();
    let rows: Value = serde_json::from_str(&list.stdout).unwrap();
    let alice_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "alice")
        .unwrap();
    assert_eq!(alice_row["in_use"], true);
    assert_eq!(alice_row["role"], "mod");
    assert_eq!(alice_row["kind"], "user");
    assert_eq!(alice_row["masked"], masked(&alice));

    // `show` takes the token (the original's seetokendata) or its label.
    for query in [alice.as_str(), "alice"] {
        let shown = run(&path, &["tokens", "show", query, "--port", &port])
            .await
            .ok();
        assert!(
            shown.stdout.contains("label:       alice"),
            "{}",
            shown.stdout
        );
        assert!(
            shown.stdout.contains("role:        mod"),
            "{}",
            shown.stdout
        );
        assert!(
            shown
                .stdout
                .contains(&format!("token:       {}", masked(&alice)))
        );
        assert!(
            shown.stdout.contains("in use:      yes"),
            "{}",
            shown.stdout
        );
        assert!(!shown.stdout.contains(&alice));
    }

    user.close().await;
    let listening = secure_server::listening_file(&path);
    assert!(listening.exists());
    let (_, printed, log) = server.stop().await;
    assert!(!listening.exists(), "removed when the server stops");
    assert!(
        log.contains("chat in a browser at http://127.0.0.1:"),
        "the start-up log says where to go: {log}"
    );
    assert_eq!(printed, "", "the server printed no token");
    for token in [&alice, &bot] {
        assert!(!log.contains(token.as_str()), "never logged: {log}");
    }
}

#[tokio::test]
async fn revoke_by_token_by_label_and_by_bot_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, 7999);
    let first = run(&path, &["tokens", "add", "--label", "first"])
        .await
        .ok()
        .token();
    let second = run(&path, &["tokens", "add", "--label", "second"])
        .await
        .ok()
        .token();
    run(&path, &["tokens", "add", "--bot", "echo"]).await.ok();

    let revoked = run(&path, &["tokens", "revoke", &first]).await.ok();
    assert!(
        revoked.stdout.contains(&masked(&first)),
        "{}",
        revoked.stdout
    );
    assert!(revoked.stdout.contains("\"first\""), "{}", revoked.stdout);
    assert!(
        revoked.stdout.contains("picks the change up"),
        "{}",
        revoked.stdout
    );
    assert!(!revoked.stdout.contains(&first));

    let revoked = run(&path, &["tokens", "revoke", "second", "--json"])
        .await
        .ok();
    let answer: Value = serde_json::from_str(&revoked.stdout).unwrap();
    assert_eq!(answer["revoked"][0]["label"], "second");
    assert_eq!(answer["revoked"][0]["fingerprint"], fingerprint(&second));

    let revoked = run(&path, &["tokens", "revoke", "echo"]).await.ok();
    assert!(
        revoked.stdout.contains("bot \"echo\""),
        "{}",
        revoked.stdout
    );

    let config = Config::load(&path).unwrap();
    assert_eq!(config.tokens.keys().collect::<Vec<_>>(), [OLD_TOKEN]);
    assert!(config.bots.is_empty());
    assert_eq!(config.filter, ["badword"]);

    let again = run(&path, &["tokens", "revoke", "second"]).await.failed(1);
    assert!(
        again
            .stderr
            .contains("no token, token label or bot name `second`"),
        "{}",
        again.stderr
    );
    let again = run(&path, &["tokens", "show", &first]).await.failed(1);
    assert!(!again.stderr.contains(&first), "masked: {}", again.stderr);
}

#[tokio::test]
async fn refusals_leave_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, 7999);
    run(&path, &["tokens", "add", "--label", "alice"])
        .await
        .ok();
    let before = std::fs::read(&path).unwrap();

    let duplicate = run(&path, &["tokens", "add", "--label", "alice"])
        .await
        .failed(1);
    assert!(duplicate.stdout.is_empty(), "no token printed");
    assert!(
        duplicate
            .stderr
            .contains("a token labelled `alice` exists already"),
        "{}",
        duplicate.stderr
    );
    let blank = run(&path, &["tokens", "add", "--bot", " "]).await.failed(1);
    assert!(blank.stderr.contains("blank"), "{}", blank.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A broken file: refused with the server's own error, and kept as it is.
    std::fs::write(&path, "{\n  \"port\": 70,\n  \"tokens\": {\n").unwrap();
    let broken = run(&path, &["tokens", "add"]).await.failed(1);
    assert!(
        broken.stderr.contains(&path.display().to_string()) && broken.stderr.contains("line 4"),
        "{}",
        broken.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\n  \"port\": 70,\n  \"tokens\": {\n"
    );

    let missing = dir.path().join("missing.json");
    let ran = run(&missing, &["tokens", "list"]).await.failed(1);
    assert!(
        ran.stderr.contains("missing.json: no such file"),
        "{}",
        ran.stderr
    );
    assert!(!missing.exists(), "tokens never creates a config");
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, 7999);
    for args in [
        &["tokens"][..],
        &["tokens", "add", "--role", "boss"],
        &["tokens", "add", "--bot", "b", "--label", "l"],
        &["tokens", "show"],
        &["admin", "unban"],
        &["admin", "kick"],
        &["admin", "frobnicate"],
    ] {
        let ran = run(&path, args).await;
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.stderr);
    }
    let help = run(&path, &["tokens", "--help"]).await.ok();
    for word in ["add", "list", "show", "revoke"] {
        assert!(help.stdout.contains(word), "{}", help.stdout);
    }
}

/// One request the stand-in API received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// A stand-in of the owner API: answers as the contract says, and records every request.
async fn fake_api(key: &'static str) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
        let record = Arc::clone(&record);
        async move {
            let authorization = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = serde_json::from_str(&body).unwrap_or(Value::Null);
            record.lock().unwrap().push(Seen {
                method: method.clone(),
                path: uri.path().to_owned(),
                authorization: authorization.clone(),
                body: body.clone(),
            });
            if authorization != Some(format!("Bearer {key}")) {
                let error = json!({"error": "missing or wrong admin key"});
                return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
            }
            let info = json!({"kind": "user", "label": "x", "name": null, "role": "mod",
                              "masked": "Abcd…", "fingerprint": "0123456789abcdef"});
            let (status, answer) = match (method.as_str(), uri.path()) {
                ("GET", "/admin/connections") => (
                    StatusCode::OK,
                    json!([{"id": 0, "name": "alice", "kind": "user", "role": "user",
                            "label": null, "peer": "127.0.0.1:5555"}]),
                ),
                ("POST", "/admin/kick") if body["username"] != "zed" => {
                    (StatusCode::OK, json!({"kicked": body["username"]}))
                }
                ("POST", "/admin/ban") => (
                    StatusCode::OK,
                    json!({"banned": body["username"], "until": "2030-01-01T00:00:00Z"}),
                ),
                ("POST", "/admin/unban") => (StatusCode::OK, json!({"unbanned": 1})),
                ("GET", "/admin/tokens") => {
                    let mut row = info.clone();
                    row["in_use"] = json!(true);
                    (StatusCode::OK, json!([row]))
                }
                ("POST", "/admin/tokens") => {
                    let mut answer = info.clone();
                    answer["token"] = json!("AbcdNewTokenNewTokenNewTokenNewToken1234567");
                    (StatusCode::CREATED, answer)
                }
                ("POST", "/admin/tokens/revoke") => (StatusCode::OK, json!({"revoked": 2})),
                _ => (
                    StatusCode::NOT_FOUND,
                    json!({"error": "nobody called \"zed\" is connected"}),
                ),
            };
            (status, axum::Json(answer)).into_response()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(handler);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

/// `admin ...` calls the API the contract describes: the URL and the key come from the config
/// file when not given, each action sends its body, and the answer is printed readably (or as
/// JSON).
#[tokio::test]
async fn admin_subcommands_call_the_owner_api() {
    let (port, seen) = fake_api("config-key").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let config = json!({"port": port, "bind": "127.0.0.1", "admin_key": "config-key"});
    std::fs::write(&path, config.to_string()).unwrap();

    let out = run(&path, &["admin", "connections"]).await.ok().stdout;
    let row: Vec<&str> = line_with(&out, "alice").split_whitespace().collect();
    assert_eq!(
        row,
        ["-", "0", "alice", "user", "user", "-", "127.0.0.1:5555"],
        "no node: a single server"
    );

    let out = run(&path, &["admin", "kick", "alice", "--reason", "spam"])
        .await
        .ok()
        .stdout;
    assert_eq!(out, "Kicked alice.\n");
    let out = run(&path, &["admin", "ban", "bob", "--minutes", "5"])
        .await
        .ok()
        .stdout;
    assert_eq!(out, "Banned bob until 2030-01-01T00:00:00Z.\n");
    let out = run(&path, &["admin", "unban", "--label", "old"])
        .await
        .ok()
        .stdout;
    assert_eq!(out, "Lifted 1 ban(s).\n");
    let out = run(&path, &["admin", "unban", "--username", "bob"])
        .await
        .ok()
        .stdout;
    assert_eq!(out, "Lifted 1 ban(s).\n");
    let out = run(&path, &["admin", "tokens"]).await.ok().stdout;
    let row: Vec<&str> = line_with(&out, "0123456789abcdef")
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["user", "x", "mod", "Abcd…", "0123456789abcdef", "yes"]
    );
    let added = run(
        &path,
        &["admin", "add-token", "--label", "x", "--role", "mod"],
    )
    .await
    .ok();
    assert_eq!(added.token(), "AbcdNewTokenNewTokenNewTokenNewToken1234567");
    let out = run(&path, &["admin", "revoke", "x"]).await.ok().stdout;
    assert_eq!(out, "Revoked 2 token(s).\n");
    let out = run(&path, &["admin", "--json", "revoke", "x"])
        .await
        .ok()
        .stdout;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"revoked": 2})
    );

    let seen = seen.lock().unwrap().clone();
    let calls: Vec<(String, String, Value)> = seen
        .iter()
        .map(|s| (s.method.to_string(), s.path.clone(), s.body.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET".into(), "/admin/connections".into(), Value::Null),
            (
                "POST".into(),
                "/admin/kick".into(),
                json!({"username": "alice", "reason": "spam"})
            ),
            (
                "POST".into(),
                "/admin/ban".into(),
                json!({"username": "bob", "minutes": 5})
            ),
            (
                "POST".into(),
                "/admin/unban".into(),
                json!({"token_label": "old"})
            ),
            (
                "POST".into(),
                "/admin/unban".into(),
                json!({"username": "bob"})
            ),
            ("GET".into(), "/admin/tokens".into(), Value::Null),
            (
                "POST".into(),
                "/admin/tokens".into(),
                json!({"role": "mod", "label": "x"})
            ),
            (
                "POST".into(),
                "/admin/tokens/revoke".into(),
                json!({"token_or_label": "x"})
            ),
            (
                "POST".into(),
                "/admin/tokens/revoke".into(),
                json!({"token_or_label": "x"})
            ),
        ]
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer config-key"))
    );
}

/// Failures name what failed: the HTTP status and the API's own message, the unreachable URL,
/// the missing key; never the key itself.
#[tokio::test]
async fn admin_errors_say_what_failed() {
    let (port, seen) = fake_api("right-key").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    std::fs::write(
        &path,
        json!({"port": port, "admin_key": "wrong-key"}).to_string(),
    )
    .unwrap();

    let ran = run(&path, &["admin", "connections"]).await.failed(1);
    assert!(ran.stderr.contains("HTTP 401"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("missing or wrong admin key"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("wrong-key"), "{}", ran.stderr);

    // The environment beats the config, and --key beats the environment.
    run_with(&path, &["admin", "connections"], Some("right-key"))
        .await
        .ok();
    run_with(
        &path,
        &["admin", "--key", "right-key", "connections"],
        Some("nope"),
    )
    .await
    .ok();
    let ran = run(&path, &["admin", "--key", "right-key", "kick", "zed"])
        .await
        .failed(1);
    assert!(
        ran.stderr.contains("HTTP 404") && ran.stderr.contains("nobody called \"zed\""),
        "{}",
        ran.stderr
    );
    assert_eq!(seen.lock().unwrap().len(), 4);

    // Nothing listening there.
    let ran = run(
        &path,
        &[
            "admin",
            "--url",
            "http://127.0.0.1:1/admin/",
            "--key",
            "k",
            "tokens",
        ],
    )
    .await
    .failed(1);
    assert!(
        ran.stderr
            .contains("cannot reach the owner API at http://127.0.0.1:1/admin/tokens"),
        "{}",
        ran.stderr
    );

    // No key anywhere.
    std::fs::write(&path, json!({"port": port}).to_string()).unwrap();
    let ran = run(&path, &["admin", "connections"]).await.failed(1);
    assert!(ran.stderr.contains("no admin key"), "{}", ran.stderr);
    assert!(ran.stderr.contains("CLICHAT_ADMIN_KEY"), "{}", ran.stderr);
    let missing = dir.path().join("missing.json");
    let url = format!("http://127.0.0.1:{port}/admin/");
    let ran = run(&missing, &["admin", "--url", &url, "connections"])
        .await
        .failed(1);
    assert!(ran.stderr.contains("no admin key"), "{}", ran.stderr);
}

/// `history clear` empties a stopped server's history file in place, and asks a running server
/// through its owner API (which drops what it keeps in memory too).
#[tokio::test]
async fn history_clear_works_on_the_file_and_through_a_running_server() {
    use secure_server::history_db::{HistoryDb, now_ms};

    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let path = write_config(&dir, port);
    let opened = HistoryDb::open(&HistoryDb::path_for(&path), Default::default()).unwrap();
    for seq in 1..=2 {
        opened.db.append(clichat_proto::HistoryEntry {
            stamp: clichat_proto::Stamp {
                seq,
                time_ms: now_ms(),
            },
            from: "a".into(),
            text: "x".into(),
        });
    }
    opened.db.close();
    drop(opened);
    let ran = run(&path, &["history", "clear"]).await.ok();
    assert!(ran.stdout.contains("Dropped 2 messages"), "{}", ran.stdout);
    let reopened = HistoryDb::open(&HistoryDb::path_for(&path), Default::default()).unwrap();
    assert!(reopened.recent.is_empty());
    assert_eq!(reopened.next_seq, 3, "numbers go on");
    drop(reopened);

    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["admin_key"] = serde_json::json!("owner-key");
    std::fs::write(&path, config.to_string()).unwrap();
    let server = common::TestServer::start_from_file(&path).await;
    let listening = secure_server::listening_file(&path);
    common::eventually("the server says where it listens", async || {
        if listening.exists() {
            Ok(())
        } else {
            Err("no listening file yet")
        }
    })
    .await;
    let ran = run(&path, &["history", "clear"]).await.ok();
    assert_eq!(ran.stdout, "History cleared.\n");
    server.stop().await;
}
