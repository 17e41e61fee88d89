//! The Servers pane: liveness, zone, latency gauge and sparkline, load, score.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::bars::{gauge, sparkline};
use super::pane;
use crate::dashboard::app::App;
use crate::format;

/// What the health line says when no content is short of copies.
const ALL_COPIES: &str = " every content has all its copies";

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane(Line::from(" Servers "), false);
    let lines = match &app.cluster {
        None => vec![Line::from("waiting for the manager…").fg(Color::DarkGray)],
        Some(status) => {
            let alive = status.servers.iter().filter(|s| s.alive).count();
            let slowest = status
                .servers
                .iter()
                .filter(|s| s.alive)
                .map(|s| s.latency_ms)
                .fold(0.0, f64::max);
            let health = if status.stale_catalog {
                Span::styled(
                    " the manager's catalog is stale: backups are refused (see its log)",
                    Style::new().fg(Color::Red),
                )
            } else if status.under_replicated > 0 {
                Span::styled(
                    format!(
                        " {} contents under-replicated, {} copies being made",
                        status.under_replicated, status.healing
                    ),
                    Style::new().fg(Color::Yellow),
                )
            } else if status.moving > 0 {
                Span::styled(
                    format!("{ALL_COPIES} · {} moving to even the load", status.moving),
                    Style::new().fg(Color::Cyan),
                )
            } else {
                Span::styled(ALL_COPIES, Style::new().fg(Color::Green))
            };
            let mut lines = vec![
                Line::from(vec![
                    format!(
                        " {alive} of {} alive · {} copies each · {} stored",
                        status.servers.len(),
                        status.replicas,
                        format::bytes(status.servers.iter().map(|s| s.stored_bytes).sum()),
                    )
                    .fg(Color::DarkGray),
                ]),
                Line::from(health),
            ];
            // A zone column only where servers have zones.
            let zoned = status.servers.iter().any(|s| s.zone.is_some());
            for s in &status.servers {
                let id = match (&s.zone, zoned) {
                    (_, false) => format!(" s{:<2}", s.id),
                    (zone, true) => {
                        format!(" s{:<2} {:<6.6}", s.id, zone.as_deref().unwrap_or("-"))
                    }
                };
                if !s.alive {
                    let silent = if s.silent_ms == u64::MAX {
                        "not seen since the manager started".to_owned()
                    } else {
                        format!("dead {} s", s.silent_ms / 1000)
                    };
                    lines.push(Line::from(vec![
                        id.into(),
                        Span::styled(format!("✕ {silent}"), Style::new().fg(Color::Red)),
                    ]));
                    continue;
                }
                let latency = if slowest > 0.0 {
                    s.latency_ms / slowest
                } else {
                    0.0
                };
                let load = if s.capacity_bytes > 0 {
                    s.stored_bytes as f64 / s.capacity_bytes as f64
                } else {
                    0.0
                };
                lines.push(Line::from(vec![
                    id.into(),
                    "● ".fg(Color::Green),
                    "lat ".fg(Color::DarkGray),
                    gauge(latency, 5).fg(Color::Cyan),
                    format!(" {:>4.2} ms ", s.latency_ms).into(),
                    sparkline(&s.latency_history_ms, 6).fg(Color::Cyan),
                    "  load ".fg(Color::DarkGray),
                    gauge(load, 5).fg(Color::Magenta),
                    format!(" {:>3.0}%  ", load * 100.0).into(),
                    s.score
                        .map_or("    -".to_owned(), |v| format!("{v:>5.2}"))
                        .bold(),
                ]));
            }
            lines
        }
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
