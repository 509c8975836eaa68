//! The full-screen chat on a real terminal: setting it up, restoring it on every way out
//! (return, error, panic, signal), and the loop joining keys, server events and drawing.

use std::io::{self, Stdout};
use std::sync::Once;
use std::time::Duration;

use clichat_client::{Client, Event};
use crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent, EventStream,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use crate::app::{Action, App};
use crate::format::now;
use crate::{End, Termination};

/// How long to wait for the server's close reply after leaving.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Runs the chat until the person leaves. If the connection closed first, the run ends with why
/// (once the person has read it and pressed Enter).
pub async fn run(client: Client, server: &str, max_length: usize) -> End {
    let (sender, mut events) = client.split();
    let mut app = App::new(server, &sender.welcome().username, max_length);
    let mut screen = match Screen::enter() {
        Ok(screen) => screen,
        Err(error) => {
            let _ = sender.close().await;
            return End::Failed(anyhow::anyhow!("cannot set up the terminal: {error}"));
        }
    };
    let mut keys = EventStream::new();
    let mut termination = Termination::install();
    let outcome: io::Result<()> = loop {
        if let Err(error) = screen.terminal.draw(|frame| app.draw(frame)) {
            break Err(error);
        }
        tokio::select! {
            event = events.next_event(), if app.connected() => {
                app.on_event(event.unwrap_or(Event::Closed(Default::default())), now());
            }
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) => match app.on_key(key) {
                    Action::Send(text) => match sender.send(&text).await {
                        Ok(()) => app.sent(text, now()),
                        Err(_) => app.warn("not sent: the connection is gone"),
                    },
                    Action::Quit => break Ok(()),
                    Action::Nothing => {}
                },
                Some(Ok(TermEvent::Paste(text))) => app.on_paste(&text),
                // A resize, focus or mouse event: the next draw takes the new size.
                Some(Ok(_)) => {}
                Some(Err(error)) => break Err(error),
                None => break Ok(()),
            },
            () = termination.recv() => break Ok(()),
        }
    };
    if app.connected() {
        let _ = sender.close().await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(event) = events.next_event().await {
                if matches!(event, Event::Closed(_)) {
                    break;
                }
            }
        })
        .await;
    }
    drop(screen);
    match outcome {
        Ok(()) => app.into_end(),
        Err(error) => End::Failed(anyhow::anyhow!("the terminal failed: {error}")),
    }
}

/// The terminal in full-screen mode: raw, alternate screen, bracketed paste (so a pasted
/// multi-line text is one message, not several). Dropping it restores the terminal.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> io::Result<Screen> {
        install_panic_hook();
        enable_raw_mode()?;
        let setup = execute!(io::stdout(), EnterAlternateScreen, EnableBracketedPaste)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(error) => {
                restore();
                Err(error)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back the way the shell wants it. Harmless when it already is.
fn restore() {
    let _ = execute!(
        io::stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
}

/// Restores the terminal before a panic message is printed, so that it is readable and the
/// shell is usable afterwards.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
