//! `secure-client`: a terminal chat client for CLIChat Secure Servers (and plain CLIChat
//! servers), with a full-screen chat for people and a line mode for pipes and scripts.
//!
//! `secure-client --help` documents the command line, the line-mode format and the exit codes.
//!
//! # Layout
//! - `main.rs`: arguments, the choice of mode, exit codes.
//! - `login.rs`: asking for what the command line left out, connecting, SAUTH2's link and token,
//!   asking again after a slip.
//! - `server_info.rs`: the limits the server announces at `/app/server.json`.
//! - `prompt.rs`: reading answers from stdin, tokens without echo.
//! - `format.rs`: text made safe for a terminal, timestamps, the line format, refusals and
//!   disconnections in plain words.
//! - `plain.rs`: line mode.
//! - `app.rs`: the full-screen chat's state (history, input field, status), testable without a
//!   terminal.
//! - `input.rs`: the input field: several lines, edited by grapheme cluster.
//! - `view.rs`: laying text out in rows; nick colours; mentions.
//! - `width.rs`: how wide this terminal draws emoji sequences, measured; drawing a cluster as
//!   one unit of that width.
//! - `tui.rs`: the terminal: setup and restore, drawing, the event loop.

mod app;
mod format;
mod input;
mod login;
mod plain;
mod prompt;
mod server_info;
mod tui;
mod view;
mod width;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

const AFTER_HELP: &str = "\
Whatever the command line leaves out is asked for, in this order: username, server, whether it
is a Secure Server (Y/N), token. A Secure Server then sends a link: open it in a browser and paste
the temporary token the page shows. The client never opens the page itself. The server's limits
(the longest name and message) come from its /app/server.json; a server without one is taken to
allow 15 and 200 (or --max-length).

Modes:
  Full screen (stdin and stdout are a terminal): history with local times, an input field, and
  a status line. Enter sends; Alt+Enter (or Shift+Enter, Ctrl-J) starts a new line in the
  message; /quit, Ctrl-C or Ctrl-D on an empty line leave; /help lists keys. F2 shows or hides
  the member list beside the chat (/who too). On joining, the messages said before (where the
  server keeps them) are shown dimmed, at their own times, between \"earlier messages\" and
  \"now\" lines. A message that
  mentions your name is highlighted and rings the terminal bell (--no-bell: no bell). A slip at
  login is asked about again: a wrong token asks for it again, a wrong token from the page
  starts over with a new link, a name the server refuses asks for another. The question whether
  it is a Secure Server is skipped when the server says.
  Line mode (--plain, or stdin or stdout is not a terminal): questions, the link and warnings go
  to stderr; stdout gets one line per event; every stdin line is one message; /who prints who
  is in the room (where the server says). After the link,
  the next stdin line is the token from the page. End of input or /quit leaves. Blank lines are
  not sent (the server would close the connection); nor are lines over the server's limit.

Line-mode output, one event per line, names and texts with control characters escaped (^[, ^J):
  [12:03:04] *** logged in as NAME (SERVER VERSION)
  [12:03:04] <NAME> TEXT
  [12:03:04] *** NAME joined
  [12:03:04] *** NAME left
  [12:03:04] !!! refused: REASON (WHAT IT MEANS)
  [12:03:04] !!! disconnected: WHY
  [11:58:40] (earlier) <NAME> TEXT      said before you joined, at its own time
  [12:03:04] *** older messages were not kept
  [12:03:04] *** in the room (N): NAME, NAME, [BOT] NAME      the answer to /who
Your own messages are not echoed.

Exit codes:
  0    you left: /quit, Ctrl-C, end of input
  1    could not connect, or input ended at a question
  2    bad arguments
  3    refused by the server (at login, or a refusal that closed the connection)
  4    the server closed the connection, or it was lost
  130  interrupted at a question

Examples:
  CLICHAT_TOKEN=... secure-client localhost:7070 --username alice
  secure-client chat.example.com --bot --username echo
  printf 'hello\\n' | secure-client localhost:7070 -u alice --insecure";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "secure-client", version, about, after_help = AFTER_HELP)]
pub struct Args {
    /// The server: HOST, HOST:PORT, or a ws:// or wss:// URL. Without a port, 70.
    pub address: Option<String>,

    /// Your name in the room (with --bot, the bot's name).
    #[arg(short, long, value_name = "NAME")]
    pub username: Option<String>,

    /// The server's generic token (with --bot, the bot token). Prefer the environment
    /// variable: it stays out of shell history and process lists.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CLICHAT_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// The server is a Secure Server: log in with a token and the token page (SAUTH2).
    #[arg(long, conflicts_with = "insecure")]
    pub secure: bool,

    /// The server is a plain CLIChat server: log in without a token.
    #[arg(long)]
    pub insecure: bool,

    /// Log in as a bot, with a bot name and bot token set by the server's owner.
    #[arg(long, conflicts_with_all = ["secure", "insecure"])]
    pub bot: bool,

    /// For wss:// servers: also trust the certificate(s) in this PEM file (e.g. a server's
    /// self-signed certificate, from `secure-server cert self-signed`).
    #[arg(long, value_name = "FILE")]
    pub trust_cert: Option<std::path::PathBuf>,

    /// Line mode even on a terminal: one event per output line, one input line per message.
    #[arg(long)]
    pub plain: bool,

    /// The server's message limit, for a server that does not announce its own (at
    /// /app/server.json): longer messages are not sent. Default: 200.
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_length: Option<usize>,

    /// No terminal bell when a message mentions your name (it is still highlighted).
    #[arg(long)]
    pub no_bell: bool,

    /// Technical detail after the plain-words explanations: close codes, library errors, the
    /// server's exact words.
    #[arg(long)]
    pub verbose: bool,
}

/// How a run ended; each has its exit code (see `--help`).
#[derive(Debug)]
pub enum End {
    /// The person left: `/quit`, Ctrl-C, end of input. Exit 0.
    Left,
    /// Something went wrong on this side, e.g. the server could not be reached. Exit 1.
    Failed(anyhow::Error),
    /// A bad argument. Exit 2.
    Usage(String),
    /// The server refused, in its words explained; the connection is over. Exit 3.
    Refused(String),
    /// The server closed the connection, or it was lost. Exit 4.
    Closed(String),
    /// Ctrl-C at a question. Exit 130.
    Interrupted,
}

impl End {
    /// The process exit code.
    fn code(&self) -> u8 {
        match self {
            End::Left => 0,
            End::Failed(_) => 1,
            End::Usage(_) => 2,
            End::Refused(_) => 3,
            End::Closed(_) => 4,
            End::Interrupted => 130,
        }
    }

    /// What to say on stderr when leaving, if anything.
    fn message(&self) -> Option<String> {
        match self {
            End::Left | End::Interrupted => None,
            End::Failed(error) => Some(format!("{error:#}")),
            End::Usage(text) => Some(text.clone()),
            End::Refused(text) => Some(format!("refused by the server: {text}")),
            End::Closed(text) => Some(format!("disconnected: {text}")),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("secure-client: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let end = runtime.block_on(run(args));
    // A line-mode stdin reader may still be blocked in a read; it must not hold the exit up.
    runtime.shutdown_background();
    if let Some(message) = end.message() {
        eprintln!("secure-client: {message}");
    }
    ExitCode::from(end.code())
}

async fn run(args: Args) -> End {
    let full_screen =
        !args.plain && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    // A person at a terminal is asked again after a slip; a script gets the exit code.
    let logged_in = match login::login(&args, full_screen).await {
        Ok(logged_in) => logged_in,
        Err(end) => return end,
    };
    let limit = logged_in.info.max_message_length;
    if full_screen {
        let options = tui::Options {
            server: logged_in.address.as_str().to_owned(),
            limit,
            bell: !args.no_bell,
            verbose: args.verbose,
        };
        tui::run(logged_in.client, options).await
    } else {
        plain::run(logged_in.client, limit, args.verbose).await
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught once the chat is up so that the client leaves cleanly
/// (close frame sent, terminal restored) instead of dying mid-screen.
pub struct Termination {
    #[cfg(unix)]
    signals: Vec<tokio::signal::unix::Signal>,
}

impl Termination {
    /// Installs the handlers. From now on these signals no longer kill the process.
    pub fn install() -> Termination {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let kinds = [
                SignalKind::interrupt(),
                SignalKind::terminate(),
                SignalKind::hangup(),
            ];
            Termination {
                signals: kinds
                    .into_iter()
                    .filter_map(|kind| signal(kind).ok())
                    .collect(),
            }
        }
        #[cfg(not(unix))]
        Termination {}
    }

    /// Resolves when one of the signals arrives. Cancel-safe.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if self.signals.is_empty() {
                return std::future::pending().await;
            }
            let waits = self
                .signals
                .iter_mut()
                .map(|signal| Box::pin(signal.recv()));
            futures_util::future::select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
