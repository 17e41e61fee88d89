//! The Transfers pane: every upload and restore, with a bar for the bytes
//! sent to the primary and one per replica for the bytes it has written.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::bars::{bar, percent};
use super::columns::Elide::{End, Middle};
use super::columns::{ALWAYS, Cell, cut, fit};
use super::pane;
use crate::client::Phase;
use crate::dashboard::app::{App, Job, Transfer, TransferRow};
use crate::dashboard::event::Kind;
use crate::format;

const BAR: usize = 10;

/// Rows the pane wants: a line per replica (at least one) per row, plus borders.
pub fn height(app: &App) -> u16 {
    let lines: usize = app
        .transfer_rows()
        .iter()
        .map(|row| match row {
            TransferRow::Job(_) => 1,
            TransferRow::Transfer { transfer, .. } => lines_of(transfer, app.now, 80, false).len(),
        })
        .sum();
    (lines.max(1) + 2) as u16
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let title = Line::from(vec![
        " Transfers ".bold(),
        format!("{} active ", app.running()).into(),
    ]);
    let width = (area.width as usize).saturating_sub(2);
    let mut lines: Vec<Line> = Vec::new();
    // Newest last; the chosen one (or else the newest) kept in view.
    let mut chosen_end = 0;
    for (i, row) in app.transfer_rows().into_iter().enumerate() {
        let mut rows = match row {
            TransferRow::Job(job) => vec![job_line(job, width)],
            TransferRow::Transfer { transfer, in_job } => {
                lines_of(transfer, app.now, width, in_job)
            }
        };
        if app.in_transfers && i == app.transfer_cursor {
            rows = rows
                .into_iter()
                .map(|row| row.style(Style::new().add_modifier(Modifier::REVERSED)))
                .collect();
        }
        lines.extend(rows);
        if !app.in_transfers || i == app.transfer_cursor {
            chosen_end = lines.len();
        }
    }
    if lines.is_empty() {
        lines.push(Line::from(" nothing yet: select files and press u").fg(Color::DarkGray));
    }
    let room = area.height.saturating_sub(2) as usize;
    let skip = chosen_end.saturating_sub(room);
    let lines: Vec<Line> = lines.into_iter().skip(skip).collect();
    frame.render_widget(
        Paragraph::new(lines).block(pane(title, app.in_transfers)),
        area,
    );
}

/// A job's summary: files and bytes done of all, speed and ETA, or how it
/// ended.
/// Names in a column of their own, so states and bars line up.
fn name_width(width: usize) -> usize {
    (width * 2 / 9).clamp(10, 32)
}

fn job_line(job: &Job, width: usize) -> Line<'static> {
    let name_width = name_width(width);
    let mark = if job.expanded { "▾" } else { "▸" };
    let failed = match job.failures.len() {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    let done = match job.kind {
        Kind::Upload => "backed up",
        Kind::Restore => "restored",
    };
    let (state, color) = match &job.ended {
        None => (
            format!("{}/{} files{failed}", job.files_done, job.files),
            Color::Cyan,
        ),
        Some(Some(why)) => (format!("stopped: {why}"), Color::Red),
        Some(None) if !job.failures.is_empty() => (
            format!(
                "{} of {} files {done}{failed}",
                job.files_done - job.failures.len(),
                job.files
            ),
            Color::Yellow,
        ),
        Some(None) => (format!("{} files {done}", job.files), Color::Green),
    };
    let mut cells = vec![
        Cell::fixed(
            ALWAYS,
            format!("{mark} {} ", cut(&job.name, name_width - 1, Middle)),
        ),
        Cell::fixed(
            4,
            Span::styled(format!("{state:<16}"), Style::new().fg(color)),
        ),
    ];
    let warn = !job.failures.is_empty();
    cells.extend(progress_bar("", job.bytes_done, job.bytes, warn));
    cells.push(Cell::fixed(
        3,
        format!(
            "  {} of {}",
            format::bytes(job.bytes_done),
            format::bytes(job.bytes)
        ),
    ));
    cells.push(Cell::fixed(2, speed(job.bytes_per_sec, job.eta_secs())));
    fit(cells, width)
}

/// What a transfer's state is called, and its colour, as of `now`.
pub fn phase_of(t: &Transfer, now: Instant) -> (String, Color) {
    let p = &t.progress;
    if let Some(secs) = t.stalled_secs(now) {
        return (format!("stalled {secs} s"), Color::Yellow);
    }
    match &p.phase {
        Phase::Queued => ("queued".to_owned(), Color::DarkGray),
        Phase::Hashing => ("hashing".to_owned(), Color::DarkGray),
        Phase::Uploading => ("uploading".to_owned(), Color::Cyan),
        Phase::Replicating => ("replicating".to_owned(), Color::Cyan),
        Phase::Committed { version } if p.sent == 0 => (
            format!("v{version} committed, its content already stored"),
            Color::Green,
        ),
        Phase::Committed { version } => (format!("committed v{version}"), Color::Green),
        Phase::Unchanged { version } => (format!("unchanged since v{version}"), Color::Green),
        Phase::BackedUp { files } => (format!("{files} files backed up"), Color::Green),
        Phase::Retrying { attempt, reason } => {
            (format!("retry {}: {reason}", attempt + 1), Color::Yellow)
        }
        Phase::Restoring => ("restoring".to_owned(), Color::Cyan),
        Phase::Restored { version } => (format!("restored v{version}"), Color::Green),
        Phase::RestoredFiles { files } => (format!("{files} files restored"), Color::Green),
        Phase::Failed(reason) => (format!("failed: {reason}"), Color::Red),
    }
}

/// Whether bars mean something in this state: not before a byte moves, and
/// not for a file whose bytes never had to.
fn has_bars(t: &Transfer) -> bool {
    match t.progress.phase {
        Phase::Queued | Phase::Hashing | Phase::Retrying { .. } | Phase::Failed(_) => false,
        Phase::Unchanged { .. } | Phase::BackedUp { .. } => false,
        Phase::Committed { .. } => t.progress.sent > 0,
        Phase::Uploading | Phase::Replicating | Phase::Restoring => true,
        Phase::Restored { .. } | Phase::RestoredFiles { .. } => true,
    }
}

/// A transfer's lines; `in_job` indents it under its job's row.
fn lines_of(t: &Transfer, now: Instant, width: usize, in_job: bool) -> Vec<Line<'static>> {
    let p = &t.progress;
    let (phase, color) = phase_of(t, now);
    let phase_style = Style::new().fg(color);
    let name_width = name_width(width) - usize::from(in_job) * 2;
    let indent = if in_job { "   " } else { " " };
    if !has_bars(t) {
        // The state is all there is to say: it takes the row.
        return vec![fit(
            vec![
                Cell::fixed(
                    ALWAYS,
                    format!("{indent}{} ", cut(&t.name, name_width, Middle)),
                ),
                Cell::message(12, phase, phase_style),
            ],
            width,
        )];
    }
    let rate = rate(t);
    let head = |first: bool| {
        let (name, phase) = match first {
            true => (t.name.as_str(), phase.as_str()),
            false => ("", ""),
        };
        vec![
            Cell::fixed(
                ALWAYS,
                format!("{indent}{} ", cut(name, name_width, Middle)),
            ),
            Cell::fixed(4, Span::styled(cut(phase, 12, End), phase_style)),
        ]
    };
    let label = if t.kind == Kind::Restore {
        "received"
    } else {
        "sent"
    };
    let mut first = head(true);
    first.extend(progress_bar(label, p.sent, p.total, false));
    if t.kind == Kind::Restore || p.replicas.is_empty() {
        first.push(Cell::fixed(2, rate));
        return vec![fit(first, width)];
    }
    let mut lines = Vec::new();
    for (i, written) in p.replicas.iter().enumerate() {
        let mut row = if i == 0 {
            std::mem::take(&mut first)
        } else {
            let mut row = head(false);
            row.push(Cell::fixed(ALWAYS, " ".repeat(label.len() + BAR + 7)));
            row
        };
        row.extend(progress_bar(
            &format!(" copy {}", i + 1),
            *written,
            p.total,
            false,
        ));
        if i + 1 == p.replicas.len() {
            row.push(Cell::fixed(2, rate.clone()));
        }
        lines.push(fit(row, width));
    }
    lines
}

/// A bar of `done` of `total`, green once full unless `warn` (some of it
/// failed).
fn progress_bar(label: &str, done: u64, total: u64, warn: bool) -> Vec<Cell> {
    let pct = percent(done, total);
    let color = match (warn, pct) {
        (true, _) => Color::Yellow,
        (false, 100) => Color::Green,
        (false, _) => Color::Cyan,
    };
    let label =
        (!label.is_empty()).then(|| Cell::fixed(3, format!(" {label}").fg(Color::DarkGray)));
    label
        .into_iter()
        .chain([
            Cell::fixed(
                ALWAYS,
                format!(" {}", bar(pct as f64 / 100.0, BAR)).fg(color),
            ),
            Cell::fixed(ALWAYS, format!(" {pct:>3}%")),
        ])
        .collect()
}

fn rate(t: &Transfer) -> String {
    speed(t.bytes_per_sec, t.eta_secs())
}

fn speed(bytes_per_sec: f64, eta: Option<u64>) -> String {
    if bytes_per_sec <= 0.0 {
        return String::new();
    }
    let speed = format!("  {}/s", format::bytes(bytes_per_sec as u64));
    match eta {
        Some(eta) => format!("{speed}  ETA {eta} s"),
        None => speed,
    }
}
