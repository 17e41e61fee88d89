//! `arca put PATH...`: back up files and folders through the backup engine
//! (see `client::backup`), with a progress bar on a terminal and one line
//! per file. A file that cannot be backed up (an unacceptable name, a FIFO,
//! a file that keeps changing) is skipped with a line that says why, and the
//! rest goes on.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::client::{
    self, BackupEvent, BackupSummary, ClientError, Phase, Settings, TransferProgress, Uploaded,
};
use crate::out;

/// The exit code when every file was backed up but some were skipped (see
/// the README); 1 means something failed.
const PARTIAL: u8 = 3;

pub async fn run(settings: Settings, paths: &[PathBuf]) -> Result<ExitCode, ClientError> {
    let (events, heard) = mpsc::unbounded_channel();
    let shown = tokio::spawn(show(heard));
    let summary = client::backup(&settings, paths, &events).await;
    drop(events);
    let _ = shown.await;
    let BackupSummary {
        files,
        failed,
        partial,
    } = summary?;
    if partial > 0 {
        out::error(format_args!(
            "arca: {partial} of {files} files skipped (each line \"skipped\" says why)"
        ));
    }
    if failed > 0 {
        out::error(format_args!("arca: {failed} of {files} files failed"));
        return Ok(ExitCode::FAILURE);
    }
    Ok(if partial > 0 {
        ExitCode::from(PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// A line per file, with a bar of the bytes on a terminal; piped, the
/// lines go out in as few writes as they come.
async fn show(mut heard: mpsc::UnboundedReceiver<BackupEvent>) {
    let mut bar: Option<ProgressBar> = None;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut files = 0;
    let mut done = 0;
    // Bytes counted into the bar, and the last attempt told, per batch.
    let mut counted: HashMap<u64, (u64, u32, usize)> = HashMap::new();
    while let Some(event) = heard.recv().await {
        let line = match event {
            BackupEvent::Planned { files: all, bytes } => {
                files = all;
                bar = std::io::stdout().is_terminal().then(|| progress_bar(bytes));
                None
            }
            BackupEvent::Batch { batch, names, .. } => {
                counted.insert(batch, (0, 0, names.len()));
                None
            }
            BackupEvent::Progress { batch, progress } => {
                let (sent, said, size) = counted.entry(batch).or_default();
                if let Some(bar) = &bar {
                    // A retry starts the count again: only ever move forward.
                    let now = match progress.phase.is_done() {
                        true => progress.total,
                        false => progress.sent,
                    };
                    bar.inc(now.saturating_sub(*sent));
                    *sent = (*sent).max(now);
                }
                retry_line(&progress, said, *size)
            }
            BackupEvent::Done { name, outcome } => {
                done += 1;
                Some(match outcome {
                    Ok(Uploaded::Committed { version, replicas }) => {
                        format!("committed  {name}  v{version}  {replicas} replicas")
                    }
                    Ok(Uploaded::Unchanged { version }) => format!("unchanged  {name}  v{version}"),
                    Ok(Uploaded::Skipped(why)) => format!("skipped    {name}: {why}"),
                    Err(e) => format!("failed     {name}: {e}"),
                })
            }
            BackupEvent::Skipped(skipped) => Some(format!("skipped    {skipped}")),
        };
        if let Some(bar) = &bar {
            bar.set_message(format!("{done}/{files} files"));
        }
        match (line, &bar) {
            (Some(line), Some(bar)) => bar.println(line),
            (Some(line), None) => {
                let _ = writeln!(out, "{line}");
            }
            (None, _) => {}
        }
        if heard.is_empty() {
            let _ = out.flush();
        }
    }
    let _ = out.flush();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// The line for a failed attempt, once: the phase stays `Retrying` while
/// the next attempt's progress comes in. `said` is the last attempt told.
fn retry_line(progress: &TransferProgress, said: &mut u32, files: usize) -> Option<String> {
    match &progress.phase {
        Phase::Retrying { attempt, reason } if *attempt > *said => {
            *said = *attempt;
            Some(format!(
                "retrying   {files} file(s) (attempt {attempt} failed: {reason})"
            ))
        }
        _ => None,
    }
}

pub(super) fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failed_attempt_is_told_once() {
        let mut said = 0;
        let mut lines = Vec::new();
        let retrying = |attempt| Phase::Retrying {
            attempt,
            reason: "a replica died".into(),
        };
        // What a batch's progress goes through: each retry is followed by
        // the next attempt's reset of the counts, still in `Retrying`.
        for (phase, sent) in [
            (Phase::Uploading, 10),
            (retrying(1), 10),
            (retrying(1), 0),
            (Phase::Uploading, 5),
            (retrying(2), 5),
            (retrying(2), 0),
            (retrying(2), 0),
        ] {
            let progress = TransferProgress {
                phase,
                sent,
                ..TransferProgress::default()
            };
            lines.extend(retry_line(&progress, &mut said, 3));
        }
        assert_eq!(
            lines,
            [
                "retrying   3 file(s) (attempt 1 failed: a replica died)",
                "retrying   3 file(s) (attempt 2 failed: a replica died)"
            ]
        );
    }
}
