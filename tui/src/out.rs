//! What the headless commands print. `println!` panics when the reader has
//! gone (`arca ls | head -1`); here a closed output only ends the output:
//! the command still finishes its work and exits with its own code, so a
//! backup, restore or removal is never left half done because a pager quit.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once standard output cannot be written: nothing more is tried.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes one line to standard output.
pub fn line(text: impl Display) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let written = writeln!(std::io::stdout().lock(), "{text}");
    if let Err(e) = written {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        // A reader that left is not news; anything else (a full disk) is.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            error(format_args!("arca: cannot write the output: {e}"));
        }
    }
}

/// Writes one line to standard error; if even that fails, there is no one
/// left to tell.
pub fn error(text: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
