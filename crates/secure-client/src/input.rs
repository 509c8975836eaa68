//! The input field: the message being written, which may hold line breaks (Alt+Enter), edited
//! one grapheme cluster at a time, so that an emoji sequence (`👍🏽`, `👨‍👩‍👧`) is one character
//! to move over and delete, as a person sees it.

use crate::format::sanitize;
use crate::width::{Widths, clusters};

/// The text and the cursor, a byte offset that is always on a cluster boundary.
#[derive(Debug, Default)]
pub struct Input {
    text: String,
    cursor: usize,
}

/// What [`Input::view`] shows: rows of clusters with their widths, and where the cursor is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The rows, top to bottom.
    pub rows: Vec<Vec<(String, usize)>>,
    /// The first row's line number (0 for the first line).
    pub first_line: usize,
    /// The cursor's row in `rows`, and its column in cells.
    pub cursor: (usize, usize),
}

impl Input {
    /// The text, its lines separated by `\n`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// How many lines the text has (1 when empty).
    pub fn line_count(&self) -> usize {
        self.text.split('\n').count()
    }

    /// Replaces the text (a recalled message), the cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.clear();
        self.insert_str(text);
    }

    /// Empties the field.
    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }

    /// Inserts a typed character; control characters (and the invisible characters
    /// [`sanitize`] replaces) never enter the field.
    pub fn insert(&mut self, c: char) {
        let mut buffer = [0; 4];
        let typed: &str = c.encode_utf8(&mut buffer);
        if sanitize(typed) == typed {
            self.text.insert(self.cursor, c);
            self.cursor += c.len_utf8();
            self.snap();
        }
    }

    /// A line break at the cursor (Alt+Enter, Shift+Enter, Ctrl-J).
    pub fn newline(&mut self) {
        self.text.insert(self.cursor, '\n');
        self.cursor += 1;
        self.snap();
    }

    /// Inserts pasted text: its line breaks (`\r\n`, `\r`, `\n`) stay line breaks, a tab
    /// becomes a space, and other control characters are left out.
    pub fn insert_str(&mut self, text: &str) {
        let mut last_was_cr = false;
        for c in text.chars() {
            match c {
                '\n' if last_was_cr => {}
                '\r' | '\n' => self.newline(),
                '\t' => self.insert(' '),
                c => self.insert(c),
            }
            last_was_cr = c == '\r';
        }
    }

    /// Every cluster boundary: the start of each cluster, each line break, and the end.
    fn boundaries(&self) -> Vec<usize> {
        let mut bounds = Vec::new();
        let mut start = 0;
        for line in self.text.split('\n') {
            let base = line.as_ptr() as usize;
            bounds.extend(
                clusters(line)
                    .into_iter()
                    .map(|cluster| start + (cluster.as_ptr() as usize - base)),
            );
            start += line.len();
            // The line break itself (and, after the last line, the end of the text).
            bounds.push(start);
            start += 1;
        }
        bounds
    }

    /// Moves the cursor to the nearest boundary at or after it (after an edit that merged or
    /// split clusters around it).
    fn snap(&mut self) {
        let cursor = self.cursor;
        self.cursor = self
            .boundaries()
            .into_iter()
            .find(|&b| b >= cursor)
            .unwrap_or(self.text.len());
    }

    fn previous_boundary(&self) -> usize {
        self.boundaries()
            .into_iter()
            .rev()
            .find(|&b| b < self.cursor)
            .unwrap_or(0)
    }

    fn next_boundary(&self) -> usize {
        self.boundaries()
            .into_iter()
            .find(|&b| b > self.cursor)
            .unwrap_or(self.text.len())
    }

    /// The byte range of the line the cursor is on.
    fn line_range(&self) -> (usize, usize) {
        let start = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i);
        (start, end)
    }

    /// Deletes the cluster before the cursor (a line break too).
    pub fn backspace(&mut self) {
        let start = self.previous_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        self.snap();
    }

    /// Deletes the cluster after the cursor (a line break too).
    pub fn delete(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
        self.snap();
    }

    /// One cluster left (to the end of the line above from a line's start).
    pub fn left(&mut self) {
        self.cursor = self.previous_boundary();
    }

    /// One cluster right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    /// To the start of the line.
    pub fn home(&mut self) {
        self.cursor = self.line_range().0;
    }

    /// To the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.line_range().1;
    }

    /// Deletes from the start of the line to the cursor (Ctrl-U).
    pub fn kill_to_start(&mut self) {
        let (start, _) = self.line_range();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        self.snap();
    }

    /// Deletes from the cursor to the end of the line (Ctrl-K).
    pub fn kill_to_end(&mut self) {
        let (_, end) = self.line_range();
        self.text.replace_range(self.cursor..end, "");
        self.snap();
    }

    /// Deletes the word before the cursor and the spaces after it, like Ctrl-W in a shell
    /// (not across a line break).
    pub fn delete_word(&mut self) {
        let (line_start, _) = self.line_range();
        let bounds: Vec<usize> = self
            .boundaries()
            .into_iter()
            .filter(|&b| b >= line_start && b <= self.cursor)
            .collect();
        let is_space = |i: usize| self.text[bounds[i - 1]..bounds[i]].trim().is_empty();
        let mut i = bounds.len() - 1;
        while i > 0 && is_space(i) {
            i -= 1;
        }
        while i > 0 && !is_space(i) {
            i -= 1;
        }
        let start = bounds[i];
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        self.snap();
    }

    /// Moves to the line above, at the same cluster, if there is one.
    pub fn up(&mut self) -> bool {
        let (start, _) = self.line_range();
        if start == 0 {
            return false;
        }
        let column = self.column(start);
        self.cursor = start - 1;
        let (above, _) = self.line_range();
        self.go_to_column(above, column);
        true
    }

    /// Moves to the line below, at the same cluster, if there is one.
    pub fn down(&mut self) -> bool {
        let (start, end) = self.line_range();
        if end == self.text.len() {
            return false;
        }
        let column = self.column(start);
        self.go_to_column(end + 1, column);
        true
    }

    /// Clusters between the start of the cursor's line (at `line_start`) and the cursor.
    fn column(&self, line_start: usize) -> usize {
        clusters(&self.text[line_start..self.cursor]).len()
    }

    /// Puts the cursor `column` clusters into the line starting at `line_start` (or at its end).
    fn go_to_column(&mut self, line_start: usize, column: usize) {
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let line = &self.text[line_start..line_end];
        self.cursor = clusters(line).get(column).map_or(line_end, |cluster| {
            line_start + (cluster.as_ptr() as usize - line.as_ptr() as usize)
        });
    }

    /// What to show in a field `width` cells wide and at most `max_rows` rows high: the lines
    /// around the cursor's, each from its start, except the cursor's line, scrolled so that
    /// the cursor and a cell for it are visible.
    pub fn view(&self, width: usize, max_rows: usize, widths: &Widths) -> View {
        let width = width.max(1);
        let max_rows = max_rows.max(1);
        let lines: Vec<&str> = self.text.split('\n').collect();
        let cursor_line = self.text[..self.cursor].matches('\n').count();
        let first_line = (cursor_line + 1).saturating_sub(max_rows);
        let (line_start, _) = self.line_range();
        let mut view = View {
            first_line,
            ..View::default()
        };
        for (index, line) in lines.iter().enumerate().skip(first_line).take(max_rows) {
            let cells: Vec<(String, usize)> = clusters(line)
                .into_iter()
                .map(|c| (c.to_owned(), widths.cluster_width(c)))
                .collect();
            // The first cluster shown (on the cursor's line, far enough left that the text
            // before the cursor and the cursor's cell fit).
            let start = if index == cursor_line {
                let at = self.column(line_start);
                let mut start = at;
                let mut before = 0;
                while start > 0 && before + cells[start - 1].1 < width {
                    start -= 1;
                    before += cells[start].1;
                }
                view.cursor = (view.rows.len(), before);
                start
            } else {
                0
            };
            let mut used = 0;
            let row = cells[start..]
                .iter()
                .take_while(|(_, w)| {
                    used += w;
                    used <= width
                })
                .cloned()
                .collect();
            view.rows.push(row);
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Input {
        let mut input = Input::default();
        for c in text.chars() {
            if c == '\n' {
                input.newline();
            } else {
                input.insert(c);
            }
        }
        input
    }

    fn shown(view: &View) -> Vec<String> {
        view.rows
            .iter()
            .map(|row| row.iter().map(|(c, _)| c.as_str()).collect())
            .collect()
    }

    #[test]
    fn an_emoji_sequence_is_one_character_to_edit() {
        let mut input = typed("ok 👍🏽👨\u{200d}👩\u{200d}👧!");
        input.left();
        input.left();
        input.backspace();
        assert_eq!(input.text(), "ok 👨\u{200d}👩\u{200d}👧!");
        input.delete();
        assert_eq!(input.text(), "ok !");
        input.insert('🇫');
        input.insert('🇷');
        assert_eq!(input.text(), "ok 🇫🇷!");
        input.backspace();
        assert_eq!(input.text(), "ok !", "the flag goes as one");
    }

    #[test]
    fn line_breaks_make_lines_to_move_between() {
        let mut input = typed("first\nsecond line\nx");
        assert_eq!(input.line_count(), 3);
        assert!(input.up());
        assert_eq!(input.cursor, "first\ns".len(), "same column, one line up");
        input.end();
        assert!(input.up());
        assert_eq!(input.cursor, "first".len(), "the end of a shorter line");
        assert!(!input.up(), "the first line");
        input.home();
        input.kill_to_end();
        assert_eq!(input.text(), "\nsecond line\nx");
        assert!(input.down());
        input.end();
        input.delete_word();
        assert_eq!(input.text(), "\nsecond \nx");
        input.kill_to_start();
        assert_eq!(input.text(), "\n\nx");
        assert!(input.down());
        assert!(!input.down());
    }

    #[test]
    fn pastes_keep_their_line_breaks_and_lose_other_controls() {
        let mut input = Input::default();
        input.insert_str("one\r\ntwo\rthree\nfour\tfive\u{1b}[31m\u{7}");
        assert_eq!(input.text(), "one\ntwo\nthree\nfour five[31m");
    }

    #[test]
    fn the_view_follows_the_cursor() {
        let widths = Widths::UNICODE;
        let input = typed(&"abcdefghij".repeat(3));
        let view = input.view(10, 3, &widths);
        assert_eq!(
            shown(&view),
            ["bcdefghij"],
            "the end, and a cell for the cursor"
        );
        assert_eq!(view.cursor, (0, 9));

        let input = typed("one\ntwo\nthree\nfour");
        let view = input.view(10, 2, &widths);
        assert_eq!(shown(&view), ["three", "four"]);
        assert_eq!((view.first_line, view.cursor), (2, (1, 4)));

        let mut input = typed("👍🏽👍🏽👍🏽");
        input.left();
        let tmux = Widths::from_advances([4, 2, 1, 2, 1]);
        let view = input.view(6, 1, &tmux);
        assert_eq!(
            view.rows[0].len(),
            1,
            "a four-cell cluster and the cursor fit: {view:?}"
        );
        assert_eq!(view.cursor, (0, 4));
    }
}
