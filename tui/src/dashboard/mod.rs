//! The full-screen dashboard: one event loop over terminal events, task
//! messages and a tick; state in [`app::App`]; drawing in [`ui`].

pub mod app;
pub mod event;
pub mod tasks;
mod terminal;
pub mod ui;

use std::time::{Duration, Instant};

use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{Passphrase, Settings};
use app::App;
use event::Effect;
use tasks::Tasks;

/// How often the folder view is refreshed from disk.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Runs the dashboard until the user quits; `initial` effects run at start,
/// and the help shows `note`.
pub async fn run(
    settings: Settings,
    initial: Vec<Effect>,
    note: Option<String>,
) -> std::io::Result<()> {
    let mut terminal = terminal::init()?;
    let result = event_loop(&mut terminal, settings, initial, note).await;
    let shown = terminal.show_cursor();
    terminal::restore();
    if shown.is_err() {
        // The terminal is gone (its window closed): dropping would print
        // that the cursor cannot be shown, and printing there panics before
        // the caller cleans up.
        std::mem::forget(terminal);
    }
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    settings: Settings,
    initial: Vec<Effect>,
    note: Option<String>,
) -> std::io::Result<()> {
    let shutdown = CancellationToken::new();
    let _stop_tasks = shutdown.clone().drop_guard();
    let (msgs, mut inbox) = mpsc::unbounded_channel();
    let mut app = App::new(
        settings.manager.clone(),
        settings.client.clone(),
        settings.files.clone(),
    );
    app.help_note = note;
    if matches!(settings.vault.passphrase, Passphrase::Typed) {
        app.ask_passphrase(None);
    }
    let tasks = Tasks::start(settings, msgs, shutdown);
    for effect in app.start().into_iter().chain(initial) {
        tasks.run(effect);
    }
    let mut events = crossterm::event::EventStream::new();
    let mut stop = Stop::listen()?;
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    let mut mouse = true;
    while !app.quit {
        let size = terminal.size()?;
        app.page = ui::list_rows(&app, size.width, size.height);
        if app.mouse != mouse {
            mouse = app.mouse;
            terminal::capture_mouse(mouse)?;
        }
        terminal.draw(|frame| ui::draw(frame, &app))?;
        let effects = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => app.on_event(&event),
                Some(Err(e)) => return Err(e),
                None => break,
            },
            Some(msg) = inbox.recv() => {
                // Take every waiting message before drawing again.
                let mut effects = app.on_msg(msg, Instant::now());
                while let Ok(msg) = inbox.try_recv() {
                    effects.extend(app.on_msg(msg, Instant::now()));
                }
                effects
            }
            _ = refresh.tick() => vec![Effect::ListDir(app.browser.dir.clone())],
            // Asked to stop from outside: leave as `q` does, without asking,
            // so the terminal is restored and the caller cleans up.
            () = stop.received() => break,
        };
        // What is on screen may have moved: the poller fetches it.
        for effect in effects.into_iter().chain(app.view_effect()) {
            tasks.run(effect);
        }
    }
    Ok(())
}

/// The signals that end the dashboard: `kill` (SIGTERM), a closed terminal
/// (SIGHUP) and an interrupt sent from outside (SIGINT; in the dashboard
/// ctrl-c is a key).
struct Stop {
    signals: [Signal; 3],
}

impl Stop {
    fn listen() -> std::io::Result<Self> {
        Ok(Self {
            signals: [
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
                signal(SignalKind::interrupt())?,
            ],
        })
    }

    async fn received(&mut self) {
        let [term, hup, int] = &mut self.signals;
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
    }
}
