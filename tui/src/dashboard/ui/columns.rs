//! Rows that fit their width: when a row is too wide its least important
//! cells go first, and its name takes what is left, elided in the middle
//! (the start and the extension of a file name say the most).

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// One cell of a row.
pub enum Cell {
    /// A cell shown whole or not at all; of two, the lower `keep` goes
    /// first (the later one among equals).
    Fixed { keep: u8, span: Span<'static> },
    /// The row's name or message (one at most): it takes the width the
    /// other cells leave, at least `min`.
    Name {
        min: usize,
        text: String,
        style: Style,
        elide: Elide,
    },
}

/// Where a cell too long for its room loses characters.
#[derive(Clone, Copy)]
pub enum Elide {
    /// A name: its start and its extension say the most.
    Middle,
    /// A sentence: its start says the most.
    End,
}

/// A cell that is never dropped.
pub const ALWAYS: u8 = u8::MAX;

impl Cell {
    pub fn fixed(keep: u8, span: impl Into<Span<'static>>) -> Self {
        Self::Fixed {
            keep,
            span: span.into(),
        }
    }

    pub fn name(min: usize, text: impl Into<String>, style: Style) -> Self {
        Self::Name {
            min,
            text: text.into(),
            style,
            elide: Elide::Middle,
        }
    }

    /// A message in the name's place, cut at its end.
    pub fn message(min: usize, text: impl Into<String>, style: Style) -> Self {
        Self::Name {
            min,
            text: text.into(),
            style,
            elide: Elide::End,
        }
    }

    fn width(&self) -> usize {
        match self {
            Self::Fixed { span, .. } => span.width(),
            Self::Name { min, .. } => *min,
        }
    }
}

/// The row as one line of at most `width` columns.
pub fn fit(mut cells: Vec<Cell>, width: usize) -> Line<'static> {
    while cells.iter().map(Cell::width).sum::<usize>() > width {
        let droppable = cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Cell::Fixed { keep, .. } if *keep < ALWAYS => Some((*keep, i)),
                _ => None,
            })
            .min_by_key(|(keep, i)| (*keep, std::cmp::Reverse(*i)));
        match droppable {
            Some((_, i)) => drop(cells.remove(i)),
            None => break,
        }
    }
    let fixed: usize = cells
        .iter()
        .filter(|c| matches!(c, Cell::Fixed { .. }))
        .map(Cell::width)
        .sum();
    let room = width.saturating_sub(fixed);
    let spans = cells.into_iter().map(|cell| match cell {
        Cell::Fixed { span, .. } => span,
        Cell::Name {
            text, style, elide, ..
        } => Span::styled(cut(&text, room, elide), style),
    });
    Line::from(spans.collect::<Vec<_>>())
}

/// A local name as it can be shown: a control character in it (legal in a
/// file name) would move the cursor or color the screen, so it shows as `�`.
pub fn printable(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// `text` in at most `width` columns: whole if it fits, else its start and
/// its end around a `…`.
pub fn elide_middle(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let room = width - 1;
    let tail_room = room / 2;
    let head = take_width(text.chars(), room - tail_room);
    let mut tail: Vec<char> = take_width(text.chars().rev(), tail_room).chars().collect();
    tail.reverse();
    format!("{head}…{}", tail.into_iter().collect::<String>())
}

/// `text` in at most `width` columns: whole if it fits, else its start and
/// a `…`.
pub fn elide_end(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    match width {
        0 => String::new(),
        _ => format!("{}…", take_width(text.chars(), width - 1)),
    }
}

/// `text` in lines of at most `width` columns, broken at spaces (a word
/// longer than a line is broken where it must be), each line after
/// `indent`, so wrapped text stays clear of the pane's border.
pub fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let room = width.saturating_sub(indent.width()).max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word;
        loop {
            let gap = usize::from(!line.is_empty());
            if line.width() + gap + word.width() <= room {
                if gap == 1 {
                    line.push(' ');
                }
                line.push_str(word);
                break;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // At least one character, even one wider than the room: else
            // the word would never shrink.
            let mut head = take_width(word.chars(), room);
            if head.is_empty() {
                head.extend(word.chars().next());
            }
            word = &word[head.len()..];
            lines.push(head);
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines.into_iter().map(|l| format!("{indent}{l}")).collect()
}

/// The first characters of `chars` that fit in `width` columns.
fn take_width(chars: impl Iterator<Item = char>, width: usize) -> String {
    let mut used = 0;
    chars
        .take_while(|c| {
            used += c.width().unwrap_or(0);
            used <= width
        })
        .collect()
}

/// `text` in exactly `width` columns: elided, or padded.
pub fn cut(text: &str, width: usize, elide: Elide) -> String {
    let text = match elide {
        Elide::Middle => elide_middle(text, width),
        Elide::End => elide_end(text, width),
    };
    let fill = width.saturating_sub(text.width());
    format!("{text}{}", " ".repeat(fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &Line) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn names_lose_their_middle() {
        assert_eq!(
            elide_middle("holiday-in-lisbon.mov", 21),
            "holiday-in-lisbon.mov"
        );
        assert_eq!(elide_middle("holiday-in-lisbon.mov", 11), "holid…n.mov");
        assert_eq!(elide_middle("日本語のファイル.txt", 9), "日本….txt");
        assert_eq!(elide_middle("abc", 0), "");
        assert_eq!(elide_end("not enough live servers", 10), "not enoug…");
        assert_eq!(cut("a.txt", 7, Elide::End), "a.txt  ");
        assert!(elide_middle("日本語のファイル.txt", 9).width() <= 9);
    }

    #[test]
    fn wrapped_lines_are_indented_and_fit() {
        let lines = wrap(
            "cannot reach the manager at 127.0.0.1:9000: refused",
            20,
            " ",
        );
        assert_eq!(
            lines,
            [
                " cannot reach the",
                " manager at",
                " 127.0.0.1:9000:",
                " refused"
            ]
        );
        assert_eq!(wrap("abcdefgh", 5, " "), [" abcd", " efgh"]);
        assert_eq!(wrap("", 5, " "), [" "]);
        assert_eq!(
            wrap("日本", 2, " "),
            [" 日", " 本"],
            "wider than the room, still ends"
        );
    }

    #[test]
    fn the_least_important_cells_go_first() {
        let row = || {
            vec![
                Cell::name(6, "report-final.pdf", Style::new()),
                Cell::fixed(2, " 12 kB"),
                Cell::fixed(1, " 11-27 17:20"),
                Cell::fixed(ALWAYS, " ✓"),
            ]
        };
        assert_eq!(
            text(&fit(row(), 40)),
            "report-final.pdf     12 kB 11-27 17:20 ✓"
        );
        assert_eq!(text(&fit(row(), 24)), "report-final.pdf 12 kB ✓");
        assert_eq!(text(&fit(row(), 12)), "repor….pdf ✓");
        assert!(
            fit(row(), 3).width() <= 8,
            "only what is always shown is left"
        );
    }
}
