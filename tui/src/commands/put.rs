//! `arca put PATH...`: back up files and folders, with a progress bar on a
//! terminal and one line per file otherwise. Small files travel in batches
//! (one request, one stream, one commit); unchanged files are recognised
//! from a cache of their size, modification time and inode, unread. A file
//! that cannot be backed up (an unacceptable name, a FIFO, a file that keeps
//! changing) is skipped with a line that says why, and the rest goes on.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use arca_shared::meta::FileMeta;
use arca_shared::sync::LockAnyway;
use arca_shared::vault::ChunkKeys;

use crate::client::{
    ChunkCache, ClientError, LocalFile, Phase, Session, Settings, Skip, Stamp, TransferProgress,
    Uploaded, backed_up, meta,
};
use crate::names::{self, Skipped};
use crate::out;

/// The exit code when every file was backed up but some were skipped (see
/// the README); 1 means something failed.
const PARTIAL: u8 = 3;

/// Files smaller than this share batches.
const SMALL_FILE: u64 = 1 << 20;
/// A batch's limits: files, bytes, and name bytes (its request must stay
/// well under the control frame cap).
const BATCH_FILES: usize = 512;
const BATCH_BYTES: u64 = 16 << 20;
const BATCH_NAME_BYTES: usize = 32 * 1024;
/// Batches in flight at once.
const PARALLEL: usize = 4;

pub async fn run(settings: Settings, paths: &[PathBuf]) -> Result<ExitCode, ClientError> {
    // Resolve everything first: a missing path fails before anything moves.
    let mut jobs: Vec<(PathBuf, String)> = Vec::new();
    let mut skipped = Vec::new();
    for root in paths {
        let walked = names::files_to_back_up(&settings.files, root)
            .map_err(|e| ClientError::Local(format!("cannot back up {e}")))?;
        jobs.extend(walked.files.into_iter().map(|f| (f.path, f.name)));
        skipped.extend(walked.skipped);
    }
    let total_files = jobs.len() + skipped.iter().filter(|s| s.partial).count();
    // The key opens (a deliberately slow passphrase hash) while the files
    // are looked at: on an unchanged tree the two are most of the work.
    let open = async {
        let mut sessions = Vec::with_capacity(PARALLEL);
        for _ in 0..PARALLEL {
            sessions.push(Session::connect(settings.clone()).await?);
        }
        let keys = match sessions.first_mut() {
            Some(session) => session.chunk_keys(true).await?,
            None => return Err(ClientError::Local("no session to the manager".into())),
        };
        Ok((sessions, keys))
    };
    let (stat, opened) = tokio::join!(stat_all(jobs), open);
    // The key opened once here (the first backup makes it); every session shares it.
    let ((pending, gone), (sessions, keys)) = (stat?, opened?);
    skipped.extend(gone);
    let bar = std::io::stdout()
        .is_terminal()
        .then(|| progress_bar(pending.iter().map(|f| f.size).sum()));
    // Piped, the lines of a batch go out in one write, not one each.
    let out = RefCell::new(std::io::BufWriter::new(std::io::stdout()));
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => {
            let _ = writeln!(out.borrow_mut(), "{line}");
        }
    };
    let flush = || {
        let _ = out.borrow_mut().flush();
    };
    let failed = Cell::new(0);
    let partial = Cell::new(0);
    let skip = |skipped: Skipped| {
        partial.set(partial.get() + usize::from(skipped.partial));
        say(format!("skipped    {skipped}"));
    };
    let done = Cell::new(0);
    skipped.into_iter().for_each(skip);
    // Batches go out on parallel sessions: one batch's transfer overlaps
    // another's wait for the disks.
    let queue = RefCell::new(batches(pending).into_iter());
    let cache = Arc::new(Mutex::new(ChunkCache::load(&settings.client, &keys)));
    let workers = sessions.into_iter().map(|mut session| {
        let (queue, bar, say, skip, flush, failed, done, cache, keys) = (
            &queue,
            bar.as_ref(),
            &say,
            &skip,
            &flush,
            &failed,
            &done,
            &cache,
            &keys,
        );
        async move {
            loop {
                let Some(pending) = queue.borrow_mut().next() else {
                    return Ok(());
                };
                // Hashing happens here, batch by batch, so it overlaps the
                // other batches' transfers; small files are read only once.
                let (batch, unreadable) = read_batch(pending, cache, keys).await?;
                unreadable.into_iter().for_each(skip);
                if batch.is_empty() {
                    continue;
                }
                let outcome = put_batch(&mut session, &batch, bar, say).await;
                done.set(done.get() + batch.len());
                if let Some(bar) = bar {
                    bar.set_message(format!("{}/{total_files} files", done.get()));
                }
                match outcome {
                    Ok(outcomes) => {
                        for (file, outcome) in batch.iter().zip(outcomes) {
                            match outcome {
                                Uploaded::Committed { version, replicas } => say(format!(
                                    "committed  {}  v{version}  {replicas} replicas",
                                    file.name
                                )),
                                Uploaded::Unchanged { version } => {
                                    say(format!("unchanged  {}  v{version}", file.name))
                                }
                                Uploaded::Skipped(why) => skip(Skipped {
                                    what: file.name.clone(),
                                    why,
                                    partial: true,
                                }),
                            }
                        }
                    }
                    Err(e @ (ClientError::Unreachable { .. } | ClientError::Protocol(_))) => {
                        return Err(e);
                    }
                    Err(e) => {
                        failed.set(failed.get() + batch.len());
                        for file in &batch {
                            say(format!("failed     {}: {e}", file.name));
                        }
                    }
                }
                flush();
            }
        }
    });
    let outcome = futures::future::try_join_all(workers).await;
    flush();
    cache.lock_anyway().save();
    outcome?;
    let (failed, partial) = (failed.get(), partial.get());
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if partial > 0 {
        out::error(format_args!(
            "arca: {partial} of {total_files} files skipped (each line \"skipped\" says why)"
        ));
    }
    if failed > 0 {
        out::error(format_args!("arca: {failed} of {total_files} files failed"));
        return Ok(ExitCode::FAILURE);
    }
    Ok(if partial > 0 {
        ExitCode::from(PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// A file found on disk, not yet read.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    name: String,
    size: u64,
    stamp: Stamp,
    /// A regular file's metadata; `None` for a link (read when it is sent).
    meta: Option<FileMeta>,
}

/// The size of every file; one that is gone or is no longer a regular file
/// or a link is skipped. Links are not followed: they are backed up as links.
async fn stat_all(
    jobs: Vec<(PathBuf, String)>,
) -> Result<(Vec<Pending>, Vec<Skipped>), ClientError> {
    tokio::task::spawn_blocking(move || {
        let mut pending = Vec::with_capacity(jobs.len());
        let mut gone = Vec::new();
        for (path, name) in jobs {
            let meta = std::fs::symlink_metadata(&path).map_err(Skip::from);
            match meta.and_then(|meta| backed_up(&meta).map(|()| meta)) {
                Ok(found) => {
                    let link = found.file_type().is_symlink();
                    pending.push(Pending {
                        path,
                        name,
                        size: if link { 0 } else { found.len() },
                        stamp: Stamp::of(&found),
                        meta: (!link).then(|| meta::of_file(&found)),
                    });
                }
                Err(why) => gone.push(Skipped {
                    what: name,
                    why,
                    partial: true,
                }),
            }
        }
        (pending, gone)
    })
    .await
    .map_err(|e| ClientError::local("listing task", e))
}

/// Names a batch's chunks, from the cache where it still holds; a small
/// file that must be read is read once and its bytes kept to send.
async fn read_batch(
    batch: Vec<Pending>,
    cache: &Arc<Mutex<ChunkCache>>,
    keys: &ChunkKeys,
) -> Result<(Vec<LocalFile>, Vec<Skipped>), ClientError> {
    let (cache, keys) = (cache.clone(), keys.clone());
    tokio::task::spawn_blocking(move || {
        let lock = || cache.lock_anyway();
        let mut files = Vec::with_capacity(batch.len());
        let mut skipped = Vec::new();
        for p in batch {
            let known = p.meta.clone().zip(lock().known(&p.path, p.stamp));
            if let Some((meta, chunks)) = known {
                files.push(LocalFile {
                    path: p.path,
                    name: p.name,
                    size: p.size,
                    meta,
                    chunks,
                    content: None,
                    stamp: p.stamp,
                });
                continue;
            }
            match LocalFile::read(&p.path, &p.name, SMALL_FILE, &keys) {
                Ok(file) => {
                    lock().remember(&file.path, file.stamp, file.chunks.clone());
                    files.push(file);
                }
                Err(why) => skipped.push(Skipped {
                    what: p.name,
                    why,
                    partial: true,
                }),
            }
        }
        (files, skipped)
    })
    .await
    .map_err(|e| ClientError::local("hashing task", e))
}

/// Large files alone; small ones together, within the batch limits.
fn batches(files: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut out: Vec<Vec<Pending>> = Vec::new();
    let mut open: Vec<Pending> = Vec::new();
    let (mut bytes, mut name_bytes) = (0u64, 0usize);
    for file in files {
        if file.size >= SMALL_FILE {
            out.push(vec![file]);
            continue;
        }
        if open.len() == BATCH_FILES
            || bytes + file.size > BATCH_BYTES
            || name_bytes + file.name.len() > BATCH_NAME_BYTES
        {
            out.push(std::mem::take(&mut open));
            (bytes, name_bytes) = (0, 0);
        }
        bytes += file.size;
        name_bytes += file.name.len();
        open.push(file);
    }
    if !open.is_empty() {
        out.push(open);
    }
    out
}

async fn put_batch(
    session: &mut Session,
    batch: &[LocalFile],
    bar: Option<&ProgressBar>,
    say: &impl Fn(String),
) -> Result<Vec<Uploaded>, ClientError> {
    let (progress, mut updates) = watch::channel(TransferProgress::default());
    let mut counted = 0;
    let mut said = 0;
    let put = session.put_batch(batch, &progress);
    tokio::pin!(put);
    loop {
        tokio::select! {
            result = &mut put => {
                if let Some(bar) = bar {
                    bar.inc(batch.iter().map(|f| f.size).sum::<u64>().saturating_sub(counted));
                }
                return result;
            }
            Ok(()) = updates.changed() => {
                let progress = updates.borrow_and_update();
                if let Some(bar) = bar {
                    // A retry starts the count again: only ever move forward.
                    bar.inc(progress.sent.saturating_sub(counted));
                    counted = counted.max(progress.sent);
                }
                if let Some(line) = retry_line(&progress, &mut said, batch.len()) {
                    say(line);
                }
            }
        }
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

    fn file(name: &str, size: u64) -> Pending {
        let any = std::fs::metadata(env!("CARGO_MANIFEST_DIR")).unwrap();
        Pending {
            path: PathBuf::from(name),
            name: name.into(),
            size,
            stamp: Stamp::of(&any),
            meta: None,
        }
    }

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

    #[test]
    fn small_files_share_batches_within_limits_and_large_ones_go_alone() {
        let mut files: Vec<Pending> = (0..600).map(|i| file(&format!("s{i}"), 4096)).collect();
        files.insert(10, file("big", 5 << 20));
        let made = batches(files);
        let sizes: Vec<usize> = made.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 512, 88]);
        assert_eq!(made[0][0].name, "big");
        let long: Vec<Pending> = (0..100)
            .map(|i| file(&format!("{i}{}", "n".repeat(1000)), 1))
            .collect();
        assert!(
            batches(long)
                .iter()
                .all(|b| b.iter().map(|f| f.name.len()).sum::<usize>() <= BATCH_NAME_BYTES)
        );
    }
}
