//! The Files pane: the local files folder with each file's backup state.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState};

use super::columns::{ALWAYS, Cell, elide_middle, fit, printable};
use super::pane;
use crate::dashboard::app::{App, FileState, Mode};
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let browser = &app.browser;
    let folder = if browser.dir.is_empty() {
        app.files_root.display().to_string()
    } else {
        format!("{}/{}", app.files_root.display(), browser.dir)
    };
    // What is chosen and typed comes before the folder, which gives way.
    let mut title = vec![" Files ".bold()];
    if !browser.selected.is_empty() {
        title.push(format!("[{} selected] ", browser.selected.len()).fg(Color::Yellow));
    }
    if app.mode == Mode::Filter || !browser.filter.is_empty() {
        title.push(format!("/{} ", browser.filter).fg(Color::Cyan));
    }
    let used: usize = title.iter().map(Span::width).sum();
    let room = (area.width as usize).saturating_sub(used + 4);
    title.push(format!("{} ", elide_middle(&printable(&folder), room)).into());
    let width = (area.width as usize).saturating_sub(2);
    let visible = browser.visible();
    let items: Vec<ListItem> = visible
        .iter()
        .map(|entry| {
            let selected = browser.selected.contains(&browser.path_of(entry));
            let mark = if selected { "▌" } else { " " };
            let line = if entry.is_dir {
                let folder = Style::new().fg(Color::Blue).bold();
                fit(
                    vec![
                        Cell::fixed(ALWAYS, mark),
                        Cell::fixed(ALWAYS, Span::styled("▸ ", folder)),
                        Cell::name(4, format!("{}/", printable(&entry.name)), folder),
                    ],
                    width,
                )
            } else {
                let (icon, state, color) = match app.file_state(entry) {
                    FileState::BackedUp => ("✓", "backed up", Color::Green),
                    FileState::Changed => ("~", "changed", Color::Yellow),
                    FileState::New => ("✚", "new", Color::Cyan),
                    FileState::Unknown => ("…", "checking", Color::DarkGray),
                    FileState::BadName => ("✕", "bad name", Color::Red),
                };
                let color = Style::new().fg(color);
                fit(
                    vec![
                        Cell::fixed(ALWAYS, mark),
                        Cell::fixed(ALWAYS, Span::styled(format!("{icon} "), color)),
                        Cell::name(10, printable(&entry.name), Style::new()),
                        Cell::fixed(3, format!(" {:>9}", format::bytes(entry.size))),
                        Cell::fixed(
                            1,
                            format!("  {}", &format::time(entry.modified_ms)[5..])
                                .fg(Color::DarkGray),
                        ),
                        Cell::fixed(2, Span::styled(format!("  {state:<9}"), color)),
                    ],
                    width,
                )
            };
            let style = if selected {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            ListItem::new(line).style(style)
        })
        .collect();
    let empty = items.is_empty();
    let items = match (empty, browser.filter.is_empty()) {
        (true, false) => vec![ListItem::new(
            Line::from(format!(" nothing here matches /{}", browser.filter)).fg(Color::DarkGray),
        )],
        _ => items,
    };
    let list = List::new(items)
        .block(pane(Line::from(title), true))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected((!empty).then_some(browser.cursor));
    frame.render_stateful_widget(list, area, &mut state);
}
