//! Restoring: the one engine behind `arca get` and the dashboard, for one
//! file or ten thousand. Files already as backed up are skipped and links
//! made at once; the manager lists the chunks of many versions per request;
//! chunks are fetched a window at a time, from every holder at once (see
//! [`fetch`]), while a writer thread fills temp files beside their
//! destinations and makes them durable in batches before renaming them into
//! place (see [`writer`]). A holder that dies mid-way costs only its share
//! of the window: it is fetched elsewhere, and later windows avoid it.

mod fetch;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use arca_shared::limits::{FETCH_MAX, PARTS_MAX};
use arca_shared::meta::FileKind;
use arca_shared::protocol::{FileEntry, Grant, Part, content_digest};
use arca_shared::reply::Restoring;
use arca_shared::types::ServerId;
use arca_shared::vault::{ChunkKeys, Opened};
use arca_shared::{BlobHash, FrameError, Message};
use tokio::sync::mpsc;

use super::local::read_stable;
use super::meta::{self, Linked};
use super::progress::set_phase;
use super::{ClientError, Phase, Progress, Session, refusal};
use fetch::Fetcher;
use writer::{Piece, Target};

/// Stored bytes fetched per window: enough to keep every holder streaming,
/// little enough that a window queued, one written and one fetched stay
/// well inside the client's memory budget.
const WINDOW_BYTES: u64 = 4 << 20;

/// A version to restore, and where.
pub struct Wanted {
    pub entry: FileEntry,
    pub dest: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    Written {
        version: u32,
        size: u64,
    },
    /// The destination already had exactly this content.
    AlreadyThere {
        version: u32,
    },
}

/// What a restore tells as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreEvent {
    /// The files to fetch, and their bytes; the others are settled already.
    Planned { files: usize, bytes: u64 },
    /// Bytes of those files fetched so far.
    Fetched(u64),
    /// A file is in place, was already, or failed.
    Done {
        name: String,
        dest: PathBuf,
        outcome: Result<Restored, String>,
    },
}

pub type RestoreEvents = mpsc::UnboundedSender<RestoreEvent>;

/// What each wanted file became, in order.
pub type Outcomes = Vec<Result<Restored, ClientError>>;

impl Session {
    /// Restores each wanted version to its destination; an existing file
    /// that differs is left alone unless `force`. A file that fails does not
    /// stop the others; the error is for a restore that could not go on (the
    /// manager's link, the key).
    pub async fn restore(
        &mut self,
        wanted: Vec<Wanted>,
        force: bool,
        events: &RestoreEvents,
    ) -> Result<Outcomes, ClientError> {
        let chunked = |w: &Wanted| !w.entry.plain && kind(&w.entry) == FileKind::File;
        let keys = match wanted.iter().any(chunked) {
            true => Some(self.chunk_keys(false).await?),
            false => None,
        };
        let targets = wanted
            .iter()
            .map(|w| Target {
                name: w.entry.name.clone(),
                dest: w.dest.clone(),
                version: w.entry.version,
                size: w.entry.size,
                meta: w.entry.meta.clone(),
            })
            .collect();
        let (pieces, writer) = writer::start(targets, events.clone());
        let fed = self.feed(wanted, force, keys, &pieces, events).await;
        drop(pieces);
        let outcomes = writer
            .await
            .map_err(|e| ClientError::local("the restore's writer failed", e))?;
        fed?;
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(ClientError::Local(
                        "the restore stopped before this file".into(),
                    ))
                })
            })
            .collect())
    }

    /// Settles what needs no bytes, then fetches the rest for the writer.
    async fn feed(
        &mut self,
        wanted: Vec<Wanted>,
        force: bool,
        keys: Option<ChunkKeys>,
        pieces: &mpsc::Sender<Vec<Piece>>,
        events: &RestoreEvents,
    ) -> Result<(), ClientError> {
        let checking = keys.clone();
        let (wanted, checked) = tokio::task::spawn_blocking(move || {
            let checked: Vec<_> = wanted
                .iter()
                .map(|w| check(w, force, checking.as_ref()))
                .collect();
            (wanted, checked)
        })
        .await
        .map_err(|e| ClientError::local("the restore's checks failed", e))?;
        let mut settled = Vec::new();
        let mut to_fetch = Vec::new();
        for (file, checked) in checked.into_iter().enumerate() {
            match checked {
                Some(outcome) => settled.push(Piece::Settled { file, outcome }),
                None => to_fetch.push(file),
            }
        }
        send(pieces, settled).await?;

        let mut jobs: Vec<(usize, Part)> = Vec::new();
        let mut refused = Vec::new();
        let mut bytes = 0;
        for some in to_fetch.chunks(PARTS_MAX) {
            let versions = some
                .iter()
                .map(|&i| (wanted[i].entry.name.clone(), wanted[i].entry.version))
                .collect();
            let request = Message::Parts {
                client: self.settings.client.clone(),
                versions,
            };
            self.conn.send(&request).await?;
            for &file in some {
                let entry = &wanted[file].entry;
                let parts = match self.conn.recv_pages::<Part>().await {
                    Ok(parts) => checked_parts(entry, parts),
                    Err(e @ (FrameError::Refused(_) | FrameError::PeerFailed(_))) => {
                        Err(refusal(e))
                    }
                    Err(e) => return Err(e.into()),
                };
                match parts {
                    Ok(parts) if parts.is_empty() => refused.push(Piece::Bytes {
                        file,
                        bytes: Opened::from(Vec::new()),
                    }),
                    Ok(parts) => {
                        bytes += entry.size;
                        jobs.extend(parts.into_iter().map(|p| (file, p)));
                    }
                    Err(e) => refused.push(Piece::Settled {
                        file,
                        outcome: Err(of_version(entry, &e)),
                    }),
                }
            }
        }
        send(pieces, refused).await?;
        let planned = jobs
            .iter()
            .map(|(file, _)| *file)
            .collect::<HashSet<_>>()
            .len();
        let _ = events.send(RestoreEvent::Planned {
            files: planned,
            bytes,
        });

        let mut fetcher = Fetcher::new(self.settings.link.clone(), keys);
        let mut failed = HashSet::new();
        let mut fetched_bytes = 0;
        let mut start = 0;
        let mut next = self.grant_window(&fetcher, &jobs, start).await?;
        while let Some((end, granted)) = next {
            // The next window's holders are asked while this one streams.
            let running = fetcher.start(granted);
            next = self.grant_window(&fetcher, &jobs, end).await?;
            let mut fetched = fetcher.finish(self, running).await?;
            let window = &jobs[start..end];
            start = end;
            let mut uses: HashMap<BlobHash, usize> = HashMap::new();
            for (_, part) in window {
                *uses.entry(part.hash).or_default() += 1;
            }
            let mut out = Vec::with_capacity(window.len());
            for (file, part) in window {
                fetched_bytes += part.plain_size;
                let left = uses.entry(part.hash).or_default();
                *left -= 1;
                if failed.contains(file) {
                    continue;
                }
                let chunk = match (*left, fetched.get(&part.hash)) {
                    (0, Some(Ok(_))) => fetched.remove(&part.hash),
                    (_, Some(Ok(plain))) => Some(Ok(Opened::from(plain.to_vec()))),
                    (_, Some(Err(e))) => Some(Err(of_version(&wanted[*file].entry, e))),
                    (_, None) => None,
                };
                match chunk {
                    Some(Ok(bytes)) => out.push(Piece::Bytes { file: *file, bytes }),
                    failure => {
                        failed.insert(*file);
                        let e = match failure {
                            Some(Err(e)) => e,
                            _ => ClientError::Local("a chunk's fetch went missing".into()),
                        };
                        out.push(Piece::Settled {
                            file: *file,
                            outcome: Err(e),
                        });
                    }
                }
            }
            send(pieces, out).await?;
            let _ = events.send(RestoreEvent::Fetched(fetched_bytes));
        }
        Ok(())
    }

    /// The window of `jobs` that starts at `start` (its end), granted;
    /// `None` past the last.
    async fn grant_window(
        &mut self,
        fetcher: &Fetcher,
        jobs: &[(usize, Part)],
        start: usize,
    ) -> Result<Option<(usize, fetch::Granted)>, ClientError> {
        if start == jobs.len() {
            return Ok(None);
        }
        let end = window_end(jobs, start);
        let parts: Vec<Part> = jobs[start..end].iter().map(|(_, p)| *p).collect();
        let granted = fetcher.grant(self, &parts).await?;
        Ok(Some((end, granted)))
    }

    /// Restores `name` (newest, or `version`) to `dest`, reporting on
    /// `progress`. An existing file that differs is left alone unless `force`.
    pub async fn get(
        &mut self,
        name: &str,
        version: Option<u32>,
        dest: &Path,
        force: bool,
        progress: &Progress,
    ) -> Result<Restored, ClientError> {
        let result = self.get_one(name, version, dest, force, progress).await;
        set_phase(
            progress,
            match &result {
                Ok(Restored::Written { version, .. } | Restored::AlreadyThere { version }) => {
                    Phase::Restored { version: *version }
                }
                Err(e) => Phase::Failed(e.to_string()),
            },
        );
        result
    }

    async fn get_one(
        &mut self,
        name: &str,
        version: Option<u32>,
        dest: &Path,
        force: bool,
        progress: &Progress,
    ) -> Result<Restored, ClientError> {
        let entry = self.version(name, version).await?;
        progress.send_modify(|p| {
            p.total = entry.size;
            p.sent = 0;
            p.phase = Phase::Restoring;
        });
        let (events, mut heard) = mpsc::unbounded_channel();
        let wanted = vec![Wanted {
            entry,
            dest: dest.to_owned(),
        }];
        let restore = self.restore(wanted, force, &events);
        tokio::pin!(restore);
        let outcomes = loop {
            tokio::select! {
                outcomes = &mut restore => break outcomes?,
                Some(event) = heard.recv() => {
                    if let RestoreEvent::Fetched(bytes) = event {
                        progress.send_modify(|p| p.sent = bytes);
                    }
                }
            }
        };
        outcomes
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(ClientError::Local("nothing was restored".into())))
    }

    /// A version: the newest with `None`.
    pub async fn version(
        &mut self,
        name: &str,
        version: Option<u32>,
    ) -> Result<FileEntry, ClientError> {
        let request = Message::GetBegin {
            client: self.settings.client.clone(),
            name: name.to_owned(),
            version,
        };
        let Restoring(entry) = self.conn.request(&request).await.map_err(refusal)?;
        Ok(entry)
    }

    /// A version (the newest with `None`) and its chunks, in order.
    pub async fn parts(
        &mut self,
        name: &str,
        version: Option<u32>,
    ) -> Result<(FileEntry, Vec<Part>), ClientError> {
        let entry = self.version(name, version).await?;
        let request = Message::Parts {
            client: self.settings.client.clone(),
            versions: vec![(entry.name.clone(), entry.version)],
        };
        let parts = self.pages(&request).await?;
        let parts = checked_parts(&entry, parts)?;
        Ok((entry, parts))
    }

    /// Where to fetch each distinct stored chunk of `parts`, avoiding `exclude`.
    async fn grants(
        &mut self,
        parts: &[Part],
        exclude: &[ServerId],
    ) -> Result<HashMap<BlobHash, Grant>, ClientError> {
        let mut hashes: Vec<BlobHash> = parts.iter().map(|p| p.hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let request = Message::FetchGrants {
            client: self.settings.client.clone(),
            hashes: hashes.clone(),
            exclude: exclude.to_vec(),
        };
        let grants: Vec<Grant> = self.conn.request(&request).await.map_err(refusal)?;
        if grants.len() != hashes.len() {
            return Err(
                FrameError::unexpected(&Message::Grants { grants }, "a grant per chunk").into(),
            );
        }
        Ok(hashes.into_iter().zip(grants).collect())
    }
}

/// The end of the window that starts at `start`: [`WINDOW_BYTES`] of
/// stored chunks, at most [`FETCH_MAX`] distinct ones, at least one.
fn window_end(jobs: &[(usize, Part)], start: usize) -> usize {
    let mut distinct = HashSet::new();
    let mut bytes = 0;
    let mut end = start;
    for (_, part) in &jobs[start..] {
        if end > start && (bytes >= WINDOW_BYTES || distinct.len() == FETCH_MAX) {
            break;
        }
        if distinct.insert(part.hash) {
            bytes += part.size;
        }
        end += 1;
    }
    end
}

/// A version's chunks as the manager lists them, if they are its content:
/// they add up to its size, and (chunked) they are the chunks it is made of.
fn checked_parts(entry: &FileEntry, parts: Vec<Part>) -> Result<Vec<Part>, ClientError> {
    let name = &entry.name;
    if parts.iter().map(|p| p.plain_size).sum::<u64>() != entry.size {
        return Err(ClientError::Refused(format!(
            "the manager's list of {name}'s chunks does not add up to its size"
        )));
    }
    let ids: Vec<_> = parts.iter().map(|p| p.id).collect();
    if !entry.plain && kind(entry) == FileKind::File && content_digest(&ids) != entry.hash {
        return Err(ClientError::Refused(format!(
            "the manager's list of {name}'s chunks is not the content backed up"
        )));
    }
    Ok(parts)
}

/// A failure for one version, saying which (the same failure can be many
/// files').
fn of_version(entry: &FileEntry, e: &ClientError) -> ClientError {
    match e {
        ClientError::Refused(why) => {
            ClientError::Refused(format!("{} v{}: {why}", entry.name, entry.version))
        }
        ClientError::Local(why) => ClientError::Local(why.clone()),
        other => ClientError::Refused(format!("{} v{}: {other}", entry.name, entry.version)),
    }
}

fn kind(entry: &FileEntry) -> FileKind {
    entry
        .meta
        .as_ref()
        .map_or(FileKind::File, |m| m.kind.clone())
}

async fn send(pieces: &mpsc::Sender<Vec<Piece>>, some: Vec<Piece>) -> Result<(), ClientError> {
    if some.is_empty() {
        return Ok(());
    }
    pieces
        .send(some)
        .await
        .map_err(|_| ClientError::Local("the restore's writer stopped".into()))
}

/// What a file needs without fetching: `None` if its bytes must come.
fn check(
    wanted: &Wanted,
    force: bool,
    keys: Option<&ChunkKeys>,
) -> Option<Result<Restored, ClientError>> {
    let (entry, dest) = (&wanted.entry, &wanted.dest);
    let version = entry.version;
    if let Some(meta) = entry.meta.as_ref().filter(|m| m.kind != FileKind::File) {
        let made = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| ClientError::local(dest.display(), e))
            .and_then(|()| {
                meta::restore_symlink(dest, meta, force)
                    .map_err(|e| ClientError::Local(e.to_string()))
            });
        return Some(made.map(|linked| match linked {
            Linked::Created => Restored::Written { version, size: 0 },
            Linked::AlreadyThere => Restored::AlreadyThere { version },
        }));
    }
    if same_content(dest, entry, keys) {
        return Some(Ok(Restored::AlreadyThere { version }));
    }
    if dest.symlink_metadata().is_ok() && !force {
        return Some(Err(ClientError::Local(format!(
            "{} exists and differs from the backup; pass --force to overwrite it",
            dest.display()
        ))));
    }
    None
}

/// Whether `path` already holds the version's content.
fn same_content(path: &Path, entry: &FileEntry, keys: Option<&ChunkKeys>) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == entry.size => {}
        _ => return false,
    }
    let content = match keys {
        Some(keys) if !entry.plain => read_stable(path, 0, keys)
            .ok()
            .map(|read| content_digest(&read.chunks)),
        _ => BlobHash::of_file(path).ok(),
    };
    content == Some(entry.hash)
}
