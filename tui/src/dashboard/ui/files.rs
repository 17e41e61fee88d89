//! The Files pane: the local files folder with each file's backup state.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState};

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
    let mut title = vec![" Files ".bold(), format!("{folder} ").into()];
    if !browser.selected.is_empty() {
        title.push(format!("[{} selected] ", browser.selected.len()).fg(Color::Yellow));
    }
    if app.mode == Mode::Filter || !browser.filter.is_empty() {
        title.push(format!("/{} ", browser.filter).fg(Color::Cyan));
    }
    // Everything but the name has a fixed width; the name takes the rest.
    let name_width = (area.width as usize).saturating_sub(2 + 38).max(8);
    let visible = browser.visible();
    let items: Vec<ListItem> = visible
        .iter()
        .map(|entry| {
            let selected = browser.selected.contains(&browser.path_of(entry));
            let mark = if selected { "▌" } else { " " };
            let line = if entry.is_dir {
                Line::from(vec![
                    mark.into(),
                    format!("▸ {}/", entry.name).fg(Color::Blue).bold(),
                ])
            } else {
                let (icon, state, color) = match app.file_state(entry) {
                    FileState::BackedUp => ("✓", "backed up", Color::Green),
                    FileState::Changed => ("~", "changed", Color::Yellow),
                    FileState::New => ("✚", "new", Color::Cyan),
                    FileState::Unknown => ("…", "checking", Color::DarkGray),
                };
                Line::from(vec![
                    mark.into(),
                    Span::styled(format!("{icon} "), Style::new().fg(color)),
                    format!("{:<name_width$.name_width$} ", entry.name).into(),
                    format!("{:>9}  ", format::bytes(entry.size)).into(),
                    format!("{}  ", &format::time(entry.modified_ms)[5..]).fg(Color::DarkGray),
                    Span::styled(state, Style::new().fg(color)),
                ])
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
    let list = List::new(items)
        .block(pane(Line::from(title), true))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected((!empty).then_some(browser.cursor));
    frame.render_stateful_widget(list, area, &mut state);
}
