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
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{Passphrase, Settings};
use app::App;
use event::Effect;
use tasks::Tasks;

/// How often the folder view is refreshed from disk.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Runs the dashboard until the user quits; `initial` effects run at start.
pub async fn run(settings: Settings, initial: Vec<Effect>) -> std::io::Result<()> {
    let mut terminal = terminal::init()?;
    let result = event_loop(&mut terminal, settings, initial).await;
    terminal::restore();
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    settings: Settings,
    initial: Vec<Effect>,
) -> std::io::Result<()> {
    let shutdown = CancellationToken::new();
    let _stop_tasks = shutdown.clone().drop_guard();
    let (msgs, mut inbox) = mpsc::unbounded_channel();
    let mut app = App::new(
        settings.manager.clone(),
        settings.client.clone(),
        settings.files.clone(),
    );
    if matches!(settings.vault.passphrase, Passphrase::Typed) {
        app.ask_passphrase(None);
    }
    let tasks = Tasks::start(settings, msgs, shutdown);
    for effect in app.start().into_iter().chain(initial) {
        tasks.run(effect);
    }
    let mut events = crossterm::event::EventStream::new();
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    while !app.quit {
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
        };
        // What is on screen may have moved: the poller fetches it.
        for effect in effects.into_iter().chain(app.view_effect()) {
            tasks.run(effect);
        }
    }
    Ok(())
}
