//! Restoring one file: the manager names the version and lists its chunks,
//! then, a window at a time, the best live holder of each. The client
//! fetches a few chunks at once, checks each one's stored hash, opens its
//! seal (which proves it is this client's chunk, and the one asked for),
//! and writes the plaintext into a temp file beside the destination, renamed
//! into place only once every chunk is in. A chunk whose holder fails is
//! fetched from another; a copy that fails its hash is reported.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arca_shared::keys::ClusterKey;
use arca_shared::meta::{FileKind, FileMeta};
use arca_shared::protocol::{FileEntry, Grant, Part, content_digest};
use arca_shared::reply::{Accepted, Restoring};
use arca_shared::stream::FileSink;
use arca_shared::sync::LockAnyway;
use arca_shared::types::ServerId;
use arca_shared::vault::{ChunkKeys, Opened};
use arca_shared::{BlobHash, Connection, FrameError, Message};
use futures::StreamExt;

use super::local::read_stable;
use super::meta::{self, Linked};
use super::progress::set_phase;
use super::{ClientError, Phase, Progress, Session, open_server, refusal};

/// Most holders tried for one chunk before a restore gives up.
const MAX_ATTEMPTS: usize = 8;
/// Chunks granted at once.
const WINDOW: usize = 64;
/// Chunks fetched at once: one holder's disk, the network and the opening
/// of seals overlap.
const FETCHING: usize = 4;

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

/// Why fetching one chunk failed.
enum Failure {
    /// The holder failed, or its copy is damaged (`corrupt`): another may do.
    Holder { reason: String, corrupt: bool },
    /// Another holder will not help.
    Fatal(ClientError),
}

impl Session {
    /// Restores `name` (newest, or `version`) to `dest`. An existing file
    /// that differs is left alone unless `force`.
    pub async fn get(
        &mut self,
        name: &str,
        version: Option<u32>,
        dest: &Path,
        force: bool,
        progress: &Progress,
    ) -> Result<Restored, ClientError> {
        let result = self.try_get(name, version, dest, force, progress).await;
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

    async fn try_get(
        &mut self,
        name: &str,
        version: Option<u32>,
        dest: &Path,
        force: bool,
        progress: &Progress,
    ) -> Result<Restored, ClientError> {
        let (entry, parts) = self.parts(name, version).await?;
        if let Some(meta) = entry.meta.as_ref().filter(|m| m.kind != FileKind::File) {
            if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| ClientError::local(dir.display(), e))?;
            }
            let linked = meta::restore_symlink(dest, meta, force)
                .map_err(|e| ClientError::Local(e.to_string()))?;
            let version = entry.version;
            return Ok(match linked {
                Linked::Created => Restored::Written { version, size: 0 },
                Linked::AlreadyThere => Restored::AlreadyThere { version },
            });
        }
        let keys = match parts.iter().any(|p| p.sealed) {
            true => Some(self.chunk_keys(false).await?),
            false => None,
        };
        if same_content(dest, &entry, keys.as_ref()).await {
            return Ok(Restored::AlreadyThere {
                version: entry.version,
            });
        }
        if dest.exists() && !force {
            return Err(ClientError::Local(format!(
                "{} exists and differs from the backup; pass --force to overwrite it",
                dest.display()
            )));
        }
        progress.send_modify(|p| {
            p.total = entry.size;
            p.sent = 0;
            p.phase = Phase::Restoring;
        });
        let mut out = Partial::beside(dest)?;
        let mut offset = 0u64;
        // What the manager refuses for a chunk, it refuses for this version.
        let this_version = |e: ClientError| match e {
            ClientError::Refused(why) => {
                ClientError::Refused(format!("{name} v{}: {why}", entry.version))
            }
            other => other,
        };
        let fetcher = Fetcher {
            cluster: self.settings.key.clone(),
            keys: keys.clone(),
            idle: Arc::default(),
        };
        for window in parts.chunks(WINDOW) {
            let grants = self.grants(window, &[]).await.map_err(this_version)?;
            // Owned, so the fetches can run on any thread.
            let jobs: Vec<(Part, Option<Grant>, Fetcher)> = window
                .iter()
                .map(|part| (*part, grants.get(&part.hash).cloned(), fetcher.clone()))
                .collect();
            // Tasks of their own: fetches go on while a chunk is written.
            let mut fetched = futures::stream::iter(jobs)
                .map(|job| tokio::spawn(fetch_granted(job)))
                .buffered(FETCHING);
            let mut i = 0;
            while let Some(result) = fetched.next().await {
                let part = &window[i];
                i += 1;
                let result = result
                    .unwrap_or_else(|e| Err(Failure::Fatal(ClientError::local("a fetch task", e))));
                let plain = match result {
                    Ok(plain) => plain,
                    Err(failure) => {
                        let grant = grants.get(&part.hash).cloned();
                        self.fetch_elsewhere(part, grant, failure, &fetcher)
                            .await
                            .map_err(this_version)?
                    }
                };
                out.write(&plain).await?;
                offset += part.plain_size;
                progress.send_modify(|p| p.sent = offset);
            }
        }
        out.finish(dest, entry.meta).await?;
        Ok(Restored::Written {
            version: entry.version,
            size: entry.size,
        })
    }

    /// A version (the newest with `None`) and its chunks, in order.
    pub async fn parts(
        &mut self,
        name: &str,
        version: Option<u32>,
    ) -> Result<(FileEntry, Vec<Part>), ClientError> {
        let client = self.settings.client.clone();
        let request = Message::GetBegin {
            client: client.clone(),
            name: name.to_owned(),
            version,
        };
        let Restoring(entry) = self.conn.request(&request).await.map_err(refusal)?;
        let parts: Vec<Part> = self
            .pages(&Message::Parts {
                client,
                name: name.to_owned(),
                version: entry.version,
            })
            .await?;
        if parts.iter().map(|p| p.plain_size).sum::<u64>() != entry.size {
            return Err(ClientError::Refused(format!(
                "the manager's list of {name}'s chunks does not add up to its size"
            )));
        }
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

    /// After `failure` at `grant`'s holder, fetches `part` from the others
    /// in turn, reporting copies that fail their hash.
    async fn fetch_elsewhere(
        &mut self,
        part: &Part,
        mut grant: Option<Grant>,
        mut failure: Failure,
        fetcher: &Fetcher,
    ) -> Result<Opened, ClientError> {
        let mut exclude = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let reason = match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Holder { reason, corrupt } => {
                    if let Some(grant) = &grant {
                        exclude.push(grant.ticket.server);
                        if corrupt {
                            tracing::warn!(holder = %grant.holder, "a chunk's copy is corrupt; reporting it");
                            let _ = self
                                .call(&Message::ReportCorrupt {
                                    ticket: grant.ticket.clone(),
                                })
                                .await;
                        }
                    }
                    reason
                }
            };
            tracing::warn!("fetching a chunk failed ({reason}); trying another holder");
            let next = match self.grants(std::slice::from_ref(part), &exclude).await {
                Ok(mut grants) => grants.remove(&part.hash),
                Err(ClientError::Refused(why)) => {
                    return Err(ClientError::Refused(format!(
                        "{why} (last failure: {reason})"
                    )));
                }
                Err(e) => return Err(e),
            };
            let Some(next) = next else {
                return Err(ClientError::Refused(format!("no other holder ({reason})")));
            };
            match fetcher.fetch(&next, part).await {
                Ok(plain) => return Ok(plain),
                Err(again) => {
                    failure = again;
                    grant = Some(next);
                }
            }
        }
        Err(ClientError::Refused(format!(
            "gave up on a chunk after {MAX_ATTEMPTS} holders"
        )))
    }
}

async fn fetch_granted(
    (part, grant, fetcher): (Part, Option<Grant>, Fetcher),
) -> Result<Opened, Failure> {
    match grant {
        Some(grant) => fetcher.fetch(&grant, &part).await,
        None => Err(Failure::Fatal(ClientError::Refused(
            "the manager granted no holder for a chunk".into(),
        ))),
    }
}

/// Fetches chunks and opens them, keeping a connection to each holder for
/// its next chunk (a handshake per megabyte would cost more than the bytes).
#[derive(Clone)]
struct Fetcher {
    cluster: ClusterKey,
    keys: Option<ChunkKeys>,
    idle: Arc<Mutex<HashMap<String, Vec<Connection>>>>,
}

impl Fetcher {
    async fn fetch(&self, grant: &Grant, part: &Part) -> Result<Opened, Failure> {
        let holder = |e: FrameError| Failure::Holder {
            reason: format!("holder failed: {e}"),
            corrupt: false,
        };
        let idle = self
            .idle
            .lock_anyway()
            .get_mut(&grant.holder)
            .and_then(Vec::pop);
        let mut conn = match idle {
            Some(conn) => conn,
            None => open_server(&grant.holder, &self.cluster)
                .await
                .map_err(holder)?,
        };
        let stored = receive(&mut conn, grant, part).await.map_err(holder)?;
        self.idle
            .lock_anyway()
            .entry(grant.holder.clone())
            .or_default()
            .push(conn);
        let (part, keys) = (*part, self.keys.clone());
        tokio::task::spawn_blocking(move || open(&part, stored, keys.as_ref()))
            .await
            .map_err(|e| Failure::Fatal(ClientError::local("the opening task", e)))?
    }
}

/// One stored chunk's bytes from its holder.
async fn receive(conn: &mut Connection, grant: &Grant, part: &Part) -> Result<Vec<u8>, FrameError> {
    let request = Message::Fetch {
        ticket: grant.ticket.clone(),
        offset: 0,
    };
    let Accepted = conn.request(&request).await?;
    let mut stored = Vec::with_capacity(part.size as usize);
    loop {
        let frame = conn.recv_data().await?;
        let Some(data) = frame.chunk() else {
            return match frame.message()? {
                Message::End if stored.len() as u64 == part.size => Ok(stored),
                Message::End => Err(FrameError::Refused("the stream ended early".into())),
                other => Err(FrameError::unexpected(&other, "Chunk")),
            };
        };
        if stored.len() + data.len() > part.size as usize {
            return Err(FrameError::Refused("more bytes than the chunk has".into()));
        }
        stored.extend_from_slice(data);
    }
}

/// A fetched chunk's plaintext, once its stored hash and its seal check out.
fn open(part: &Part, stored: Vec<u8>, keys: Option<&ChunkKeys>) -> Result<Opened, Failure> {
    if BlobHash::of(&stored) != part.hash {
        return Err(Failure::Holder {
            reason: "a copy failed its hash check".into(),
            corrupt: true,
        });
    }
    let plain = match (part.sealed, keys) {
        (false, _) => Opened::from(stored),
        (true, Some(keys)) => keys.open(&part.id, stored).map_err(|_| {
            // Intact as stored, yet not this client's chunk: every copy is the same.
            Failure::Fatal(ClientError::Refused(
                "a chunk is intact on its server but does not open with this client's key: \
                 it is not the chunk the catalog says"
                    .into(),
            ))
        })?,
        (true, None) => {
            return Err(Failure::Fatal(ClientError::Local(
                "a sealed chunk and no key to open it".into(),
            )));
        }
    };
    if plain.len() as u64 != part.plain_size {
        return Err(Failure::Fatal(ClientError::Refused(
            "a chunk opened to another size than the catalog says".into(),
        )));
    }
    Ok(plain)
}

/// The file being restored, beside its destination, written in order.
struct Partial {
    path: tempfile::TempPath,
    /// Written on a thread of its own, around the page cache, while the
    /// next chunks come; runs of zeros stay holes, as in a sparse file.
    sink: FileSink,
}

impl Partial {
    fn beside(dest: &Path) -> Result<Self, ClientError> {
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| ClientError::local(dir.display(), e))?;
        let (file, path) = tempfile::Builder::new()
            .prefix(".arca-restore-")
            .tempfile_in(&dir)
            .map_err(|e| ClientError::local(format!("cannot write in {}", dir.display()), e))?
            .into_parts();
        Ok(Self {
            path,
            sink: FileSink::sparse(file).map_err(cannot_write)?,
        })
    }

    async fn write(&mut self, plain: &[u8]) -> Result<(), ClientError> {
        self.sink.write(plain).await.map_err(cannot_write)
    }

    /// Gives the file its mode, time and owner, makes it durable, and
    /// renames it into place.
    async fn finish(mut self, dest: &Path, meta: Option<FileMeta>) -> Result<(), ClientError> {
        let file = self.sink.finish().await.map_err(cannot_write)?;
        let (path, dest) = (self.path, dest.to_owned());
        tokio::task::spawn_blocking(move || {
            if let Some(meta) = &meta {
                meta::apply_to(&file, &dest, meta)
                    .map_err(|e| ClientError::Local(e.to_string()))?;
            }
            file.sync_all()
                .map_err(|e| ClientError::local("cannot flush the restored file", e))?;
            path.persist(&dest)
                .map_err(|e| ClientError::local(dest.display(), e.error))
        })
        .await
        .map_err(|e| ClientError::local("the restore's last step failed", e))?
    }
}

fn cannot_write(e: std::io::Error) -> ClientError {
    ClientError::local("cannot write the restored file", e)
}

/// Whether `path` already holds the version's content.
async fn same_content(path: &Path, entry: &FileEntry, keys: Option<&ChunkKeys>) -> bool {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() && meta.len() == entry.size => {}
        _ => return false,
    }
    let (path, keys, plain) = (path.to_owned(), keys.cloned(), entry.plain);
    let content = tokio::task::spawn_blocking(move || match keys {
        Some(keys) if !plain => read_stable(&path, 0, &keys)
            .ok()
            .map(|read| content_digest(&read.chunks)),
        _ => BlobHash::of_file(&path).ok(),
    });
    content.await.ok().flatten() == Some(entry.hash)
}
