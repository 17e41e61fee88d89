//! Entering and leaving the full-screen terminal, also on panic.

use std::io::stdout;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use ratatui::DefaultTerminal;

pub fn init() -> std::io::Result<DefaultTerminal> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    let terminal = ratatui::try_init()?;
    crossterm::execute!(stdout(), EnableMouseCapture, EnableBracketedPaste)?;
    Ok(terminal)
}

/// Takes the mouse (wheel scrolls the lists) or leaves it to the terminal
/// (dragging selects text).
pub fn capture_mouse(on: bool) -> std::io::Result<()> {
    match on {
        true => crossterm::execute!(stdout(), EnableMouseCapture),
        false => crossterm::execute!(stdout(), DisableMouseCapture),
    }
}

pub fn restore() {
    let _ = crossterm::execute!(stdout(), DisableBracketedPaste, DisableMouseCapture);
    // Not `ratatui::restore`: it prints its failure, and printing to a
    // terminal that is gone (its window closed) panics before the caller
    // cleans up.
    let _ = ratatui::try_restore();
}
