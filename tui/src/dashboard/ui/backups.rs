//! The Backups pane: one folder of the catalog as a tree, the window of
//! its children around the cursor, with versions and replica health.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState};

use super::columns::{ALWAYS, Cell, elide_middle, fit};
use super::pane;
use crate::dashboard::app::{App, BackupRow, Mode, Tab};
use crate::dashboard::event::Link;
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let wanted = app.cluster.as_ref().map_or(2, |c| c.replicas);
    let width = (area.width as usize).saturating_sub(2);
    let rows = app.backup_rows();
    let items: Vec<ListItem> = rows
        .iter()
        .map(|row| ListItem::new(fit(cells(row, app, wanted), width)))
        .collect();
    let empty = items.is_empty();
    let say = |text: String| vec![ListItem::new(Line::from(text).fg(Color::DarkGray))];
    let items = match (empty, app.listed, &app.link) {
        (true, false, Link::Down(_)) => say(" not listed: no link to the manager".into()),
        (true, false, _) => say(" listing…".into()),
        (true, true, _) if !app.backup_filter.is_empty() => {
            say(format!(" nothing here matches /{}", app.backup_filter))
        }
        _ => items,
    };
    // What is typed comes before the folder, which gives way.
    let mut title = vec![" Backups ".bold()];
    if app.tab == Tab::Backups && app.mode == Mode::Filter || !app.backup_filter.is_empty() {
        title.push(format!("/{} ", app.backup_filter).fg(Color::Cyan));
    }
    title.push(match (app.listed, app.backups.total) {
        (false, _) => "… ".into(),
        (true, 1) => "1 item ".into(),
        (true, n) => format!("{n} items ").into(),
    });
    if !app.backup_folder.is_empty() {
        let used: usize = title.iter().map(Span::width).sum();
        let room = (area.width as usize).saturating_sub(used + 7);
        title.push(format!("in {} ", elide_middle(&app.backup_folder, room)).into());
    }
    let list = List::new(items)
        .block(pane(Line::from(title), true))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default()
        .with_selected(app.backups_selected().filter(|_| !empty))
        .with_offset(versions_in_view(app, &rows, area.height.saturating_sub(2)));
    frame.render_stateful_widget(list, area, &mut state);
}

/// A row's cells: a folder with its files, bytes and whether every version
/// under it has its copies; a name or a version with its copies.
fn cells(row: &BackupRow, app: &App, wanted: u32) -> Vec<Cell> {
    let date = |ms: u64| {
        Cell::fixed(
            1,
            format!("  {}", &format::time(ms)[5..]).fg(Color::DarkGray),
        )
    };
    let size = |bytes: u64| Cell::fixed(3, format!(" {:>9}", format::bytes(bytes)));
    let shown = |name: &str| {
        name.strip_prefix(&app.backup_folder)
            .unwrap_or(name)
            .to_owned()
    };
    let (entry, label) = match row {
        BackupRow::Folder(f) => {
            let style = Style::new().fg(Color::Blue).bold();
            let health = match f.short {
                0 => "  ✓".fg(Color::Green),
                n => format!("  {n}!").fg(Color::Yellow),
            };
            return vec![
                Cell::fixed(ALWAYS, " "),
                Cell::fixed(ALWAYS, Span::styled("▸ ", style)),
                Cell::name(8, shown(&f.name), style),
                Cell::fixed(2, format!(" {:>4}", f.files).fg(Color::DarkGray)),
                size(f.size),
                Cell::fixed(ALWAYS, health),
                date(f.newest_ms),
            ];
        }
        BackupRow::Name(e) => (*e, shown(&e.name)),
        BackupRow::Version(e) => (*e, format!("  └ version {}", e.version)),
    };
    let health = if entry.replicas >= wanted {
        Color::Green
    } else if entry.replicas > 0 {
        Color::Yellow
    } else {
        Color::Red
    };
    vec![
        Cell::fixed(ALWAYS, " "),
        Cell::name(10, label, Style::new()),
        Cell::fixed(2, format!(" v{:<3}", entry.version).fg(Color::DarkGray)),
        size(entry.size),
        Cell::fixed(
            ALWAYS,
            format!("  {}/{}", entry.replicas, wanted).fg(health),
        ),
        date(entry.created_ms),
    ]
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
