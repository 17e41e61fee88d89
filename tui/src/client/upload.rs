//! Backing one file up: hash it, ask the manager, stream it to the primary
//! while following every replica's progress, then hear the commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arca_shared::connection::{FrameReader, FrameWriter};
use arca_shared::keys::ClusterKey;
use arca_shared::limits::CHUNK_SIZE;
use arca_shared::protocol::{PutFile, PutResult};
use arca_shared::reply::Accepted;
use arca_shared::stream::{Reading, SendFileError, send_file};
use arca_shared::ticket::Ticket;
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Connection, FrameError, Message, name};

use super::local::{Skip, Stamp, open_regular, read_stable};
use super::progress::set_phase;
use super::{ClientError, Phase, Progress, Session, open_server};

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

/// A local file ready to back up: where it is, its name, size and hash,
/// its bytes when they were already read to hash it (small files), and
/// what it looked like then (sending it checks that it still does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub hash: BlobHash,
    pub content: Option<Arc<[u8]>>,
    pub stamp: Stamp,
}

impl LocalFile {
    /// Reads `path` to back it up as `name`, keeping its bytes if it is
    /// smaller than `keep_below`.
    pub fn read(path: &Path, name: &str, keep_below: u64) -> Result<Self, Skip> {
        let read = read_stable(path, keep_below)?;
        Ok(Self {
            path: path.to_owned(),
            name: name.to_owned(),
            size: read.stamp.size(),
            hash: read.hash,
            content: read.content,
            stamp: read.stamp,
        })
    }

    /// The same file read again, its bytes not kept, off the async threads.
    async fn read_again(&self) -> Result<Self, Skip> {
        let (path, name) = (self.path.clone(), self.name.clone());
        tokio::task::spawn_blocking(move || Self::read(&path, &name, 0))
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
        let (path, owned) = (local.to_owned(), name.to_owned());
        let read = tokio::task::spawn_blocking(move || LocalFile::read(&path, &owned, 0))
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

    /// Backs up a batch of files with one request, one ticket, one stream
    /// and one catalog commit; returns each file's outcome, in order. A file
    /// found changed while it is sent is read again once, then skipped.
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
                        match files[i].read_again().await {
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
                    if reconnect {
                        self.reconnect_patiently().await?;
                    }
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
            set_phase(progress, Phase::Retrying { attempt, reason });
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
        let request = Message::PutBegin {
            client: self.settings.client.clone(),
            files: files
                .iter()
                .map(|f| PutFile {
                    name: f.name.clone(),
                    size: f.size,
                    hash: f.hash,
                })
                .collect(),
            exclude: exclude.to_vec(),
        };
        let (results, upload) = match self.call(&request).await? {
            Message::Planned { results, upload } if results.len() == files.len() => {
                (results, upload)
            }
            other => {
                return Err(ClientError::from(FrameError::unexpected(&other, "Planned")).into());
            }
        };
        let Some(upload) = upload else {
            return Ok(outcomes(&results, Vec::new(), 0));
        };
        // Indexes in `files` of those the cluster needs.
        let to_send: Vec<usize> = (0..files.len())
            .filter(|i| results[*i] == PutResult::Send)
            .collect();
        let primary_id = upload.ticket.server;
        set_phase(progress, Phase::Uploading);
        let conn = match open_upload(&self.settings.key, &upload.primary, upload.ticket).await {
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
        let sending: Vec<&LocalFile> = to_send.iter().map(|i| files[*i]).collect();
        let transfer = send(conn, &sending, progress).await;
        // The manager has the last word: it commits, or says why not.
        let verdict = self.reply().await;
        match (transfer, verdict) {
            (_, Ok(Message::Committed { versions, replicas }))
                if versions.len() == to_send.len() =>
            {
                Ok(outcomes(&results, versions, replicas))
            }
            (Err(Transfer::Changed(k)), _) => Err(Attempt::Changed(to_send[k])),
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
                Err(ClientError::from(FrameError::unexpected(&other, "Committed")).into())
            }
            (_, Err(e)) => Err(e.into()),
        }
    }
}

/// Each file's outcome: the manager's verdict, with the versions committed
/// for the files sent (in order) and their replica count.
fn outcomes(results: &[PutResult], sent: Vec<u32>, replicas: u32) -> Vec<Uploaded> {
    let mut sent = sent.into_iter();
    results
        .iter()
        .map(|r| match *r {
            PutResult::Unchanged { version } => Uploaded::Unchanged { version },
            PutResult::Committed { version, replicas } => Uploaded::Committed { version, replicas },
            PutResult::Send => Uploaded::Committed {
                version: sent.next().unwrap_or(0),
                replicas,
            },
        })
        .collect()
}

/// How streaming to the primary failed.
enum Transfer {
    /// The file at this index is no longer what was hashed.
    Changed(usize),
    /// The primary said why, or (`lost`) the connection to it broke.
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
    key: &ClusterKey,
    primary: &str,
    ticket: Ticket,
) -> Result<Connection, FrameError> {
    let mut conn = open_server(primary, key).await?;
    let Accepted = conn.request(&Message::Upload { ticket }).await?;
    Ok(conn)
}

async fn send(
    mut conn: Connection,
    files: &[&LocalFile],
    progress: &Progress,
) -> Result<(), Transfer> {
    tokio::try_join!(
        stream_files(&mut conn.writer, files, progress),
        follow_replicas(&mut conn.reader, progress),
    )?;
    Ok(())
}

/// Each file as chunks then `End`, in the order the manager planned.
async fn stream_files(
    primary: &mut FrameWriter,
    files: &[&LocalFile],
    progress: &Progress,
) -> Result<(), Transfer> {
    let mut sent = 0u64;
    for (i, file) in files.iter().enumerate() {
        match &file.content {
            Some(bytes) => {
                for chunk in bytes.chunks(CHUNK_SIZE) {
                    primary.feed_chunk(chunk).await.map_err(Transfer::primary)?;
                }
            }
            None => {
                // Unchanged since it was hashed, before and after sending,
                // or the hash announced is not that of the bytes sent.
                let unchanged = |meta: &std::fs::Metadata| Stamp::of(meta) == file.stamp;
                let (reader, meta) = open_regular(&file.path).map_err(|_| Transfer::Changed(i))?;
                let after = reader.try_clone().map_err(|_| Transfer::Changed(i))?;
                if !unchanged(&meta) {
                    return Err(Transfer::Changed(i));
                }
                // Just hashed, the file is still in the page cache.
                send_file(primary, reader, file.size, Reading::Cached, |n| {
                    progress.send_modify(|p| p.sent = sent + n)
                })
                .await
                .map_err(|e| match e {
                    SendFileError::Read(_) => Transfer::Changed(i),
                    SendFileError::Send(e) => Transfer::primary(e),
                })?;
                if !after.metadata().is_ok_and(|meta| unchanged(&meta)) {
                    return Err(Transfer::Changed(i));
                }
            }
        }
        sent += file.size;
        progress.send_modify(|p| p.sent = sent);
        primary
            .feed(&Message::End)
            .await
            .map_err(Transfer::primary)?;
    }
    // Many small files went out in few writes; the rest goes now.
    primary.flush().await.map_err(Transfer::primary)?;
    set_phase(progress, Phase::Replicating);
    Ok(())
}

async fn follow_replicas(primary: &mut FrameReader, progress: &Progress) -> Result<(), Transfer> {
    loop {
        match primary.recv().await.map_err(Transfer::primary)? {
            Message::ReplicaProgress { replica, bytes } => progress.send_modify(|p| {
                let i = usize::from(replica);
                if p.replicas.len() <= i {
                    p.replicas.resize(i + 1, 0);
                }
                p.replicas[i] = bytes.min(p.total);
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
