//! Overlays: the help with every key, and the confirmation before a restore
//! or a delete.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

/// Every key the dashboard knows, for the help overlay and the README.
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓ j k", "move"),
    ("PgUp PgDn g G", "move by a page, to the top or the end"),
    ("tab", "switch between Files and Backups"),
    ("enter → l", "Files: open a folder · Backups: show versions"),
    ("⌫ ← h", "Files: go up a folder"),
    ("space", "Files: select or unselect"),
    ("a", "Files: select everything shown"),
    ("esc", "Files: clear the selection"),
    (
        "u",
        "Files: back up the selection (or the file under the cursor)",
    ),
    ("/", "Files: filter by name"),
    ("r", "Backups: restore (asks first)"),
    ("d", "Backups: delete (asks first)"),
    ("c", "clear finished transfers"),
    ("mouse wheel", "scroll"),
    ("p", "type this client's passphrase"),
    ("?", "this help"),
    ("q ctrl-c", "quit"),
];

pub fn help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                format!(" {key:<15}").bold().fg(Color::Cyan),
                (*what).into(),
            ])
        })
        .collect();
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let popup = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Keys ");
    frame.render_widget(Paragraph::new(lines).block(block), popup);
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

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}
