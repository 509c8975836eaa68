//! `secure-client` in line mode, through pipes, against a real server.

mod common;

use std::time::Duration;

use serde_json::json;

use common::{BIN, BOT_NAME, BOT_TOKEN, LineClient, TOKENS, TestServer, config, page_token};

#[tokio::test]
async fn two_clients_chat_through_pipes() {
    let server = TestServer::default().await;
    let mut carol = LineClient::login(&server, "carol", TOKENS[0]).await;
    let mut dave = LineClient::login(&server, "dave", TOKENS[1]).await;
    carol.stdout_until("] *** dave joined").await;

    dave.write_line("hello carol").await;
    carol.stdout_until("] <dave> hello carol").await;
    carol.write_line("hi dave").await;
    assert!(dave.next_stdout().await.ends_with("] <carol> hi dave"));

    // Over the limit: a warning on stderr, and nothing sent.
    carol.write_line(&"x".repeat(201)).await;
    carol.stderr_until("too long [201/200]").await;
    // A blank line is not sent either (the server would close the connection).
    carol.write_line("   ").await;
    carol.write_line(&"y".repeat(200)).await;
    assert!(
        dave.next_stdout()
            .await
            .ends_with(&format!("] <carol> {}", "y".repeat(200)))
    );

    // Escape sequences from others arrive escaped, one event per line.
    dave.write_line("red \u{1b}[31mtext\u{7}").await;
    carol.stdout_until("] <dave> red ^[[31mtext^G").await;

    carol.close_stdin();
    assert_eq!(carol.exit_code().await, 0);
    dave.stdout_until("] *** carol left").await;
    dave.write_line("/quit").await;
    assert_eq!(dave.exit_code().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn missing_answers_are_asked_for_in_order_and_read_from_stdin() {
    let server = TestServer::default().await;
    let mut erin = LineClient::spawn(&["--plain"], None);
    erin.write_line("erin").await;
    erin.write_line(&server.address()).await;
    erin.write_line("y").await;
    erin.write_line(TOKENS[2]).await;
    let link = erin.link().await;
    let questions = erin.stderr_seen.join("\n");
    let order = [
        "Username (at most 15 characters):",
        "Server",
        "Secure Server",
        "Token (hidden):",
    ]
    .map(|q| {
        questions
            .find(q)
            .unwrap_or_else(|| panic!("{q} not asked: {questions}"))
    });
    assert!(order.is_sorted(), "asked out of order: {questions}");
    assert!(!questions.contains(TOKENS[2]), "the token is never printed");

    erin.write_line(&page_token(&link).await).await;
    erin.stdout_until("*** logged in as erin (secure-server")
        .await;
    erin.close_stdin();
    assert_eq!(erin.exit_code().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_refused_login_is_explained_and_exits_3() {
    let server = TestServer::default().await;
    let mut client = LineClient::spawn(
        &["--plain", "-u", "frank", &server.address()],
        Some("not-a-token"),
    );
    assert_eq!(client.exit_code().await, 3);
    let stderr = client.rest_of_stderr().await;
    assert!(
        stderr.contains("refused by the server: Token refused (the server did not take"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-a-token"),
        "the token is never printed"
    );

    // A wrong token from the page is refused too.
    let mut client = LineClient::spawn(
        &["--plain", "--secure", "-u", "frank", &server.address()],
        Some(TOKENS[0]),
    );
    client.link().await;
    client.write_line("wrong").await;
    assert_eq!(client.exit_code().await, 3);
    let stderr = client.rest_of_stderr().await;
    assert!(
        stderr.contains("refused by the server: refused (the token from the page"),
        "{stderr}"
    );
    server.stop().await;
}

/// The limits a script meets are the server's own, from `/app/server.json`: a name over the
/// limit is refused before connecting (exit 3, as the server's refusal always was), and a
/// message over it is not sent.
#[tokio::test]
async fn the_servers_announced_limits_are_enforced() {
    let server = TestServer::start(config(
        json!({"max_username_length": 8, "max_message_length": 50}),
    ))
    .await;
    let mut long = LineClient::spawn(
        &["--plain", "--secure", "-u", "ninechars", &server.address()],
        Some(TOKENS[0]),
    );
    assert_eq!(long.exit_code().await, 3);
    let stderr = long.rest_of_stderr().await;
    assert!(
        stderr.contains("refused by the server: username is too long (choose a shorter name)"),
        "{stderr}"
    );
    assert!(!stderr.contains("http"), "no login was started: {stderr}");

    let mut carol = LineClient::login(&server, "carol", TOKENS[0]).await;
    let mut dave = LineClient::login(&server, "dave", TOKENS[1]).await;
    carol.stdout_until("] *** dave joined").await;
    // --max-length is only for servers that announce nothing.
    carol.write_line(&"x".repeat(51)).await;
    carol.stderr_until("too long [51/50]").await;
    carol.write_line(&"y".repeat(50)).await;
    assert!(
        dave.next_stdout()
            .await
            .ends_with(&format!("] <carol> {}", "y".repeat(50)))
    );
    carol.close_stdin();
    dave.close_stdin();
    assert_eq!(carol.exit_code().await, 0);
    assert_eq!(dave.exit_code().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn bots_log_in_without_a_page() {
    let server = TestServer::default().await;
    let mut carol = LineClient::login(&server, "carol", TOKENS[0]).await;
    let mut bot = LineClient::spawn(
        &[
            "--plain",
            "--bot",
            "--username",
            BOT_NAME,
            &server.address(),
        ],
        Some(BOT_TOKEN),
    );
    bot.stdout_until(&format!("*** logged in as [BOT] {BOT_NAME}"))
        .await;
    carol
        .stdout_until(&format!("*** [BOT] {BOT_NAME} joined"))
        .await;
    bot.write_line("beep").await;
    carol
        .stdout_until(&format!("<[BOT] {BOT_NAME}> beep"))
        .await;
    bot.close_stdin();
    assert_eq!(bot.exit_code().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_client_answers_the_servers_pings() {
    let server = TestServer::start(config(json!({"limits": {"ping_interval_secs": 1}}))).await;
    let mut carol = LineClient::login(&server, "carol", TOKENS[0]).await;
    let mut dave = LineClient::login(&server, "dave", TOKENS[1]).await;
    // Quiet for more than two ping intervals: a client that did not answer would be closed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    dave.write_line("still there?").await;
    carol.stdout_until("] <dave> still there?").await;
    carol.close_stdin();
    dave.close_stdin();
    assert_eq!(carol.exit_code().await, 0);
    assert_eq!(dave.exit_code().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_server_shutdown_is_reported_and_exits_4() {
    // A stopping server says it is restarting (1012) and holds the session; one that does not
    // come back within the window ends it.
    let config = config(json!({"resume_window_secs": 1}));
    let server = TestServer::start(config).await;
    let mut carol = LineClient::login(&server, "carol", TOKENS[0]).await;
    server.stop().await;
    carol
        .stdout_until("*** the server is restarting; reconnecting\u{2026}")
        .await;
    carol
        .stdout_until("!!! could not reconnect: the session expired")
        .await;
    assert_eq!(carol.exit_code().await, 4);
}

#[tokio::test]
async fn an_unreachable_server_exits_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut client = LineClient::spawn(&["--plain", "--insecure", "-u", "x", &address], None);
    assert_eq!(client.exit_code().await, 1);
    let stderr = client.rest_of_stderr().await;
    assert!(
        stderr.contains(&format!(
            "could not connect: nothing is answering at {address} (is the server running, and \
             is the port right?)"
        )),
        "in words for people: {stderr}"
    );
    assert!(
        !stderr.contains("os error"),
        "no detail unless asked: {stderr}"
    );

    let mut verbose = LineClient::spawn(
        &["--plain", "--insecure", "--verbose", "-u", "x", &address],
        None,
    );
    assert_eq!(verbose.exit_code().await, 1);
    let stderr = verbose.rest_of_stderr().await;
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

#[test]
fn help_documents_the_command_line() {
    let output = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needed in [
        "[ADDRESS]",
        "--username",
        "--token",
        "CLICHAT_TOKEN",
        "--secure",
        "--insecure",
        "--bot",
        "--plain",
        "--max-length",
        "--no-bell",
        "--verbose",
        "Alt+Enter",
        "Exit codes",
        "<NAME> TEXT",
    ] {
        assert!(help.contains(needed), "--help lacks {needed}:\n{help}");
    }
    let output = std::process::Command::new(BIN)
        .args(["--secure", "--insecure"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// wss:// with a self-signed certificate: refused until the client is told to trust it; then
/// `/app/server.json` is read over https:// with it too.
#[tokio::test]
async fn wss_works_with_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = secure_server::tls::self_signed(&["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let config = json!({
        "bots": { BOT_TOKEN: BOT_NAME },
        "tls": { "cert": "cert.pem", "key": "key.pem" },
        "max_message_length": 40,
    });
    let path = dir.path().join("secureconfig.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("wss://localhost:{}", listener.local_addr().unwrap().port());
    let config = secure_server::Config::load(&path).unwrap();
    let server = secure_server::Running::start_from_file(listener, config, path).unwrap();

    let args = ["--plain", "--bot", "--username", BOT_NAME, &address];
    let mut untrusting = LineClient::spawn(&args, Some(BOT_TOKEN));
    assert_eq!(
        untrusting.exit_code().await,
        1,
        "an unknown certificate is refused"
    );
    let stderr = untrusting.rest_of_stderr().await;
    assert!(
        stderr.contains("has a certificate this computer does not trust (for a self-signed one, use --trust-cert FILE)"),
        "{stderr}"
    );

    let trust = dir.path().join("cert.pem");
    let trust = trust.to_str().unwrap();
    let mut bot = LineClient::spawn(
        &[
            "--plain",
            "--bot",
            "--username",
            BOT_NAME,
            "--trust-cert",
            trust,
            &address,
        ],
        Some(BOT_TOKEN),
    );
    bot.stdout_until(&format!("*** logged in as [BOT] {BOT_NAME}"))
        .await;
    // The limit came from https://.../app/server.json, over the trusted certificate too.
    bot.write_line(&"z".repeat(41)).await;
    bot.stderr_until("too long [41/40]").await;
    bot.close_stdin();
    assert_eq!(bot.exit_code().await, 0);
    server.stop().await.unwrap();
}

/// What was said before joining comes first, marked `(earlier)` so that a script does not take
/// it for new; `/who` prints the room's members. (Needs a server that grants `history` and
/// `presence`.)
#[tokio::test]
async fn history_on_joining_and_who_in_line_mode() {
    let server = TestServer::default().await;
    let mut carol = LineClient::login(&server, "carol", TOKENS[0]).await;
    carol.write_line("said before dave came").await;
    // Said once the server has it: a /who answered after it shows the order held.
    carol.write_line("/who").await;
    carol.stdout_until("] *** in the room (1): carol").await;

    let mut dave = LineClient::login(&server, "dave", TOKENS[1]).await;
    let earlier = dave.next_stdout().await;
    assert!(
        earlier.ends_with("] (earlier) <carol> said before dave came"),
        "{earlier}"
    );
    carol.stdout_until("] *** dave joined").await;
    carol.write_line("now live").await;
    assert!(
        dave.next_stdout().await.ends_with("] <carol> now live"),
        "live messages as before, and no member list unasked"
    );
    dave.write_line("/who").await;
    assert!(
        dave.next_stdout()
            .await
            .ends_with("] *** in the room (2): carol, dave")
    );
    dave.close_stdin();
    assert_eq!(dave.exit_code().await, 0);
    carol.stdout_until("] *** dave left").await;
    carol.close_stdin();
    assert_eq!(carol.exit_code().await, 0);
    server.stop().await;
}
