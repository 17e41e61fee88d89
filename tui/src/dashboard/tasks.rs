//! The dashboard's network and disk work, each in a task that reports to the
//! UI loop with messages: a poller for the cluster and the part of the
//! catalog on screen, a worker that runs transfers one at a time, and a
//! folder lister.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::event::{Effect, Kind, Link, LocalEntry, Msg, View, Window};
use arca_shared::limits::IDLE_TIMEOUT;
use arca_shared::protocol::ClusterStatus;
use arca_shared::vault::ChunkKeys;

use crate::client::{
    BackupEvent, ChunkCache, ClientError, Phase, RestoreEvent, Session, Settings, TransferProgress,
    Wanted,
};
use crate::names;

/// How often the poller asks the manager for the cluster, and whether the
/// catalog changed.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Work for the transfer worker.
enum Job {
    /// Files and folders to back up, through the same engine as `arca put`.
    Backup {
        paths: Vec<PathBuf>,
    },
    Restore {
        id: u64,
        name: String,
        version: Option<u32>,
    },
    /// Every file under a folder name (ending in '/'), in one restore.
    RestoreFolder {
        prefix: String,
    },
    Delete {
        name: String,
        version: Option<u32>,
    },
}

/// A backup job as told to the UI loop: its id and name, and the transfer
/// id of each of its batches.
struct Told {
    id: u64,
    name: String,
    batches: HashMap<u64, u64>,
}

/// Starts the dashboard's tasks; effects go in through the returned handle.
pub struct Tasks {
    settings: Settings,
    msgs: mpsc::UnboundedSender<Msg>,
    jobs: mpsc::UnboundedSender<Job>,
    view: watch::Sender<View>,
    next_id: Arc<AtomicU64>,
    /// Made once the key is open: chunk ids depend on it.
    hashes: Arc<Mutex<Option<ChunkCache>>>,
}

impl Tasks {
    pub fn start(
        settings: Settings,
        msgs: mpsc::UnboundedSender<Msg>,
        shutdown: CancellationToken,
    ) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let (view, views) = watch::channel(View::default());
        tokio::spawn(poll(
            settings.clone(),
            msgs.clone(),
            views,
            shutdown.clone(),
        ));
        let next_id = Arc::new(AtomicU64::new(1));
        let worker = Worker {
            settings: settings.clone(),
            msgs: msgs.clone(),
            next_id: next_id.clone(),
        };
        tokio::spawn(worker.work(rx, shutdown));
        Self {
            settings,
            msgs,
            jobs,
            view,
            next_id,
            hashes: Arc::default(),
        }
    }

    pub fn run(&self, effect: Effect) {
        match effect {
            Effect::ListDir(dir) => {
                let root = self.settings.files.clone();
                let (msgs, hashes) = (self.msgs.clone(), self.hashes.clone());
                let keys = self.settings.vault.unlocked();
                let client = self.settings.client.clone();
                tokio::task::spawn_blocking(move || {
                    let dir_path = names::local_path(&root, &dir);
                    let entries = list_dir(&dir_path, &client, &hashes, keys.as_ref());
                    let _ = msgs.send(Msg::Dir(dir, entries));
                });
            }
            Effect::Upload(paths) => {
                let _ = self.jobs.send(Job::Backup { paths });
            }
            Effect::Restore {
                name,
                version: None,
            } if name.ends_with('/') => {
                let _ = self.jobs.send(Job::RestoreFolder { prefix: name });
            }
            Effect::Restore { name, version } => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let _ = self.msgs.send(Msg::Queued {
                    id,
                    name: name.clone(),
                    kind: Kind::Restore,
                    job: None,
                });
                let _ = self.jobs.send(Job::Restore { id, name, version });
            }
            Effect::Delete { name, version } => {
                let _ = self.jobs.send(Job::Delete { name, version });
            }
            Effect::View(view) => {
                self.view.send_replace(view);
            }
            Effect::Unlock(typed) => {
                self.settings.vault.supply(&typed.0);
                tokio::spawn(unlock(self.settings.clone(), self.msgs.clone()));
            }
        }
    }
}

/// Tries the passphrase just typed on the client's key.
async fn unlock(settings: Settings, msgs: mpsc::UnboundedSender<Msg>) {
    let opened = match Session::connect(settings).await {
        Ok(mut session) => session.chunk_keys(false).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let _ = msgs.send(match opened {
        Ok(()) => Msg::Unlocked,
        // No key yet: the first backup makes it with this passphrase.
        Err(ClientError::Refused(_)) => {
            Msg::Flash("passphrase kept: the first backup makes this client's key with it".into())
        }
        Err(ClientError::Local(why)) => Msg::PassphraseRefused(why),
        Err(e) => Msg::Flash(format!("cannot try the passphrase now: {e}")),
    });
}

/// Keeps a session to the manager and reports the cluster and the part of
/// the catalog in view.
async fn poll(
    settings: Settings,
    msgs: mpsc::UnboundedSender<Msg>,
    mut views: watch::Receiver<View>,
    shutdown: CancellationToken,
) {
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = poll_session(&settings, &msgs, &mut views) => outcome,
        };
        if let Err(e) = outcome
            && msgs.send(Msg::Link(Link::Down(e.to_string()))).is_err()
        {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// What the catalog entries shown depend on: the catalog, and which
/// servers are alive (an entry counts its live copies).
#[derive(PartialEq, Eq)]
struct Stamp {
    catalog_changes: u64,
    alive: Vec<u64>,
}

impl Stamp {
    fn of(status: &ClusterStatus) -> Self {
        Self {
            catalog_changes: status.catalog_changes,
            alive: status
                .servers
                .iter()
                .filter(|s| s.alive)
                .map(|s| s.id)
                .collect(),
        }
    }
}

/// Polls the cluster every second; fetches the view again only when the
/// catalog or the live servers changed, or the view itself did.
async fn poll_session(
    settings: &Settings,
    msgs: &mpsc::UnboundedSender<Msg>,
    views: &mut watch::Receiver<View>,
) -> Result<(), ClientError> {
    let mut session = Session::connect(settings.clone()).await?;
    let _ = msgs.send(Msg::Link(Link::Connected));
    // Open the key at once (if this client has one) to compare local files
    // with their backups; without it, uploads will say what is missing.
    if settings.vault.unlocked().is_none() && session.chunk_keys(false).await.is_ok() {
        let _ = msgs.send(Msg::Unlocked);
    }
    let mut fetched: Option<Stamp> = None;
    loop {
        let status = session.status().await?;
        let stamp = Stamp::of(&status);
        if msgs.send(Msg::Cluster(status)).is_err() {
            return Ok(());
        }
        if fetched.as_ref() != Some(&stamp) {
            let view = views.borrow_and_update().clone();
            fetch(&mut session, view, msgs).await?;
            fetched = Some(stamp);
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            changed = views.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                fetched = None;
            }
        }
    }
}

/// Fetches the catalog in view and sends it to the UI loop.
async fn fetch(
    session: &mut Session,
    view: View,
    msgs: &mpsc::UnboundedSender<Msg>,
) -> Result<(), ClientError> {
    let (total, entries) = session
        .browse(&view.folder, &view.filter, view.offset, view.limit)
        .await?;
    let found = session.lookup(&view.names).await?;
    let versions = match &view.expanded {
        Some(name) => Some((name.clone(), session.list(Some(name)).await?)),
        None => None,
    };
    let window = Window {
        folder: view.folder,
        filter: view.filter,
        total,
        offset: view.offset,
        entries,
    };
    let _ = msgs.send(Msg::Catalog(window));
    let _ = msgs.send(Msg::States {
        names: view.names,
        found,
    });
    if let Some((name, versions)) = versions {
        let _ = msgs.send(Msg::Versions(name, versions));
    }
    Ok(())
}

/// The transfer worker: runs jobs one at a time, on a session of its own.
struct Worker {
    settings: Settings,
    msgs: mpsc::UnboundedSender<Msg>,
    next_id: Arc<AtomicU64>,
}

impl Worker {
    /// Runs jobs as they come, reconnecting as needed.
    async fn work(self, mut jobs: mpsc::UnboundedReceiver<Job>, shutdown: CancellationToken) {
        let mut session: Option<Session> = None;
        let mut last_used = Instant::now();
        loop {
            let job = tokio::select! {
                _ = shutdown.cancelled() => return,
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
            };
            // The manager closes a link silent for IDLE_TIMEOUT: one idle
            // near that long is replaced before use, not failed on.
            if last_used.elapsed() > IDLE_TIMEOUT / 2 {
                session = None;
            }
            if session.is_none() {
                session = Session::connect(self.settings.clone()).await.ok();
            }
            let Some(active) = session.as_mut() else {
                fail(&self.msgs, job, "the manager is unreachable");
                continue;
            };
            let broken = tokio::select! {
                _ = shutdown.cancelled() => return,
                broken = self.run_job(active, job) => broken,
            };
            if broken {
                session = None;
            }
            last_used = Instant::now();
        }
    }

    /// Backs up through the engine `arca put` uses (on sessions of its
    /// own); each batch it sends (one stream, one commit) is a transfer.
    async fn backup(&self, paths: Vec<PathBuf>) {
        let (events, mut heard) = mpsc::unbounded_channel();
        let run = crate::client::backup(&self.settings, &paths, &events);
        tokio::pin!(run);
        let mut job = Told {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            name: self.job_name(&paths),
            batches: HashMap::new(),
        };
        let ended = loop {
            tokio::select! {
                ended = &mut run => break ended,
                Some(event) = heard.recv() => self.tell(event, &mut job),
            }
        };
        // Everything told before the end is in the channel already.
        while let Ok(event) = heard.try_recv() {
            self.tell(event, &mut job);
        }
        let stopped = ended.err().map(|e| e.to_string());
        let _ = self.msgs.send(Msg::JobEnded {
            job: job.id,
            stopped,
        });
    }

    /// What a job of these paths is called: their names in the files folder.
    fn job_name(&self, paths: &[PathBuf]) -> String {
        let name = |path: &PathBuf| {
            let relative = path.strip_prefix(&self.settings.files).unwrap_or(path);
            let slash = if path.is_dir() { "/" } else { "" };
            format!("{}{slash}", relative.display())
        };
        match paths {
            [one] => name(one),
            [first, rest @ ..] => format!("{} +{} more", name(first), rest.len()),
            [] => String::new(),
        }
    }

    /// A backup's event as the dashboard shows it.
    fn tell(&self, event: BackupEvent, job: &mut Told) {
        let msg = match event {
            BackupEvent::Planned { files, bytes } => Msg::Job {
                id: job.id,
                name: job.name.clone(),
                kind: Kind::Upload,
                files,
                bytes,
            },
            BackupEvent::Batch { batch, names, .. } => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                job.batches.insert(batch, id);
                let name = match names.as_slice() {
                    [one] => one.clone(),
                    [first, rest @ ..] => format!("{first} +{} more", rest.len()),
                    [] => return,
                };
                Msg::Queued {
                    id,
                    name,
                    kind: Kind::Upload,
                    job: Some(job.id),
                }
            }
            BackupEvent::Progress { batch, progress } => match job.batches.get(&batch) {
                Some(&id) => Msg::Progress { id, progress },
                None => return,
            },
            BackupEvent::Skipped(skipped) => Msg::Flash(format!("skipped {skipped}")),
            BackupEvent::Done { name, outcome } => Msg::FileDone {
                job: job.id,
                failure: outcome.err().map(|e| format!("{name}: {e}")),
            },
        };
        let _ = self.msgs.send(msg);
    }

    /// Restores every file under a folder name in one restore, as `arca
    /// get DIR/` does: a job of its files, with one transfer for the bytes.
    async fn restore_folder(
        &self,
        session: &mut Session,
        prefix: String,
    ) -> Result<(), ClientError> {
        let (entries, outside) = session
            .list_under(&prefix)
            .await
            .inspect_err(|e| self.flash(format!("cannot restore {prefix}: {e}")))?;
        let mut refused: Vec<String> = outside
            .iter()
            .map(|e| format!("{}: listed, but not under {prefix}", e.name))
            .collect();
        let mut wanted = Vec::with_capacity(entries.len());
        for entry in entries {
            match names::restore_path(&self.settings.files, &entry.name) {
                Ok(dest) => wanted.push(Wanted { entry, dest }),
                Err(e) => refused.push(format!("{}: {e}", entry.name)),
            }
        }
        let job = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let files = wanted.len();
        let mut progress = TransferProgress {
            phase: Phase::Restoring,
            total: wanted.iter().map(|w| w.entry.size).sum(),
            ..TransferProgress::default()
        };
        let _ = self.msgs.send(Msg::Job {
            id: job,
            name: prefix.clone(),
            kind: Kind::Restore,
            files: files + refused.len(),
            bytes: progress.total,
        });
        let _ = self.msgs.send(Msg::Queued {
            id,
            name: prefix,
            kind: Kind::Restore,
            job: Some(job),
        });
        for failure in refused {
            self.flash(failure.clone());
            let failure = Some(failure);
            let _ = self.msgs.send(Msg::FileDone { job, failure });
        }
        let (events, mut heard) = mpsc::unbounded_channel();
        let run = session.restore(wanted, true, &events);
        tokio::pin!(run);
        // Bytes of files settled without fetching (already in place), and
        // files that failed.
        let (mut settled, mut failed) = (0, 0);
        let mut tell = |event: RestoreEvent, progress: &mut TransferProgress| {
            match event {
                RestoreEvent::Planned { bytes, .. } => {
                    settled = progress.total.saturating_sub(bytes)
                }
                RestoreEvent::Fetched(bytes) => progress.sent = settled + bytes,
                RestoreEvent::Done { name, outcome, .. } => {
                    let failure = outcome.err().map(|e| format!("{name}: {e}"));
                    if let Some(failure) = &failure {
                        failed += 1;
                        self.flash(failure.clone());
                    }
                    let _ = self.msgs.send(Msg::FileDone { job, failure });
                    return;
                }
            }
            let progress = progress.clone();
            let _ = self.msgs.send(Msg::Progress { id, progress });
        };
        let ended = loop {
            tokio::select! {
                ended = &mut run => break ended,
                Some(event) = heard.recv() => tell(event, &mut progress),
            }
        };
        while let Ok(event) = heard.try_recv() {
            tell(event, &mut progress);
        }
        progress.phase = match &ended {
            Ok(_) => Phase::RestoredFiles {
                files: files - failed,
            },
            Err(e) => Phase::Failed(e.to_string()),
        };
        let _ = self.msgs.send(Msg::Progress { id, progress });
        let stopped = ended.as_ref().err().map(ToString::to_string);
        let _ = self.msgs.send(Msg::JobEnded { job, stopped });
        ended.map(|_| ())
    }

    /// Removes every version of every file under a folder name, as `arca
    /// rm --all DIR/` does, going on past a file that fails.
    async fn delete_folder(&self, session: &mut Session, prefix: &str) -> Result<(), ClientError> {
        let (entries, _) = session
            .list_under(prefix)
            .await
            .inspect_err(|e| self.flash(format!("cannot remove {prefix}: {e}")))?;
        let mut failed = 0;
        for entry in &entries {
            if let Err(e) = session.remove(&entry.name, None).await {
                failed += 1;
                self.flash(format!("cannot remove {}: {e}", entry.name));
                if e.lost_link() {
                    return Err(e);
                }
            }
        }
        if failed == 0 {
            self.flash(match entries.len() {
                1 => format!("removed the file under {prefix}"),
                n => format!("removed the {n} files under {prefix}"),
            });
        }
        Ok(())
    }

    fn flash(&self, text: String) {
        let _ = self.msgs.send(Msg::Flash(text));
    }

    /// Runs one job; true if the session broke and must be replaced.
    async fn run_job(&self, session: &mut Session, job: Job) -> bool {
        let msgs = &self.msgs;
        let result = match job {
            Job::Backup { paths } => {
                self.backup(paths).await;
                Ok(())
            }
            Job::Restore { id, name, version } => {
                let dest = names::restore_path(&self.settings.files, &name);
                with_progress(id, msgs, |p| async move {
                    match dest {
                        Ok(dest) => session.get(&name, version, &dest, true, &p).await,
                        Err(e) => {
                            p.send_modify(|p| p.phase = Phase::Failed(e.clone()));
                            Err(ClientError::Local(e))
                        }
                    }
                    .map(|_| ())
                })
                .await
            }
            Job::RestoreFolder { prefix } => self.restore_folder(session, prefix).await,
            Job::Delete {
                name,
                version: None,
            } if name.ends_with('/') => self.delete_folder(session, &name).await,
            Job::Delete { name, version } => match session.remove(&name, version).await {
                Ok(versions) => {
                    let list: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
                    self.flash(format!("removed {name} {}", list.join(", ")));
                    Ok(())
                }
                Err(e) => {
                    self.flash(format!("cannot remove {name}: {e}"));
                    Err(e)
                }
            },
        };
        result.is_err_and(|e| e.lost_link())
    }
}

/// Runs a transfer, forwarding every progress change to the UI loop.
async fn with_progress<F, Fut>(
    id: u64,
    msgs: &mpsc::UnboundedSender<Msg>,
    transfer: F,
) -> Result<(), ClientError>
where
    F: FnOnce(watch::Sender<TransferProgress>) -> Fut,
    Fut: Future<Output = Result<(), ClientError>>,
{
    let (progress, mut updates) = watch::channel(TransferProgress::default());
    let run = transfer(progress);
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            Ok(()) = updates.changed() => {
                let progress = updates.borrow_and_update().clone();
                let _ = msgs.send(Msg::Progress { id, progress });
            }
        }
    };
    let progress = updates.borrow().clone();
    let _ = msgs.send(Msg::Progress { id, progress });
    result
}

fn fail(msgs: &mpsc::UnboundedSender<Msg>, job: Job, reason: &str) {
    let failed = |id| {
        let progress = TransferProgress {
            phase: crate::client::Phase::Failed(reason.to_owned()),
            ..TransferProgress::default()
        };
        let _ = msgs.send(Msg::Progress { id, progress });
    };
    match job {
        Job::Restore { id, .. } => failed(id),
        Job::Delete { name, .. } => {
            let _ = msgs.send(Msg::Flash(format!("{name}: {reason}")));
        }
        Job::Backup { .. } => {
            let _ = msgs.send(Msg::Flash(format!("backup: {reason}")));
        }
        Job::RestoreFolder { prefix } => {
            let _ = msgs.send(Msg::Flash(format!("cannot restore {prefix}: {reason}")));
        }
    }
}

/// Lists a folder: folders first, then files, by name; with the key open,
/// files get their content digest, reusing the chunk ids backups saved
/// (the dashboard's and `arca put`'s) while the files are unchanged.
fn list_dir(
    dir: &Path,
    client: &str,
    cache: &Mutex<Option<ChunkCache>>,
    keys: Option<&ChunkKeys>,
) -> Vec<LocalEntry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<LocalEntry> = read
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let name = e.file_name().to_str()?.to_owned();
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            let hash = keys.filter(|_| meta.is_file()).and_then(|keys| {
                let mut cache = cache.lock().ok()?;
                cache
                    .get_or_insert_with(|| ChunkCache::load(client, keys))
                    .content(&e.path(), keys)
                    .ok()
                    .map(|(_, hash)| hash)
            });
            Some(LocalEntry {
                name,
                is_dir: meta.is_dir(),
                size: meta.len(),
                modified_ms,
                hash,
            })
        })
        .collect();
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    entries
}
