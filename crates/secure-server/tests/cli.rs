//! The `secure-server` binary: flags, config creation, config and bind errors, logs, and real
//! logins against the process it starts.

mod common;

use common::process::{BIN, listening_addr, server_command, start, terminate};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

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

/// No config file: one is made with a fresh token, printed once (not logged), and that token
/// logs in through SAUTH2 against the running process. SIGTERM then ends it cleanly. A second
/// start keeps the file as it is.
#[tokio::test]
async fn first_start_creates_the_config_and_its_token_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let server = start(&path, "info").await;

    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tokens = written["tokens"].as_object().unwrap();
    assert_eq!(tokens.len(), 1, "one generated token");
    let token = tokens.keys().next().unwrap().clone();
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()),
        "{token}"
    );

    let mut client = server.connect().await;
    let link = client.auth("alice", &token).await;
    client.tokenauth(&link).await;

    let (status, printed, log) = server.stop().await;
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    assert!(
        printed.contains(&path.display().to_string()),
        "the path is printed: {printed}"
    );
    assert_eq!(
        printed.matches(&token).count(),
        1,
        "the token is printed once: {printed}"
    );
    assert!(
        !log.contains(&token),
        "the token is printed, never logged: {log}"
    );

    let before = std::fs::read_to_string(&path).unwrap();
    let (status, printed, _) = start(&path, "info").await.stop().await;
    assert!(status.success());
    assert_eq!(printed, "", "no token printed on the second start");
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
    let (status, _, _) = start(&path, "info").await.stop().await;
    assert!(status.success());
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
        let output = server_command(&path).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text}: must fail");
        let file = path.display().to_string();
        assert!(stderr.contains(&file), "{text}: names the file: {stderr}");
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
    let mut child = server_command(&path).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("a listening line");
        if let Some(addr) = listening_addr(&line) {
            break addr;
        }
    };
    drop(lines); // Every later log line now fails to write.

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let mut client = common::Client { ws, id: None };
    let link = client.auth("alice", "a-token-for-this-test").await;
    client.tokenauth(&link).await;
    assert!(terminate(child).await.success());
}

/// Even at the most verbose log level, no token (generic, temporary, bot, or a wrong guess)
/// and no page id reaches the log.
#[tokio::test]
async fn no_token_reaches_the_log_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let generic = "GENERIC-SECRET-TOKEN-1234567890";
    let bot = "BOT-SECRET-TOKEN-1234567890";
    let guess = "WRONG-SECRET-GUESS";
    let config = json!({"tokens": {generic: {}}, "bots": {bot: "echo"}});
    std::fs::write(&path, config.to_string()).unwrap();
    let server = start(&path, "trace").await;

    let mut user = server.connect().await;
    let link = user.auth("alice", generic).await;
    // Read by hand: the log check below needs the temporary token.
    let temp = common::page_token(&link).await;
    user.send(json!(["tokenauth", temp])).await;
    user.expect_id().await;
    user.say("hello").await;
    let mut bot_client = server.connect().await;
    bot_client
        .send(json!(["botauth", {"botusername": "echo", "bottoken": bot}]))
        .await;
    bot_client.expect_id().await;
    let mut wrong = server.connect().await;
    wrong
        .send(json!(["auth", {"username": "mallory", "token": guess}]))
        .await;
    wrong.expect_refusal_and_close("Token refused").await;

    let (status, _, log) = server.stop().await;
    assert!(status.success());
    assert!(log.contains("logged in"), "the log was captured: {log}");
    let page_id = link.rsplit('/').next().unwrap();
    for secret in [generic, bot, temp.as_str(), page_id, guess] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}

/// SIGHUP reloads the config (it does not end the process, as it would by default), and the
/// new token works.
#[tokio::test]
async fn sighup_reloads_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    std::fs::write(
        &path,
        json!({ "tokens": { "first-token": {} } }).to_string(),
    )
    .unwrap();
    let mut server = start(&path, "info").await;
    server.signal("HUP").await;
    server.log_line("SIGHUP: reloading the config").await;
    server.log_line("config reloaded").await;
    // A new port waits for a restart, and the log says so.
    let moved = json!({ "tokens": { "first-token": {} }, "port": 7 });
    std::fs::write(&path, moved.to_string()).unwrap();
    server.signal("HUP").await;
    server.log_line("take effect at the next restart").await;
    let mut client = server.connect().await;
    let link = client.auth("alice", "first-token").await;
    client.tokenauth(&link).await;
    let (status, _, _) = server.stop().await;
    assert!(status.success());
}

/// `cert self-signed` writes a pair the server starts on, and refuses to overwrite it.
#[tokio::test]
async fn cert_self_signed_writes_a_usable_pair() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(BIN)
            .args(["cert", "self-signed", "--host", "localhost", "--out-dir"])
            .arg(dir.path())
            .output()
    };
    let output = run().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8(output.stdout).unwrap();
    assert!(said.contains("--trust-cert"), "{said}");
    let config = json!({
        "tokens": { "t": {} },
        "tls": { "cert": "cert.pem", "key": "key.pem" },
    });
    let path = dir.path().join("secureconfig.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let (status, _, log) = start(&path, "info").await.stop().await;
    assert!(status.success());
    assert!(log.contains("tls=true"), "{log}");

    let again = run().await.unwrap();
    assert!(
        !again.status.success(),
        "an existing pair is never overwritten"
    );
}

/// A key that is not the certificate's stops the start, naming both files.
#[tokio::test]
async fn a_mismatched_key_stops_the_start_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    for (host, sub) in [("localhost", "one"), ("127.0.0.1", "two")] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        let output = Command::new(BIN)
            .args(["cert", "self-signed", "--host", host, "--out-dir"])
            .arg(dir.path().join(sub))
            .output()
            .await
            .unwrap();
        assert!(output.status.success());
    }
    let config = json!({ "tls": { "cert": "one/cert.pem", "key": "two/key.pem" } });
    let path = dir.path().join("secureconfig.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let output = server_command(&path).output().await.unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8(output.stderr).unwrap();
    assert!(
        said.contains("two/key.pem") && said.contains("one/cert.pem"),
        "{said}"
    );
}
