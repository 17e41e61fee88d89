//! The Backups pane: the window of the catalog around the cursor, with
//! versions and replica health.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{List, ListItem, ListState};

use super::columns::{ALWAYS, Cell, fit};
use super::pane;
use crate::dashboard::app::{App, BackupRow};
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let wanted = app.cluster.as_ref().map_or(2, |c| c.replicas);
    let width = (area.width as usize).saturating_sub(2);
    let rows = app.backup_rows();
    let items: Vec<ListItem> = rows
        .iter()
        .map(|row| {
            let (entry, label) = match row {
                BackupRow::Name(e) => (*e, e.name.clone()),
                BackupRow::Version(e) => (*e, format!("  └ version {}", e.version)),
            };
            let health = if entry.replicas >= wanted {
                Color::Green
            } else if entry.replicas > 0 {
                Color::Yellow
            } else {
                Color::Red
            };
            ListItem::new(fit(
                vec![
                    Cell::fixed(ALWAYS, " "),
                    Cell::name(10, label, Style::new()),
                    Cell::fixed(2, format!(" v{:<3}", entry.version).fg(Color::DarkGray)),
                    Cell::fixed(3, format!(" {:>9}", format::bytes(entry.size))),
                    Cell::fixed(
                        ALWAYS,
                        format!("  {}/{}", entry.replicas, wanted).fg(health),
                    ),
                    Cell::fixed(
                        1,
                        format!("  {}", &format::time(entry.created_ms)[5..]).fg(Color::DarkGray),
                    ),
                ],
                width,
            ))
        })
        .collect();
    let title = Line::from(vec![
        " Backups ".bold(),
        match app.backups.total {
            1 => "1 file ".into(),
            n => format!("{n} files ").into(),
        },
    ]);
    let list = List::new(items)
        .block(pane(title, true))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default()
        .with_selected(app.backups_selected())
        .with_offset(versions_in_view(app, &rows, area.height.saturating_sub(2)));
    frame.render_stateful_widget(list, area, &mut state);
}

/// The first row shown so that the versions of the name just expanded are
/// in view with it, even when it was on the last row; the cursor's row
/// stays in view.
fn versions_in_view(app: &App, rows: &[BackupRow], height: u16) -> usize {
    let (Some(selected), Some(expanded)) = (app.backups_selected(), &app.expanded) else {
        return 0;
    };
    let Some(name_row) = rows
        .iter()
        .position(|row| matches!(row, BackupRow::Name(e) if e.name == expanded.name))
    else {
        return 0;
    };
    let last = name_row + expanded.versions.len();
    (last + 1)
        .saturating_sub(usize::from(height))
        .min(selected)
        .min(name_row)
}
