//! `arca put PATH...`: back up files and folders, with a progress bar on a
//! terminal and one line per file otherwise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::client::{ClientError, Phase, Session, Settings, TransferProgress, Uploaded};
use crate::names;

pub async fn run(settings: Settings, paths: &[PathBuf]) -> Result<ExitCode, ClientError> {
    // Resolve everything first: a missing path fails before anything moves.
    let mut jobs: Vec<(PathBuf, String, u64)> = Vec::new();
    for root in paths {
        let files =
            names::walk(root).map_err(|e| ClientError::Local(format!("cannot back up {e}")))?;
        for file in files {
            let name =
                names::catalog_name(&settings.files, root, &file).map_err(ClientError::Local)?;
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            jobs.push((file, name, size));
        }
    }
    let mut session = Session::connect(settings).await?;
    let bar = std::io::stdout()
        .is_terminal()
        .then(|| progress_bar(jobs.iter().map(|j| j.2).sum()));
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => println!("{line}"),
    };
    let mut failed = 0;
    for (i, (file, name, size)) in jobs.iter().enumerate() {
        if let Some(bar) = &bar {
            bar.set_message(format!("[{}/{}] {name}", i + 1, jobs.len()));
        }
        let before = bar.as_ref().map_or(0, ProgressBar::position);
        match put_one(&mut session, file, name, bar.as_ref(), &say).await {
            Ok(Uploaded::Committed { version, replicas }) => {
                say(format!(
                    "committed  {name}  v{version}  {replicas} replicas"
                ));
            }
            Ok(Uploaded::Unchanged { version }) => say(format!("unchanged  {name}  v{version}")),
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Protocol(_))) => return Err(e),
            Err(e) => {
                failed += 1;
                say(format!("failed     {name}: {e}"));
            }
        }
        if let Some(bar) = &bar {
            bar.set_position(before + size);
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if failed > 0 {
        eprintln!("arca: {failed} of {} files failed", jobs.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn put_one(
    session: &mut Session,
    file: &Path,
    name: &str,
    bar: Option<&ProgressBar>,
    say: &impl Fn(String),
) -> Result<Uploaded, ClientError> {
    let (progress, mut updates) = watch::channel(TransferProgress::default());
    let start = bar.map_or(0, ProgressBar::position);
    let put = session.put(file, name, &progress);
    tokio::pin!(put);
    loop {
        tokio::select! {
            result = &mut put => return result,
            Ok(()) = updates.changed() => {
                let progress = updates.borrow_and_update();
                if let Some(bar) = bar {
                    bar.set_position(start + progress.sent);
                }
                if let Phase::Retrying { attempt, reason } = &progress.phase {
                    say(format!("retrying   {name} (attempt {attempt} failed: {reason})"));
                }
            }
        }
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
