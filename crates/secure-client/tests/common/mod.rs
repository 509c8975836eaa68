//! Test harness: a real server on `127.0.0.1:0`, the token pages read over HTTP (as the person
//! in front of the browser would), and `secure-client` run in line mode through pipes.
//!
//! The server, the test config and the token pages come from `test-support`, re-exported here;
//! [`LineClient`] is this crate's own.
//!
//! Every wait is bounded by [`WAIT`], so a missing line fails the test instead of hanging it.

#![allow(dead_code, unused_imports)] // Each test binary uses its own part of the harness.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

pub use test_support::{
    BOT_NAME, BOT_TOKEN, TOKENS, TestServer, WAIT, config, eventually, page_token, require_program,
};

/// The client binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_secure-client");

/// `secure-client` in line mode, its three standard streams piped to the test.
pub struct LineClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
    /// Everything read from stderr so far, for assertions and failure messages.
    pub stderr_seen: Vec<String>,
}

impl LineClient {
    /// Starts the binary with `args`; `token` goes in `CLICHAT_TOKEN` (never on the command
    /// line), and without it the variable is removed so the test machine's cannot leak in.
    pub fn spawn(args: &[&str], token: Option<&str>) -> LineClient {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("CLICHAT_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("CLICHAT_TOKEN", token);
        }
        let mut child = command.spawn().expect("secure-client starts");
        LineClient {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr: BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
            stderr_seen: Vec::new(),
        }
    }

    /// Logs in on the test server through SAUTH2: the generic token from the environment, the
    /// link from stderr, the page's token on stdin. Returns once it is in the room.
    pub async fn login(server: &TestServer, name: &str, token: &str) -> LineClient {
        let mut client = LineClient::spawn(
            &["--plain", "--secure", "--username", name, &server.address()],
            Some(token),
        );
        let link = client.link().await;
        client.write_line(&page_token(&link).await).await;
        client
            .stdout_until(&format!("*** logged in as {name} ("))
            .await;
        client
    }

    /// Writes one line to the client's stdin.
    pub async fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Ends the client's input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout until a line containing `want`, and returns it; each line must be one
    /// well-formed event line.
    pub async fn stdout_until(&mut self, want: &str) -> String {
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(WAIT, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no stdout line with {want:?}; saw {seen:#?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("stdout ended before {want:?}; saw {seen:#?}"));
            assert_event_line(&line);
            if line.contains(want) {
                return line;
            }
            seen.push(line);
        }
    }

    /// The next stdout line.
    pub async fn next_stdout(&mut self) -> String {
        let line = tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .expect("a stdout line in time")
            .unwrap()
            .expect("stdout still open");
        assert_event_line(&line);
        line
    }

    /// Reads stderr until a line containing `want`, and returns it.
    pub async fn stderr_until(&mut self, want: &str) -> String {
        loop {
            let line = tokio::time::timeout(WAIT, self.stderr.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!("no stderr line with {want:?}; saw {:#?}", self.stderr_seen)
                })
                .unwrap()
                .unwrap_or_else(|| {
                    panic!("stderr ended before {want:?}; saw {:#?}", self.stderr_seen)
                });
            self.stderr_seen.push(line.clone());
            if line.contains(want) {
                return line;
            }
        }
    }

    /// The token page's link, from the first stderr line that starts with `http`.
    pub async fn link(&mut self) -> String {
        loop {
            let line = self.stderr_until("http").await;
            if line.starts_with("http") {
                return line;
            }
        }
    }

    /// Waits for the process to end and returns its exit code.
    pub async fn exit_code(&mut self) -> i32 {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("secure-client exits in time")
            .unwrap();
        status.code().expect("exited, not killed")
    }

    /// The rest of stderr, once the process has ended.
    pub async fn rest_of_stderr(&mut self) -> String {
        while let Ok(Some(line)) = tokio::time::timeout(WAIT, self.stderr.next_line())
            .await
            .expect("stderr ends in time")
        {
            self.stderr_seen.push(line);
        }
        self.stderr_seen.join("\n")
    }
}

/// Line mode's promise: `[HH:MM:SS] ` and then no control characters.
fn assert_event_line(line: &str) {
    let bytes = line.as_bytes();
    assert!(
        line.len() > 11
            && bytes[0] == b'['
            && bytes[9] == b']'
            && bytes[10] == b' '
            && line[1..9].chars().all(|c| c.is_ascii_digit() || c == ':'),
        "not an event line: {line:?}"
    );
    assert!(
        !line.chars().any(char::is_control),
        "control character in {line:?}"
    );
}
