//! How many cells a piece of text takes on *this* terminal, and drawing it so that the screen
//! and ratatui's idea of the screen stay the same.
//!
//! Terminals disagree on emoji sequences. A skin-tone modifier (`👍🏽`), a zero-width-joiner
//! sequence (`👨‍👩‍👧`), a flag (`🇫🇷`) or a text character with VS16 (`❤️`) is one grapheme
//! cluster, two cells wide by Unicode's rules (what the `unicode-width` crate, and so ratatui,
//! assume); but tmux 3.3 draws `👍🏽` in four cells and `❤️` in one, a terminal that does
//! not know joiners draws `👨‍👩‍👧` in six, and so on. When the two disagree, ratatui's diff skips cells the terminal has drawn
//! over, and pieces of old emoji stay on the screen until a resize.
//!
//! So the client measures. At start, on the alternate screen, it prints one sample of each kind
//! of sequence and asks the terminal where the cursor went ([`Widths::probe`]); the answers set
//! the rules of [`Widths::cluster_width`]. Text is then cut into grapheme clusters (exactly as
//! ratatui cuts it, [`clusters`]), each cluster is one unit as wide as the terminal draws it,
//! and [`put_cluster`] writes it into the buffer with that width forced, marking the cells it
//! covers, so that when something else later takes those cells they are all written again.
//! (`tui.rs` adds a last guard: it blanks a cluster's cells before drawing it.)

use std::num::NonZeroU16;

use ratatui::buffer::{Buffer, CellDiffOption, CellWidth};
use ratatui::style::Style;
use ratatui::text::Span;
use unicode_width::UnicodeWidthChar;

const ZWJ: char = '\u{200d}';
const VS16: char = '\u{fe0f}';

/// The rules this terminal follows for emoji sequences, measured by [`Widths::probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// A skin-tone modifier joins the emoji before it: `👍🏽` takes 2 cells, not 4.
    pub modifier_joins: bool,
    /// What follows a zero-width joiner joins the cluster: `👨‍👩‍👧` takes 2 cells, not 6.
    pub zwj_joins: bool,
    /// VS16 makes a one-cell character an emoji two cells wide: `❤️` takes 2 cells, not 1.
    pub vs16_widens: bool,
    /// Cells of a flag, a pair of regional indicators (`🇫🇷`).
    pub flag: u8,
    /// Cells of a regional indicator alone (`🇫`).
    pub lone_indicator: u8,
}

impl Default for Widths {
    /// Unicode's rules, which ratatui assumes: every emoji sequence is one emoji, 2 cells.
    fn default() -> Widths {
        Widths::UNICODE
    }
}

/// The samples [`Widths::probe`] prints, in its order.
const SAMPLES: [&str; 5] = [
    "\u{1f44d}\u{1f3fd}",                          // 👍🏽
    "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}", // 👨‍👩‍👧
    "\u{2764}\u{fe0f}",                            // ❤️
    "\u{1f1eb}\u{1f1f7}",                          // 🇫🇷
    "\u{1f1eb}",                                   // 🇫
];

impl Widths {
    /// Unicode's rules (UAX #11 and UTS #51, as the `unicode-width` crate implements them).
    pub const UNICODE: Widths = Widths {
        modifier_joins: true,
        zwj_joins: true,
        vs16_widens: true,
        flag: 2,
        lone_indicator: 1,
    };

    /// The rules from how far the cursor moved after each of the samples (`👍🏽`, `👨‍👩‍👧`,
    /// `❤️`, `🇫🇷`, `🇫`, in that order). An answer that fits no rule keeps Unicode's.
    pub fn from_advances(advances: [u16; 5]) -> Widths {
        let [modifier, zwj, vs16, flag, lone] = advances;
        let unicode = Widths::UNICODE;
        Widths {
            modifier_joins: modifier != 4,
            zwj_joins: zwj != 6,
            vs16_widens: vs16 != 1,
            flag: match flag {
                1..=4 => flag as u8,
                _ => unicode.flag,
            },
            lone_indicator: match lone {
                1 | 2 => lone as u8,
                _ => unicode.lone_indicator,
            },
        }
    }

    /// Measures this terminal: prints each sample at the top left of the (alternate) screen
    /// and asks where the cursor went. Needs raw mode. `None` when the terminal does not
    /// answer (within crossterm's two seconds, once); the caller then keeps Unicode's rules.
    /// The caller clears the screen afterwards.
    pub fn probe(out: &mut impl std::io::Write) -> Option<Widths> {
        use crossterm::{cursor, queue, style::Print};
        let mut advances = [0; 5];
        for (advance, sample) in advances.iter_mut().zip(SAMPLES) {
            queue!(out, cursor::MoveTo(0, 0), Print(sample)).ok()?;
            out.flush().ok()?;
            let (x, y) = cursor::position().ok()?;
            if y != 0 {
                return None;
            }
            *advance = x;
        }
        Some(Widths::from_advances(advances))
    }

    /// Cells this terminal gives one grapheme cluster (as [`clusters`] cuts text).
    pub fn cluster_width(&self, cluster: &str) -> usize {
        let mut chars = cluster.chars();
        let Some(first) = chars.next() else {
            return 0;
        };
        if is_regional_indicator(first) {
            return usize::from(if chars.next().is_some_and(is_regional_indicator) {
                self.flag
            } else {
                self.lone_indicator
            });
        }
        if chars.as_str().is_empty() {
            return first.width().unwrap_or(0);
        }
        let emoji_sequence = cluster
            .chars()
            .any(|c| c == ZWJ || c == VS16 || is_modifier(c));
        if !emoji_sequence || *self == Widths::UNICODE {
            return usize::from(cluster.cell_width());
        }
        let mut width = 0;
        // Width of the last character that took cells, which a modifier or VS16 changes.
        let mut last = 0;
        let mut after_zwj = false;
        for c in cluster.chars() {
            if std::mem::take(&mut after_zwj) && self.zwj_joins {
                after_zwj = c == ZWJ;
                continue;
            }
            match c {
                ZWJ => after_zwj = true,
                VS16 => {
                    if self.vs16_widens && last == 1 {
                        width += 1;
                        last = 2;
                    }
                }
                c if is_modifier(c) && last == 2 && self.modifier_joins => {}
                c => {
                    let w = c.width().unwrap_or(0);
                    if w > 0 {
                        width += w;
                        last = w;
                    }
                }
            }
        }
        width
    }
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1f1e6}'..='\u{1f1ff}').contains(&c)
}

/// An emoji modifier: the five skin tones.
fn is_modifier(c: char) -> bool {
    ('\u{1f3fb}'..='\u{1f3ff}').contains(&c)
}

/// `text` cut into extended grapheme clusters, the units a person sees as one character, the
/// same way ratatui cuts what it draws (with `unicode-segmentation`, through
/// [`Span::styled_graphemes`], so that this client and its renderer can never cut differently).
/// Clusters holding a control character are left out, as ratatui leaves them out; callers pass
/// sanitized text, which has none.
pub fn clusters(text: &str) -> Vec<&str> {
    let span = Span::raw(text);
    let start = text.as_ptr() as usize;
    span.styled_graphemes(Style::new())
        .map(|grapheme| {
            // Each grapheme is a slice of `text` itself (the span borrows it); hand back the
            // same slice with `text`'s lifetime.
            let offset = grapheme.symbol.as_ptr() as usize - start;
            &text[offset..offset + grapheme.symbol.len()]
        })
        .collect()
}

/// Writes one grapheme cluster at (`x`, `y`) as one unit `width` cells wide (its
/// [`Widths::cluster_width`]), clipped to the buffer (a cluster that does not fit is left out,
/// its cells up to the edge blank). Returns the column after it.
///
/// A cluster of several characters gets its width forced, whatever ratatui would compute. The
/// cells a cluster covers are marked as skipped: the terminal draws them, ratatui writes
/// nothing there, and when later content uncovers them they differ from the skipped cell, so
/// they are all written again. Writing over part of a cluster already in the buffer (a bar or
/// a notice drawn over a row) blanks the rest of that cluster, so no cell is left claimed by
/// a cluster that is no longer there.
pub fn put_cluster(
    buf: &mut Buffer,
    x: u16,
    y: u16,
    cluster: &str,
    style: Style,
    width: usize,
) -> u16 {
    let area = buf.area;
    let Ok(width) = u16::try_from(width) else {
        return x;
    };
    if width == 0 || y < area.top() || y >= area.bottom() || x < area.left() || x >= area.right() {
        return x;
    }
    let end = x.saturating_add(width);
    if end > area.right() {
        release(buf, x, area.right(), y);
        for column in x..area.right() {
            blank(buf, column, y, style);
        }
        return area.right();
    }
    release(buf, x, end, y);
    let cell = &mut buf[(x, y)];
    cell.reset();
    cell.set_symbol(cluster).set_style(style);
    if cluster.chars().nth(1).is_some() {
        cell.diff_option = CellDiffOption::ForcedWidth(NonZeroU16::MIN.saturating_add(width - 1));
    }
    for column in x + 1..end {
        blank(buf, column, y, style);
        buf[(column, y)].diff_option = CellDiffOption::Skip;
    }
    end
}

/// Makes (`x`, `y`) a blank cell in `style`, with no diff option.
pub fn blank(buf: &mut Buffer, x: u16, y: u16, style: Style) {
    let cell = &mut buf[(x, y)];
    cell.reset();
    cell.set_style(style);
}

/// Frees the cells `start..end` of row `y` from clusters that reach into them from outside: the
/// start and covered cells of one that begins further left, and the covered cells past `end` of
/// one that begins inside, become blanks (keeping their style).
fn release(buf: &mut Buffer, start: u16, end: u16, y: u16) {
    let covered = |buf: &Buffer, x: u16| buf[(x, y)].diff_option == CellDiffOption::Skip;
    let clear = |buf: &mut Buffer, x: u16| {
        let style = buf[(x, y)].style();
        blank(buf, x, y, style);
    };
    if covered(buf, start) {
        let mut owner = start;
        while owner > buf.area.left() && covered(buf, owner) {
            owner -= 1;
        }
        for x in owner..start {
            clear(buf, x);
        }
    }
    let mut x = end;
    while x < buf.area.right() && covered(buf, x) {
        clear(buf, x);
        x += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THUMB_MEDIUM: &str = "\u{1f44d}\u{1f3fd}";
    const FAMILY: &str = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
    const HEART: &str = "\u{2764}\u{fe0f}";
    const FLAG: &str = "\u{1f1eb}\u{1f1f7}";
    const TECHNOLOGIST: &str = "\u{1f469}\u{1f3fd}\u{200d}\u{1f4bb}";
    const RAINBOW_FLAG: &str = "\u{1f3f3}\u{fe0f}\u{200d}\u{1f308}";

    #[test]
    fn text_is_cut_into_grapheme_clusters() {
        let text = format!("a{THUMB_MEDIUM}{FAMILY} {FLAG}e\u{301}{HEART}");
        assert_eq!(
            clusters(&text),
            ["a", THUMB_MEDIUM, FAMILY, " ", FLAG, "e\u{301}", HEART]
        );
        assert!(clusters("").is_empty());
    }

    #[test]
    fn unicode_rules_agree_with_ratatui() {
        let widths = Widths::UNICODE;
        for cluster in [
            THUMB_MEDIUM,
            FAMILY,
            HEART,
            FLAG,
            TECHNOLOGIST,
            RAINBOW_FLAG,
            "e\u{301}",
        ] {
            assert_eq!(
                widths.cluster_width(cluster),
                usize::from(cluster.cell_width()),
                "{cluster}"
            );
        }
        let text = format!("ab{THUMB_MEDIUM}");
        let total: usize = clusters(&text)
            .iter()
            .map(|c| widths.cluster_width(c))
            .sum();
        assert_eq!(total, 4);
    }

    /// What tmux 3.3 does, as measured there: modifiers apart, joiners joining, VS16 ignored,
    /// regional indicators one cell each.
    #[test]
    fn a_terminal_of_codepoints_is_followed() {
        let tmux = Widths::from_advances([4, 2, 1, 2, 1]);
        assert_eq!(
            tmux,
            Widths {
                modifier_joins: false,
                zwj_joins: true,
                vs16_widens: false,
                flag: 2,
                lone_indicator: 1,
            }
        );
        assert_eq!(tmux.cluster_width(THUMB_MEDIUM), 4);
        assert_eq!(tmux.cluster_width(FAMILY), 2);
        assert_eq!(tmux.cluster_width(HEART), 1);
        assert_eq!(tmux.cluster_width(FLAG), 2);
        assert_eq!(tmux.cluster_width(TECHNOLOGIST), 4);
        assert_eq!(tmux.cluster_width(RAINBOW_FLAG), 1);
        assert_eq!(tmux.cluster_width("e\u{301}"), 1);

        // xterm and others: nothing joins.
        let apart = Widths::from_advances([4, 6, 1, 4, 2]);
        assert_eq!(apart.cluster_width(FAMILY), 6);
        assert_eq!(apart.cluster_width(TECHNOLOGIST), 6);
        assert_eq!(apart.cluster_width(FLAG), 4);
        assert_eq!(apart.cluster_width("\u{1f1eb}"), 2);
    }

    #[test]
    fn answers_that_fit_no_rule_keep_unicodes() {
        assert_eq!(Widths::from_advances([2, 2, 2, 2, 1]), Widths::UNICODE);
        assert_eq!(Widths::from_advances([0, 0, 0, 0, 0]), Widths::UNICODE);
    }

    #[test]
    fn a_cluster_is_one_cell_of_its_width_covering_the_rest() {
        let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 8, 1));
        let next = put_cluster(&mut buf, 1, 0, THUMB_MEDIUM, Style::new(), 4);
        assert_eq!(next, 5);
        assert_eq!(buf[(1, 0)].symbol(), THUMB_MEDIUM);
        assert_eq!(buf[(1, 0)].cell_width(), 4);
        for x in 2..5 {
            assert_eq!(buf[(x, 0)].diff_option, CellDiffOption::Skip);
        }
        // No room: blanks to the edge.
        assert_eq!(
            put_cluster(&mut buf, 6, 0, THUMB_MEDIUM, Style::new(), 4),
            8
        );
        assert_eq!(buf[(6, 0)].symbol(), " ");

        // A later frame without the emoji differs in every cell it covered, so all are written.
        let mut later = Buffer::empty(buf.area);
        later.set_string(0, 0, "abcdefgh", Style::new());
        let mut blank = Buffer::empty(buf.area);
        blank.set_string(0, 0, " ", Style::new());
        let written: Vec<u16> = buf.diff(&blank).iter().map(|&(x, _, _)| x).collect();
        assert_eq!(written, [1, 2, 3, 4], "the cells the emoji covered");
        assert_eq!(buf.diff(&later).len(), 8);

        // Drawing over the middle of a cluster blanks the rest of it.
        let mut over = buf.clone();
        put_cluster(&mut over, 3, 0, "x", Style::new(), 1);
        let cells: Vec<(&str, CellDiffOption)> = (0..6)
            .map(|x| (over[(x, 0)].symbol(), over[(x, 0)].diff_option))
            .collect();
        assert_eq!(
            cells,
            [
                (" ", CellDiffOption::None),
                (" ", CellDiffOption::None),
                (" ", CellDiffOption::None),
                ("x", CellDiffOption::None),
                (" ", CellDiffOption::None),
                (" ", CellDiffOption::None),
            ]
        );
    }
}
