//! The full-screen chat's state and how it is drawn: history, input line, status line.
//!
//! Nothing here touches the terminal: keys and events go in, [`Action`]s come out, and
//! [`App::draw`] renders into any ratatui frame, so the tests drive it with a `TestBackend`.

use clichat_client::Event;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::UnicodeWidthChar;

use crate::End;
use crate::format::{check_length, closed_text, explain_refusal, limit_from_refusal, sanitize};

/// Entries kept in the history; older ones are dropped.
const HISTORY_LIMIT: usize = 10_000;

/// Width of the `HH:MM:SS ` in front of every entry, and the indent of wrapped rows.
const TIME_WIDTH: usize = 9;

const HELP: &str = "Enter sends · /quit, Ctrl-C or Ctrl-D leave · PgUp/PgDn scroll · \
                    Up/Down recall sent lines · Ctrl-A/E start/end · Ctrl-U/K/W delete · \
                    //text sends /text";

/// What the event loop should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    Nothing,
    /// Send this message, then report it with [`App::sent`].
    Send(String),
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
        /// What.
        text: String,
    },
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
    /// History rows visible at the last draw, for paging.
    page: usize,
    input: Input,
    /// Messages sent, for recall with Up/Down.
    sent: Vec<String>,
    recall: Option<usize>,
    notice: Option<Notice>,
    limit: usize,
    last_refusal: Option<String>,
    end: Option<End>,
}

impl App {
    /// A chat with `server` as `me`, warning before sending messages over `limit`.
    pub fn new(server: &str, me: &str, limit: usize) -> App {
        App {
            server: server.to_owned(),
            me: me.to_owned(),
            connected: true,
            history: Vec::new(),
            scroll: 0,
            page: 1,
            input: Input::default(),
            sent: Vec::new(),
            recall: None,
            notice: None,
            limit,
            last_refusal: None,
            end: None,
        }
    }

    /// Whether the connection is still open (events are still worth reading).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The history, oldest first.
    #[cfg(test)]
    pub fn history(&self) -> &[Entry] {
        &self.history
    }

    /// The text in the input line.
    #[cfg(test)]
    pub fn input(&self) -> String {
        self.input.text()
    }

    /// The notice in the status line, if any.
    #[cfg(test)]
    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
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
            Event::Message { from, text } => EntryKind::Message { from, text },
            Event::Refusal(reason) => {
                if let Some(limit) = limit_from_refusal(&reason) {
                    self.limit = limit;
                }
                let explained = explain_refusal(&reason);
                self.last_refusal = Some(reason);
                self.push(time, EntryKind::Refusal(explained));
                return;
            }
            Event::Closed(closed) => {
                self.connected = false;
                let end = match self.last_refusal.take() {
                    Some(reason) => End::Refused(explain_refusal(&reason)),
                    None => End::Closed(closed_text(&closed)),
                };
                self.end = Some(end);
                self.notice = Some(Notice {
                    text: "disconnected: press Enter to exit".to_owned(),
                    warning: true,
                });
                EntryKind::Disconnected(closed_text(&closed))
            }
            // Frames this client does not know or does not ask for (e.g. `Unknown`, `Invalid`).
            _ => return,
        };
        self.last_refusal = None;
        self.push(time, kind);
    }

    /// Records a message that was sent.
    pub fn sent(&mut self, text: String, time: String) {
        self.sent.push(text.clone());
        self.scroll = 0;
        self.push(time, EntryKind::Own(text));
    }

    /// Shows a warning in the status line.
    pub fn warn(&mut self, text: &str) {
        self.notice = Some(Notice {
            text: text.to_owned(),
            warning: true,
        });
    }

    /// Takes pasted text into the input line, as one line.
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
        match key.code {
            KeyCode::Char('c') if ctrl => return Action::Quit,
            KeyCode::Char('d') if ctrl && self.input.is_empty() => return Action::Quit,
            KeyCode::PageUp => {
                self.scroll += self.page.saturating_sub(1).max(1);
                return Action::Nothing;
            }
            KeyCode::PageDown => {
                self.scroll = self
                    .scroll
                    .saturating_sub(self.page.saturating_sub(1).max(1));
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
        let plain = !ctrl && !key.modifiers.contains(KeyModifiers::ALT);
        // What the key does to the input line, and whether that changes the text.
        let (edit, changes): (fn(&mut Input), bool) = match key.code {
            KeyCode::Enter => return self.enter(),
            KeyCode::Up => {
                self.recall(true);
                return Action::Nothing;
            }
            KeyCode::Down => {
                self.recall(false);
                return Action::Nothing;
            }
            KeyCode::Esc => {
                self.notice = None;
                return Action::Nothing;
            }
            KeyCode::Char(c) if plain => {
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
        let text = self.input.text();
        let command = text.trim();
        if command.is_empty() {
            // The server closes the connection of anyone sending an empty message.
            return Action::Nothing;
        }
        if command == "/quit" {
            return Action::Quit;
        }
        if command == "/help" {
            self.input.clear();
            self.push(crate::format::now(), EntryKind::Info(HELP.to_owned()));
            return Action::Nothing;
        }
        let message = if let Some(rest) = text.strip_prefix("//") {
            format!("/{rest}")
        } else if text.starts_with('/') {
            let name = command.split_whitespace().next().unwrap_or(command);
            self.warn(&format!(
                "unknown command {name}: /help lists them; //text sends /text"
            ));
            return Action::Nothing;
        } else {
            text
        };
        if let Err(warning) = check_length(&message, self.limit) {
            self.warn(&warning);
            return Action::Nothing;
        }
        self.input.clear();
        self.recall = None;
        Action::Send(message)
    }

    /// Up (`back`) and Down through the messages sent so far.
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
        self.history.push(Entry { time, kind });
    }

    /// Draws history, status line and input line into `frame`.
    pub fn draw(&mut self, frame: &mut Frame) {
        let [history_area, status_area, input_area] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());

        let height = usize::from(history_area.height);
        self.page = height.max(1);
        let rows = self.last_rows(usize::from(history_area.width), height + self.scroll);
        self.scroll = self.scroll.min(rows.len().saturating_sub(height));
        let end = rows.len() - self.scroll;
        let visible = rows[end.saturating_sub(height)..end].to_vec();
        frame.render_widget(Paragraph::new(visible), history_area);

        // The notice goes on the right, over the server's address when the line is short.
        let (status, notice, is_hint) = self.status_line();
        // The hint only shows where there is room; anything else covers what it must.
        let room = usize::from(status_area.width).saturating_sub(status.width());
        let notice = if is_hint && notice.width() > room {
            Line::default()
        } else {
            notice
        };
        frame.render_widget(
            Paragraph::new(status).style(Style::new().add_modifier(Modifier::REVERSED)),
            status_area,
        );
        let notice_width = u16::try_from(notice.width()).unwrap_or(u16::MAX);
        let notice_area = Rect {
            x: status_area
                .right()
                .saturating_sub(notice_width)
                .max(status_area.x),
            width: notice_width.min(status_area.width),
            ..status_area
        };
        frame.render_widget(Paragraph::new(notice), notice_area);

        let prompt = if self.connected { "> " } else { "  " };
        let width = usize::from(input_area.width).saturating_sub(prompt.len());
        let (shown, cursor) = self.input.view(width);
        let input_line = Line::from(vec![
            Span::styled(prompt, Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(shown),
        ]);
        frame.render_widget(Paragraph::new(input_line), input_area);
        if self.connected {
            let x = input_area.x + u16::try_from(prompt.len() + cursor).unwrap_or(u16::MAX);
            frame.set_cursor_position(Position::new(x.min(input_area.right()), input_area.y));
        }
    }

    /// The status line: connection state, name and server on the left; the notice (a warning,
    /// the scroll state, or a hint) for the right, and whether it is only the hint.
    fn status_line(&self) -> (Line<'static>, Line<'static>, bool) {
        let bar = Style::new().add_modifier(Modifier::REVERSED);
        let (state, state_style) = if self.connected {
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
        let is_hint =
            self.notice.is_none() && check_length(&input, self.limit).is_ok() && self.scroll == 0;
        let (right, warning) = if let Some(notice) = &self.notice {
            (notice.text.clone(), notice.warning)
        } else if check_length(&input, self.limit).is_err() {
            let count = clichat_client::message_length(&input);
            (format!("too long to send: {count}/{}", self.limit), true)
        } else if self.scroll > 0 {
            ("scrolled up: PgDn to go back down".to_owned(), false)
        } else {
            ("Enter sends · /quit leaves · /help".to_owned(), false)
        };
        let right_style = if warning {
            bar.fg(Color::Yellow).add_modifier(Modifier::BOLD)
        } else {
            bar
        };
        let status = Line::from(vec![
            Span::styled(state, state_style),
            Span::styled(
                format!("│ {} │ {} ", sanitize(&self.me), sanitize(&self.server)),
                bar,
            ),
        ])
        .style(bar);
        let notice = Line::from(Span::styled(format!(" {} ", sanitize(&right)), right_style));
        (status, notice, is_hint)
    }

    /// At least the last `needed` rows of history wrapped to `width` (fewer if the history is
    /// shorter), oldest first. Only the entries needed are wrapped.
    fn last_rows(&self, width: usize, needed: usize) -> Vec<Line<'static>> {
        let mut rows: Vec<Line<'static>> = Vec::new();
        for entry in self.history.iter().rev() {
            if rows.len() >= needed {
                break;
            }
            let mut wrapped = wrap(&self.spans(entry), width, TIME_WIDTH);
            wrapped.append(&mut rows);
            rows = wrapped;
        }
        rows
    }

    /// An entry as styled pieces of text, everything from the network sanitized.
    fn spans(&self, entry: &Entry) -> Vec<(String, Style)> {
        let time = (format!("{} ", entry.time), Style::new().fg(Color::DarkGray));
        let plain = Style::new();
        let notice = |text: String, style: Style| vec![time.clone(), (text, style)];
        match &entry.kind {
            EntryKind::Message { from, text } => vec![
                time.clone(),
                (
                    format!("<{}>", sanitize(from)),
                    Style::new()
                        .fg(name_color(from))
                        .add_modifier(Modifier::BOLD),
                ),
                (format!(" {}", sanitize(text)), plain),
            ],
            EntryKind::Own(text) => vec![
                time.clone(),
                (
                    format!("<{}>", sanitize(&self.me)),
                    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
                ),
                (format!(" {}", sanitize(text)), plain),
            ],
            EntryKind::Joined(name) => notice(
                format!("*** {} joined", sanitize(name)),
                Style::new().fg(Color::Green).add_modifier(Modifier::ITALIC),
            ),
            EntryKind::Left(name) => notice(
                format!("*** {} left", sanitize(name)),
                Style::new()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::ITALIC),
            ),
            EntryKind::Refusal(text) => notice(
                format!("!!! refused: {text}"),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            EntryKind::Info(text) => notice(
                format!("*** {}", sanitize(text)),
                Style::new().fg(Color::Cyan),
            ),
            EntryKind::Disconnected(text) => notice(
                format!("!!! disconnected: {text}"),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
        }
    }
}

/// A colour per name, the same every time, so speakers are told apart at a glance.
fn name_color(name: &str) -> Color {
    const PALETTE: [Color; 6] = [
        Color::Cyan,
        Color::Magenta,
        Color::Blue,
        Color::LightCyan,
        Color::LightMagenta,
        Color::LightBlue,
    ];
    let hash = name.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    PALETTE[hash % PALETTE.len()]
}

/// Wraps styled text into rows at most `width` cells wide, breaking after a space where there
/// is one (a word longer than a row is cut); rows after the first are indented by `indent`
/// (when the width leaves room for it).
fn wrap(pieces: &[(String, Style)], width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = if indent * 3 <= width { indent } else { 0 };
    let mut rows = Vec::new();
    // The row being filled: characters with their style, after the indent.
    let mut row: Vec<(char, Style)> = Vec::new();
    let mut used = 0;
    let cell = |c: char| c.width().unwrap_or(0);
    for (text, style) in pieces {
        for c in text.chars() {
            let w = cell(c);
            if used + w > width && !row.is_empty() {
                // Break after the last space if that keeps something on this row and the
                // carried word fits on the next one; else cut here.
                let fits = |cut: &usize| {
                    let carried: usize = row[*cut..].iter().map(|&(c, _)| cell(c)).sum();
                    indent + carried + w <= width
                };
                let cut = row
                    .iter()
                    .rposition(|&(c, _)| c == ' ')
                    .filter(|&space| space > 0)
                    .map(|space| space + 1)
                    .filter(fits)
                    .unwrap_or(row.len());
                let carry = row.split_off(cut);
                rows.push(styled_row(&row, if rows.is_empty() { 0 } else { indent }));
                row = carry;
                used = indent + row.iter().map(|&(c, _)| cell(c)).sum::<usize>();
                if c == ' ' && row.is_empty() {
                    continue;
                }
            }
            row.push((c, *style));
            used += w;
        }
    }
    rows.push(styled_row(&row, if rows.is_empty() { 0 } else { indent }));
    rows
}

/// One row of styled characters as a line of spans, one span per run of a style.
fn styled_row(row: &[(char, Style)], indent: usize) -> Line<'static> {
    let mut spans = Vec::new();
    if indent > 0 {
        spans.push(Span::raw(" ".repeat(indent)));
    }
    let mut run = String::new();
    let mut run_style = None;
    for &(c, style) in row {
        if run_style.is_some_and(|s| s != style) {
            spans.push(Span::styled(
                std::mem::take(&mut run),
                run_style.unwrap_or_default(),
            ));
        }
        run_style = Some(style);
        run.push(c);
    }
    if let Some(style) = run_style {
        spans.push(Span::styled(run, style));
    }
    Line::from(spans)
}

/// The input line: text and cursor, in characters.
#[derive(Debug, Default)]
struct Input {
    chars: Vec<char>,
    cursor: usize,
}

impl Input {
    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    fn set(&mut self, text: &str) {
        self.clear();
        self.insert_str(text);
    }

    fn clear(&mut self) {
        self.chars.clear();
        self.cursor = 0;
    }

    /// Inserts a typed character; control characters never enter the line.
    fn insert(&mut self, c: char) {
        if sanitize(&c.to_string()) == c.to_string() {
            self.chars.insert(self.cursor, c);
            self.cursor += 1;
        }
    }

    /// Inserts text (a paste) as one line: line breaks and tabs become spaces.
    fn insert_str(&mut self, text: &str) {
        let mut last_was_cr = false;
        for c in text.chars() {
            match c {
                '\n' if last_was_cr => {}
                '\r' | '\n' | '\t' => self.insert(' '),
                c => self.insert(c),
            }
            last_was_cr = c == '\r';
        }
    }

    fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }

    fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }

    fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }

    fn home(&mut self) {
        self.cursor = 0;
    }

    fn end(&mut self) {
        self.cursor = self.chars.len();
    }

    fn kill_to_start(&mut self) {
        self.chars.drain(..self.cursor);
        self.cursor = 0;
    }

    fn kill_to_end(&mut self) {
        self.chars.truncate(self.cursor);
    }

    /// Deletes the word before the cursor (and the spaces after it), like Ctrl-W in a shell.
    fn delete_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        self.chars.drain(start..self.cursor);
        self.cursor = start;
    }

    /// The part of the line to show in a field `width` cells wide, scrolled so that the cursor
    /// is visible, and the cursor's column in it.
    fn view(&self, width: usize) -> (String, usize) {
        let width = width.max(1);
        let cell = |c: &char| c.width().unwrap_or(0);
        // Start far enough left that the text before the cursor plus the cursor cell fit.
        let mut start = self.cursor;
        let mut before = 0;
        while start > 0 && before + cell(&self.chars[start - 1]) < width {
            start -= 1;
            before += cell(&self.chars[start]);
        }
        let mut shown = String::new();
        let mut used = 0;
        for c in &self.chars[start..] {
            if used + cell(c) > width {
                break;
            }
            shown.push(*c);
            used += cell(c);
        }
        (shown, before)
    }
}

#[cfg(test)]
mod tests {
    use clichat_client::Closed;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            assert_eq!(app.on_key(key(KeyCode::Char(c))), Action::Nothing);
        }
    }

    fn app() -> App {
        App::new("ws://chat.test:70/", "alice", 200)
    }

    /// The screen as text, one string per row.
    fn screen(app: &mut App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| app.draw(frame)).unwrap();
        let buffer = terminal.backend().buffer().clone();
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
    }

    #[test]
    fn quit_by_command_ctrl_c_or_ctrl_d_on_an_empty_line() {
        let mut app = app();
        assert_eq!(app.on_key(ctrl('c')), Action::Quit);
        assert_eq!(app.on_key(ctrl('d')), Action::Quit);
        type_text(&mut app, "/quit");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Quit);
    }

    #[test]
    fn slash_commands_and_escaped_slashes() {
        let mut app = app();
        type_text(&mut app, "/nick bob");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
        assert!(app.notice().unwrap().text.contains("unknown command /nick"));
        assert_eq!(app.input(), "/nick bob", "the line is kept to be fixed");
        app.on_key(ctrl('u'));
        type_text(&mut app, "//shrug");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send("/shrug".into())
        );
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
        assert_eq!(app.input(), "multi line paste[31m");
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
        let rows = screen(&mut app, 80, 7);
        assert!(rows[5].ends_with(" /quit leaves · /help"), "{}", rows[5]);
        assert_eq!(rows[6], ">");
    }

    #[test]
    fn hostile_names_and_messages_cannot_inject_escape_sequences() {
        let mut app = app();
        app.on_event(
            Event::Message {
                from: "eve\u{1b}[2J".into(),
                text: "\u{1b}]0;title\u{7}\r\nfake line\u{9b}1m".into(),
            },
            "10:00:00".into(),
        );
        let mut terminal = Terminal::new(TestBackend::new(80, 4)).unwrap();
        terminal.draw(|frame| app.draw(frame)).unwrap();
        let buffer = terminal.backend().buffer();
        for cell in buffer.content() {
            assert!(
                !cell.symbol().chars().any(char::is_control),
                "control character in cell {:?}",
                cell.symbol()
            );
        }
        let first: String = (0..80).map(|x| buffer[(x, 0)].symbol()).collect();
        assert_eq!(
            first.trim_end(),
            "10:00:00 <eve^[[2J> ^[]0;title^G^M^Jfake line\u{fffd}1m"
        );
    }

    #[test]
    fn long_messages_wrap_under_the_text_and_scroll() {
        let mut app = app();
        let text = "word ".repeat(30);
        app.on_event(
            Event::Message {
                from: "bob".into(),
                text: text.clone(),
            },
            "10:00:00".into(),
        );
        let rows = screen(&mut app, 40, 8);
        assert!(rows[0].starts_with("10:00:00 <bob> word"));
        assert!(
            rows[1].starts_with("         "),
            "hanging indent: {:?}",
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
    fn wrapping_breaks_between_words_and_cuts_long_words() {
        let text =
            |rows: Vec<Line>| -> Vec<String> { rows.iter().map(|row| row.to_string()).collect() };
        let plain = |s: &str| vec![(s.to_owned(), Style::new())];
        assert_eq!(
            text(wrap(&plain("aaa bbb ccc ddd"), 8, 0)),
            ["aaa bbb ", "ccc ddd"]
        );
        assert_eq!(
            text(wrap(&plain("abcdefghij"), 4, 0)),
            ["abcd", "efgh", "ij"]
        );
        assert_eq!(
            text(wrap(&plain("12:00:00 hello world again"), 15, 3)),
            ["12:00:00 hello ", "   world again"]
        );
        assert_eq!(text(wrap(&plain(""), 10, 0)), [""]);
        // A carried word that would not fit under the indent is cut instead.
        assert_eq!(
            text(wrap(&plain("a bcdefghijk"), 10, 3)),
            ["a bcdefghi", "   jk"]
        );
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let mut app = app();
        app.on_event(Event::Join("bob".into()), "10:00:00".into());
        type_text(&mut app, "typed");
        app.on_key(key(KeyCode::PageUp));
        for (width, height) in [(1, 1), (1, 3), (5, 2), (0, 0), (3, 10)] {
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
            rows[0].contains("!!! refused: No profanity allowed!"),
            "{rows:?}"
        );
        assert!(rows[3].starts_with(" disconnected │"), "{rows:?}");
        type_text(&mut app, "x");
        assert_eq!(app.input(), "", "no typing once disconnected");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Quit);
        assert!(matches!(app.into_end(), End::Refused(text) if text.contains("No profanity")));
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
}
