//! `arca get NAME [--version N] [-o PATH] [--force]`: restore one file, or
//! every file under a folder name ending in '/', in one restore (see
//! `client::restore`). On a terminal a bar shows files and bytes done of
//! the total, the speed and the time left; each file gets a line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio::sync::mpsc;

use crate::client::{ClientError, RestoreEvent, Restored, Session, Settings, Wanted};
use crate::{format, names, out};

pub async fn run(
    settings: Settings,
    name: &str,
    version: Option<u32>,
    output: Option<PathBuf>,
    force: bool,
) -> Result<ExitCode, ClientError> {
    let files = settings.files.clone();
    let mut session = Session::connect(settings).await?;
    let (wanted, refused) = if name.ends_with('/') {
        let root = output.unwrap_or(files);
        under(&mut session, name, &root).await?
    } else {
        let dest = match output {
            Some(out) if out.is_dir() => out.join(name.rsplit('/').next().unwrap_or(name)),
            Some(out) => out,
            None => names::restore_path(&files, name).map_err(ClientError::Local)?,
        };
        let entry = session.version(name, version).await?;
        (vec![Wanted { entry, dest }], 0)
    };
    let lone = !name.ends_with('/');
    let (events, heard) = mpsc::unbounded_channel();
    let shown = tokio::spawn(show(heard, wanted.len(), lone));
    let outcomes = session.restore(wanted, force, &events).await;
    drop(events);
    let _ = shown.await;
    let outcomes = outcomes?;
    let failed = refused + outcomes.iter().filter(|o| o.is_err()).count();
    if lone && let Some(Err(e)) = outcomes.into_iter().next() {
        return Err(e);
    }
    if failed > 0 {
        out::error(format_args!("arca: {failed} files failed"));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The newest version of every file under the folder name `prefix`, each
/// to its place under `root`, and how many were refused (each told with a
/// `failed` line).
async fn under(
    session: &mut Session,
    prefix: &str,
    root: &std::path::Path,
) -> Result<(Vec<Wanted>, usize), ClientError> {
    let (entries, mut refused) = super::listed_under(session, prefix).await?;
    let mut wanted = Vec::with_capacity(entries.len());
    for entry in entries {
        match names::restore_path(root, &entry.name) {
            Ok(dest) => wanted.push(Wanted { entry, dest }),
            Err(e) => {
                refused += 1;
                out::error(format_args!(
                    "failed     {}: {e}",
                    entry.name.escape_debug()
                ));
            }
        }
    }
    Ok((wanted, refused))
}

/// Prints a line per file, with a bar of files and bytes on a terminal.
async fn show(mut heard: mpsc::UnboundedReceiver<RestoreEvent>, files: usize, lone: bool) {
    let bar = std::io::stdout()
        .is_terminal()
        .then(|| super::put::progress_bar(0));
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => out::line(line),
    };
    let mut done = 0;
    while let Some(event) = heard.recv().await {
        match event {
            RestoreEvent::Planned { bytes, .. } => {
                if let Some(bar) = &bar {
                    bar.set_length(bytes);
                    bar.reset_eta();
                }
            }
            RestoreEvent::Fetched(bytes) => {
                if let Some(bar) = &bar {
                    bar.set_position(bytes);
                }
            }
            RestoreEvent::Done {
                name,
                dest,
                outcome,
            } => {
                done += 1;
                if let Some(bar) = &bar {
                    bar.set_message(format!("{done}/{files} files"));
                }
                let name = name.escape_debug();
                match outcome {
                    Ok(Restored::Written { version, size }) => say(format!(
                        "restored   {name}  v{version}  {}  -> {}",
                        format::bytes(size),
                        dest.display()
                    )),
                    Ok(Restored::AlreadyThere { version }) => say(format!(
                        "current    {name}  v{version}  {} already matches",
                        dest.display()
                    )),
                    // A lone file's failure is the command's error, told once.
                    Err(_) if lone => {}
                    Err(e) => match &bar {
                        Some(bar) => bar.println(format!("failed     {name}: {e}")),
                        None => out::error(format_args!("failed     {name}: {e}")),
                    },
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
