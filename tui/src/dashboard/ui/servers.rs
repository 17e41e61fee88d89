//! The Servers pane: liveness, zone, latency gauge and sparkline, load,
//! score, and why the manager cannot be reached when it cannot.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use arca_shared::protocol::{ClusterStatus, ServerStatus};

use super::bars::{gauge, latency_ratio, sparkline};
use super::columns::{ALWAYS, Cell, fit, wrap};
use super::pane;
use crate::dashboard::app::App;
use crate::dashboard::event::Link;
use crate::format;

/// What the health line says when no content is short of copies.
const ALL_COPIES: &str = "every content has all its copies";

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane(Line::from(" Servers "), false);
    let width = (area.width as usize).saturating_sub(2);
    let mut lines = Vec::new();
    let red = |text: String| Line::from(text).fg(Color::Red);
    if let Link::Down(why) = &app.link {
        let what = match app.cluster {
            Some(_) => "no word from the manager, retrying: what is shown is from before",
            None => "no link to the manager, retrying:",
        };
        lines.extend(wrap(what, width, " ").into_iter().map(red));
        lines.extend(wrap(why, width, "   ").into_iter().map(red));
    }
    match &app.cluster {
        None if lines.is_empty() => {
            lines.push(Line::from(" waiting for the manager…").fg(Color::DarkGray));
        }
        None => {}
        Some(status) => lines.extend(status_lines(status, width)),
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn status_lines(status: &ClusterStatus, width: usize) -> Vec<Line<'static>> {
    let alive = status.servers.iter().filter(|s| s.alive).count();
    let (health, color) = if status.stale_catalog {
        (
            "the manager's catalog is stale: backups are refused (see its log)".to_owned(),
            Color::Red,
        )
    } else if status.under_replicated > 0 {
        (
            format!(
                "{} short of copies, {} being copied",
                status.under_replicated, status.healing
            ),
            Color::Yellow,
        )
    } else if status.moving > 0 {
        (
            format!("{ALL_COPIES} · {} moving to even the load", status.moving),
            Color::Cyan,
        )
    } else {
        (ALL_COPIES.to_owned(), Color::Green)
    };
    let summary = format!(
        "{alive}/{} alive · {} copies · {} stored",
        status.servers.len(),
        status.replicas,
        format::bytes(status.servers.iter().map(|s| s.stored_bytes).sum()),
    );
    let mut lines: Vec<Line> = wrap(&summary, width, " ")
        .into_iter()
        .map(|l| Line::from(l).fg(Color::DarkGray))
        .collect();
    lines.extend(
        wrap(&health, width, " ")
            .into_iter()
            .map(|l| Line::from(l).fg(color)),
    );
    // A zone column only where servers have zones.
    let zoned = status.servers.iter().any(|s| s.zone.is_some());
    let header = status.servers.iter().find(|s| s.alive).map(|s| {
        let cells = columns(s, zoned).into_iter().map(|(keep, head, cell)| {
            let width = cell.width();
            Cell::fixed(keep, format!("{head:>width$.width$}").fg(Color::DarkGray))
        });
        fit(cells.collect(), width)
    });
    lines.extend(header);
    for s in &status.servers {
        if s.alive {
            let cells = columns(s, zoned).into_iter();
            lines.push(fit(
                cells
                    .map(|(keep, _, cell)| Cell::fixed(keep, cell))
                    .collect(),
                width,
            ));
            continue;
        }
        let silent = if s.silent_ms == u64::MAX {
            "not seen since the manager started".to_owned()
        } else {
            format!("silent for {} s", s.silent_ms / 1000)
        };
        let dead = Style::new().fg(Color::Red);
        lines.push(fit(
            vec![
                Cell::fixed(ALWAYS, id(s, zoned)),
                Cell::fixed(ALWAYS, Span::styled("✕ ", dead)),
                Cell::message(4, silent, dead),
            ],
            width,
        ));
    }
    lines
}

fn id(s: &ServerStatus, zoned: bool) -> Span<'static> {
    match zoned {
        false => format!(" s{:<2} ", s.id).into(),
        true => format!(" s{:<2} {:<6.6} ", s.id, s.zone.as_deref().unwrap_or("-")).into(),
    }
}

/// A live server's row, as (how long it stays as the row narrows, its
/// heading, its cell): the figures stay, the pictures of them go first.
fn columns(s: &ServerStatus, zoned: bool) -> Vec<(u8, &'static str, Span<'static>)> {
    let load = if s.capacity_bytes > 0 {
        s.stored_bytes as f64 / s.capacity_bytes as f64
    } else {
        0.0
    };
    let score = s.score.map_or("    -".to_owned(), |v| format!("{v:>5.2}"));
    vec![
        (ALWAYS, "", id(s, zoned)),
        (ALWAYS, "", "● ".fg(Color::Green)),
        (2, "", gauge(latency_ratio(s.latency_ms), 5).fg(Color::Cyan)),
        (ALWAYS, "lat ms", format!(" {:>5.2}", s.latency_ms).into()),
        (
            1,
            "",
            format!(" {}", sparkline(&s.latency_history_ms, 6)).fg(Color::Cyan),
        ),
        (3, "", format!("  {}", gauge(load, 5)).fg(Color::Magenta)),
        (ALWAYS, "load", format!(" {:>4.0}%", load * 100.0).into()),
        (ALWAYS, "score", format!("  {score}").bold()),
    ]
}
