//! A `secure-server` process for the tests that need the real binary (its flags, its log, its
//! memory): started on an ephemeral loopback port, its log collected.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub const BIN: &str = env!("CARGO_BIN_EXE_secure-server");

/// The binary on `config`, on an ephemeral loopback port, with its output piped.
pub fn server_command(config: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The address in the server's "listening" log line, if this is that line.
pub fn listening_addr(line: &str) -> Option<String> {
    if !line.contains("listening") {
        return None;
    }
    let at = line.find("addr=")? + "addr=".len();
    Some(line[at..].split_whitespace().next()?.to_owned())
}

/// A `secure-server` process that has started listening.
pub struct Running {
    pub child: Child,
    pub addr: String,
    /// The whole log (stderr), complete once the process has exited. Reading it to the end also
    /// keeps the server from writing to a closed pipe.
    pub log: JoinHandle<String>,
    /// Log lines as they come, for waiting on one.
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// Starts the binary on `config` at log level `rust_log` and waits for it to listen.
pub async fn start(config: &Path, rust_log: &str) -> Running {
    let mut child = server_command(config)
        .env("RUST_LOG", rust_log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let find = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if let Some(addr) = listening_addr(&line) {
                return addr;
            }
        }
        panic!("the server exited before listening: {log}");
    };
    let addr = tokio::time::timeout(super::WAIT, find)
        .await
        .expect("listening in time");
    let (line_tx, line_rx) = tokio::sync::mpsc::unbounded_channel();
    let log = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
            let _ = line_tx.send(line);
        }
        log
    });
    Running {
        child,
        addr,
        log,
        lines: line_rx,
    }
}

impl Running {
    pub async fn connect(&self) -> super::Client {
        let url = format!("ws://{}/", self.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        super::Client { ws, id: None }
    }

    /// Waits for a log line containing `text`; returns it.
    pub async fn log_line(&mut self, text: &str) -> String {
        let find = async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(text) {
                    return line;
                }
            }
            panic!("the server exited without logging {text:?}");
        };
        tokio::time::timeout(super::WAIT, find)
            .await
            .unwrap_or_else(|_| panic!("no log line with {text:?} in time"))
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to the process.
    pub async fn signal(&self, signal: &str) {
        let signal = match signal {
            "HUP" => Signal::HUP,
            "INT" => Signal::INT,
            "TERM" => Signal::TERM,
            "KILL" => Signal::KILL,
            "USR1" => Signal::USR1,
            "USR2" => Signal::USR2,
            other => panic!("no signal named {other}"),
        };
        send(&self.child, signal);
    }

    /// Sends SIGTERM; returns the exit status, what it printed on stdout, and its whole log.
    pub async fn stop(mut self) -> (ExitStatus, String, String) {
        let mut stdout = self.child.stdout.take().unwrap();
        let status = terminate(self.child).await;
        let mut printed = String::new();
        stdout.read_to_string(&mut printed).await.unwrap();
        (status, printed, self.log.await.unwrap())
    }
}

/// Sends SIGTERM and waits for the process to exit.
pub async fn terminate(mut child: Child) -> ExitStatus {
    send(&child, Signal::TERM);
    let exited = tokio::time::timeout(super::WAIT, child.wait()).await;
    exited.expect("exits after SIGTERM").unwrap()
}

/// Sends `signal` to `child` with the system call itself, not the `kill` program (procps),
/// which a minimal machine may not have.
fn send(child: &Child, signal: Signal) {
    let pid = child.id().expect("the process has not been reaped");
    let pid = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}
