//! `arca put PATH...`: back up files and folders, with a progress bar on a
//! terminal and one line per file otherwise. Small files travel in batches
//! (one request, one stream, one commit); unchanged files are recognised
//! from a cache of their size, modification time and inode, unread.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use arca_shared::BlobHash;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::client::{
    ClientError, HashCache, LocalFile, Phase, Session, Settings, TransferProgress, Uploaded,
};
use crate::{names, out};

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
    for root in paths {
        let found = names::files_to_back_up(&settings.files, root)
            .map_err(|e| ClientError::Local(format!("cannot back up {e}")))?;
        jobs.extend(found);
    }
    let total_files = jobs.len();
    let (pending, unreadable) = stat_all(jobs).await?;
    let cache = Arc::new(Mutex::new(HashCache::load(&settings.client)));
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
    let failed = Cell::new(unreadable.len());
    let done = Cell::new(0);
    for line in unreadable {
        say(line);
    }
    // Batches go out on parallel sessions: one batch's transfer overlaps
    // another's wait for the disks.
    let queue = RefCell::new(batches(pending).into_iter());
    let mut sessions = Vec::with_capacity(PARALLEL);
    for _ in 0..PARALLEL {
        sessions.push(Session::connect(settings.clone()).await?);
    }
    let workers = sessions.into_iter().map(|mut session| {
        let (queue, bar, say, flush, failed, done, cache) =
            (&queue, bar.as_ref(), &say, &flush, &failed, &done, &cache);
        async move {
            loop {
                let Some(pending) = queue.borrow_mut().next() else {
                    return Ok(());
                };
                // Hashing happens here, batch by batch, so it overlaps the
                // other batches' transfers; small files are read only once.
                let (batch, unreadable) = read_batch(pending, cache).await?;
                failed.set(failed.get() + unreadable.len());
                for line in unreadable {
                    say(line);
                }
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
                            say(match outcome {
                                Uploaded::Committed { version, replicas } => {
                                    format!(
                                        "committed  {}  v{version}  {replicas} replicas",
                                        file.name
                                    )
                                }
                                Uploaded::Unchanged { version } => {
                                    format!("unchanged  {}  v{version}", file.name)
                                }
                            });
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
    cache.lock().unwrap_or_else(|p| p.into_inner()).save();
    outcome?;
    let failed = failed.get();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if failed > 0 {
        out::error(format_args!("arca: {failed} of {total_files} files failed"));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A file found on disk, not yet read.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    name: String,
    size: u64,
    meta: Option<std::fs::Metadata>,
}

/// The size of every file; files that cannot be read are reported, not fatal.
async fn stat_all(
    jobs: Vec<(PathBuf, String)>,
) -> Result<(Vec<Pending>, Vec<String>), ClientError> {
    tokio::task::spawn_blocking(move || {
        let mut pending = Vec::with_capacity(jobs.len());
        let mut unreadable = Vec::new();
        for (path, name) in jobs {
            match std::fs::metadata(&path) {
                Ok(meta) => pending.push(Pending {
                    path,
                    name,
                    size: meta.len(),
                    meta: Some(meta),
                }),
                Err(e) => unreadable.push(cannot_read(&name, &path, &e)),
            }
        }
        (pending, unreadable)
    })
    .await
    .map_err(|e| ClientError::local("listing task", e))
}

fn cannot_read(name: &str, path: &Path, e: &std::io::Error) -> String {
    format!("failed     {name}: cannot read {}: {e}", path.display())
}

/// Hashes a batch, from the cache where it still holds; a small file that
/// must be hashed is read once and its bytes kept to send.
async fn read_batch(
    batch: Vec<Pending>,
    cache: &Arc<Mutex<HashCache>>,
) -> Result<(Vec<LocalFile>, Vec<String>), ClientError> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || {
        let lock = || cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut files = Vec::with_capacity(batch.len());
        let mut unreadable = Vec::new();
        for p in batch {
            let meta = match p.meta {
                Some(meta) => Ok(meta),
                None => std::fs::metadata(&p.path),
            };
            let read = meta.and_then(|meta| {
                if let Some(hash) = lock().known(&p.path, &meta) {
                    return Ok((meta.len(), hash, None));
                }
                let read = read_one(&p.path, &meta)?;
                lock().remember(&p.path, &meta, read.1);
                Ok(read)
            });
            match read {
                Ok((size, hash, content)) => files.push(LocalFile {
                    path: p.path,
                    name: p.name,
                    size,
                    hash,
                    content,
                }),
                Err(e) => unreadable.push(cannot_read(&p.name, &p.path, &e)),
            }
        }
        (files, unreadable)
    })
    .await
    .map_err(|e| ClientError::local("hashing task", e))
}

/// A file's size, hash and, when already read, its bytes.
type Read = (u64, BlobHash, Option<Arc<[u8]>>);

/// Size, hash and (for a small file) the bytes of one file.
fn read_one(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Read> {
    if meta.len() < SMALL_FILE {
        let bytes = std::fs::read(path)?;
        return Ok((bytes.len() as u64, BlobHash::of(&bytes), Some(bytes.into())));
    }
    Ok((meta.len(), BlobHash::of_file(path)?, None))
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
                if let Phase::Retrying { attempt, reason } = &progress.phase {
                    say(format!("retrying   {} file(s) (attempt {attempt} failed: {reason})", batch.len()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> Pending {
        Pending {
            path: PathBuf::from(name),
            name: name.into(),
            size,
            meta: None,
        }
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
