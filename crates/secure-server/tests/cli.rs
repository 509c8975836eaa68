//! The `secure-server` binary: flags, config creation, config and bind errors, and a real login
//! against the process it starts.

mod common;

use std::path::Path;
use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_secure-server");

fn server_command(config: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads log lines until the "listening" one and returns the address it names; the rest of the
/// log is drained in the background so that the server never writes to a closed pipe.
async fn listening_addr(stderr: impl AsyncRead + Unpin + Send + 'static) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let find = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening") {
                let at = line.find("addr=").expect("the line names the address") + 5;
                return line[at..].split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    };
    let addr = tokio::time::timeout(common::WAIT, find)
        .await
        .expect("listening in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    addr
}

async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(common::WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap()
}

#[tokio::test]
async fn help_and_version() {
    let help = Command::new(BIN).arg("--help").output().await.unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in ["--config", "--port", "--bind", "--version"] {
        assert!(text.contains(flag), "--help mentions {flag}: {text}");
    }
    let version = Command::new(BIN).arg("--version").output().await.unwrap();
    assert!(version.status.success());
    assert!(
        String::from_utf8(version.stdout)
            .unwrap()
            .contains(env!("CARGO_PKG_VERSION"))
    );
}

/// No config file: one is made with a fresh token, printed once, and that token logs in through
/// SAUTH2 against the running process. SIGTERM then ends it cleanly.
#[tokio::test]
async fn first_start_creates_the_config_and_its_token_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let mut child = server_command(&path, &[]).spawn().unwrap();
    let addr = listening_addr(child.stderr.take().unwrap()).await;

    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let token = loop {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("the token is printed");
        printed.push_str(&line);
        let candidate = line.trim();
        if candidate.len() >= 32 && candidate.chars().all(|c| c.is_ascii_alphanumeric()) {
            break candidate.to_owned();
        }
    };
    assert!(
        printed.contains(&path.display().to_string()),
        "the path is printed: {printed}"
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        written["tokens"][&token].is_object(),
        "the printed token is in the file"
    );

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let mut client = common::Client { ws, id: None };
    let link = client.auth("alice", &token).await;
    client
        .send(json!(["tokenauth", common::page_token(&link).await]))
        .await;
    client.expect_id().await;

    let status = terminate(child).await;
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");

    // A second start uses the file as it is and prints no token.
    let before = std::fs::read_to_string(&path).unwrap();
    let mut child = server_command(&path, &[]).spawn().unwrap();
    listening_addr(child.stderr.take().unwrap()).await;
    let stdout = child.stdout.take().unwrap();
    assert!(terminate(child).await.success());
    let rest = BufReader::new(stdout).lines().next_line().await.unwrap();
    assert_eq!(rest, None, "no token printed on the second start");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "never overwritten"
    );
}

#[tokio::test]
async fn the_original_config_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    std::fs::write(&path, r#"{"1UPT": false}"#).unwrap();
    let mut child = server_command(&path, &[]).spawn().unwrap();
    listening_addr(child.stderr.take().unwrap()).await;
    assert!(terminate(child).await.success());
}

/// Bad configs stop the server before it binds, with one message naming the file and the key
/// or line.
#[tokio::test]
async fn bad_configs_are_named_and_nothing_binds() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{\"prot\": 70}", "unknown field `prot`"),
        ("{\"port\": \"seventy\"}", "key `port`"),
        ("{\"1UPT\": \"yes\"}", "key `1UPT`"),
        (
            "{\"tokens\": {\"a-very-secret-token\": {\"inuse\": 1}}}",
            "key `tokens.a-ve….inuse`",
        ),
        ("{\n  \"port\": 70,\n  \"bind\": \n", "line 4"),
        ("not json at all", "line 1"),
        ("{\"max_username_length\": 0}", "key `max_username_length`"),
    ];
    for (text, want) in cases {
        let path = dir.path().join("bad.json");
        std::fs::write(&path, text).unwrap();
        let output = server_command(&path, &[]).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text}: must fail");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{text}: names the file: {stderr}"
        );
        assert!(stderr.contains(want), "{text}: says {want}: {stderr}");
        assert!(
            !stderr.contains("listening"),
            "{text}: never bound: {stderr}"
        );
        assert!(
            !stderr.contains("a-very-secret-token"),
            "no token in messages: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_port_in_use_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    std::fs::write(&path, "{}").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(["--bind", "127.0.0.1", "--port", &port])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains("--port"), "suggests --port: {stderr}");
}

/// The log's reader going away (a closed terminal or pipe) must not take the server down.
#[tokio::test]
async fn a_closed_log_pipe_does_not_crash_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    std::fs::write(&path, r#"{"tokens": {"a-token-for-this-test": {}}}"#).unwrap();
    let mut child = server_command(&path, &[]).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("a listening line");
        if let Some(at) = line.find("addr=") {
            break line[at + 5..].trim().to_owned();
        }
    };
    drop(lines); // Every later log line now fails to write.

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let mut client = common::Client { ws, id: None };
    let link = client.auth("alice", "a-token-for-this-test").await;
    client
        .send(json!(["tokenauth", common::page_token(&link).await]))
        .await;
    client.expect_id().await;
    assert!(terminate(child).await.success());
}

/// Even at the most verbose log level, no token (generic, temporary or bot) and no page id
/// reaches the log.
#[tokio::test]
async fn no_token_reaches_the_log_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let generic = "GENERIC-SECRET-TOKEN-1234567890";
    let bot = "BOT-SECRET-TOKEN-1234567890";
    std::fs::write(
        &path,
        json!({"tokens": {generic: {}}, "bots": {bot: "echo"}}).to_string(),
    )
    .unwrap();
    let mut command = server_command(&path, &[]);
    command.env("RUST_LOG", "trace");
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut log = String::new();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("a listening line");
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            let at = line.find("addr=").unwrap() + 5;
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };
    let collect = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let mut user = common::Client { ws, id: None };
    let link = user.auth("alice", generic).await;
    let temp = common::page_token(&link).await;
    user.send(json!(["tokenauth", temp])).await;
    user.expect_id().await;
    user.say("hello").await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let mut bot_client = common::Client { ws, id: None };
    bot_client
        .send(json!(["botauth", {"botusername": "echo", "bottoken": bot}]))
        .await;
    bot_client.expect_id().await;
    let mut wrong = common::Client {
        ws: tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap()
            .0,
        id: None,
    };
    wrong
        .send(json!(["auth", {"username": "mallory", "token": "WRONG-SECRET-GUESS"}]))
        .await;
    wrong.expect_refusal_and_close("Token refused").await;

    assert!(terminate(child).await.success());
    log.push_str(&collect.await.unwrap());
    assert!(log.contains("logged in"), "the log was captured: {log}");
    let page_id = link.rsplit('/').next().unwrap();
    for secret in [generic, bot, temp.as_str(), page_id, "WRONG-SECRET-GUESS"] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}
