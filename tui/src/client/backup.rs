//! Backing up many files: the one engine behind `arca put` and the
//! dashboard's uploads. Paths are walked and looked at first (a missing one
//! fails before anything moves); unchanged files are recognised from the
//! persistent cache of their size, modification time and inode, unread;
//! small files travel in batches (one request, one stream, one commit) on a
//! few sessions at once, so one batch's transfer overlaps another's wait for
//! the disks. What happens is told as [`BackupEvent`]s; a file that cannot
//! be backed up is skipped with the reason, and the rest goes on.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arca_shared::meta::FileMeta;
use arca_shared::sync::LockAnyway;
use arca_shared::vault::ChunkKeys;
use tokio::sync::{Semaphore, mpsc, watch};

use super::{
    ChunkCache, ClientError, LocalFile, Phase, Session, Settings, Skip, Stamp, TransferProgress,
    Uploaded, backed_up, meta,
};
use crate::names::{self, Skipped};

/// Files smaller than this share batches: a commit each (a sync on every
/// replica) would cost a folder of medium files more than its bytes.
const SHARED_BELOW: u64 = 4 << 20;
/// Files smaller than this are read once, their bytes kept to send; bigger
/// ones are read again as they are sealed (from the page cache, mostly).
const KEPT_BELOW: u64 = 256 << 10;
/// A batch's limits: files, bytes, and name bytes (its request must stay
/// well under the control frame cap).
const BATCH_FILES: usize = 512;
const BATCH_BYTES: u64 = 6 << 20;
const BATCH_NAME_BYTES: usize = 32 * 1024;
/// Batches in flight at once; of them, at most this many with files whose
/// bytes are not kept: each seals and streams groups of several MiB, and
/// more at once would cost memory, not time.
const PARALLEL: usize = 4;
const PARALLEL_READ_AGAIN: usize = 2;

/// What a backup tells as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupEvent {
    /// The files to look at, and their bytes.
    Planned { files: usize, bytes: u64 },
    /// A batch of files starts: one stream, one commit; `batch` names it
    /// in its progress.
    Batch {
        batch: u64,
        names: Vec<String>,
        bytes: u64,
    },
    /// How a batch's transfer stands; its last phase says how it ended.
    Progress {
        batch: u64,
        progress: TransferProgress,
    },
    /// A file's outcome.
    Done {
        name: String,
        outcome: Result<Uploaded, String>,
    },
    /// A file left out, and why.
    Skipped(Skipped),
}

pub type BackupEvents = mpsc::UnboundedSender<BackupEvent>;

/// How many files a backup looked at, and how many failed or were left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupSummary {
    pub files: usize,
    pub failed: usize,
    pub partial: usize,
}

/// Backs up every file under `paths`; the error is for a backup that could
/// not go on (the manager's link, the key, a path that is not there).
pub async fn backup(
    settings: &Settings,
    paths: &[PathBuf],
    events: &BackupEvents,
) -> Result<BackupSummary, ClientError> {
    let tell = |event| {
        let _ = events.send(event);
    };
    let mut jobs: Vec<(PathBuf, String)> = Vec::new();
    let mut skipped = Vec::new();
    for root in paths {
        let walked = names::files_to_back_up(&settings.files, root)
            .map_err(|e| ClientError::Local(format!("cannot back up {e}")))?;
        jobs.extend(walked.files.into_iter().map(|f| (f.path, f.name)));
        skipped.extend(walked.skipped);
    }
    let files = jobs.len() + skipped.iter().filter(|s| s.partial).count();
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
    tell(BackupEvent::Planned {
        files,
        bytes: pending.iter().map(|f| f.size).sum(),
    });
    // Locks, not cells, so a backup can run on any thread (the dashboard's).
    let summary = Mutex::new(BackupSummary {
        files,
        ..BackupSummary::default()
    });
    let skip = |skipped: Skipped| {
        summary.lock_anyway().partial += usize::from(skipped.partial);
        tell(BackupEvent::Skipped(skipped));
    };
    skipped.into_iter().for_each(skip);
    let queue = Mutex::new(batches(pending).into_iter().zip(0u64..));
    let cache = Arc::new(Mutex::new(ChunkCache::load(&settings.client, &keys)));
    let read_again = Semaphore::new(PARALLEL_READ_AGAIN);
    let workers = sessions.into_iter().map(|mut session| {
        let (queue, skip, tell, summary, cache, keys, read_again) =
            (&queue, &skip, &tell, &summary, &cache, &keys, &read_again);
        async move {
            loop {
                let next = queue.lock_anyway().next();
                let Some((pending, batch)) = next else {
                    return Ok(());
                };
                let _turn = match pending.iter().any(|p| p.size >= KEPT_BELOW) {
                    true => Some(read_again.acquire().await),
                    false => None,
                };
                // Hashing happens here, batch by batch, so it overlaps the
                // other batches' transfers; small files are read only once.
                let (files, unreadable) = read_batch(pending, cache, keys).await?;
                unreadable.into_iter().for_each(skip);
                if files.is_empty() {
                    continue;
                }
                tell(BackupEvent::Batch {
                    batch,
                    names: files.iter().map(|f| f.name.clone()).collect(),
                    bytes: files.iter().map(|f| f.size).sum(),
                });
                let outcome = put_batch(&mut session, &files, batch, tell).await;
                match outcome {
                    Ok(outcomes) => {
                        for (file, outcome) in files.into_iter().zip(outcomes) {
                            match outcome {
                                Uploaded::Skipped(why) => skip(Skipped {
                                    what: file.name,
                                    why,
                                    partial: true,
                                }),
                                done => tell(BackupEvent::Done {
                                    name: file.name,
                                    outcome: Ok(done),
                                }),
                            }
                        }
                    }
                    Err(e) if e.lost_link() => return Err(e),
                    Err(e) => {
                        summary.lock_anyway().failed += files.len();
                        for file in files {
                            tell(BackupEvent::Done {
                                name: file.name,
                                outcome: Err(e.to_string()),
                            });
                        }
                    }
                }
            }
        }
    });
    let outcome = futures::future::try_join_all(workers).await;
    cache.lock_anyway().save();
    outcome?;
    Ok(*summary.lock_anyway())
}

/// Backs up one batch, telling its progress, and last how it ended.
async fn put_batch(
    session: &mut Session,
    files: &[LocalFile],
    batch: u64,
    tell: &impl Fn(BackupEvent),
) -> Result<Vec<Uploaded>, ClientError> {
    let (progress, mut updates) = watch::channel(TransferProgress::default());
    let put = session.put_batch(files, &progress);
    tokio::pin!(put);
    let result = loop {
        tokio::select! {
            result = &mut put => break result,
            Ok(()) = updates.changed() => {
                let progress = updates.borrow_and_update().clone();
                tell(BackupEvent::Progress { batch, progress });
            }
        }
    };
    let ended = match &result {
        Ok(outcomes) => match outcomes.as_slice() {
            [Uploaded::Committed { version, .. }] => Phase::Committed { version: *version },
            [Uploaded::Unchanged { version }] => Phase::Unchanged { version: *version },
            [Uploaded::Skipped(why)] => Phase::Failed(format!("skipped: {why}")),
            many => Phase::BackedUp { files: many.len() },
        },
        Err(e) => Phase::Failed(e.to_string()),
    };
    progress.send_modify(|p| p.phase = ended);
    let progress = updates.borrow().clone();
    tell(BackupEvent::Progress { batch, progress });
    result
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
            match LocalFile::read(&p.path, &p.name, KEPT_BELOW, &keys) {
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
        if file.size >= SHARED_BELOW {
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
