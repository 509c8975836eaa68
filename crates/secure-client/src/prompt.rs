//! Asking a person (or a script) for what the command line left out.
//!
//! Questions go to stderr, so that line mode's stdout carries only chat events. Answers are
//! read from stdin one line at a time, through the process's one buffered stdin, so that the
//! chat lines a script pipes after its answers are not lost. Tokens are read without echo when
//! stdin is a terminal.

use std::io::{self, BufRead, IsTerminal, Write};

use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal;

/// Why a question got no answer.
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// Stdin ended before the answer came.
    #[error("input ended before {0} was given")]
    EndOfInput(String),
    /// The person pressed Ctrl-C at a hidden prompt.
    #[error("interrupted")]
    Interrupted,
    /// Reading failed.
    #[error("could not read {what}: {error}")]
    Io {
        /// What was asked.
        what: String,
        /// What went wrong.
        #[source]
        error: io::Error,
    },
}

/// Asks `question` on stderr and returns the answer line, without its line ending.
///
/// `what` names the answer in the error when stdin ends first. With `hidden`, the answer is not
/// echoed when stdin is a terminal (tokens); from a pipe it is read like any other line.
///
/// # Errors
/// [`NoAnswer`] when stdin ends, Ctrl-C is pressed at a hidden prompt, or reading fails.
pub async fn ask(question: &str, what: &str, hidden: bool) -> Result<String, NoAnswer> {
    let question = question.to_owned();
    let what = what.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stderr = io::stderr();
        let answer = if hidden && io::stdin().is_terminal() {
            read_hidden(&question)
        } else {
            let _ = write!(stderr, "{question}");
            let _ = stderr.flush();
            read_line()
        };
        match answer {
            Ok(Some(line)) => Ok(line),
            Ok(None) => {
                let _ = writeln!(stderr);
                Err(NoAnswer::EndOfInput(what))
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(NoAnswer::Interrupted),
            Err(error) => Err(NoAnswer::Io { what, error }),
        }
    })
    .await
    .unwrap_or(Err(NoAnswer::Interrupted))
}

/// One line from stdin; `None` at end of input. Invalid UTF-8 is replaced, not fatal.
pub fn read_line() -> io::Result<Option<String>> {
    let mut bytes = Vec::new();
    if io::stdin().lock().read_until(b'\n', &mut bytes)? == 0 {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&bytes);
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
}

/// A line typed on the terminal without echo, after `question`. Ctrl-C gives
/// [`io::ErrorKind::Interrupted`], Ctrl-D on an empty line `None`.
fn read_hidden(question: &str) -> io::Result<Option<String>> {
    // Echo goes off before the question shows, so that nothing typed as soon as it appears is
    // echoed.
    terminal::enable_raw_mode()?;
    let _restore = RawModeGuard;
    eprint!("{question}");
    io::stderr().flush()?;
    let mut line = String::new();
    loop {
        let TermEvent::Key(key) = event::read()? else {
            continue;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => break,
            KeyCode::Char('c') if ctrl => {
                eprint!("\r\n");
                return Err(io::ErrorKind::Interrupted.into());
            }
            KeyCode::Char('d') if ctrl && line.is_empty() => return Ok(None),
            KeyCode::Char('u') if ctrl => line.clear(),
            KeyCode::Char(c) if !ctrl => line.push(c),
            KeyCode::Backspace => {
                line.pop();
            }
            _ => {}
        }
    }
    eprint!("\r\n");
    Ok(Some(line))
}

/// Leaves raw mode however [`read_hidden`] returns.
struct RawModeGuard;

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}
