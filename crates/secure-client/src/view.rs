//! Text as the full-screen chat lays it out: grapheme clusters with their widths on this
//! terminal ([`Glyph`]), rows wrapped between words, drawn cluster by cluster with
//! [`put_cluster`]; and the looks that depend on who is speaking: nick colours and mentions.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use unicode_width::UnicodeWidthChar;

use crate::width::{Widths, clusters, put_cluster};

/// One grapheme cluster to draw, with its style and the cells it takes on this terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glyph {
    /// The cluster.
    pub text: String,
    /// How it looks.
    pub style: Style,
    /// Cells it takes ([`Widths::cluster_width`]).
    pub width: usize,
}

/// `text` (sanitized: no control characters) as glyphs in `style`. Clusters that take no cells
/// are left out, as ratatui leaves them out.
pub fn glyphs(text: &str, style: Style, widths: &Widths) -> Vec<Glyph> {
    clusters(text)
        .into_iter()
        .filter_map(|cluster| {
            let width = widths.cluster_width(cluster);
            (width > 0).then(|| Glyph {
                text: cluster.to_owned(),
                style,
                width,
            })
        })
        .collect()
}

/// Cells the glyphs take.
pub fn width_of(glyphs: &[Glyph]) -> usize {
    glyphs.iter().map(|g| g.width).sum()
}

/// Wraps logical `lines` into rows at most `width` cells wide, breaking after a space where
/// there is one (a word longer than a row is cut). The first row starts at the left edge;
/// every other row, wrapped or a line of its own, starts with `indent` blank cells.
pub fn wrap(lines: Vec<Vec<Glyph>>, width: usize, indent: usize) -> Vec<Vec<Glyph>> {
    let width = width.max(1);
    let blank = |n: usize| -> Vec<Glyph> {
        (0..n)
            .map(|_| Glyph {
                text: " ".to_owned(),
                style: Style::new(),
                width: 1,
            })
            .collect()
    };
    let mut rows: Vec<Vec<Glyph>> = Vec::new();
    for line in lines {
        // The row being filled, after its indent.
        let mut row: Vec<Glyph> = Vec::new();
        let mut start = if rows.is_empty() { 0 } else { indent };
        let mut used = start;
        for glyph in line {
            if used + glyph.width > width && !row.is_empty() {
                // Break after the last space if that keeps something on this row and the
                // carried word fits on the next one; else cut here.
                let fits = |cut: &usize| indent + width_of(&row[*cut..]) + glyph.width <= width;
                let cut = row
                    .iter()
                    .rposition(|g| g.text == " ")
                    .filter(|&space| space > 0)
                    .map(|space| space + 1)
                    .filter(fits)
                    .unwrap_or(row.len());
                let carry = row.split_off(cut);
                let mut done = blank(start);
                done.append(&mut row);
                rows.push(done);
                row = carry;
                start = indent;
                used = indent + width_of(&row);
                if glyph.text == " " && row.is_empty() {
                    continue;
                }
            }
            used += glyph.width;
            row.push(glyph);
        }
        let mut done = blank(start);
        done.append(&mut row);
        rows.push(done);
    }
    rows
}

/// The indent of continuation rows for text that starts at column `text_column`: under the
/// text, so that no continuation can pass for a line of its own with another nick; when that
/// leaves too little room, a little more than the time's width, which still sets it apart.
pub fn continuation_indent(text_column: usize, width: usize, time_width: usize) -> usize {
    if text_column * 2 <= width {
        text_column
    } else if (time_width + 2) * 2 <= width {
        time_width + 2
    } else {
        0
    }
}

/// Draws `row` from the left of `area` (one row high), clipped to it: a glyph that would
/// cross the right edge is left out and the cells up to the edge are blanked in its style.
/// Returns the column after the last glyph drawn.
pub fn draw_row(buf: &mut Buffer, area: Rect, row: &[Glyph]) -> u16 {
    let area = area.intersection(buf.area);
    let mut x = area.x;
    if area.is_empty() {
        return x;
    }
    for glyph in row {
        if usize::from(x) + glyph.width > usize::from(area.right()) {
            return blank_to(buf, x, area.right(), area.y, glyph.style);
        }
        x = put_cluster(buf, x, area.y, &glyph.text, glyph.style, glyph.width);
    }
    x
}

/// Blanks the cells `from..to` of row `y` in `style` (as spaces drawn there, so that nothing
/// of a cluster reaching into them is left); returns `to`.
pub fn blank_to(buf: &mut Buffer, from: u16, to: u16, y: u16, style: Style) -> u16 {
    for x in from..to {
        put_cluster(buf, x, y, " ", style, 1);
    }
    to
}

/// The colours of other people's nicks: eight 256-colour palette entries of middle lightness,
/// readable on dark and light backgrounds, none of them the system lines' cyan (nor teal, nor
/// the plain green, yellow and red of joins, leaves and errors). In the browser client's hue
/// order (red, orange, olive, green, blue-violet, blue, purple, pink), so that a name has much
/// the same colour in both: 167 `#d75f5f`, 166 `#d75f00`, 100 `#878700`, 29 `#00875f`,
/// 61 `#5f5faf`, 33 `#0087ff`, 98 `#875fd7`, 169 `#d75faf`.
pub const NICK_PALETTE: [Color; 8] = [
    Color::Indexed(167),
    Color::Indexed(166),
    Color::Indexed(100),
    Color::Indexed(29),
    Color::Indexed(61),
    Color::Indexed(33),
    Color::Indexed(98),
    Color::Indexed(169),
];

/// The colour of a nick, the same for a name everywhere and every time.
///
/// The definition, shared with the browser client (keep them the same): the FNV-1a 32-bit
/// hash of the name's UTF-8 bytes, exactly as received (`hash = 2166136261`; for each byte,
/// `hash = (hash XOR byte) * 16777619` modulo 2^32), and `index = hash % 8` into
/// [`NICK_PALETTE`].
pub fn nick_color(name: &str) -> Color {
    NICK_PALETTE[nick_index(name)]
}

/// `fnv1a_32(name) % 8`; see [`nick_color`].
pub fn nick_index(name: &str) -> usize {
    let hash = name.bytes().fold(2_166_136_261_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(16_777_619)
    });
    (hash % 8) as usize
}

/// Whether `text` mentions `name`: the name, compared case-insensitively, as a word of its
/// own (no letter, mark, digit or `_` right before or after it, as the browser client has it).
pub fn mentions(text: &str, name: &str) -> bool {
    let lower = |s: &str| -> Vec<char> { s.chars().flat_map(char::to_lowercase).collect() };
    let name = lower(name.trim());
    if name.is_empty() {
        return false;
    }
    let text = lower(text);
    // Combining marks take no cell of their own; the joiners and selectors that do the same
    // cannot be in a name, so they are no worse counted in a word.
    let word = |c: &char| c.is_alphanumeric() || *c == '_' || c.width() == Some(0);
    text.windows(name.len()).enumerate().any(|(i, window)| {
        window == name.as_slice()
            && (i == 0 || !word(&text[i - 1]))
            && text.get(i + name.len()).is_none_or(|c| !word(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Vec<Vec<Glyph>> {
        text.split('\n')
            .map(|line| glyphs(line, Style::new(), &Widths::UNICODE))
            .collect()
    }

    fn text(rows: Vec<Vec<Glyph>>) -> Vec<String> {
        rows.iter()
            .map(|row| row.iter().map(|g| g.text.as_str()).collect())
            .collect()
    }

    #[test]
    fn wrapping_breaks_between_words_and_cuts_long_words() {
        assert_eq!(
            text(wrap(plain("aaa bbb ccc ddd"), 8, 0)),
            ["aaa bbb ", "ccc ddd"]
        );
        assert_eq!(
            text(wrap(plain("abcdefghij"), 4, 0)),
            ["abcd", "efgh", "ij"]
        );
        assert_eq!(
            text(wrap(plain("12:00:00 hello world again"), 15, 3)),
            ["12:00:00 hello ", "   world again"]
        );
        assert_eq!(text(wrap(plain(""), 10, 0)), [""]);
        // A carried word that would not fit under the indent is cut instead.
        assert_eq!(
            text(wrap(plain("a bcdefghijk"), 10, 3)),
            ["a bcdefghi", "   jk"]
        );
        // Lines of their own start under the text too.
        assert_eq!(
            text(wrap(plain("ab cd\nef\n"), 10, 3)),
            ["ab cd", "   ef", "   "]
        );
    }

    #[test]
    fn an_emoji_sequence_wraps_as_one() {
        let tmux = Widths::from_advances([4, 2, 1, 2, 1]);
        let line = vec![glyphs("ab👍🏽c", Style::new(), &tmux)];
        assert_eq!(text(wrap(line, 5, 0)), ["ab", "👍🏽c"]);
    }

    /// Values the browser client's tests check too.
    #[test]
    fn nick_colours_come_from_fnv1a() {
        assert_eq!(nick_index(""), 5, "the offset basis, 0x811c9dc5");
        // FNV-1a("a") = 0xe40c292c (a published test vector); ("alice") = 0x872213e7,
        // ("bob") = 0x86c6a0d4, ("carol") = 0x67088f12, computed independently.
        assert_eq!(nick_index("a"), 4);
        assert_eq!(nick_index("alice"), 7);
        assert_eq!(nick_index("bob"), 4);
        assert_eq!(nick_index("carol"), 2);
        assert_eq!(nick_color("alice"), nick_color("alice"));
        assert!(!NICK_PALETTE.contains(&Color::Cyan));
        assert!(!NICK_PALETTE.contains(&Color::LightCyan));
    }

    #[test]
    fn a_mention_is_the_name_as_a_word() {
        assert!(mentions("alice: are you there?", "alice"));
        assert!(mentions("hey ALICE", "alice"));
        assert!(mentions("@Alice, hi", "alice"));
        assert!(mentions("line one\nalice", "alice"));
        assert!(!mentions("malice aforethought", "alice"));
        assert!(!mentions("alice_b", "alice"));
        assert!(!mentions("alices", "alice"));
        assert!(
            !mentions("alice\u{301} ", "alice"),
            "a mark continues the word"
        );
        assert!(mentions("ping bob🎉!", "bob🎉"));
        assert!(!mentions("anything", " "));
    }
}
