//! Backing files up: name their chunks, ask the manager which it lacks,
//! seal those on a thread of their own and stream them group by group to
//! the primary the manager picks for each (following every replica's
//! progress), then record the versions.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arca_shared::connection::{FrameReader, FrameWriter};
use arca_shared::limits::CHUNK_SIZE;
use arca_shared::link::Connector;
use arca_shared::meta::FileMeta;
use arca_shared::protocol::{NewChunk, PutFile, PutResult};
use arca_shared::reply::{Accepted, ChunkPlan, Have};
use arca_shared::ticket::Ticket;
use arca_shared::types::ServerId;
use arca_shared::vault::{ChunkId, ChunkKeys};
use arca_shared::{BlobHash, Connection, FrameError, Message, name};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::local::{Skip, Stamp, open_regular, read_stable};
use super::progress::set_phase;
use super::{ClientError, Phase, Progress, Session, chunker, meta, open_server, refusal};

/// Chunk ids per frame, asking or recording.
const IDS_PER_FRAME: usize = 2048;
/// A group of sealed chunks streams to one primary: one placement decision
/// each, and the bound on what waits in memory.
const GROUP_BYTES: usize = 6 << 20;
const GROUP_CHUNKS: usize = 256;
/// Groups streaming at once, each to its own primary.
const IN_FLIGHT: usize = 2;
/// Chunks sealed ahead of the stream.
const SEALED_AHEAD: usize = 2;
/// Chunks from this size are sealed two at a time, one per core.
const PAIRED: usize = 256 * 1024;

/// How a backup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uploaded {
    Committed {
        version: u32,
        replicas: u32,
    },
    /// The newest version already has this content; nothing moved.
    Unchanged {
        version: u32,
    },
    /// Not backed up, and why (it kept changing while it was read).
    Skipped(Skip),
}

/// A local file ready to back up: where it is, its name, size and chunk
/// ids, its bytes when they were already read (small files), and what it
/// looked like then (sealing it checks that it still does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub meta: FileMeta,
    pub chunks: Vec<ChunkId>,
    pub content: Option<Arc<[u8]>>,
    pub stamp: Stamp,
}

impl LocalFile {
    /// Reads `path` to back it up as `name`, keeping its bytes if it is
    /// smaller than `keep_below`; a symbolic link is read as a link.
    pub fn read(path: &Path, name: &str, keep_below: u64, keys: &ChunkKeys) -> Result<Self, Skip> {
        let found = std::fs::symlink_metadata(path)?;
        if found.file_type().is_symlink() {
            return Ok(Self {
                path: path.to_owned(),
                name: name.to_owned(),
                size: 0,
                meta: meta::capture(path).map_err(|e| Skip(e.why))?,
                chunks: Vec::new(),
                content: Some(Arc::from([])),
                stamp: Stamp::of(&found),
            });
        }
        let read = read_stable(path, keep_below, keys)?;
        Ok(Self {
            path: path.to_owned(),
            name: name.to_owned(),
            size: read.stamp.size(),
            meta: read.meta,
            chunks: read.chunks,
            content: read.content,
            stamp: read.stamp,
        })
    }

    /// The same file read again, its bytes not kept, off the async threads.
    async fn read_again(&self, keys: &ChunkKeys) -> Result<Self, Skip> {
        let (path, name, keys) = (self.path.clone(), self.name.clone(), keys.clone());
        tokio::task::spawn_blocking(move || Self::read(&path, &name, 0, &keys))
            .await
            .map_err(|e| Skip(format!("the reading task failed: {e}")))?
    }
}

/// Attempts per batch before giving up.
const ATTEMPTS: u32 = 4;

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    /// Try again, avoiding `suspect` if known; `reconnect` if the manager
    /// connection is no longer usable.
    Retry {
        reason: String,
        suspect: Option<ServerId>,
        reconnect: bool,
    },
    Final(ClientError),
    /// The file at this index changed since it was read.
    Changed(usize),
}

impl From<ClientError> for Attempt {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Protocol(e) => Attempt::Retry {
                reason: format!("lost the manager: {e}"),
                suspect: None,
                reconnect: true,
            },
            // A lane opened while the manager is away: wait for it as for
            // a lost link, rather than fail the whole backup.
            e @ ClientError::Unreachable { .. } => Attempt::Retry {
                reason: e.to_string(),
                suspect: None,
                reconnect: true,
            },
            other => Attempt::Final(other),
        }
    }
}

impl Session {
    /// Backs up the file at `local` under catalog name `name`, retrying by
    /// itself when a server or the manager fails on the way.
    pub async fn put(
        &mut self,
        local: &Path,
        name: &str,
        progress: &Progress,
    ) -> Result<Uploaded, ClientError> {
        set_phase(progress, Phase::Hashing);
        let keys = self.chunk_keys(true).await?;
        let (path, owned) = (local.to_owned(), name.to_owned());
        let read = tokio::task::spawn_blocking(move || LocalFile::read(&path, &owned, 0, &keys))
            .await
            .map_err(|e| ClientError::local("reading task", e))?;
        let result = match read {
            Ok(file) => self
                .put_batch(&[file], progress)
                .await
                .map(|mut done| done.swap_remove(0)),
            Err(skip) => Err(ClientError::local(local.display(), skip)),
        };
        set_phase(
            progress,
            match &result {
                Ok(Uploaded::Committed { version, .. }) => Phase::Committed { version: *version },
                Ok(Uploaded::Unchanged { version }) => Phase::Unchanged { version: *version },
                Ok(Uploaded::Skipped(skip)) => Phase::Failed(format!("skipped: {skip}")),
                Err(e) => Phase::Failed(e.to_string()),
            },
        );
        result
    }

    /// Backs up a batch of files: one question for the chunks the cluster
    /// lacks, those sealed and streamed group by group, then one record of
    /// the versions; returns each file's outcome, in order. A file found
    /// changed while it is sealed is read again once, then skipped.
    pub async fn put_batch(
        &mut self,
        files: &[LocalFile],
        progress: &Progress,
    ) -> Result<Vec<Uploaded>, ClientError> {
        for file in files {
            name::validate(&file.name)
                .map_err(|e| ClientError::local(format!("bad name {:?}", file.name), e))?;
        }
        progress.send_modify(|p| p.total = files.iter().map(|f| f.size).sum());
        let mut files = files.to_vec();
        let mut read_again = vec![false; files.len()];
        let mut skipped: Vec<Option<Skip>> = vec![None; files.len()];
        let mut exclude = Vec::new();
        let mut reasons = Vec::new();
        let mut reconnected = false;
        loop {
            let active: Vec<usize> = (0..files.len()).filter(|i| skipped[*i].is_none()).collect();
            let batch: Vec<&LocalFile> = active.iter().map(|i| &files[*i]).collect();
            let outcome = if batch.is_empty() {
                Ok(Vec::new())
            } else {
                self.put_once(&batch, &exclude, progress).await
            };
            let reason = match outcome {
                Ok(done) => {
                    let mut all: Vec<Option<Uploaded>> = skipped
                        .into_iter()
                        .map(|s| s.map(Uploaded::Skipped))
                        .collect();
                    for (i, outcome) in active.into_iter().zip(done) {
                        all[i] = Some(outcome);
                    }
                    return Ok(all.into_iter().flatten().collect());
                }
                // A change is not the cluster's failure: it costs no attempt.
                Err(Attempt::Changed(k)) => {
                    let i = active[k];
                    tracing::info!("{} changed while being read", files[i].name);
                    if read_again[i] {
                        skipped[i] = Some(Skip::changed());
                    } else {
                        read_again[i] = true;
                        let keys = self.chunk_keys(true).await?;
                        match files[i].read_again(&keys).await {
                            Ok(file) => files[i] = file,
                            Err(skip) => skipped[i] = Some(skip),
                        }
                    }
                    continue;
                }
                // Just after a manager restart, servers are still re-registering.
                Err(Attempt::Final(ClientError::Refused(reason))) if reconnected => reason,
                Err(Attempt::Final(e)) if reasons.is_empty() => return Err(e),
                Err(Attempt::Final(e)) => {
                    return Err(ClientError::Refused(format!(
                        "{e} (earlier: {})",
                        reasons.join("; ")
                    )));
                }
                Err(Attempt::Retry {
                    reason,
                    suspect,
                    reconnect,
                }) => {
                    exclude.extend(suspect);
                    reconnected = reconnect;
                    reason
                }
            };
            reasons.push(reason.clone());
            let attempt = reasons.len() as u32;
            tracing::warn!(attempt, "backup attempt failed: {reason}");
            if attempt == ATTEMPTS {
                return Err(ClientError::Refused(format!(
                    "gave up after {ATTEMPTS} attempts: {}",
                    reasons.join("; ")
                )));
            }
            // Said before waiting for the manager: the wait can be long.
            set_phase(progress, Phase::Retrying { attempt, reason });
            if reconnected {
                self.reconnect_patiently().await?;
            }
            tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        }
    }

    async fn put_once(
        &mut self,
        files: &[&LocalFile],
        exclude: &[ServerId],
        progress: &Progress,
    ) -> Result<Vec<Uploaded>, Attempt> {
        progress.send_modify(|p| {
            p.sent = 0;
            p.replicas.clear();
        });
        let keys = self.chunk_keys(true).await?;
        let mut asked = HashSet::new();
        let ids: Vec<ChunkId> = files
            .iter()
            .flat_map(|f| &f.chunks)
            .filter(|id| asked.insert(**id))
            .copied()
            .collect();
        let mut missing = HashSet::new();
        for page in ids.chunks(IDS_PER_FRAME) {
            let request = Message::HaveChunks {
                client: self.settings.client.clone(),
                ids: page.to_vec(),
            };
            let Have(have) = self.conn.request(&request).await.map_err(refusal)?;
            if have.len() != page.len() {
                return Err(
                    ClientError::Refused("the manager answered for other chunks".into()).into(),
                );
            }
            missing.extend(
                page.iter()
                    .zip(have)
                    .filter(|(_, have)| !have)
                    .map(|(id, _)| *id),
            );
        }
        // A file whose chunks were sent again healed its version, even
        // when the version itself is unchanged.
        let sent: Vec<bool> = files
            .iter()
            .map(|f| f.chunks.iter().any(|id| missing.contains(id)))
            .collect();
        let mut stored_on = u32::MAX;
        if !missing.is_empty() {
            set_phase(progress, Phase::Uploading);
            stored_on = self
                .send_missing(files, missing, keys, exclude, progress)
                .await?;
            // What the cluster kept already counts as sent: the bar ends
            // full. With nothing missing it stays at none sent, which the
            // dashboard shows as content already stored.
            progress.send_modify(|p| p.sent = p.total);
        }
        let results = self.put_files(files).await?;
        Ok(results
            .into_iter()
            .zip(sent)
            .map(|(r, sent)| match r {
                PutResult::Unchanged { version } if sent => Uploaded::Committed {
                    version,
                    replicas: stored_on,
                },
                PutResult::Unchanged { version } => Uploaded::Unchanged { version },
                PutResult::Committed { version, replicas } => Uploaded::Committed {
                    version,
                    replicas: replicas.min(stored_on),
                },
            })
            .collect())
    }

    /// Seals the chunks in `missing` on a thread of their own and streams
    /// them, group by group, each to the primary the manager picks for it;
    /// returns on how many servers every one of them is stored.
    async fn send_missing(
        &mut self,
        files: &[&LocalFile],
        missing: HashSet<ChunkId>,
        keys: ChunkKeys,
        exclude: &[ServerId],
        progress: &Progress,
    ) -> Result<u32, Attempt> {
        let (sealed_tx, mut sealed_rx) = mpsc::channel(SEALED_AHEAD);
        let owned: Vec<LocalFile> = files.iter().map(|f| (*f).clone()).collect();
        let sealer =
            tokio::task::spawn_blocking(move || seal_all(&owned, missing, &keys, &sealed_tx));
        // Full groups fly on sessions of their own, a few at once, while
        // the next ones are sealed; the last goes on this one.
        let fly = |mut lane: Session, group: Group| async move {
            let stored = lane.send_group(group, exclude, progress).await;
            (lane, stored)
        };
        let mut flights = FuturesUnordered::new();
        let mut lanes: Vec<Session> = Vec::new();
        let mut group = Group::default();
        let mut done = 0u64;
        let mut stored_on = u32::MAX;
        loop {
            tokio::select! {
                sealed = sealed_rx.recv() => match sealed {
                    None => break,
                    Some(Sealed::Read(bytes)) => {
                        done += bytes;
                        progress.send_modify(|p| p.sent = done);
                    }
                    Some(Sealed::Chunk(chunk, bytes)) => {
                        group.chunks.push(chunk);
                        group.bytes.push(bytes);
                        if group.full() {
                            if flights.len() == IN_FLIGHT
                                && let Some((lane, stored)) = flights.next().await
                            {
                                lanes.push(lane);
                                stored_on = stored_on.min(stored?);
                            }
                            let lane = match lanes.pop() {
                                Some(lane) => lane,
                                None => Session::connect(self.settings.clone()).await?,
                            };
                            flights.push(fly(lane, std::mem::take(&mut group)));
                        }
                    }
                },
                Some((lane, stored)) = flights.next(), if !flights.is_empty() => {
                    lanes.push(lane);
                    stored_on = stored_on.min(stored?);
                }
            }
        }
        while let Some((_, stored)) = flights.next().await {
            stored_on = stored_on.min(stored?);
        }
        match sealer.await {
            Ok(Ok(())) => {}
            Ok(Err(Sealing::Changed(i))) => return Err(Attempt::Changed(i)),
            Ok(Err(Sealing::Failed(e))) => return Err(Attempt::Final(e)),
            Ok(Err(Sealing::Abandoned)) => {
                return Err(Attempt::Final(ClientError::Local(
                    "the upload stopped taking sealed chunks".into(),
                )));
            }
            Err(e) => return Err(Attempt::Final(ClientError::local("the sealing task", e))),
        }
        if !group.chunks.is_empty() {
            stored_on = stored_on.min(self.send_group(group, exclude, progress).await?);
        }
        Ok(stored_on)
    }

    /// Stores one group: the manager places it and hands out a ticket, the
    /// bytes stream to the primary, and the manager confirms every copy;
    /// returns how many there are.
    async fn send_group(
        &mut self,
        group: Group,
        exclude: &[ServerId],
        progress: &Progress,
    ) -> Result<u32, Attempt> {
        let request = Message::PutChunks {
            client: self.settings.client.clone(),
            chunks: group.chunks,
            exclude: exclude.to_vec(),
        };
        let ChunkPlan(upload) = self.conn.request(&request).await.map_err(refusal)?;
        let Some(upload) = upload else {
            return Err(ClientError::Refused("the manager planned no upload".into()).into());
        };
        let primary_id = upload.ticket.server;
        let conn = match open_upload(&self.settings.link, &upload.primary, upload.ticket).await {
            Ok(conn) => conn,
            // The manager would wait for the ticket to expire: start afresh.
            Err(e) => {
                return Err(Attempt::Retry {
                    reason: format!("the primary refused the upload: {e}"),
                    suspect: Some(primary_id),
                    reconnect: true,
                });
            }
        };
        let transfer = send(conn, &group.bytes, progress).await;
        // The manager has the last word: it records the chunks, or says why not.
        let verdict = self.reply().await;
        match (transfer, verdict) {
            (_, Ok(Message::ChunksStored { replicas })) => Ok(replicas),
            (Err(Transfer::Primary { reason, lost }), Err(ClientError::Refused(_))) => {
                Err(Attempt::Retry {
                    reason,
                    suspect: lost.then_some(primary_id),
                    reconnect: false,
                })
            }
            (_, Err(ClientError::Refused(reason))) => Err(Attempt::Retry {
                reason,
                suspect: None,
                reconnect: false,
            }),
            (_, Ok(other)) => {
                Err(ClientError::from(FrameError::unexpected(&other, "ChunksStored")).into())
            }
            (_, Err(e)) => Err(e.into()),
        }
    }

    /// Records the versions, a frame's worth of chunk ids at a time.
    async fn put_files(&mut self, files: &[&LocalFile]) -> Result<Vec<PutResult>, Attempt> {
        let mut results = Vec::with_capacity(files.len());
        let mut start = 0;
        while start < files.len() {
            // Files while their first pages fit one frame; a long one alone.
            let mut end = start + 1;
            let mut ids = first_page(&files[start].chunks).len();
            while end < files.len() && ids + files[end].chunks.len() <= IDS_PER_FRAME {
                ids += files[end].chunks.len();
                end += 1;
            }
            let batch = &files[start..end];
            let request = Message::PutFiles {
                client: self.settings.client.clone(),
                files: batch
                    .iter()
                    .map(|f| PutFile {
                        name: f.name.clone(),
                        size: f.size,
                        meta: f.meta.clone(),
                        chunks: first_page(&f.chunks).to_vec(),
                        continued: f.chunks[first_page(&f.chunks).len()..]
                            .chunks(IDS_PER_FRAME)
                            .count() as u32,
                    })
                    .collect(),
            };
            self.conn.send(&request).await.map_err(ClientError::from)?;
            for file in batch {
                for more in file.chunks[first_page(&file.chunks).len()..].chunks(IDS_PER_FRAME) {
                    let more = Message::MoreChunks { ids: more.to_vec() };
                    self.conn.send(&more).await.map_err(ClientError::from)?;
                }
            }
            let recorded = match self.reply().await? {
                Message::Committed { results } if results.len() == batch.len() => results,
                other => {
                    return Err(
                        ClientError::from(FrameError::unexpected(&other, "Committed")).into(),
                    );
                }
            };
            results.extend(recorded);
            start = end;
        }
        Ok(results)
    }
}

/// The chunk ids that go in a file's own entry; the rest follow.
fn first_page(chunks: &[ChunkId]) -> &[ChunkId] {
    &chunks[..chunks.len().min(IDS_PER_FRAME)]
}

/// Sealed chunks waiting to stream to one primary.
#[derive(Default)]
struct Group {
    chunks: Vec<NewChunk>,
    bytes: Vec<Vec<u8>>,
}

impl Group {
    fn full(&self) -> bool {
        self.chunks.len() >= GROUP_CHUNKS
            || self.bytes.iter().map(Vec::len).sum::<usize>() >= GROUP_BYTES
    }
}

/// What the sealing thread hands over.
enum Sealed {
    /// This many more plaintext bytes were read.
    Read(u64),
    Chunk(NewChunk, Vec<u8>),
}

/// Why sealing stopped.
enum Sealing {
    /// The file at this index is no longer what was read.
    Changed(usize),
    Failed(ClientError),
    /// Nobody takes the sealed chunks any more: the upload failed.
    Abandoned,
}

/// Seals, in order, every chunk of `files` in `missing` (each once), and
/// checks that every file still cuts into the chunks it was read as.
fn seal_all<'a>(
    files: &'a [LocalFile],
    mut missing: HashSet<ChunkId>,
    keys: &ChunkKeys,
    out: &mpsc::Sender<Sealed>,
) -> Result<(), Sealing> {
    let hand_over = |sealed| out.blocking_send(sealed).map_err(|_| Sealing::Abandoned);
    // Big chunks wait here in pairs, to be sealed on both cores at once.
    let mut pending: Vec<(ChunkId, Cow<'a, [u8]>)> = Vec::with_capacity(2);
    let flush = |pending: &mut Vec<(ChunkId, Cow<[u8]>)>| -> Result<(), Sealing> {
        for sealed in seal_together(keys, pending) {
            hand_over(Sealed::Chunk(sealed.0?, sealed.1))?;
        }
        Ok(())
    };
    for (i, file) in files.iter().enumerate() {
        if !file.chunks.iter().any(|id| missing.contains(id)) {
            hand_over(Sealed::Read(file.size))?;
            continue;
        }
        let mut ids = file.chunks.iter();
        let mut seal = |plain: Cow<'a, [u8]>| -> Result<(), Sealing> {
            let id = keys.id(&plain);
            if ids.next() != Some(&id) {
                return Err(Sealing::Changed(i));
            }
            let read = plain.len() as u64;
            if missing.remove(&id) {
                let small = plain.len() < PAIRED;
                pending.push((id, plain));
                // A small chunk is not worth a second thread.
                if pending.len() == 2 || small {
                    flush(&mut pending)?;
                }
            }
            hand_over(Sealed::Read(read))
        };
        match &file.content {
            Some(bytes) => chunker::cut(bytes, keys.chunker_seed())
                .try_for_each(|plain| seal(Cow::Borrowed(plain)))?,
            None => {
                // Unchanged since it was read, before and after, or the
                // chunks announced are not the bytes sent.
                let unchanged = |meta: &std::fs::Metadata| Stamp::of(meta) == file.stamp;
                let (reader, meta) = open_regular(&file.path).map_err(|_| Sealing::Changed(i))?;
                let after = reader.try_clone().map_err(|_| Sealing::Changed(i))?;
                if !unchanged(&meta) {
                    return Err(Sealing::Changed(i));
                }
                for chunk in chunker::stream(reader.take(file.size), keys.chunker_seed()) {
                    seal(Cow::Owned(chunk.map_err(|_| Sealing::Changed(i))?))?;
                }
                if !after.metadata().is_ok_and(|meta| unchanged(&meta)) {
                    return Err(Sealing::Changed(i));
                }
            }
        }
        if ids.next().is_some() {
            return Err(Sealing::Changed(i));
        }
    }
    flush(&mut pending)
}

/// Seals `pending` (emptying it), the first on a thread of its own; each
/// comes back with its stored form, in order.
fn seal_together(
    keys: &ChunkKeys,
    pending: &mut Vec<(ChunkId, Cow<[u8]>)>,
) -> Vec<(Result<NewChunk, Sealing>, Vec<u8>)> {
    let seal = |(id, plain): (ChunkId, Cow<[u8]>)| match keys.seal(&id, &plain) {
        Ok(bytes) => {
            let chunk = NewChunk {
                id,
                hash: BlobHash::of(&bytes),
                size: bytes.len() as u64,
                plain_size: plain.len() as u64,
            };
            (Ok(chunk), bytes)
        }
        Err(e) => (
            Err(Sealing::Failed(ClientError::Local(e.to_string()))),
            Vec::new(),
        ),
    };
    let mut chunks = pending.drain(..);
    let Some(first) = chunks.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let first = scope.spawn(|| seal(first));
        let rest: Vec<_> = chunks.map(seal).collect();
        let first = first.join().unwrap_or_else(|_| {
            (
                Err(Sealing::Failed(ClientError::Local(
                    "the sealing thread failed".into(),
                ))),
                Vec::new(),
            )
        });
        std::iter::once(first).chain(rest).collect()
    })
}

/// How streaming to the primary failed: the primary said why, or
/// (`lost`) the connection to it broke.
enum Transfer {
    Primary { reason: String, lost: bool },
}

impl Transfer {
    fn primary(e: FrameError) -> Self {
        let lost = !matches!(e, FrameError::Refused(_));
        Transfer::Primary {
            reason: format!("upload to the primary failed: {e}"),
            lost,
        }
    }
}

/// Connects to the primary and presents the ticket.
async fn open_upload(
    link: &Connector,
    primary: &str,
    ticket: Ticket,
) -> Result<Connection, FrameError> {
    let mut conn = open_server(primary, link).await?;
    let Accepted = conn.request(&Message::Upload { ticket }).await?;
    Ok(conn)
}

async fn send(
    mut conn: Connection,
    items: &[Vec<u8>],
    progress: &Progress,
) -> Result<(), Transfer> {
    let base = progress.borrow().sent;
    tokio::try_join!(
        stream_items(&mut conn.writer, items),
        follow_replicas(&mut conn.reader, base, progress),
    )?;
    Ok(())
}

/// Each sealed chunk as frames then `End`, in the order the manager planned.
async fn stream_items(primary: &mut FrameWriter, items: &[Vec<u8>]) -> Result<(), Transfer> {
    for item in items {
        for piece in item.chunks(CHUNK_SIZE) {
            primary.feed_chunk(piece).await.map_err(Transfer::primary)?;
        }
        primary
            .feed(&Message::End)
            .await
            .map_err(Transfer::primary)?;
    }
    // Many small chunks went out in few writes; the rest goes now.
    primary.flush().await.map_err(Transfer::primary)?;
    Ok(())
}

/// Replicas' progress, counted from `base` (what earlier groups covered).
async fn follow_replicas(
    primary: &mut FrameReader,
    base: u64,
    progress: &Progress,
) -> Result<(), Transfer> {
    loop {
        match primary.recv().await.map_err(Transfer::primary)? {
            Message::ReplicaProgress { replica, bytes } => progress.send_modify(|p| {
                let i = usize::from(replica);
                if p.replicas.len() <= i {
                    p.replicas.resize(i + 1, 0);
                }
                p.replicas[i] = p.replicas[i].max((base + bytes).min(p.sent).min(p.total));
            }),
            Message::Stored => return Ok(()),
            other => {
                return Err(Transfer::primary(FrameError::unexpected(
                    &other,
                    "ReplicaProgress",
                )));
            }
        }
    }
}
