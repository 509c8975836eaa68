//! Line mode, for pipes and scripts: one received event per stdout line, one stdin line per
//! message. The format is in `--help` and [`crate::format::event_line`]; the history on joining
//! in [`crate::format::history_lines`], `/who`'s answer in [`crate::format::members_line`].

use std::io::{self, Write};
use std::time::Duration;

use clichat_client::{Client, Event, Events};
use tokio::sync::mpsc;

use crate::End;
use crate::format::{
    check_length, event_line, history_lines, limit_from_refusal, members_line, now,
};

/// How long to wait for the server's close reply after leaving.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Runs the chat until stdin ends, `/quit`, a signal, or the server closes the connection.
/// Messages over `max_length` are not sent; `verbose` adds detail to a disconnection.
pub async fn run(client: Client, max_length: usize, verbose: bool) -> End {
    let (sender, mut events) = client.split();
    let me = sender.welcome().username.clone();
    let mut lines = stdin_lines();
    let mut limit = max_length;
    // A refusal directly followed by the close is why the connection closed.
    let mut last_refusal: Option<String> = None;
    let mut termination = crate::Termination::install();
    let presence = sender.welcome().granted("presence");
    // `/who`s sent and not answered yet: only their answers are printed (the member list that
    // comes on joining is not, so the output stays one line per event of the room).
    let mut who_pending = 0_usize;
    // While a lost connection is being resumed, lines wait here and go out once it is back.
    let mut reconnecting = false;
    let mut waiting: Vec<String> = Vec::new();
    let mut resume_failed: Option<String> = None;
    loop {
        tokio::select! {
            event = events.next_event() => {
                let event = event.unwrap_or(Event::Closed(Default::default()));
                let printed = match &event {
                    Event::Members(names) if who_pending > 0 => {
                        who_pending -= 1;
                        print_lines(&[members_line(&now(), names)])
                    }
                    _ => print_event(&event, &me, verbose),
                };
                if printed.is_err() {
                    break;
                }
                match event {
                    Event::Closed(closed) => {
                        return match (resume_failed, last_refusal) {
                            (Some(failed), _) => End::Closed(failed),
                            (None, Some(reason)) => {
                                End::Refused(crate::format::explain_refusal(&reason))
                            }
                            (None, None) => {
                                End::Closed(crate::format::closed_text(&closed, verbose))
                            }
                        };
                    }
                    Event::Reconnecting(_) => reconnecting = true,
                    Event::Resumed { .. } => {
                        reconnecting = false;
                        for line in waiting.drain(..) {
                            let _ = sender.send(&line).await;
                        }
                    }
                    Event::ResumeFailed { reason } => {
                        if !waiting.is_empty() {
                            eprintln!("secure-client: {} lines were not sent", waiting.len());
                        }
                        resume_failed = Some(crate::format::resume_failed_text(&reason));
                    }
                    Event::Refusal(reason) => {
                        if let Some(server_limit) = limit_from_refusal(&reason) {
                            limit = server_limit;
                        }
                        last_refusal = Some(reason);
                    }
                    _ => last_refusal = None,
                }
            }
            line = lines.recv() => {
                let Some(line) = line else { break };
                if line.trim() == "/quit" {
                    break;
                }
                if line.trim().is_empty() {
                    continue;
                }
                if line.trim() == "/who" {
                    if !presence {
                        eprintln!("secure-client: this server does not say who is in the room");
                    } else if sender.ask_members().await.is_ok() {
                        who_pending += 1;
                    }
                    continue;
                }
                match check_length(&line, limit) {
                    Err(warning) => eprintln!("secure-client: {warning}"),
                    Ok(()) if reconnecting => waiting.push(line),
                    // A failed send means the connection is gone: its Closed event follows.
                    Ok(()) => { let _ = sender.send(&line).await; }
                }
            }
            () = termination.recv() => break,
        }
    }
    let _ = sender.close().await;
    drain(&mut events, &me, verbose).await;
    End::Left
}

/// After leaving, prints what still arrives until the server's close reply (bounded).
async fn drain(events: &mut Events, me: &str, verbose: bool) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(event) = events.next_event().await {
            if matches!(event, Event::Closed(_)) {
                break;
            }
            let _ = print_event(&event, me, verbose);
        }
    })
    .await;
}

/// Writes one event line to stdout and flushes it, so a reader at the other end of a pipe sees
/// each event as it happens. An error means stdout is gone (the reader left).
fn print_event(event: &Event, me: &str, verbose: bool) -> io::Result<()> {
    if let Event::History { messages, complete } = event {
        return print_lines(&history_lines(&now(), messages, *complete));
    }
    let Some(line) = event_line(&now(), event, me, verbose) else {
        return Ok(());
    };
    print_lines(&[line])
}

/// Writes lines to stdout and flushes them.
fn print_lines(lines: &[String]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    for line in lines {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()
}

/// Stdin's lines, read on a thread of their own (a blocked read must not hold up the runtime).
/// The channel closes at end of input or on a read error.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        while let Ok(Some(line)) = crate::prompt::read_line() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}
