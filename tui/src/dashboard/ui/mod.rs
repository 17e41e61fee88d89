//! Drawing: a pure function of the app's state.

mod backups;
mod bars;
mod columns;
mod files;
mod popup;
mod servers;
mod transfers;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Margin, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};

use super::app::{App, Mode, Tab};
use super::event::Link;

pub use popup::{KEYS, LEGEND};

/// Below this size the dashboard shows a message instead of squeezing.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 15;

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return too_small(frame, area);
    }
    let outer = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(header(app))
        .title(Line::from(" ? help ").right_aligned())
        .title_bottom(hints(app));
    frame.render_widget(outer, area);
    let Areas {
        left,
        right,
        bottom,
        flash,
    } = areas(app, area);
    match app.tab {
        Tab::Files => files::draw(frame, left, app),
        Tab::Backups => backups::draw(frame, left, app),
    }
    servers::draw(frame, right, app);
    transfers::draw(frame, bottom, app);
    if let Some(text) = &app.flash {
        let text = columns::elide_end(text, usize::from(flash.width));
        frame.render_widget(Paragraph::new(text).fg(Color::Yellow), flash);
    }
    match &app.mode {
        Mode::Help => popup::help(frame, area, app.help_note.as_deref()),
        Mode::Details(id) => {
            if let Some(t) = app.transfers.iter().find(|t| t.id == *id) {
                let job = t.job.and_then(|job| app.jobs.iter().find(|j| j.id == job));
                let failures = job.map_or(&[][..], |j| j.failures.as_slice());
                popup::details(frame, area, t, failures, app.now);
            }
        }
        Mode::Confirm { prompt, .. } => popup::confirm(frame, area, prompt),
        Mode::Passphrase { typed, refused } => popup::passphrase(
            frame,
            area,
            &app.client,
            typed.0.chars().count(),
            refused.as_deref(),
        ),
        Mode::Normal | Mode::Filter => {}
    }
}

/// Where each pane goes.
struct Areas {
    left: Rect,
    right: Rect,
    bottom: Rect,
    flash: Rect,
}

fn areas(app: &App, area: Rect) -> Areas {
    let inner = area.inner(Margin::new(1, 1));
    // Not clamp: on a tiny screen a third of it is less than three rows.
    let transfer_height = transfers::height(app).min(inner.height / 3).max(3);
    let [top, bottom, flash] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(transfer_height),
        Constraint::Length(1),
    ])
    .areas(inner);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(48), Constraint::Percentage(52)]).areas(top);
    Areas {
        left,
        right,
        bottom,
        flash,
    }
}

/// Rows of the Files or Backups list on a screen of this size: a page,
/// for PgUp and PgDn.
pub fn list_rows(app: &App, width: u16, height: u16) -> u16 {
    areas(app, Rect::new(0, 0, width, height))
        .left
        .height
        .saturating_sub(2)
}

fn header(app: &App) -> Line<'static> {
    let (dot, state, color) = match &app.link {
        Link::Connecting => ("◌", "connecting".to_owned(), Color::Yellow),
        Link::Connected => ("●", "connected".to_owned(), Color::Green),
        // Why, in full, is in the Servers pane.
        Link::Down(_) => ("✕", "no link, retrying".to_owned(), Color::Red),
    };
    Line::from(vec![
        " Arca ".bold(),
        format!("· manager {} ", app.manager).into(),
        Span::styled(format!("{dot} {state}"), Style::new().fg(color)),
        format!(" · client {} ", app.client).into(),
    ])
}

fn hints(app: &App) -> Line<'static> {
    let text = match (&app.mode, app.tab) {
        (Mode::Filter, _) => " type to filter · enter keep · esc clear ",
        (Mode::Confirm { .. }, _) => " y confirm · n cancel ",
        (Mode::Help | Mode::Details(_), _) => " any key closes this ",
        (Mode::Passphrase { .. }, _) => " enter open the key · esc later (p) ",
        (Mode::Normal, _) if app.in_transfers => {
            " ↑↓ choose · enter details · t back · c clear done · ? help · q quit "
        }
        (Mode::Normal, Tab::Files) => {
            " space select · u upload · enter open · ⌫ up · / filter · tab backups · q quit "
        }
        (Mode::Normal, Tab::Backups) => {
            " enter open · ⌫ up · r restore · d delete · / filter · tab files · q quit "
        }
    };
    Line::from(text).centered()
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "Terminal too small ({}x{}).\nArca needs {MIN_WIDTH}x{MIN_HEIGHT}.\nEnlarge it, or press q to quit.",
        area.width, area.height
    );
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        area,
    );
}

/// A titled pane; the focused one stands out.
fn pane(title: Line<'_>, focused: bool) -> Block<'_> {
    let style = if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Block::bordered()
        .border_style(style)
        .title(title.style(Style::new().add_modifier(Modifier::BOLD)))
}
