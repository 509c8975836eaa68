//! The full-screen chat's state and how it is drawn: history, input field, status line, and
//! the member panel (F2).
//!
//! Nothing here touches the terminal: keys and events go in, [`Action`]s come out, and
//! [`App::draw`] renders into any ratatui frame, so the tests drive it with a `TestBackend`.

use std::collections::BTreeSet;

use clichat_client::Event;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};

use crate::End;
use crate::format::{
    chat_refusal, check_length, closed_text, limit_from_refusal, resume_failed_text, resumed_text,
    sanitize, sorted_members, time_of,
};
use crate::input::Input;
use crate::view::{
    Glyph, blank_to, continuation_indent, draw_row, glyphs, mentions, nick_color, width_of, wrap,
};
use crate::width::Widths;

/// Entries kept in the history; older ones are dropped.
const HISTORY_LIMIT: usize = 10_000;

/// Width of the `HH:MM:SS ` in front of every entry.
const TIME_WIDTH: usize = 9;

/// The most rows the input field grows to (for a message of several lines).
const MAX_INPUT_ROWS: u16 = 6;

/// The key that shows and hides the member panel (`/who` shows it too).
pub const MEMBERS_KEY: KeyCode = KeyCode::F(2);

/// The member panel's width, border included: room for a name of 15 and a `[BOT] `.
const PANEL_WIDTH: u16 = 24;

/// The narrowest chat that still gets the panel beside it.
const MIN_CHAT_WIDTH: u16 = 30;

/// What the event loop should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    Nothing,
    /// Send this message, then report it with [`App::sent`].
    Send(String),
    /// Clear the terminal and draw everything again (Ctrl-L).
    Redraw,
    /// Ask the server for a fresh member list (the panel was opened).
    AskMembers,
    /// Leave.
    Quit,
}

/// One line of history, as received (unsanitized; sanitized when drawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Local time of day it happened, `HH:MM:SS`.
    pub time: String,
    /// What happened.
    pub kind: EntryKind,
}

/// What a history entry records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Someone said something.
    Message {
        /// Who.
        from: String,
        /// What (its line breaks are its own lines).
        text: String,
        /// Whether it mentions us (highlighted, and the bell rang).
        mention: bool,
    },
    /// Someone said something before we joined (from the room's history); the entry's time is
    /// when it was said.
    Earlier {
        /// Who.
        from: String,
        /// What.
        text: String,
    },
    /// A line across the history: `── earlier messages ──`, `── now ──`.
    Divider(String),
    /// We said something (and it was sent).
    Own(String),
    /// Someone joined.
    Joined(String),
    /// Someone left.
    Left(String),
    /// The server refused something; already explained.
    Refusal(String),
    /// A note from the client itself.
    Info(String),
    /// The connection is over; why.
    Disconnected(String),
}

/// A short message in the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// Shown as a warning (not sent, disconnected) rather than information.
    pub warning: bool,
}

/// The chat's state.
#[derive(Debug)]
pub struct App {
    server: String,
    me: String,
    connected: bool,
    history: Vec<Entry>,
    /// History rows scrolled up from the bottom; 0 follows new messages.
    scroll: usize,
    /// Messages that arrived while scrolled up, not yet scrolled down to.
    unseen: usize,
    /// History rows visible at the last draw, for paging.
    page: usize,
    /// The history's width at the last draw, to count the rows a new entry adds.
    history_width: usize,
    input: Input,
    /// Lines entered (messages sent, commands), for recall with Up/Down.
    sent: Vec<String>,
    recall: Option<usize>,
    notice: Option<Notice>,
    limit: usize,
    last_refusal: Option<String>,
    end: Option<End>,
    widths: Widths,
    /// Ring the terminal bell on a mention (`--no-bell` turns it off).
    bell: bool,
    bell_pending: bool,
    /// Technical detail after the sentences (`--verbose`).
    verbose: bool,
    /// Whether the member panel is shown.
    panel: bool,
    /// Whether the server lists the members (granted `presence`).
    presence: bool,
    /// The connection was lost and is being resumed.
    reconnecting: bool,
    /// Missed messages still to come after a resume; a divider follows the last.
    missed: usize,
    /// Why resuming failed, for the end.
    resume_failed: Option<String>,
}

impl App {
    /// A chat with `server` as `me`, warning before sending messages over `limit`; the bell on,
    /// terse texts, and Unicode's widths until told otherwise.
    pub fn new(server: &str, me: &str, limit: usize) -> App {
        App {
            server: server.to_owned(),
            me: me.to_owned(),
            connected: true,
            history: Vec::new(),
            scroll: 0,
            unseen: 0,
            page: 1,
            history_width: 0,
            input: Input::default(),
            sent: Vec::new(),
            recall: None,
            notice: None,
            limit,
            last_refusal: None,
            end: None,
            widths: Widths::UNICODE,
            bell: true,
            bell_pending: false,
            verbose: false,
            panel: false,
            presence: false,
            reconnecting: false,
            missed: 0,
            resume_failed: None,
        }
    }

    /// Whether the server lists the room's members (it granted `presence`), so that opening the
    /// panel asks it for a fresh list.
    pub fn with_presence(mut self, presence: bool) -> App {
        self.presence = presence;
        self
    }

    /// Whether the member panel is shown.
    #[cfg(test)]
    pub fn panel_shown(&self) -> bool {
        self.panel
    }

    /// Rings the bell on mentions, or not.
    pub fn with_bell(mut self, bell: bool) -> App {
        self.bell = bell;
        self
    }

    /// Adds technical detail to disconnections and refusals, or not.
    pub fn with_verbose(mut self, verbose: bool) -> App {
        self.verbose = verbose;
        self
    }

    /// Measures text the way this terminal draws it.
    pub fn with_widths(mut self, widths: Widths) -> App {
        self.widths = widths;
        self
    }

    /// Whether the connection is still open (events are still worth reading); also while it
    /// is being resumed.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The history, oldest first.
    #[cfg(test)]
    pub fn history(&self) -> &[Entry] {
        &self.history
    }

    /// The text in the input field.
    #[cfg(test)]
    pub fn input(&self) -> String {
        self.input.text().to_owned()
    }

    /// The notice in the status line, if any.
    #[cfg(test)]
    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }

    /// Whether the bell should ring now (a mention arrived); asking resets it.
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.bell_pending)
    }

    /// How the run ends if the person leaves now: [`End::Left`] while connected, else why the
    /// connection closed.
    pub fn into_end(self) -> End {
        self.end.unwrap_or(End::Left)
    }

    /// Takes an event from the server, arrived at local time `time`.
    pub fn on_event(&mut self, event: Event, time: String) {
        let kind = match event {
            Event::Joined { version, .. } => {
                let version = version.map(|v| format!(" ({v})")).unwrap_or_default();
                EntryKind::Info(format!(
                    "logged in as {} on {}{version}; /help lists the keys",
                    self.me, self.server
                ))
            }
            Event::Join(name) => EntryKind::Joined(name),
            Event::Disconnect(name) => EntryKind::Left(name),
            Event::Message { from, text } => {
                let mention = from != self.me && self.mentions_me(&text);
                if mention && self.bell {
                    self.bell_pending = true;
                }
                let kind = EntryKind::Message {
                    from,
                    text,
                    mention,
                };
                if self.missed > 0 {
                    // Said while we were away: in order, between the resume's dividers.
                    self.missed -= 1;
                    self.push(time.clone(), kind);
                    if self.missed == 0 {
                        self.push(time, EntryKind::Divider("now".to_owned()));
                    }
                    return;
                }
                kind
            }
            Event::Reconnecting(closed) => {
                self.reconnecting = true;
                self.notice = Some(Notice {
                    text: "reconnecting\u{2026}".to_owned(),
                    warning: true,
                });
                EntryKind::Info(format!(
                    "{}; reconnecting\u{2026}",
                    closed_text(&closed, self.verbose)
                ))
            }
            Event::Resumed {
                missed, complete, ..
            } => {
                self.reconnecting = false;
                self.notice = None;
                self.missed = missed;
                let text = resumed_text(missed, complete);
                if missed == 0 {
                    EntryKind::Info(text)
                } else {
                    EntryKind::Divider(text)
                }
            }
            Event::ResumeFailed { reason } => {
                self.reconnecting = false;
                let text = resume_failed_text(&reason);
                self.resume_failed = Some(text.clone());
                EntryKind::Refusal(text)
            }
            Event::History { messages, complete } => {
                if messages.is_empty() {
                    return;
                }
                let label = if complete {
                    "earlier messages"
                } else {
                    "earlier messages (older ones were not kept)"
                };
                self.push(time.clone(), EntryKind::Divider(label.to_owned()));
                for entry in messages {
                    let kind = EntryKind::Earlier {
                        from: entry.from,
                        text: entry.text,
                    };
                    self.push(time_of(entry.stamp.time_ms), kind);
                }
                EntryKind::Divider("now".to_owned())
            }
            Event::Refusal(reason) => {
                if let Some(limit) = limit_from_refusal(&reason) {
                    self.limit = limit;
                }
                let explained = chat_refusal(&reason, self.verbose);
                self.last_refusal = Some(reason);
                self.push(time, EntryKind::Refusal(explained));
                return;
            }
            Event::Closed(closed) => {
                self.connected = false;
                let end = match (self.resume_failed.take(), self.last_refusal.take()) {
                    (Some(failed), _) => End::Closed(failed),
                    (None, Some(reason)) => End::Refused(chat_refusal(&reason, self.verbose)),
                    (None, None) => End::Closed(closed_text(&closed, self.verbose)),
                };
                self.end = Some(end);
                self.notice = Some(Notice {
                    text: "disconnected: press Enter to exit".to_owned(),
                    warning: true,
                });
                EntryKind::Disconnected(closed_text(&closed, self.verbose))
            }
            // Frames this client does not know or does not ask for (e.g. `Unknown`, `Invalid`).
            _ => return,
        };
        self.last_refusal = None;
        self.push(time, kind);
    }

    /// Whether `text` mentions us: our name as a word, or a bot's name without its `[BOT]`.
    fn mentions_me(&self, text: &str) -> bool {
        mentions(text, &self.me)
            || self
                .me
                .strip_prefix("[BOT] ")
                .is_some_and(|name| mentions(text, name))
    }

    /// Records a message that was sent, and goes back down to it.
    pub fn sent(&mut self, text: String, time: String) {
        self.remember(&text);
        self.scroll = 0;
        self.unseen = 0;
        self.push(time, EntryKind::Own(text));
    }

    /// Keeps an entered line for recall.
    fn remember(&mut self, text: &str) {
        if self.sent.last().is_none_or(|last| last != text) {
            self.sent.push(text.to_owned());
        }
    }

    /// Shows a warning in the status line.
    pub fn warn(&mut self, text: &str) {
        self.notice = Some(Notice {
            text: text.to_owned(),
            warning: true,
        });
    }

    /// Takes pasted text into the input field; its line breaks stay (one message of several
    /// lines).
    pub fn on_paste(&mut self, text: &str) {
        if self.connected {
            self.input.insert_str(text);
            self.edited();
        }
    }

    /// Takes a key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Nothing;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        match key.code {
            KeyCode::Char('c') if ctrl => return Action::Quit,
            KeyCode::Char('d') if ctrl && self.input.is_empty() => return Action::Quit,
            KeyCode::Char('l') if ctrl => return Action::Redraw,
            MEMBERS_KEY => return self.toggle_panel(),
            KeyCode::PageUp => {
                self.scroll += self.page.saturating_sub(1).max(1);
                return Action::Nothing;
            }
            KeyCode::PageDown => {
                self.scroll = self
                    .scroll
                    .saturating_sub(self.page.saturating_sub(1).max(1));
                if self.scroll == 0 {
                    self.unseen = 0;
                }
                return Action::Nothing;
            }
            _ => {}
        }
        if !self.connected {
            return match key.code {
                KeyCode::Enter | KeyCode::Esc => Action::Quit,
                _ => Action::Nothing,
            };
        }
        // What the key does to the input field, and whether that changes the text.
        let (edit, changes): (fn(&mut Input), bool) = match key.code {
            // Alt+Enter everywhere; Shift+Enter where the terminal tells it from Enter.
            KeyCode::Enter if alt || shift || ctrl => (Input::newline, true),
            KeyCode::Enter => return self.enter(),
            KeyCode::Up => {
                if !self.input.up() {
                    self.recall(true);
                }
                return Action::Nothing;
            }
            KeyCode::Down => {
                if !self.input.down() {
                    self.recall(false);
                }
                return Action::Nothing;
            }
            KeyCode::Esc => {
                self.notice = None;
                return Action::Nothing;
            }
            KeyCode::Char(c) if !ctrl && !alt => {
                self.input.insert(c);
                self.edited();
                return Action::Nothing;
            }
            KeyCode::Left => (Input::left, false),
            KeyCode::Right => (Input::right, false),
            KeyCode::Home => (Input::home, false),
            KeyCode::End => (Input::end, false),
            KeyCode::Backspace => (Input::backspace, true),
            KeyCode::Delete => (Input::delete, true),
            KeyCode::Char(c) if ctrl => match c {
                'a' => (Input::home, false),
                'e' => (Input::end, false),
                'b' => (Input::left, false),
                'f' => (Input::right, false),
                'h' => (Input::backspace, true),
                'd' => (Input::delete, true),
                'u' => (Input::kill_to_start, true),
                'k' => (Input::kill_to_end, true),
                'w' => (Input::delete_word, true),
                // Ctrl-J is a line feed: a new line, as in many terminal programs.
                'j' => (Input::newline, true),
                _ => return Action::Nothing,
            },
            _ => return Action::Nothing,
        };
        edit(&mut self.input);
        if changes {
            self.edited();
        }
        Action::Nothing
    }

    fn edited(&mut self) {
        self.recall = None;
        self.notice = None;
    }

    fn enter(&mut self) -> Action {
        let typed = self.input.text().to_owned();
        // Line breaks at either end (a paste's last one, say) are not part of the message.
        let text = typed.trim_matches('\n');
        let command = text.trim();
        if command.is_empty() {
            // The server closes the connection of anyone sending an empty message.
            return Action::Nothing;
        }
        if command == "/quit" {
            return Action::Quit;
        }
        if self.reconnecting && !command.starts_with('/') {
            // Kept in the input, to send once the connection is back.
            self.warn("not sent: reconnecting\u{2026}");
            return Action::Nothing;
        }
        if command == "/who" {
            self.remember(&typed);
            self.input.clear();
            self.recall = None;
            if self.panel {
                return self.ask_members();
            }
            return self.toggle_panel();
        }
        if command == "/help" {
            self.input.clear();
            let help = self.help();
            self.push(crate::format::now(), EntryKind::Info(help));
            return Action::Nothing;
        }
        let message = if let Some(rest) = text.strip_prefix("//") {
            format!("/{rest}")
        } else if text.starts_with('/') {
            // Cleared, so the next line starts afresh; Up brings it back to fix a typo.
            let name = command.split_whitespace().next().unwrap_or(command);
            let hint = format!("unknown command {name} \u{2014} /help lists the commands");
            self.remember(&typed);
            self.input.clear();
            self.recall = None;
            self.warn(&hint);
            return Action::Nothing;
        } else {
            text.to_owned()
        };
        if let Err(warning) = check_length(&message, self.limit) {
            self.warn(&warning);
            return Action::Nothing;
        }
        self.input.clear();
        self.recall = None;
        Action::Send(message)
    }

    /// The keys and commands, with this server's limit.
    fn help(&self) -> String {
        format!(
            "Enter sends · Alt+Enter (Shift+Enter, Ctrl-J) starts a new line · /quit, Ctrl-C \
             or Ctrl-D leave · PgUp/PgDn scroll · Up/Down recall sent lines · Ctrl-A/E start/end \
             · Ctrl-U/K/W delete · Ctrl-L redraws the screen · F2 shows or hides the members \
             (/who shows them) · //text sends /text · messages up to {} characters",
            self.limit
        )
    }

    /// Shows or hides the member panel; showing it asks for a fresh list where the server
    /// keeps one (a large room may have stopped announcing every join and leave).
    fn toggle_panel(&mut self) -> Action {
        self.panel = !self.panel;
        if self.panel {
            self.ask_members()
        } else {
            Action::Nothing
        }
    }

    fn ask_members(&self) -> Action {
        if self.presence && self.connected {
            Action::AskMembers
        } else {
            Action::Nothing
        }
    }

    /// Up (`back`) and Down through the lines entered so far.
    fn recall(&mut self, back: bool) {
        if self.sent.is_empty() {
            return;
        }
        let next = match (self.recall, back) {
            (None, true) => Some(self.sent.len() - 1),
            (None, false) => None,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i + 1 < self.sent.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        match next {
            Some(i) => self.input.set(&self.sent[i]),
            None => self.input.clear(),
        }
        self.recall = next;
    }

    fn push(&mut self, time: String, kind: EntryKind) {
        if self.history.len() == HISTORY_LIMIT {
            self.history.remove(0);
        }
        let entry = Entry { time, kind };
        if self.scroll > 0 {
            // Scrolled up: the rows being read stay where they are, and a marker counts what
            // came in below them.
            self.scroll += self.rows_of(&entry, self.history_width).len();
            if matches!(entry.kind, EntryKind::Message { .. }) {
                self.unseen += 1;
            }
        }
        self.history.push(entry);
    }

    /// Draws history, status line, input field and (when shown) the member panel into
    /// `frame`; `members` is the room's member list, when the server gives one.
    pub fn draw(&mut self, frame: &mut Frame, members: Option<&BTreeSet<String>>) {
        let area = frame.area();
        let input_rows = u16::try_from(self.input.line_count())
            .unwrap_or(u16::MAX)
            .min(MAX_INPUT_ROWS)
            .min((area.height / 3).max(1));
        let [history_area, status_area, input_area] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(input_rows),
        ])
        .areas(area);
        let history_area = if self.panel && history_area.width >= PANEL_WIDTH + MIN_CHAT_WIDTH {
            let [chat, panel] =
                Layout::horizontal([Constraint::Min(1), Constraint::Length(PANEL_WIDTH)])
                    .areas(history_area);
            self.draw_panel(frame, panel, members);
            chat
        } else {
            history_area
        };
        self.draw_history(frame, history_area);
        self.draw_status(frame, status_area);
        self.draw_input(frame, input_area);
    }

    fn draw_history(&mut self, frame: &mut Frame, area: Rect) {
        let width = usize::from(area.width);
        let height = usize::from(area.height);
        self.page = height.max(1);
        self.history_width = width;
        let rows = self.last_rows(width, height + self.scroll);
        self.scroll = self.scroll.min(rows.len().saturating_sub(height));
        if self.scroll == 0 {
            self.unseen = 0;
        }
        let end = rows.len() - self.scroll;
        let buf = frame.buffer_mut();
        for (y, row) in (area.y..).zip(&rows[end.saturating_sub(height)..end]) {
            draw_row(
                buf,
                Rect {
                    y,
                    height: 1,
                    ..area
                },
                row,
            );
        }
        if self.unseen > 0 && height > 0 {
            // Over the last history row, so that nothing above it moves.
            let bar = Style::new()
                .add_modifier(Modifier::REVERSED)
                .add_modifier(Modifier::BOLD);
            let plural = if self.unseen == 1 { "" } else { "s" };
            let text = format!(
                " \u{2193} {} new message{plural} below \u{b7} PgDn to read ",
                self.unseen
            );
            let row = Rect {
                y: area.bottom() - 1,
                height: 1,
                ..area
            };
            blank_to(buf, row.left(), row.right(), row.y, bar);
            draw_row(buf, row, &glyphs(&text, bar, &self.widths));
        }
    }

    /// The member panel: a line down its left edge, a title with the count, and the names
    /// (people first, then bots; ours in green), as many as fit.
    fn draw_panel(&self, frame: &mut Frame, area: Rect, members: Option<&BTreeSet<String>>) {
        let buf = frame.buffer_mut();
        let area = area.intersection(buf.area);
        if area.is_empty() {
            return;
        }
        let edge = Style::new().fg(Color::DarkGray);
        let dim = Style::new()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::ITALIC);
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let mut lines: Vec<Vec<Glyph>> = Vec::new();
        match members {
            Some(members) => {
                let names = sorted_members(members);
                lines.push(glyphs(
                    &format!("Members ({})", names.len()),
                    bold,
                    &self.widths,
                ));
                let room = usize::from(area.height).saturating_sub(1);
                let shown = if names.len() > room {
                    room.saturating_sub(1)
                } else {
                    names.len()
                };
                for name in &names[..shown] {
                    let style = if *name == self.me {
                        Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
                    } else {
                        Style::new().fg(nick_color(name))
                    };
                    lines.push(glyphs(&sanitize(name), style, &self.widths));
                }
                if shown < names.len() {
                    let more = format!("… {} more", names.len() - shown);
                    lines.push(glyphs(&more, dim, &self.widths));
                }
            }
            None => {
                lines.push(glyphs("Members", bold, &self.widths));
                for text in ["not listed by", "this server"] {
                    lines.push(glyphs(text, dim, &self.widths));
                }
            }
        }
        for y in area.top()..area.bottom() {
            blank_to(buf, area.left(), area.right(), y, Style::new());
            draw_row(
                buf,
                Rect {
                    y,
                    height: 1,
                    ..area
                },
                &glyphs("│ ", edge, &self.widths),
            );
        }
        for (y, line) in (area.top()..area.bottom()).zip(&lines) {
            let row = Rect {
                x: area.x + 2,
                y,
                width: area.width.saturating_sub(2),
                height: 1,
            };
            draw_row(buf, row, line);
        }
    }

    fn draw_status(&self, frame: &mut Frame, area: Rect) {
        let (status, notice, is_hint) = self.status_line();
        let buf = frame.buffer_mut();
        let area = area.intersection(buf.area);
        if area.is_empty() {
            return;
        }
        let bar = Style::new().add_modifier(Modifier::REVERSED);
        blank_to(buf, area.left(), area.right(), area.y, bar);
        // The notice goes on the right, over the end of the status (the server's address)
        // when the line is short; the hint only shows where there is room.
        let notice_width = u16::try_from(width_of(&notice)).unwrap_or(u16::MAX);
        let status_width = u16::try_from(width_of(&status)).unwrap_or(u16::MAX);
        let notice_x = if is_hint && area.width.saturating_sub(status_width) < notice_width {
            area.right()
        } else {
            area.right().saturating_sub(notice_width).max(area.x)
        };
        draw_row(
            buf,
            Rect {
                width: notice_x - area.x,
                ..area
            },
            &status,
        );
        draw_row(
            buf,
            Rect {
                x: notice_x,
                width: area.right() - notice_x,
                ..area
            },
            &notice,
        );
    }

    fn draw_input(&self, frame: &mut Frame, area: Rect) {
        const PROMPT: u16 = 2;
        let view = self.input.view(
            usize::from(area.width.saturating_sub(PROMPT)),
            usize::from(area.height),
            &self.widths,
        );
        let buf = frame.buffer_mut();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        for ((y, row), line) in (area.y..area.bottom())
            .zip(&view.rows)
            .zip(view.first_line..)
        {
            let prompt = if self.connected && line == 0 {
                "> "
            } else {
                "  "
            };
            let row_area = Rect {
                y,
                height: 1,
                ..area
            };
            let mut cells = glyphs(prompt, bold, &self.widths);
            cells.extend(row.iter().map(|(text, width)| Glyph {
                text: text.clone(),
                style: Style::new(),
                width: *width,
            }));
            draw_row(buf, row_area, &cells);
        }
        if self.connected && !area.is_empty() {
            let (row, column) = view.cursor;
            let x = area.x + PROMPT + u16::try_from(column).unwrap_or(u16::MAX);
            let y = area.y + u16::try_from(row).unwrap_or(0);
            frame.set_cursor_position(Position::new(
                x.min(area.right().saturating_sub(1)),
                y.min(area.bottom() - 1),
            ));
        }
    }

    /// The status line: connection state, name and server on the left; the notice (a warning,
    /// the scroll state, the length, or a hint) for the right, and whether it is only the hint.
    fn status_line(&self) -> (Vec<Glyph>, Vec<Glyph>, bool) {
        let bar = Style::new().add_modifier(Modifier::REVERSED);
        let (state, state_style) = if self.reconnecting {
            (
                " reconnecting\u{2026} ",
                bar.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            )
        } else if self.connected {
            (
                " connected ",
                bar.fg(Color::Green).add_modifier(Modifier::BOLD),
            )
        } else {
            (
                " disconnected ",
                bar.fg(Color::Red).add_modifier(Modifier::BOLD),
            )
        };
        let input = self.input.text();
        let too_long = check_length(input, self.limit).is_err();
        let is_hint = self.notice.is_none() && !too_long && self.scroll == 0;
        let (right, warning) = if let Some(notice) = &self.notice {
            (notice.text.clone(), notice.warning)
        } else if too_long {
            let count = clichat_client::message_length(input);
            (format!("too long to send: {count}/{}", self.limit), true)
        } else if self.scroll > 0 {
            ("scrolled up: PgDn to go back down".to_owned(), false)
        } else if input.is_empty() {
            (
                "Enter sends · /quit leaves · F2 members · /help".to_owned(),
                false,
            )
        } else {
            let count = clichat_client::message_length(input);
            (
                format!("{count}/{} · Enter sends · Alt+Enter new line", self.limit),
                false,
            )
        };
        let right_style = if warning {
            bar.fg(Color::Yellow).add_modifier(Modifier::BOLD)
        } else {
            bar
        };
        let mut status = glyphs(state, state_style, &self.widths);
        status.extend(glyphs(
            &format!("│ {} │ {} ", sanitize(&self.me), sanitize(&self.server)),
            bar,
            &self.widths,
        ));
        let notice = glyphs(
            &format!(" {} ", sanitize(&right)),
            right_style,
            &self.widths,
        );
        (status, notice, is_hint)
    }

    /// At least the last `needed` rows of history wrapped to `width` (fewer if the history is
    /// shorter), oldest first. Only the entries needed are wrapped.
    fn last_rows(&self, width: usize, needed: usize) -> Vec<Vec<Glyph>> {
        let mut rows: Vec<Vec<Glyph>> = Vec::new();
        for entry in self.history.iter().rev() {
            if rows.len() >= needed {
                break;
            }
            let mut wrapped = self.rows_of(entry, width);
            wrapped.append(&mut rows);
            rows = wrapped;
        }
        rows
    }

    /// An entry's rows at `width`.
    fn rows_of(&self, entry: &Entry, width: usize) -> Vec<Vec<Glyph>> {
        if let EntryKind::Divider(label) = &entry.kind {
            // `── label ───…` across the whole width.
            let style = Style::new().fg(Color::DarkGray);
            let mut row = glyphs(
                &format!("\u{2500}\u{2500} {} ", sanitize(label)),
                style,
                &self.widths,
            );
            let fill = width.saturating_sub(width_of(&row));
            row.extend(glyphs(&"\u{2500}".repeat(fill), style, &self.widths));
            return wrap(vec![row], width, 0);
        }
        let (lines, text_column) = self.lines_of(entry);
        wrap(
            lines,
            width,
            continuation_indent(text_column, width, TIME_WIDTH),
        )
    }

    /// An entry as lines of glyphs, everything from the network sanitized, and the column its
    /// text starts at (where its continuation rows go).
    fn lines_of(&self, entry: &Entry) -> (Vec<Vec<Glyph>>, usize) {
        let widths = &self.widths;
        let mut first = glyphs(
            &format!("{} ", entry.time),
            Style::new().fg(Color::DarkGray),
            widths,
        );
        let (nick, nick_style, text, text_style) = match &entry.kind {
            EntryKind::Message {
                from,
                text,
                mention,
            } => {
                let text_style = if *mention {
                    Style::new()
                        .fg(Color::Black)
                        .bg(Color::Yellow)
                        .add_modifier(Modifier::BOLD)
                } else {
                    Style::new()
                };
                let nick_style = Style::new()
                    .fg(nick_color(from))
                    .add_modifier(Modifier::BOLD);
                (from, nick_style, text, text_style)
            }
            EntryKind::Earlier { from, text } => {
                // Dimmed: said before we came, not to be taken for something new.
                let dim = Style::new().add_modifier(Modifier::DIM);
                (
                    from,
                    dim.fg(nick_color(from)),
                    text,
                    dim.fg(Color::DarkGray),
                )
            }
            EntryKind::Own(text) => {
                let nick_style = Style::new().fg(Color::Green).add_modifier(Modifier::BOLD);
                (&self.me, nick_style, text, Style::new())
            }
            EntryKind::Joined(name) => {
                let style = Style::new().fg(Color::Green).add_modifier(Modifier::ITALIC);
                let text = format!("*** {} joined", sanitize(name));
                return system_line(first, &text, style, widths);
            }
            EntryKind::Left(name) => {
                let style = Style::new()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::ITALIC);
                let text = format!("*** {} left", sanitize(name));
                return system_line(first, &text, style, widths);
            }
            EntryKind::Refusal(text) => {
                let style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
                let text = format!("!!! {}", sanitize(text));
                return system_line(first, &text, style, widths);
            }
            EntryKind::Info(text) => {
                let text = format!("*** {}", sanitize(text));
                return system_line(first, &text, Style::new().fg(Color::Cyan), widths);
            }
            EntryKind::Divider(label) => {
                // Drawn across the width by `rows_of`; this is its text alone.
                let text = format!("\u{2500}\u{2500} {}", sanitize(label));
                return (vec![glyphs(&text, Style::new(), widths)], 0);
            }
            EntryKind::Disconnected(text) => {
                let style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
                let text = format!("!!! disconnected: {}", sanitize(text));
                return system_line(first, &text, style, widths);
            }
        };
        first.extend(glyphs(&format!("<{}>", sanitize(nick)), nick_style, widths));
        first.extend(glyphs(" ", Style::new(), widths));
        let column = width_of(&first);
        let mut lines = vec![first];
        // The message's own line breaks: each line is drawn on rows of its own, under the
        // text. A `\r` before a break belongs to the break; any other shows as `^M`.
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = glyphs(&sanitize(line), text_style, widths);
            if i == 0 {
                lines[0].extend(line);
            } else {
                lines.push(line);
            }
        }
        (lines, column)
    }
}

/// A line of the client's or the server's (`*** ...`, `!!! ...`) after its time, and the column
/// its text starts at, past the `*** `.
fn system_line(
    mut line: Vec<Glyph>,
    text: &str,
    style: Style,
    widths: &Widths,
) -> (Vec<Vec<Glyph>>, usize) {
    let column = width_of(&line) + 4;
    line.extend(glyphs(text, style, widths));
    (vec![line], column)
}

#[cfg(test)]
mod tests {
    use clichat_client::Closed;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;

    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn alt_enter() -> KeyEvent {
        KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            assert_eq!(app.on_key(key(KeyCode::Char(c))), Action::Nothing);
        }
    }

    fn app() -> App {
        App::new("ws://chat.test:70/", "alice", 200)
    }

    fn message(app: &mut App, from: &str, text: &str) {
        app.on_event(
            Event::Message {
                from: from.into(),
                text: text.into(),
            },
            "10:00:00".into(),
        );
    }

    /// The frame as drawn.
    fn buffer(app: &mut App, width: u16, height: u16) -> Buffer {
        buffer_with(app, width, height, None)
    }

    /// The frame as drawn with a member list.
    fn buffer_with(
        app: &mut App,
        width: u16,
        height: u16,
        members: Option<&BTreeSet<String>>,
    ) -> Buffer {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| app.draw(frame, members)).unwrap();
        terminal.backend().buffer().clone()
    }

    /// The screen as text, one string per row.
    fn screen(app: &mut App, width: u16, height: u16) -> Vec<String> {
        screen_with(app, width, height, None)
    }

    /// The screen as text with a member list.
    fn screen_with(
        app: &mut App,
        width: u16,
        height: u16,
        members: Option<&BTreeSet<String>>,
    ) -> Vec<String> {
        let buffer = buffer_with(app, width, height, members);
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn enter_sends_the_line_and_clears_it() {
        let mut app = app();
        type_text(&mut app, "hello there");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send("hello there".into())
        );
        assert_eq!(app.input(), "");
        app.sent("hello there".into(), "10:00:00".into());
        assert_eq!(
            app.history().last().unwrap().kind,
            EntryKind::Own("hello there".into())
        );
    }

    #[test]
    fn blank_lines_are_never_sent() {
        let mut app = app();
        type_text(&mut app, "   ");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
        app.on_key(alt_enter());
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
    }

    #[test]
    fn quit_by_command_ctrl_c_or_ctrl_d_on_an_empty_line() {
        let mut app = app();
        assert_eq!(app.on_key(ctrl('c')), Action::Quit);
        assert_eq!(app.on_key(ctrl('d')), Action::Quit);
        type_text(&mut app, "/quit");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Quit);
        assert_eq!(app.on_key(ctrl('l')), Action::Redraw);
    }

    #[test]
    fn unknown_commands_are_cleared_with_a_hint() {
        let mut app = app();
        type_text(&mut app, "/whois bob");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
        assert_eq!(
            app.notice().unwrap().text,
            "unknown command /whois \u{2014} /help lists the commands"
        );
        assert_eq!(app.input(), "", "cleared for the next line");
        let rows = screen(&mut app, 80, 5);
        assert!(rows[3].contains("unknown command /whois"), "{rows:?}");

        // The next line is not glued to it.
        type_text(&mut app, "/me waves");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
        assert!(app.notice().unwrap().text.contains("unknown command /me "));
        // Up brings a command back, to fix it.
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.input(), "/me waves");
        app.on_key(ctrl('u'));
        type_text(&mut app, "//shrug");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send("/shrug".into())
        );
        type_text(&mut app, "/help");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
        let EntryKind::Info(help) = &app.history().last().unwrap().kind else {
            panic!("no help");
        };
        assert!(help.contains("up to 200 characters"), "{help}");
    }

    #[test]
    fn over_the_limit_is_warned_about_and_not_sent() {
        let mut app = App::new("ws://chat.test:70/", "alice", 10);
        type_text(&mut app, "12345678901");
        assert!(screen(&mut app, 80, 5)[3].contains("too long to send: 11/10"));
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
        assert!(app.notice().unwrap().text.contains("[11/10]"));
        assert_eq!(app.input(), "12345678901");
        app.on_key(key(KeyCode::Backspace));
        assert!(screen(&mut app, 100, 5)[3].contains(" 10/10 · Enter sends"));
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send("1234567890".into())
        );
    }

    #[test]
    fn the_servers_limit_replaces_a_wrong_one() {
        let mut app = App::new("ws://chat.test:70/", "alice", 500);
        app.on_event(
            Event::Refusal("message is too long [300/200]".into()),
            "10:00:00".into(),
        );
        type_text(&mut app, &"x".repeat(201));
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
        assert!(app.connected(), "this refusal keeps the connection");
    }

    #[test]
    fn line_editing() {
        let mut app = app();
        type_text(&mut app, "helo world");
        for _ in 0..7 {
            app.on_key(key(KeyCode::Left));
        }
        type_text(&mut app, "l");
        assert_eq!(app.input(), "hello world");
        app.on_key(key(KeyCode::End));
        app.on_key(ctrl('w'));
        assert_eq!(app.input(), "hello ");
        app.on_key(key(KeyCode::Home));
        app.on_key(key(KeyCode::Delete));
        assert_eq!(app.input(), "ello ");
        app.on_key(ctrl('k'));
        assert_eq!(app.input(), "");
        app.on_paste("multi\r\nline\tpaste\u{1b}[31m");
        assert_eq!(app.input(), "multi\nline paste[31m");
    }

    #[test]
    fn up_and_down_recall_sent_messages() {
        let mut app = app();
        app.sent("first".into(), "10:00:00".into());
        app.sent("second".into(), "10:00:01".into());
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.input(), "second");
        app.on_key(key(KeyCode::Up));
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.input(), "first");
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.input(), "second");
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.input(), "");
    }

    #[test]
    fn events_are_drawn_with_times_and_the_status_line() {
        let mut app = app();
        app.on_event(Event::Join("bob".into()), "10:00:00".into());
        app.on_event(
            Event::Message {
                from: "bob".into(),
                text: "hi alice".into(),
            },
            "10:00:01".into(),
        );
        app.sent("hi bob".into(), "10:00:02".into());
        app.on_event(Event::Disconnect("bob".into()), "10:00:03".into());
        let rows = screen(&mut app, 60, 7);
        assert_eq!(rows[0], "10:00:00 *** bob joined");
        assert_eq!(rows[1], "10:00:01 <bob> hi alice");
        assert_eq!(rows[2], "10:00:02 <alice> hi bob");
        assert_eq!(rows[3], "10:00:03 *** bob left");
        assert!(
            rows[5].starts_with(" connected │ alice │ ws://chat.test:70/"),
            "{}",
            rows[5]
        );
        let rows = screen(&mut app, 100, 7);
        assert!(
            rows[5].ends_with(" /quit leaves · F2 members · /help"),
            "{}",
            rows[5]
        );
        assert_eq!(rows[6], ">");
    }

    /// Each nick has its FNV-1a colour; none has the system lines' cyan.
    #[test]
    fn nicks_are_coloured_by_name() {
        let mut app = app();
        app.on_event(
            Event::Joined {
                id: 1,
                version: None,
            },
            "10:00:00".into(),
        );
        for name in ["bob", "carol", "dave"] {
            message(&mut app, name, "hi");
        }
        let buffer = buffer(&mut app, 100, 8);
        assert_eq!(buffer[(9, 0)].fg, Color::Cyan, "the system line");
        for (y, name) in [(1, "bob"), (2, "carol"), (3, "dave")] {
            let nick = &buffer[(10, y)];
            assert_eq!(nick.fg, nick_color(name), "{name}");
            assert_ne!(nick.fg, Color::Cyan);
        }
        assert_ne!(nick_color("bob"), nick_color("carol"));
    }

    #[test]
    fn hostile_names_and_messages_cannot_inject_escape_sequences() {
        let mut app = app();
        app.on_event(
            Event::Message {
                from: "eve\u{1b}[2J".into(),
                text: "\u{1b}]0;title\u{7}\r\n<bob> fake line\u{9b}1m\rx".into(),
            },
            "10:00:00".into(),
        );
        let buffer = buffer(&mut app, 80, 5);
        for cell in buffer.content() {
            assert!(
                !cell.symbol().chars().any(char::is_control),
                "control character in cell {:?}",
                cell.symbol()
            );
        }
        let rows: Vec<String> = (0..2)
            .map(|y| {
                let row: String = (0..80).map(|x| buffer[(x, y)].symbol()).collect();
                row.trim_end().to_owned()
            })
            .collect();
        assert_eq!(rows[0], "10:00:00 <eve^[[2J> ^[]0;title^G");
        // The line break is the message's own: its line sits under the text, where no nick
        // ever starts, and a lone carriage return shows.
        assert_eq!(
            rows[1],
            format!("{}<bob> fake line\u{fffd}1m^Mx", " ".repeat(20))
        );
    }

    #[test]
    fn a_message_of_several_lines_is_written_and_shown_as_one() {
        let mut app = app();
        type_text(&mut app, "first line");
        assert_eq!(app.on_key(alt_enter()), Action::Nothing);
        type_text(&mut app, "second");
        app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::SHIFT));
        app.on_key(ctrl('j'));
        type_text(&mut app, "fourth");
        let rows = screen(&mut app, 40, 14);
        assert_eq!(&rows[10..], ["> first line", "  second", "", "  fourth"]);
        let rows = screen(&mut app, 40, 10);
        assert_eq!(
            &rows[7..],
            ["  second", "", "  fourth"],
            "a third of the screen at most"
        );
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send("first line\nsecond\n\nfourth".into())
        );
        app.sent("first line\nsecond\n\nfourth".into(), "10:00:00".into());
        app.on_paste("pasted\nlines\n");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send("pasted\nlines".into()),
            "one message, without the paste's last line break"
        );
        message(&mut app, "bob", "one\ntwo");
        let rows = screen(&mut app, 40, 10);
        assert_eq!(
            &rows[..6],
            [
                "10:00:00 <alice> first line",
                "                 second",
                "",
                "                 fourth",
                "10:00:00 <bob> one",
                "               two",
            ]
        );
    }

    #[test]
    fn a_mention_is_highlighted_and_rings_the_bell() {
        let mut app = app();
        message(&mut app, "bob", "nothing for you");
        assert!(!app.take_bell());
        message(&mut app, "bob", "Alice: are you there?");
        assert!(app.take_bell(), "rings once");
        assert!(!app.take_bell());
        let buffer = buffer(&mut app, 60, 5);
        let text = &buffer[(15, 1)];
        assert_eq!(text.symbol(), "A");
        assert_eq!((text.fg, text.bg), (Color::Black, Color::Yellow));
        assert!(text.modifier.contains(Modifier::BOLD));
        assert_eq!(buffer[(15, 0)].bg, Color::Reset, "no mention, no highlight");

        let mut quiet = app_without_bell();
        message(&mut quiet, "bob", "alice?");
        assert!(!quiet.take_bell(), "--no-bell");
        assert!(matches!(
            quiet.history()[0].kind,
            EntryKind::Message { mention: true, .. }
        ));

        let mut bot = App::new("ws://chat.test:70/", "[BOT] echo", 200);
        message(&mut bot, "bob", "echo, say hi");
        assert!(bot.take_bell());
    }

    fn app_without_bell() -> App {
        app().with_bell(false)
    }

    #[test]
    fn long_messages_wrap_under_the_text_and_scroll() {
        let mut app = app();
        let text = "word ".repeat(30);
        message(&mut app, "bob", &text);
        let rows = screen(&mut app, 40, 8);
        assert!(rows[0].starts_with("10:00:00 <bob> word"));
        assert!(
            rows[1].starts_with(&" ".repeat(15)) && !rows[1].starts_with(&" ".repeat(16)),
            "hanging indent under the text: {:?}",
            rows[1]
        );
        let shown: String = rows[..6].concat().split_whitespace().collect();
        assert_eq!(
            shown,
            format!("10:00:00<bob>{}", "word".repeat(30)),
            "{rows:?}"
        );

        for i in 0..20 {
            app.on_event(Event::Join(format!("user{i}")), "10:00:01".into());
        }
        let rows = screen(&mut app, 40, 8);
        assert!(
            rows[5].ends_with("user19 joined"),
            "follows the bottom: {rows:?}"
        );
        app.on_key(key(KeyCode::PageUp));
        let rows = screen(&mut app, 40, 8);
        assert!(rows[5].ends_with("user14 joined"), "{rows:?}");
        assert!(rows[6].contains("scrolled up"), "{rows:?}");
        for _ in 0..10 {
            app.on_key(key(KeyCode::PageUp));
        }
        let rows = screen(&mut app, 40, 8);
        assert!(
            rows[0].starts_with("10:00:00 <bob>"),
            "stops at the top: {rows:?}"
        );
        for _ in 0..20 {
            app.on_key(key(KeyCode::PageDown));
        }
        let rows = screen(&mut app, 40, 8);
        assert!(rows[5].ends_with("user19 joined"), "{rows:?}");
    }

    #[test]
    fn scrolled_up_the_text_stays_put_and_new_messages_are_counted() {
        let mut app = app();
        for i in 0..30 {
            message(&mut app, "bob", &format!("line {i}"));
        }
        screen(&mut app, 40, 8);
        app.on_key(key(KeyCode::PageUp));
        let before = screen(&mut app, 40, 8);
        assert!(before[5].ends_with("line 24"), "{before:?}");

        message(&mut app, "carol", "new one");
        app.on_event(Event::Join("dave".into()), "10:00:00".into());
        message(&mut app, "carol", &"a long one ".repeat(8));
        let after = screen(&mut app, 40, 8);
        assert_eq!(after[..5], before[..5], "the rows being read did not move");
        assert!(
            after[5].contains("2 new messages below · PgDn to read"),
            "{after:?}"
        );
        assert!(after[6].contains("scrolled up"), "{after:?}");

        // Scrolling down over them, and the marker goes once at the bottom.
        app.on_key(key(KeyCode::PageDown));
        let rows = screen(&mut app, 40, 8);
        assert!(rows[5].contains("2 new messages"), "{rows:?}");
        for _ in 0..10 {
            app.on_key(key(KeyCode::PageDown));
        }
        let rows = screen(&mut app, 40, 8);
        assert!(!rows[6].contains("scrolled up"), "{rows:?}");
        assert!(!rows.concat().contains("new message"), "{rows:?}");
        assert!(rows[5].contains("a long one"), "{rows:?}");
    }

    /// On a terminal that draws `👍🏽` in four cells (tmux 3.3), the row is laid out with four,
    /// and the emoji's cell carries that width for ratatui's diff.
    #[test]
    fn emoji_sequences_take_the_cells_the_terminal_gives_them() {
        let tmux = Widths::from_advances([4, 2, 1, 2, 1]);
        let mut app = app().with_widths(tmux);
        message(
            &mut app,
            "bob",
            "👍🏽 ok 👨\u{200d}👩\u{200d}👧 🇫🇷 ❤\u{fe0f}!",
        );
        let buffer = buffer(&mut app, 60, 4);
        use ratatui::buffer::CellWidth;
        assert_eq!(buffer[(15, 0)].symbol(), "👍🏽");
        assert_eq!(buffer[(15, 0)].cell_width(), 4);
        assert_eq!(buffer[(20, 0)].symbol(), "o");
        assert_eq!(buffer[(23, 0)].symbol(), "👨\u{200d}👩\u{200d}👧");
        assert_eq!(buffer[(26, 0)].symbol(), "🇫🇷");
        assert_eq!(buffer[(29, 0)].symbol(), "❤\u{fe0f}");
        assert_eq!(buffer[(29, 0)].cell_width(), 1);
        assert_eq!(buffer[(30, 0)].symbol(), "!");
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let mut app = app();
        app.on_event(Event::Join("bob".into()), "10:00:00".into());
        message(&mut app, "bob", "👍🏽\nline");
        type_text(&mut app, "typed");
        app.on_key(alt_enter());
        type_text(&mut app, "👨\u{200d}👩\u{200d}👧");
        app.on_key(key(KeyCode::PageUp));
        message(&mut app, "bob", "more");
        for (width, height) in [(1, 1), (1, 3), (5, 2), (0, 0), (3, 10), (2, 2)] {
            screen(&mut app, width, height);
        }
    }

    #[test]
    fn the_input_line_scrolls_to_keep_the_cursor_visible() {
        let mut app = app();
        type_text(&mut app, &"abcdefghij".repeat(3));
        let rows = screen(&mut app, 12, 4);
        assert_eq!(rows[3], "> bcdefghij", "the end, and a cell for the cursor");
        app.on_key(key(KeyCode::Home));
        let rows = screen(&mut app, 12, 4);
        assert_eq!(rows[3], "> abcdefghij");
    }

    #[test]
    fn a_refusal_that_closes_the_connection_ends_with_it() {
        let mut app = app();
        app.on_event(
            Event::Refusal("No profanity allowed!".into()),
            "10:00:00".into(),
        );
        app.on_event(
            Event::Closed(Closed {
                code: Some(1000),
                reason: String::new(),
            }),
            "10:00:00".into(),
        );
        assert!(!app.connected());
        let rows = screen(&mut app, 100, 5);
        assert!(
            rows[0].contains("!!! Your message was blocked by the server's word filter."),
            "{rows:?}"
        );
        assert!(rows[3].starts_with(" disconnected │"), "{rows:?}");
        type_text(&mut app, "x");
        assert_eq!(app.input(), "", "no typing once disconnected");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Quit);
        assert!(matches!(app.into_end(), End::Refused(text) if text.contains("word filter")));
    }

    #[test]
    fn a_server_shutdown_is_a_close_not_a_refusal() {
        let mut app = app();
        app.on_event(
            Event::Refusal("message is too long [201/200]".into()),
            "10:00:00".into(),
        );
        app.on_event(Event::Join("bob".into()), "10:00:01".into());
        app.on_event(
            Event::Closed(Closed {
                code: Some(1001),
                reason: String::new(),
            }),
            "10:00:02".into(),
        );
        assert!(matches!(app.into_end(), End::Closed(text) if text.contains("shutting down")));
    }

    fn cut() -> Closed {
        Closed {
            code: None,
            reason: "Connection reset without closing handshake".into(),
        }
    }

    fn said(from: &str, text: &str) -> Event {
        Event::Message {
            from: from.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_resume_shows_reconnecting_then_fills_in_the_gap() {
        let mut app = app();
        app.on_event(said("bob", "before"), "10:00:00".into());
        app.on_event(Event::Reconnecting(cut()), "10:00:01".into());
        assert!(app.connected(), "still worth reading events");
        let rows = screen(&mut app, 80, 6);
        assert!(
            rows[4].starts_with(" reconnecting\u{2026} │ alice"),
            "{rows:?}"
        );
        assert!(
            rows[4].trim_end().ends_with("reconnecting\u{2026}"),
            "{rows:?}"
        );
        assert!(
            rows[1].contains("*** the connection to the server was lost; reconnecting"),
            "{rows:?}"
        );
        type_text(&mut app, "typed meanwhile");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing, "not sent");
        assert_eq!(app.input(), "typed meanwhile", "kept to send later");

        app.on_event(
            Event::Resumed {
                id: 4,
                missed: 2,
                complete: true,
            },
            "10:00:03".into(),
        );
        app.on_event(said("bob", "gap one"), "10:00:03".into());
        app.on_event(said("carol", "gap two"), "10:00:03".into());
        app.on_event(said("bob", "live"), "10:00:04".into());
        let rows = screen(&mut app, 80, 10);
        let shown: Vec<&str> = rows.iter().map(|row| row.trim_end()).collect();
        assert!(
            shown[2].contains("reconnected: 2 messages said meanwhile follow"),
            "{shown:?}"
        );
        assert_eq!(shown[3], "10:00:03 <bob> gap one");
        assert_eq!(shown[4], "10:00:03 <carol> gap two");
        assert!(shown[5].contains("now"), "{shown:?}");
        assert_eq!(shown[6], "10:00:04 <bob> live");
        assert!(rows[8].starts_with(" connected │"), "{rows:?}");
        assert!(matches!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send(text) if text == "typed meanwhile"
        ));
    }

    #[test]
    fn a_failed_resume_says_to_log_in_again() {
        let mut app = app();
        app.on_event(Event::Reconnecting(cut()), "10:00:00".into());
        app.on_event(
            Event::ResumeFailed {
                reason: clichat_client::refusal::RESUME_REFUSED.into(),
            },
            "10:00:05".into(),
        );
        app.on_event(Event::Closed(cut()), "10:00:05".into());
        assert!(!app.connected());
        let rows = screen(&mut app, 100, 5);
        assert!(
            rows[1].contains(
                "could not reconnect: the server no longer holds this session; log in again"
            ),
            "{rows:?}"
        );
        assert!(rows[3].starts_with(" disconnected │"), "{rows:?}");
        assert!(matches!(app.into_end(), End::Closed(text) if text.contains("log in again")));
    }

    #[test]
    fn a_lost_connection_reads_as_a_sentence() {
        let lost = || {
            Event::Closed(Closed {
                code: None,
                reason: "WebSocket protocol error: Connection reset without closing handshake"
                    .into(),
            })
        };
        let mut terse = app();
        terse.on_event(lost(), "10:00:00".into());
        let rows = screen(&mut terse, 100, 4);
        assert_eq!(
            rows[0],
            "10:00:00 !!! disconnected: the connection to the server was lost"
        );
        let mut verbose = app().with_verbose(true);
        verbose.on_event(lost(), "10:00:00".into());
        assert!(screen(&mut verbose, 140, 4)[0].ends_with("without closing handshake]"));
    }

    fn history(complete: bool) -> Event {
        use clichat_client::{HistoryEntry, Stamp};
        let entry = |seq, from: &str, text: &str| HistoryEntry {
            stamp: Stamp {
                seq,
                time_ms: 1_764_000_000_000 + seq * 1000,
            },
            from: from.into(),
            text: text.into(),
        };
        Event::History {
            messages: vec![entry(1, "bob", "said before"), entry(2, "carol", "alice?")],
            complete,
        }
    }

    /// History comes dimmed at its own times, between an "earlier messages" and a "now" line,
    /// and a mention in it neither rings nor counts as new.
    #[test]
    fn history_is_set_apart_from_live_messages() {
        let mut app = app();
        app.on_event(
            Event::Joined {
                id: 1,
                version: None,
            },
            "10:00:00".into(),
        );
        app.on_event(history(false), "10:00:00".into());
        message(&mut app, "bob", "live");
        assert!(!app.take_bell(), "no bell for an old mention");
        let buffer = buffer(&mut app, 90, 9);
        let rows: Vec<String> = (0..6)
            .map(|y| (0..90).map(|x| buffer[(x, y)].symbol()).collect())
            .collect();
        assert!(
            rows[1].starts_with("── earlier messages (older ones were not kept) ──"),
            "{rows:?}"
        );
        assert!(rows[1].ends_with("──"), "across the width: {rows:?}");
        let first = time_of(1_764_000_001_000);
        assert!(
            rows[2].starts_with(&format!("{first} <bob> said before")),
            "{rows:?}"
        );
        assert!(rows[3].contains("<carol> alice?"), "{rows:?}");
        assert!(rows[4].starts_with("── now ───"), "{rows:?}");
        assert!(rows[4].ends_with("──"), "{rows:?}");
        assert!(rows[5].starts_with("10:00:00 <bob> live"), "{rows:?}");
        let old = &buffer[(15, 2)];
        assert_eq!(old.symbol(), "s");
        assert!(old.modifier.contains(Modifier::DIM), "history is dimmed");
        assert!(
            !buffer[(15, 5)].modifier.contains(Modifier::DIM),
            "live is not"
        );
        assert_eq!(
            buffer[(24, 3)].bg,
            Color::Reset,
            "an old mention is not highlighted"
        );

        // Nothing said before: no dividers.
        let mut quiet = super::tests::app();
        quiet.on_event(
            Event::History {
                messages: vec![],
                complete: true,
            },
            "10:00:00".into(),
        );
        assert!(quiet.history().is_empty());
        // A complete history says so plainly.
        let mut whole = super::tests::app();
        whole.on_event(history(true), "10:00:00".into());
        assert_eq!(
            whole.history()[0].kind,
            EntryKind::Divider("earlier messages".into())
        );
    }

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn f2_shows_and_hides_the_member_panel() {
        let mut app = app().with_presence(true);
        message(&mut app, "bob", "hi");
        let list = members(&["bob", "[BOT] echo", "alice", "Carol"]);
        let rows = screen_with(&mut app, 80, 8, Some(&list));
        assert!(!rows.concat().contains("Members"), "hidden at first");
        assert_eq!(
            app.on_key(key(MEMBERS_KEY)),
            Action::AskMembers,
            "opening it asks for a fresh list"
        );
        assert!(app.panel_shown());
        let buffer = buffer_with(&mut app, 80, 8, Some(&list));
        let rows: Vec<String> = (0..8)
            .map(|y| {
                (0..80)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect();
        assert!(rows[0].starts_with("10:00:00 <bob> hi"), "{rows:?}");
        assert!(rows[0].ends_with("│ Members (4)"), "{rows:?}");
        assert!(rows[1].ends_with("│ alice"), "people first: {rows:?}");
        assert!(rows[2].ends_with("│ bob"), "{rows:?}");
        assert!(rows[3].ends_with("│ Carol"), "ignoring case: {rows:?}");
        assert!(rows[4].ends_with("│ [BOT] echo"), "then bots: {rows:?}");
        assert_eq!(&rows[5][56..], "│", "{rows:?}");
        assert_eq!(buffer[(58, 1)].fg, Color::Green, "our name");
        assert_eq!(buffer[(58, 2)].fg, nick_color("bob"));

        // A long list ends with how many more there are.
        let crowd: Vec<String> = (0..20).map(|i| format!("user{i:02}")).collect();
        let crowd: BTreeSet<String> = crowd.into_iter().collect();
        let rows = screen_with(&mut app, 80, 8, Some(&crowd));
        assert!(rows[5].ends_with("│ … 16 more"), "{rows:?}");

        assert_eq!(app.on_key(key(MEMBERS_KEY)), Action::Nothing);
        assert!(!app.panel_shown());
        let rows = screen_with(&mut app, 80, 8, Some(&list));
        assert!(!rows.concat().contains("Members"), "{rows:?}");

        // /who shows it too, and asks again while it is shown.
        type_text(&mut app, "/who");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::AskMembers);
        assert!(app.panel_shown());
        assert_eq!(app.input(), "");
        type_text(&mut app, "/who");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::AskMembers);
        assert!(app.panel_shown());
    }

    #[test]
    fn without_presence_the_panel_says_so_and_nothing_is_asked() {
        let mut app = app();
        assert_eq!(app.on_key(key(MEMBERS_KEY)), Action::Nothing);
        let rows = screen(&mut app, 80, 8);
        assert!(rows[0].ends_with("│ Members"), "{rows:?}");
        assert!(rows[1].ends_with("│ not listed by"), "{rows:?}");
        // Too narrow for a panel beside the chat: the chat keeps the width.
        message(&mut app, "bob", "hello");
        let rows = screen(&mut app, 40, 8);
        assert!(!rows.concat().contains("Members"), "{rows:?}");
        assert!(rows[0].starts_with("10:00:00 <bob> hello"), "{rows:?}");
    }
}
