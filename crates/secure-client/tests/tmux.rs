//! `secure-client` full screen, in a real terminal: tmux runs it, `send-keys` types, and
//! `capture-pane` reads the screen (with `-e`, its colours too). A person's whole session: the
//! questions, SAUTH2 with the token read off the page, and a chat with a second
//! `secure-client` (in line mode); slips at login asked about again; mentions, nick colours,
//! unknown commands, messages of several lines, and emoji sequences drawn without leftovers.
//! The other people in the room are `clichat_client` connections of the test's own (a "peer").
//!
//! Needs tmux (`.ci/run` installs it); without it the test says so in a line and skips, except
//! under `CI=true`, where it fails (see `test_support::require_program`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use clichat_client::{Client, Event, LoginStep, ServerAddress};
use serde_json::json;

use common::{
    BIN, LineClient, TOKENS, TestServer, WAIT, config, eventually, page_token, require_program,
};

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
        Tmux::start_with(tmux, program, args, &[], (120, 40))
    }

    /// [`Tmux::start`] with environment variables for the program and a size (columns, rows).
    fn start_with(
        tmux: PathBuf,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        (columns, rows): (u16, u16),
    ) -> Tmux {
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
        let (columns, rows) = (columns.to_string(), rows.to_string());
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut command = vec!["-f", "/dev/null", "new-session", "-d", "-s", "chat"];
        for variable in &env {
            command.extend(["-e", variable.as_str()]);
        }
        command.extend([
            "-x", &columns, "-y", &rows, "sh", "-c", script, "sh", program,
        ]);
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

    /// The screen with its colours and attributes, as `capture-pane -e` writes them.
    fn styled_screen(&self) -> String {
        let output = self.run(&["capture-pane", "-e", "-p", "-t", "chat"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A tmux format about the pane's window, e.g. `#{window_bell_flag}`.
    fn format(&self, format: &str) -> String {
        let output = self.run(&["display-message", "-p", "-t", "chat", format]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Pastes `text` as a terminal paste (bracketed, since the client asks for that).
    fn paste(&self, text: &str) {
        assert!(
            self.run(&["set-buffer", "-b", "test", text])
                .status
                .success()
        );
        assert!(
            self.run(&["paste-buffer", "-p", "-d", "-b", "test", "-t", "chat"])
                .status
                .success()
        );
    }

    /// The last line of the screen that starts with `http://`: the newest token-page link.
    fn last_link(screen: &str) -> Option<String> {
        screen
            .lines()
            .rfind(|l| l.starts_with("http://"))
            .map(|l| l.trim().to_owned())
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

    // The questions, in the original's order; whether it is a Secure Server is not asked, as
    // the server says so at /app/server.json.
    alice
        .wait_for_text("Username (at most 15 characters):")
        .await;
    alice.type_text("alice");
    alice.press("Enter");
    alice.wait_for_text("Server (").await;
    alice.type_text(&server.address());
    alice.press("Enter");
    let screen = alice.wait_for_text("Token (hidden):").await;
    assert!(
        !screen.contains("[Y/n]"),
        "asked what the server said:\n{screen}"
    );
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

/// Logs `name` in as a person in a browser would not: a `clichat_client` connection of the
/// test's own, the token page read over HTTP.
async fn peer(server: &TestServer, name: &str, token: &str) -> Client {
    let address = ServerAddress::parse(&server.address()).unwrap();
    let connection = clichat_client::connect(&address).await.unwrap();
    match connection.login(name, Some(token)).await.unwrap() {
        LoginStep::TokenNeeded(pending) => {
            let temporary = page_token(pending.link()).await;
            pending.token_auth(&temporary).await.unwrap()
        }
        LoginStep::Joined(client) => client,
    }
}

/// The next message `client` receives, as (from, text).
async fn next_message(client: &mut Client) -> (String, String) {
    tokio::time::timeout(WAIT, async {
        loop {
            match client.next_event().await.expect("the connection is open") {
                Event::Message { from, text } => return (from, text),
                _ => continue,
            }
        }
    })
    .await
    .expect("a message in time")
}

/// `secure-client` full screen as `name` on `server` (`--secure`, the generic token from the
/// environment), logged in through the token page; waits until the chat shows.
async fn chat_as(
    tmux: PathBuf,
    server: &TestServer,
    name: &str,
    token: &str,
    size: (u16, u16),
) -> Tmux {
    let address = server.address();
    let client = Tmux::start_with(
        tmux,
        BIN,
        &["--secure", "-u", name, &address],
        &[("CLICHAT_TOKEN", token)],
        size,
    );
    let screen = client
        .wait_for("the link", |s| Tmux::last_link(s).is_some())
        .await;
    let link = Tmux::last_link(&screen).unwrap();
    client.wait_for_text("Token from the page (hidden):").await;
    client.type_text(&page_token(&link).await);
    client.press("Enter");
    client
        .wait_for_text(&format!("*** logged in as {name}"))
        .await;
    client
}

/// A slip at login is asked about again, and nothing else is: a name over the server's
/// announced limit, a wrong generic token, a wrong token from the page (a fresh login with a
/// new link, the same name and generic token), then the right one.
#[tokio::test]
async fn slips_at_login_are_asked_again() {
    let Some(tmux) = require_program("tmux", "tmux") else {
        return;
    };
    let server = TestServer::start(config(json!({"max_username_length": 10}))).await;
    let alice = Tmux::start(tmux, BIN, &["--secure", &server.address()]);

    // The limit the server announced, in the question and enforced before connecting.
    alice
        .wait_for_text("Username (at most 10 characters):")
        .await;
    alice.type_text("alice-the-great");
    alice.press("Enter");
    alice
        .wait_for_text("That name is too long: this server takes at most 10 characters.")
        .await;
    alice
        .wait_for("the question again", |s| {
            s.matches("Username (at most 10 characters):").count() == 2
        })
        .await;
    alice.type_text("alice");
    alice.press("Enter");

    alice.wait_for_text("Token (hidden):").await;
    alice.type_text("not-a-token");
    alice.press("Enter");
    alice
        .wait_for_text("The server did not take the token: it is wrong")
        .await;
    alice
        .wait_for("the token question again", |s| {
            s.matches("Token (hidden):").count() == 2
        })
        .await;
    alice.type_text(TOKENS[0]);
    alice.press("Enter");

    let screen = alice
        .wait_for("the link", |s| Tmux::last_link(s).is_some())
        .await;
    let first_link = Tmux::last_link(&screen).unwrap();
    alice.wait_for_text("Token from the page (hidden):").await;
    alice.type_text("wrong");
    alice.press("Enter");
    alice
        .wait_for_text("The token from the page was not the right one. Starting again")
        .await;
    let screen = alice
        .wait_for("a new link", |s| {
            Tmux::last_link(s).is_some_and(|link| link != first_link)
        })
        .await;
    let second_link = Tmux::last_link(&screen).unwrap();
    alice
        .wait_for("the page's question again", |s| {
            s.matches("Token from the page (hidden):").count() == 2
        })
        .await;
    alice.type_text(&page_token(&second_link).await);
    alice.press("Enter");

    let screen = alice.wait_for_text("*** logged in as alice").await;
    assert!(screen.contains(" connected │ alice │"), "{screen}");
    // Nothing else was asked again, and no token was shown.
    alice.press("C-c");
    assert_eq!(alice.exit_status().await, 0);
    let screen = alice.screen();
    assert_eq!(screen.matches("Server (").count(), 0, "{screen}");
    assert!(!screen.contains(TOKENS[0]), "{screen}");
    server.stop().await;
}

/// An unknown command leaves the input empty, with a hint; the next line is not glued to it.
#[tokio::test]
async fn an_unknown_command_is_cleared_with_a_hint() {
    let Some(tmux) = require_program("tmux", "tmux") else {
        return;
    };
    let server = TestServer::default().await;
    let alice = chat_as(tmux, &server, "alice", TOKENS[0], (120, 20)).await;
    let mut bob = peer(&server, "bob", TOKENS[1]).await;
    alice.wait_for_text("*** bob joined").await;

    alice.type_text("/whois");
    alice.press("Enter");
    let screen = alice
        .wait_for_text("unknown command /whois \u{2014} /help lists the commands")
        .await;
    let input = screen.lines().nth(19).unwrap_or_default();
    assert_eq!(input.trim_end(), ">", "the input is empty:\n{screen}");

    alice.type_text("/me waves");
    alice.press("Enter");
    let screen = alice.wait_for_text("unknown command /me ").await;
    assert!(!screen.contains("/whois/me"), "{screen}");
    alice.type_text("hello bob");
    alice.press("Enter");
    assert_eq!(
        next_message(&mut bob).await,
        ("alice".to_owned(), "hello bob".to_owned()),
        "nothing of the commands was sent"
    );
    server.stop().await;
}

/// Alt+Enter and a bracketed paste write a message of several lines, sent as one; messages of
/// several lines are shown on several rows, each under the text.
#[tokio::test]
async fn a_message_of_several_lines_is_sent_as_one_and_shown_on_several() {
    let Some(tmux) = require_program("tmux", "tmux") else {
        return;
    };
    let server = TestServer::default().await;
    let alice = chat_as(tmux, &server, "alice", TOKENS[0], (100, 24)).await;
    let mut bob = peer(&server, "bob", TOKENS[1]).await;
    alice.wait_for_text("*** bob joined").await;

    alice.type_text("first line");
    alice.press("M-Enter");
    alice.type_text("second line");
    alice
        .wait_for("two input rows", |s| {
            s.contains("> first line\n  second line")
        })
        .await;
    alice.press("Enter");
    assert_eq!(
        next_message(&mut bob).await,
        ("alice".to_owned(), "first line\nsecond line".to_owned())
    );
    let screen = alice.wait_for_text("<alice> first line").await;
    assert!(
        screen.contains(&format!(
            "<alice> first line\n{}second line",
            " ".repeat(17)
        )),
        "the second line under the text:\n{screen}"
    );

    alice.paste("pasted one\npasted two");
    alice
        .wait_for("the paste in the input", |s| {
            s.contains("> pasted one\n  pasted two")
        })
        .await;
    alice.press("Enter");
    assert_eq!(
        next_message(&mut bob).await.1,
        "pasted one\npasted two",
        "one message"
    );

    bob.send("from bob\non two lines").await.unwrap();
    let screen = alice.wait_for_text("<bob> from bob").await;
    assert!(
        screen.contains(&format!("<bob> from bob\n{}on two lines", " ".repeat(15))),
        "{screen}"
    );
    server.stop().await;
}

/// The attributes a cell of a styled screen was written with; colours as `38;5;N` and
/// `48;5;N`, however they were written.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sgr {
    bold: bool,
    dim: bool,
    fg: Option<String>,
    bg: Option<String>,
}

/// A line of `capture-pane -e` as characters with their attributes.
fn styled_chars(line: &str) -> Vec<(char, Sgr)> {
    let mut out = Vec::new();
    let mut state = Sgr::default();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if let Some(sequence) = rest.strip_prefix("\u{1b}[") {
            let end = sequence.find('m').expect("an SGR sequence");
            let params: Vec<&str> = sequence[..end].split(';').collect();
            let mut i = 0;
            while i < params.len() {
                match params[i] {
                    "" | "0" => state = Sgr::default(),
                    "1" => state.bold = true,
                    "2" => state.dim = true,
                    "22" => {
                        state.bold = false;
                        state.dim = false;
                    }
                    "39" => state.fg = None,
                    "49" => state.bg = None,
                    "38" | "48" => {
                        let color = params[i..(i + 3).min(params.len())].join(";");
                        if params[i] == "38" {
                            state.fg = Some(color);
                        } else {
                            state.bg = Some(color);
                        }
                        i += 2;
                    }
                    // The eight colours, written as tmux writes them with 256 colours.
                    p if p.len() == 2 && p.starts_with('3') => {
                        state.fg = Some(format!("38;5;{}", &p[1..]));
                    }
                    p if p.len() == 2 && p.starts_with('4') => {
                        state.bg = Some(format!("48;5;{}", &p[1..]));
                    }
                    _ => {}
                }
                i += 1;
            }
            rest = &sequence[end + 1..];
            continue;
        }
        out.push((c, state.clone()));
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The attributes of the characters of `text` on the first line that has it.
fn styles_of(screen: &str, text: &str) -> Vec<Sgr> {
    for line in screen.lines() {
        let chars = styled_chars(line);
        let plain: Vec<char> = chars.iter().map(|(c, _)| *c).collect();
        let wanted: Vec<char> = text.chars().collect();
        if let Some(at) = plain
            .windows(wanted.len())
            .position(|w| w == wanted.as_slice())
        {
            return chars[at..at + wanted.len()]
                .iter()
                .map(|(_, sgr)| sgr.clone())
                .collect();
        }
    }
    panic!("{text:?} is not on the screen:\n{screen}");
}

/// A message naming alice is highlighted on her screen and rings the bell; others are not;
/// bob's nick has its FNV-1a colour, not the system lines' cyan.
#[tokio::test]
async fn a_mention_is_highlighted_and_rings_the_bell() {
    let Some(tmux) = require_program("tmux", "tmux") else {
        return;
    };
    let server = TestServer::default().await;
    let alice = chat_as(tmux, &server, "alice", TOKENS[0], (100, 20)).await;
    let bob = peer(&server, "bob", TOKENS[1]).await;
    alice.wait_for_text("*** bob joined").await;

    bob.send("nothing for malice here").await.unwrap();
    alice.wait_for_text("<bob> nothing for malice here").await;
    assert_eq!(
        alice.format("#{window_bell_flag}"),
        "0",
        "no mention, no bell"
    );
    bob.send("Alice: are you there?").await.unwrap();
    alice.wait_for_text("<bob> Alice: are you there?").await;
    eventually("the bell", async || {
        alice.format("#{window_bell_flag}") == "1"
    })
    .await;

    let screen = alice.styled_screen();
    let highlighted = Sgr {
        bold: true,
        fg: Some("38;5;0".into()),
        bg: Some("48;5;3".into()),
        ..Sgr::default()
    };
    for sgr in styles_of(&screen, "Alice: are you there?") {
        assert_eq!(sgr, highlighted, "{screen:?}");
    }
    for sgr in styles_of(&screen, "nothing for malice here") {
        assert_eq!(sgr.bg, None, "not a mention: {screen:?}");
    }
    // bob: FNV-1a 0x86c6a0d4 % 8 = 4, the fifth colour (61); the system lines are cyan (6).
    let nick = styles_of(&screen, "<bob>");
    assert!(
        nick.iter()
            .all(|s| s.fg.as_deref() == Some("38;5;61") && s.bold),
        "{nick:?}"
    );
    let system = styles_of(&screen, "*** logged in as alice");
    assert!(
        system.iter().all(|s| s.fg.as_deref() == Some("38;5;6")),
        "{system:?}"
    );
    server.stop().await;
}

/// Emoji sequences the renderer and terminal once measured differently (a skin-tone modifier,
/// joiner sequences, a flag, VS16): as messages scroll up through a small screen, every row
/// shows exactly its message, and no piece of an emoji stays behind on another row.
#[tokio::test]
async fn emoji_sequences_leave_no_stray_cells() {
    let Some(tmux) = require_program("tmux", "tmux") else {
        return;
    };
    let server = TestServer::default().await;
    let alice = chat_as(tmux, &server, "alice", TOKENS[0], (60, 12)).await;
    let bob = peer(&server, "bob", TOKENS[1]).await;
    alice.wait_for_text("*** bob joined").await;

    let mut sent: Vec<String> = [
        "thumbs \u{1f44d}\u{1f3fd} up",
        "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} here",
        "flag \u{1f1eb}\u{1f1f7} ok",
        "heart \u{2764}\u{fe0f} x",
        "coder \u{1f469}\u{1f3fd}\u{200d}\u{1f4bb} y",
        "mixed \u{1f44d}\u{1f3fd}\u{1f1eb}\u{1f1f7}\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}!",
    ]
    .map(str::to_owned)
    .to_vec();
    for text in &sent {
        bob.send(text).await.unwrap();
    }
    // Then plain lines, one at a time, each moving the emoji up a row; the screen is checked
    // after each.
    for i in 0..14 {
        let filler = format!("filler {i}");
        bob.send(&filler).await.unwrap();
        sent.push(filler.clone());
        let screen = alice
            .wait_for(&filler, |s| s.contains(&format!("<bob> {filler}")))
            .await;
        check_rows(&screen, &sent);
    }
    server.stop().await;
}

/// Every history row with bob's nick is exactly one of his messages, in order, ending with the
/// last; every other history row is plain ASCII (the client's own lines), so no piece of an
/// emoji is anywhere it should not be.
fn check_rows(screen: &str, sent: &[String]) {
    let rows: Vec<&str> = screen.lines().collect();
    // The history: everything above the status line.
    let status = rows
        .iter()
        .position(|row| row.contains(" connected │"))
        .expect("a status line");
    let mut bob_rows = Vec::new();
    for row in &rows[..status] {
        match row.find("<bob> ") {
            Some(at) => {
                assert!(at == 9, "a row of bob's out of place: {row:?}\n{screen}");
                bob_rows.push(row[at + "<bob> ".len()..].trim_end().to_owned());
            }
            None => assert!(row.is_ascii(), "a stray cell: {row:?}\n{screen}"),
        }
    }
    let expected = &sent[sent.len() - bob_rows.len()..];
    assert_eq!(bob_rows, expected, "\n{screen}");
}

/// On joining, what was said before shows dimmed between "earlier messages" and "now"; F2 shows
/// the members beside the chat, kept current as people come and go, and hides them again.
/// (Needs a server that grants `history` and `presence`.)
#[tokio::test]
async fn history_on_joining_and_the_member_panel() {
    let Some(tmux) = require_program("tmux", "tmux") else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = peer(&server, "bob", TOKENS[1]).await;
    bob.send("said before alice came").await.unwrap();
    // The server has it once a later frame of bob's is answered.
    bob.ask_members().await.unwrap();
    tokio::time::timeout(WAIT, async {
        while !matches!(bob.next_event().await, Some(Event::Members(_))) {}
    })
    .await
    .expect("bob's member list");
    let bob_members = bob.members().map(|m| m.len());
    assert_eq!(bob_members, Some(1), "bob alone");

    let alice = chat_as(tmux, &server, "alice", TOKENS[0], (100, 20)).await;
    let screen = alice.wait_for_text("── now ──").await;
    let lines: Vec<&str> = screen.lines().collect();
    let earlier = lines
        .iter()
        .position(|l| l.starts_with("── earlier messages ──"))
        .unwrap_or_else(|| panic!("no divider before the history:\n{screen}"));
    assert!(
        lines[earlier + 1].contains(" <bob> said before alice came"),
        "{screen}"
    );
    assert!(lines[earlier + 2].starts_with("── now ──"), "{screen}");
    let styled = alice.styled_screen();
    assert!(
        styles_of(&styled, "said before alice came")
            .iter()
            .all(|sgr| sgr.dim),
        "history is dimmed:\n{styled}"
    );
    assert!(
        !screen.contains("Members"),
        "the panel is hidden at first:\n{screen}"
    );

    // F2: the members, us included.
    alice.press("F2");
    let screen = alice.wait_for_text("│ Members (2)").await;
    assert!(screen.contains("│ alice"), "{screen}");
    assert!(screen.contains("│ bob"), "{screen}");
    let _carol = peer(&server, "carol", TOKENS[2]).await;
    alice.wait_for_text("│ carol").await;
    alice.wait_for_text("│ Members (3)").await;
    // Leaving on purpose: a connection merely dropped would be held for a resume, and the
    // room not told.
    bob.close().await.unwrap();
    drop(bob);
    alice
        .wait_for("bob gone from the panel", |s| {
            s.contains("│ Members (2)") && !s.contains("│ bob")
        })
        .await;
    alice.wait_for_text("*** bob left").await;

    alice.press("F2");
    alice
        .wait_for("the panel hidden", |s| !s.contains("Members ("))
        .await;
    alice.type_text("/quit");
    alice.press("Enter");
    assert_eq!(alice.exit_status().await, 0);
    server.stop().await;
}
