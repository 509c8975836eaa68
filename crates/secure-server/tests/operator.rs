//! What an operator runs beside the server: JSON log lines (`--log-format json`) parsed line by
//! line, and `secure-server check` on good and bad configs.

mod common;

use common::process::{BIN, server_command};
use common::{Client, TOKENS, config_file, page_token};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Every line of a JSON-logging server is one JSON object with a time, a level, a target and a
/// message; fields keep their names, and what a client chose stays inside its string.
#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_same_fields() {
    let (_dir, path) = config_file(json!({}));
    let mut child = server_command(&path)
        .args(["--log-format", "json"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let line = tokio::time::timeout(common::WAIT, lines.next_line())
            .await
            .expect("a log line in time")
            .unwrap()
            .expect("the server logs until it listens");
        let object: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        seen.push(object.clone());
        if object["message"] == "listening" {
            break object["addr"].as_str().unwrap().to_owned();
        }
    };
    // A name a client chose, with a quote and a line break in it, is refused and logged.
    let mut client = Client::connect(&addr).await;
    let name = "evil\"\n{\"level\":\"ERROR\"}";
    client
        .send(json!(["auth", {"username": name, "token": TOKENS[0]}]))
        .await;
    assert_eq!(client.recv().await[0], "refusal");
    // A good login is logged with its name.
    let mut good = Client::connect(&addr).await;
    let link = good.auth("alice", TOKENS[0]).await;
    let temp = page_token(&link).await;
    good.send(json!(["tokenauth", temp])).await;
    good.expect_id().await;
    let logged_in = loop {
        let line = tokio::time::timeout(common::WAIT, lines.next_line())
            .await
            .expect("a log line in time")
            .unwrap()
            .expect("still running");
        let object: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            object["level"] != "ERROR",
            "no client text became a field: {line}"
        );
        seen.push(object.clone());
        if object["message"] == "logged in" {
            break object;
        }
    };
    assert_eq!(logged_in["name"], "\"alice\"");
    assert_eq!(logged_in["target"], "secure_server::session");
    for object in &seen {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(object[field].is_string(), "{field} in {object}");
        }
    }
    child.kill().await.unwrap();
}

async fn check(path: &std::path::Path) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .await
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn check_shows_the_settings_in_force_with_secrets_masked_or_names_the_error() {
    let (_dir, path) = config_file(json!({
        "admin_key": "owner-secret-key",
        "metrics": {"key": "metrics-secret"},
        "cluster": {"redis": "redis://:redis-password@127.0.0.1:6379/0"},
    }));
    let (code, stdout, stderr) = check(&path).await;
    assert_eq!(code, Some(0), "{stderr}");
    let settings: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(settings["max_message_length"], 200, "defaults are shown");
    assert_eq!(settings["resume_window_secs"], 120);
    assert_eq!(settings["admin_key"], "<set>");
    assert_eq!(settings["metrics"]["key"], "<set>");
    assert_eq!(
        settings["cluster"]["redis"],
        "redis://:****@127.0.0.1:6379/0"
    );
    for secret in TOKENS.iter().chain(&[
        "owner-secret-key",
        "metrics-secret",
        "redis-password",
        common::BOT_TOKEN,
    ]) {
        assert!(!stdout.contains(secret), "{secret} shown:\n{stdout}");
    }
    assert_eq!(settings["tokens"].as_object().unwrap().len(), TOKENS.len());

    common::write_config(&path, &json!({"limits": {"messages_per_second": "many"}}));
    let (code, stdout, stderr) = check(&path).await;
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("limits.messages_per_second"), "{stderr}");

    let (code, _, stderr) = check(&path.with_file_name("missing.json")).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("missing.json"), "{stderr}");
}

/// With Redis Sentinel, `check` shows the sentinels, the master's name and where the CA file
/// is found (beside the config), never the passwords; and names the key that is missing.
#[tokio::test]
async fn check_shows_the_sentinels_and_masks_their_passwords() {
    let (_dir, path) = config_file(json!({
        "cluster": {
            "sentinels": ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"],
            "master": "clichat",
            "password": "redis-password",
            "sentinel_password": "sentinel-password",
            "tls": true,
            "ca_file": "redis-ca.pem",
        },
    }));
    let (code, stdout, stderr) = check(&path).await;
    assert_eq!(code, Some(0), "{stderr}");
    let settings: Value = serde_json::from_str(&stdout).unwrap();
    let cluster = &settings["cluster"];
    assert_eq!(
        cluster["sentinels"],
        json!(["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
    );
    assert_eq!(cluster["master"], "clichat");
    assert_eq!(cluster["password"], "<set>");
    assert_eq!(cluster["sentinel_password"], "<set>");
    assert_eq!(cluster["tls"], true);
    let beside = path.with_file_name("redis-ca.pem");
    assert_eq!(cluster["ca_file"], beside.to_str().unwrap());
    for secret in ["redis-password", "sentinel-password"] {
        assert!(!stdout.contains(secret), "{secret} shown:\n{stdout}");
    }

    common::write_config(
        &path,
        &json!({"cluster": {"sentinels": ["10.0.0.1:26379"], "node_id": "n1"}}),
    );
    let (code, _, stderr) = check(&path).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cluster.master"), "{stderr}");
}

/// The systemd unit in `contrib/` is one systemd takes as it is: `systemd-analyze verify`
/// (with the binary this build made standing in for the installed one) finds nothing to say.
/// Needs systemd (Debian's `systemd` package; `.ci/run` installs it).
#[tokio::test]
async fn the_systemd_unit_verifies() {
    let Some(analyze) = common::require_program("systemd-analyze", "systemd") else {
        return;
    };
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contrib/secure-server.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/secure-server "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secure-server.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/secure-server", BIN)).unwrap();
    let output = tokio::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze has something to say:\n{stderr}"
    );
}
