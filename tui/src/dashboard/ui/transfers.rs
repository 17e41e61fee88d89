//! The Transfers pane: every upload and restore, with a bar for the bytes
//! sent to the primary and one per replica for the bytes it has written.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::bars::{bar, percent};
use super::pane;
use crate::client::Phase;
use crate::dashboard::app::{App, Transfer};
use crate::dashboard::event::Kind;
use crate::format;

const BAR: usize = 10;

/// Rows the pane wants: a line per replica (at least one) per transfer, plus borders.
pub fn height(app: &App) -> u16 {
    let lines: usize = app.transfers.iter().map(|t| lines_of(t).len()).sum();
    (lines.max(1) + 2) as u16
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let active = app
        .transfers
        .iter()
        .filter(|t| !t.progress.phase.is_done())
        .count();
    let title = Line::from(vec![
        " Transfers ".bold(),
        format!("{active} active ").into(),
    ]);
    let mut lines: Vec<Line> = Vec::new();
    // Newest last, and keep the newest in view.
    for transfer in &app.transfers {
        lines.extend(lines_of(transfer));
    }
    if lines.is_empty() {
        lines.push(Line::from(" nothing yet: select files and press u").fg(Color::DarkGray));
    }
    let room = area.height.saturating_sub(2) as usize;
    let skip = lines.len().saturating_sub(room);
    let lines: Vec<Line> = lines.into_iter().skip(skip).collect();
    frame.render_widget(Paragraph::new(lines).block(pane(title, false)), area);
}

fn lines_of(t: &Transfer) -> Vec<Line<'static>> {
    let p = &t.progress;
    let (phase, color) = match &p.phase {
        Phase::Queued => ("queued".to_owned(), Color::DarkGray),
        Phase::Hashing => ("hashing".to_owned(), Color::DarkGray),
        Phase::Uploading => ("uploading".to_owned(), Color::Cyan),
        Phase::Replicating => ("replicating".to_owned(), Color::Cyan),
        Phase::Committed { version } => (format!("committed v{version}"), Color::Green),
        Phase::Unchanged { version } => (format!("unchanged v{version}"), Color::Green),
        Phase::BackedUp { files } => (format!("{files} backed up"), Color::Green),
        Phase::Retrying { attempt, .. } => (format!("retry {}", attempt + 1), Color::Yellow),
        Phase::Restoring => ("restoring".to_owned(), Color::Cyan),
        Phase::Restored { version } => (format!("restored v{version}"), Color::Green),
        Phase::Failed(_) => ("failed".to_owned(), Color::Red),
    };
    let head = vec![
        format!(" {:<22.22} ", t.name).into(),
        Span::styled(format!("{phase:<15.15} "), Style::new().fg(color)),
    ];
    let pad = " ".repeat(39);
    let rate = rate(t);
    if let Phase::Failed(reason) = &p.phase {
        let mut line = head;
        line.pop();
        line.push(Span::styled(
            format!("failed: {reason}"),
            Style::new().fg(Color::Red),
        ));
        return vec![Line::from(line)];
    }
    if t.kind == Kind::Restore {
        let mut line = head;
        line.extend(progress_bar("received", p.sent, p.total));
        line.push(rate.into());
        return vec![Line::from(line)];
    }
    let mut first = head;
    first.extend(progress_bar("sent", p.sent, p.total));
    if p.replicas.is_empty() {
        first.push(rate.into());
        return vec![Line::from(first)];
    }
    let mut lines = Vec::new();
    for (i, written) in p.replicas.iter().enumerate() {
        let mut line = if i == 0 {
            std::mem::take(&mut first)
        } else {
            vec![pad.clone().into(), " ".repeat(BAR + 11).into()]
        };
        line.push("  ".into());
        line.extend(progress_bar(
            &format!("replica {}", i + 1),
            *written,
            p.total,
        ));
        if i + 1 == p.replicas.len() {
            line.push(rate.clone().into());
        }
        lines.push(Line::from(line));
    }
    lines
}

fn progress_bar(label: &str, done: u64, total: u64) -> Vec<Span<'static>> {
    let pct = percent(done, total);
    let color = if pct == 100 {
        Color::Green
    } else {
        Color::Cyan
    };
    vec![
        format!("{label} ").fg(Color::DarkGray),
        bar(pct as f64 / 100.0, BAR).fg(color),
        format!(" {pct:>3}%").into(),
    ]
}

fn rate(t: &Transfer) -> String {
    if t.bytes_per_sec <= 0.0 {
        return String::new();
    }
    let speed = format!("  {}/s", format::bytes(t.bytes_per_sec as u64));
    match t.eta_secs() {
        Some(eta) => format!("{speed}  ETA {eta} s"),
        None => speed,
    }
}
