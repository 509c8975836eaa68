//! `secure-client` full screen, in a real terminal: tmux runs it, `send-keys` types, and
//! `capture-pane` reads the screen. A person's whole session: the questions, SAUTH2 with the
//! token read off the page, and a chat with a second `secure-client` (in line mode).
//!
//! Needs tmux (`.ci/run` installs it); without it the test says so in a line and skips, except
//! under `CI=true`, where it fails (see `test_support::require_program`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{BIN, LineClient, TOKENS, TestServer, eventually, page_token, require_program};

/// A tmux server of its own (its own socket), killed and its socket removed when dropped.
struct Tmux {
    /// The tmux program.
    tmux: PathBuf,
    socket: PathBuf,
}

impl Tmux {
    /// A detached 120x40 session of `tmux` running `program` with `args`. A shell around it
    /// reports its exit status on the screen when it ends (tmux's own `pane_dead_status` is not
    /// reliable: tmux 3.3 sometimes leaves the exited program unreaped).
    fn start(tmux: PathBuf, program: &str, args: &[&str]) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let tmux = Tmux {
            tmux,
            socket: std::env::temp_dir().join(format!(
                "secure-client-test-{}-{nanos}.tmux",
                std::process::id()
            )),
        };
        let script = r#""$@"; echo "[exit status $?]"; exec sleep 600"#;
        let mut command = vec![
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            "120",
            "-y",
            "40",
            "sh",
            "-c",
            script,
            "sh",
            program,
        ];
        command.extend_from_slice(args);
        let output = tmux.run(&command);
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.tmux)
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("CLICHAT_TOKEN")
            .env_remove("TMUX")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", self.tmux.display()))
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", "chat", "-l", text])
                .status
                .success()
        );
    }

    /// Presses a key by its tmux name (`Enter`, `C-u`, ...).
    fn press(&self, key: &str) {
        assert!(self.run(&["send-keys", "-t", "chat", key]).status.success());
    }

    fn screen(&self) -> String {
        let output = self.run(&["capture-pane", "-p", "-t", "chat"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `ready` holds, bounded by [`WAIT`](common::WAIT); returns that
    /// screen. A failure shows the last screen.
    async fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        eventually(format!("the screen showing {what}"), async || {
            let screen = self.screen();
            if ready(&screen) {
                Ok(screen)
            } else {
                Err(screen)
            }
        })
        .await
    }

    async fn wait_for_text(&self, text: &str) -> String {
        self.wait_for(text, |screen| screen.contains(text)).await
    }

    /// The exit status once the program in the pane has ended, bounded by [`WAIT`].
    async fn exit_status(&self) -> i32 {
        let screen = self.wait_for_text("[exit status ").await;
        let start = screen.find("[exit status ").unwrap() + "[exit status ".len();
        let end = screen[start..].find(']').unwrap() + start;
        screen[start..end].parse().expect("an exit status")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[tokio::test]
async fn a_person_logs_in_and_chats_full_screen() {
    let Some(tmux) = require_program("tmux", "tmux") else {
        return;
    };
    let server = TestServer::default().await;
    let alice = Tmux::start(tmux, BIN, &[]);

    // The questions, in the original's order.
    alice.wait_for_text("Username:").await;
    alice.type_text("alice");
    alice.press("Enter");
    alice.wait_for_text("Server (").await;
    alice.type_text(&server.address());
    alice.press("Enter");
    alice.wait_for_text("[Y/n]").await;
    alice.type_text("y");
    alice.press("Enter");
    alice.wait_for_text("Token (hidden):").await;
    alice.type_text(TOKENS[0]);
    alice.press("Enter");

    // SAUTH2: the link on a line of its own; a person opens it and types the token back.
    let screen = alice
        .wait_for("the link", |s| s.lines().any(|l| l.starts_with("http://")))
        .await;
    let link = screen
        .lines()
        .find(|l| l.starts_with("http://"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        !screen.contains(TOKENS[0]),
        "the token was echoed:\n{screen}"
    );
    let temporary = page_token(&link).await;
    alice.wait_for_text("Token from the page (hidden):").await;
    alice.type_text(&temporary);
    alice.press("Enter");

    // The chat: full screen, with its status line.
    let screen = alice.wait_for_text("*** logged in as alice").await;
    assert!(
        screen.contains(" connected │ alice │ ws://"),
        "no status line:\n{screen}"
    );
    assert!(
        !screen.contains(&temporary),
        "the page's token was shown:\n{screen}"
    );

    // A second participant: another secure-client, in line mode.
    let mut bob = LineClient::login(&server, "bob", TOKENS[1]).await;
    alice.wait_for_text("*** bob joined").await;
    bob.write_line("hello alice").await;
    alice.wait_for_text("<bob> hello alice").await;

    alice.type_text("hi bob, with a typo");
    for _ in 0.."with a typo".len() {
        alice.press("BSpace");
    }
    alice.type_text("how are you?");
    alice.press("Enter");
    bob.stdout_until("] <alice> hi bob, how are you?").await;
    alice.wait_for_text("<alice> hi bob, how are you?").await;

    // Too long: warned about on screen, not sent.
    alice.type_text(&"z".repeat(201));
    alice.wait_for_text("too long to send: 201/200").await;
    alice.press("Enter");
    alice
        .wait_for_text("not sent: the message is too long [201/200]")
        .await;
    alice.press("C-u");
    alice.type_text("short again");
    alice.press("Enter");
    assert!(
        bob.next_stdout().await.ends_with("] <alice> short again"),
        "the long message was not sent"
    );

    alice.type_text("/quit");
    alice.press("Enter");
    assert_eq!(alice.exit_status().await, 0);
    bob.stdout_until("] *** alice left").await;
    let screen = alice.screen();
    assert!(
        !screen.contains("connected │"),
        "the terminal was not restored:\n{screen}"
    );

    bob.close_stdin();
    assert_eq!(bob.exit_code().await, 0);
    server.stop().await;
}
