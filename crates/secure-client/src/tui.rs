//! The full-screen chat on a real terminal: setting it up (and measuring how it draws emoji
//! sequences), restoring it on every way out (return, error, panic, signal), and the loop
//! joining keys, server events and drawing.

use std::io::{self, Stdout, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clichat_client::{Client, Event};
use crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent, EventStream,
    KeyboardEnhancementFlags, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode,
    enable_raw_mode, supports_keyboard_enhancement,
};
use crossterm::{cursor, execute};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType as RatatuiClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::{Cell, CellDiffOption};
use ratatui::layout::{Position, Size};

use crate::app::{Action, App};
use crate::format::now;
use crate::width::Widths;
use crate::{End, Termination};

/// How long to wait for the server's close reply after leaving.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Whether the terminal was asked to report keys unambiguously (the kitty keyboard protocol,
/// which tells Shift+Enter from Enter), so that leaving asks it to stop.
static KEYBOARD_ENHANCED: AtomicBool = AtomicBool::new(false);

/// How the chat looks and behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's address, for the status line.
    pub server: String,
    /// The server's message limit.
    pub limit: usize,
    /// Ring the bell on a mention.
    pub bell: bool,
    /// Technical detail after the sentences.
    pub verbose: bool,
}

/// Runs the chat until the person leaves. If the connection closed first, the run ends with why
/// (once the person has read it and pressed Enter).
pub async fn run(client: Client, options: Options) -> End {
    let (sender, mut events) = client.split();
    let mut screen = match Screen::enter() {
        Ok(screen) => screen,
        Err(error) => {
            let _ = sender.close().await;
            return End::Failed(anyhow::anyhow!("cannot set up the terminal: {error}"));
        }
    };
    let mut app = App::new(&options.server, &sender.welcome().username, options.limit)
        .with_bell(options.bell)
        .with_verbose(options.verbose)
        .with_widths(screen.widths)
        .with_presence(sender.welcome().granted("presence"));
    let mut keys = EventStream::new();
    let mut termination = Termination::install();
    let outcome: io::Result<()> = loop {
        if let Err(error) = screen
            .terminal
            .draw(|frame| app.draw(frame, events.members()))
        {
            break Err(error);
        }
        if app.take_bell() {
            screen.bell();
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
                    Action::Redraw => {
                        if let Err(error) = screen.terminal.clear() {
                            break Err(error);
                        }
                    }
                    Action::AskMembers => {
                        // A failure means the connection is gone: its Closed event follows.
                        let _ = sender.ask_members().await;
                    }
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

/// The terminal in full-screen mode: raw, alternate screen, bracketed paste (so a pasted text
/// of several lines is one message, not several), keys reported unambiguously where the
/// terminal can. Dropping it restores the terminal.
struct Screen {
    terminal: Terminal<Cells>,
    /// How this terminal draws emoji sequences.
    widths: Widths,
}

impl Screen {
    fn enter() -> io::Result<Screen> {
        install_panic_hook();
        enable_raw_mode()?;
        let setup =
            execute!(io::stdout(), EnterAlternateScreen, EnableBracketedPaste).and_then(|()| {
                let widths = Widths::probe(&mut io::stdout()).unwrap_or_default();
                execute!(io::stdout(), cursor::MoveTo(0, 0), Clear(ClearType::All))?;
                if supports_keyboard_enhancement().unwrap_or(false) {
                    execute!(
                        io::stdout(),
                        PushKeyboardEnhancementFlags(
                            KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES
                        )
                    )?;
                    KEYBOARD_ENHANCED.store(true, Ordering::SeqCst);
                }
                let terminal = Terminal::new(Cells(CrosstermBackend::new(io::stdout())))?;
                Ok(Screen { terminal, widths })
            });
        if setup.is_err() {
            restore();
        }
        setup
    }

    /// Rings the terminal's bell (BEL); it moves nothing on the screen.
    fn bell(&mut self) {
        let backend = &mut self.terminal.backend_mut().0;
        let _ = backend
            .write_all(b"\x07")
            .and_then(|()| Write::flush(backend));
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back the way the shell wants it. Harmless when it already is.
fn restore() {
    if KEYBOARD_ENHANCED.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), PopKeyboardEnhancementFlags);
    }
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

/// The crossterm backend, drawing emoji sequences defensively: a cell holding a cluster of
/// several characters (which [`crate::width::put_cluster`] gives its width) is first blanked
/// over that width and then drawn, and the next cell is positioned explicitly. So even a
/// terminal that draws the cluster narrower than measured leaves no old text beside it, and one
/// that draws it wider does not push the rest of the row along.
struct Cells(CrosstermBackend<Stdout>);

impl Backend for Cells {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let mut run: Vec<(u16, u16, &Cell)> = Vec::new();
        for (x, y, cell) in content {
            let CellDiffOption::ForcedWidth(width) = cell.diff_option else {
                run.push((x, y, cell));
                continue;
            };
            self.0.draw(std::mem::take(&mut run).into_iter())?;
            let mut blank = cell.clone();
            blank.set_symbol(&" ".repeat(usize::from(width.get())));
            blank.diff_option = CellDiffOption::None;
            self.0.draw(std::iter::once((x, y, &blank)))?;
            self.0.draw(std::iter::once((x, y, cell)))?;
        }
        self.0.draw(run.into_iter())
    }

    fn append_lines(&mut self, n: u16) -> io::Result<()> {
        self.0.append_lines(n)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.0.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.0.show_cursor()
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        self.0.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.0.set_cursor_position(position)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.0.clear()
    }

    fn clear_region(&mut self, clear_type: RatatuiClearType) -> io::Result<()> {
        self.0.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        self.0.size()
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        self.0.window_size()
    }

    fn flush(&mut self) -> io::Result<()> {
        Backend::flush(&mut self.0)
    }
}
