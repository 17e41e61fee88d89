//! Overlays: the help with every key, and the confirmation before a restore
//! or a delete.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear, Padding, Paragraph, Wrap};

use super::transfers::phase_of;
use crate::dashboard::app::Transfer;
use crate::dashboard::event::Kind;
use crate::format;

/// Every key the dashboard knows, for the help overlay and the README.
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓ j k", "move"),
    ("PgUp PgDn g G", "move by a page, to the top or the end"),
    ("tab", "switch between Files and Backups"),
    (
        "enter → l",
        "open a folder · Backups: show or fold a file's versions",
    ),
    ("⌫ ← h", "go up a folder · Backups: fold versions"),
    ("space", "Files: select or unselect, and move down"),
    ("a", "Files: select everything shown"),
    ("esc", "clear the selection (Files), else the filter"),
    (
        "u",
        "Files: back up the selection (or the file under the cursor)",
    ),
    ("/", "filter the folder shown by name"),
    (
        "r",
        "Backups: restore a file, a version or a folder (asks first)",
    ),
    (
        "d",
        "Backups: delete a version, a file or a folder (asks first)",
    ),
    ("c", "clear finished transfers"),
    ("t", "move through the transfers (enter: all about one)"),
    (
        "wheel · m",
        "scroll · give the mouse to the terminal to select text",
    ),
    ("p", "type this client's passphrase"),
    ("q ctrl-c", "quit"),
];

/// What the marks on screen mean, for the help overlay.
pub const LEGEND: &[(&str, &str)] = &[
    (
        "✓ ~ ✚ … ✕",
        "backed up · changed · never backed up · checking · bad name",
    ),
    ("1/2", "live copies of a backup, of those wanted"),
    (
        "▸ 12 ✓ 3!",
        "a folder: files in it · all copies there · 3 versions short",
    ),
    ("score", "placement rank, lower is better: latency and load"),
];

pub fn help(frame: &mut Frame, area: Rect, note: Option<&str>) {
    let row = |(key, what): &(&str, &'static str)| -> Line<'static> {
        Line::from(vec![
            format!(" {key:<15}").bold().fg(Color::Cyan),
            (*what).into(),
        ])
    };
    let mut lines: Vec<Line> = KEYS.iter().map(row).collect();
    // A blank line before the legend, where the screen has room for it.
    let room = usize::from(area.height.saturating_sub(2));
    if KEYS.len() + LEGEND.len() + usize::from(note.is_some()) < room {
        lines.push(Line::from(""));
    }
    lines.extend(LEGEND.iter().map(row));
    if let Some(note) = note {
        lines.push(Line::from(format!(" {note}")).fg(Color::Yellow));
    }
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    // Taller than the screen: the end of the keys is what gets cut.
    let height = lines.len() as u16 + 2;
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Keys ");
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        popup,
    );
}

pub fn confirm(frame: &mut Frame, area: Rect, prompt: &str) {
    let popup = centered(area, 60, 6);
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Confirm ")
        .title_bottom(Line::from(" y yes · n no ").centered());
    frame.render_widget(
        Paragraph::new(prompt.to_owned())
            .wrap(Wrap { trim: true })
            .block(block),
        popup,
    );
}

/// Asks for the passphrase, showing a dot per character typed.
pub fn passphrase(
    frame: &mut Frame,
    area: Rect,
    client: &str,
    typed: usize,
    refused: Option<&str>,
) {
    let popup = centered(area, 60, 7);
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Passphrase ")
        .title_bottom(Line::from(" enter open · esc later ").centered());
    let mut lines = vec![
        Line::from(format!("The passphrase that opens client {client}'s key:")),
        Line::from(format!("> {}", "•".repeat(typed))).bold(),
    ];
    if let Some(why) = refused {
        lines.push(Line::from(why.to_owned()).fg(Color::Red));
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
        popup,
    );
}

/// Everything known of one transfer: its state in full, its bytes, why
/// each earlier attempt failed, and which files of its job failed and why.
pub fn details(frame: &mut Frame, area: Rect, t: &Transfer, failures: &[String], now: Instant) {
    let (phase, color) = phase_of(t, now);
    let p = &t.progress;
    let what = match t.kind {
        Kind::Upload => "backup",
        Kind::Restore => "restore",
    };
    let moved = match t.kind {
        Kind::Upload => "sent to the first server",
        Kind::Restore => "received",
    };
    let mut lines = vec![
        Line::from(format!("{} ({what})", t.name)).bold(),
        Line::from(phase).fg(color),
        Line::from(format!(
            "{} of {} {moved}",
            format::bytes(p.sent),
            format::bytes(p.total)
        )),
    ];
    for (i, written) in p.replicas.iter().enumerate() {
        lines.push(Line::from(format!(
            "copy {}: {} written",
            i + 1,
            format::bytes(*written)
        )));
    }
    if t.bytes_per_sec > 0.0 {
        lines.push(Line::from(format!(
            "{}/s in this attempt",
            format::bytes(t.bytes_per_sec as u64)
        )));
    }
    for (i, why) in t.retries.iter().enumerate() {
        lines.push(Line::from(format!("attempt {} failed: {why}", i + 1)).fg(Color::Yellow));
    }
    lines.extend(
        failures
            .iter()
            .map(|why| Line::from(format!("failed {why}")).fg(Color::Red)),
    );
    // Room for long reasons to wrap.
    let height = (lines.len() as u16 + 6).min(area.height.saturating_sub(2));
    let popup = centered(area, 72, height);
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Transfer ")
        .title_bottom(Line::from(" any key closes ").centered())
        .padding(Padding::horizontal(1));
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
        popup,
    );
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}
