//! Restoring one file: the manager names the best live holder; the client
//! streams from it into a temp file beside the destination, hashing as it
//! writes, resumes from another holder if one fails mid-transfer, and renames
//! into place only once the hash matches the catalog.

use std::io::{Seek, Write};
use std::path::Path;

use arca_shared::protocol::ServerId;
use arca_shared::ticket::Ticket;
use arca_shared::{BlobHash, FrameError, Message};
use serde_bytes::ByteBuf;

use super::progress::set_phase;
use super::{ClientError, Phase, Progress, Session, open_server};

/// Chunks received ahead of the disk writer.
const WRITE_AHEAD: usize = 4;

/// Most holders tried before a restore gives up.
const MAX_ATTEMPTS: usize = 8;

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

/// The partial download, kept across holders.
struct Partial {
    file: tempfile::NamedTempFile,
    hasher: blake3::Hasher,
    written: u64,
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
        let mut exclude: Vec<ServerId> = Vec::new();
        let mut partial: Option<Partial> = None;
        let mut last_failure = String::new();
        for _ in 0..MAX_ATTEMPTS {
            let request = Message::GetBegin {
                client: self.settings.client.clone(),
                name: name.to_owned(),
                version,
                exclude: exclude.clone(),
            };
            let (holder, ticket, found) = match self.call(&request).await {
                Ok(Message::GetTicket {
                    holder,
                    ticket,
                    version,
                }) => (holder, ticket, version),
                Ok(other) => return Err(FrameError::unexpected(&other, "GetTicket").into()),
                Err(ClientError::Refused(reason)) if !last_failure.is_empty() => {
                    return Err(ClientError::Refused(format!(
                        "{reason} (last failure: {last_failure})"
                    )));
                }
                Err(e) => return Err(e),
            };
            if partial.is_none() {
                if same_content(dest, &ticket.hash, ticket.size).await {
                    return Ok(Restored::AlreadyThere { version: found });
                }
                if dest.exists() && !force {
                    return Err(ClientError::Local(format!(
                        "{} exists and differs from the backup; pass --force to overwrite it",
                        dest.display()
                    )));
                }
                partial = Some(Partial::beside(dest)?);
                progress.send_modify(|p| {
                    p.total = ticket.size;
                    p.phase = Phase::Restoring;
                });
            }
            let Some(part) = partial.take() else {
                continue;
            };
            let (mut part, outcome) =
                download(&holder, &ticket, part, progress, &self.settings.key).await?;
            match outcome {
                Ok(()) if BlobHash::from(part.hasher.finalize()) == ticket.hash => {
                    let size = part.written;
                    part.finish(dest)?;
                    return Ok(Restored::Written {
                        version: found,
                        size,
                    });
                }
                Ok(()) => {
                    last_failure = "a copy failed its hash check".into();
                    tracing::warn!(%holder, "copy of {name} is corrupt; reporting it");
                    let _ = self
                        .call(&Message::ReportCorrupt {
                            ticket: ticket.clone(),
                        })
                        .await;
                    part.restart()?;
                }
                Err(Failure::Local(e)) => return Err(e),
                Err(Failure::Holder(e)) => {
                    last_failure = format!("holder failed: {e}");
                    tracing::warn!(%holder, "restore of {name} interrupted: {e}");
                }
            }
            partial = Some(part);
            exclude.push(ticket.server);
        }
        Err(ClientError::Refused(format!(
            "gave up restoring {name} after {MAX_ATTEMPTS} holders ({last_failure})"
        )))
    }
}

enum Failure {
    /// This client cannot write: trying another holder will not help.
    Local(ClientError),
    /// The holder failed; another may do.
    Holder(FrameError),
}

impl Partial {
    fn beside(dest: &Path) -> Result<Self, ClientError> {
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| ClientError::local(dir.display(), e))?;
        let file = tempfile::Builder::new()
            .prefix(".arca-restore-")
            .tempfile_in(&dir)
            .map_err(|e| ClientError::local(format!("cannot write in {}", dir.display()), e))?;
        Ok(Self {
            file,
            hasher: blake3::Hasher::new(),
            written: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.file
            .write_all(bytes)
            .map_err(|e| ClientError::local("cannot write the restored file", e))?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Drops everything written: the copy it came from was bad.
    fn restart(&mut self) -> Result<(), ClientError> {
        let file = self.file.as_file_mut();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .map_err(|e| ClientError::local("cannot reset the restored file", e))?;
        self.hasher.reset();
        self.written = 0;
        Ok(())
    }

    fn finish(self, dest: &Path) -> Result<(), ClientError> {
        self.file
            .as_file()
            .sync_all()
            .map_err(|e| ClientError::local("cannot flush the restored file", e))?;
        self.file
            .persist(dest)
            .map_err(|e| ClientError::local(dest.display(), e.error))?;
        Ok(())
    }
}

async fn same_content(path: &Path, hash: &BlobHash, size: u64) -> bool {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() && meta.len() == size => {}
        _ => return false,
    }
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        std::fs::File::open(&path)
            .and_then(|f| {
                hasher
                    .update_reader(f)
                    .map(|h| BlobHash::from(h.finalize()))
            })
            .ok()
    })
    .await
    .ok()
    .flatten()
        == Some(*hash)
}

/// Streams from `holder` into `part` from where it stands. A blocking thread
/// writes and hashes while this task receives, so network and disk overlap;
/// the partial file comes back whatever happened, to resume elsewhere.
async fn download(
    holder: &str,
    ticket: &Ticket,
    part: Partial,
    progress: &Progress,
    key: &arca_shared::auth::ClusterKey,
) -> Result<(Partial, Result<(), Failure>), ClientError> {
    let (chunks, mut incoming) = tokio::sync::mpsc::channel::<ByteBuf>(WRITE_AHEAD);
    let start = part.written;
    let writer = tokio::task::spawn_blocking(move || {
        let mut part = part;
        let mut result = Ok(());
        while let Some(chunk) = incoming.blocking_recv() {
            result = part.write(&chunk);
            if result.is_err() {
                break;
            }
        }
        (part, result)
    });
    let received = receive(holder, ticket, start, chunks, progress, key).await;
    let (part, written) = writer
        .await
        .map_err(|e| ClientError::local("the restore's writing task failed", e))?;
    Ok(match written {
        Err(e) => (part, Err(Failure::Local(e))),
        Ok(()) => (part, received),
    })
}

/// Receives the stream from `offset` and hands each chunk to the writer.
async fn receive(
    holder: &str,
    ticket: &Ticket,
    offset: u64,
    chunks: tokio::sync::mpsc::Sender<ByteBuf>,
    progress: &Progress,
    key: &arca_shared::auth::ClusterKey,
) -> Result<(), Failure> {
    let mut conn = open_server(holder, key).await.map_err(Failure::Holder)?;
    let request = Message::Fetch {
        ticket: ticket.clone(),
        offset,
    };
    match conn.call(&request).await.map_err(Failure::Holder)? {
        Message::Accepted => {}
        other => return Err(Failure::Holder(FrameError::unexpected(&other, "Accepted"))),
    }
    let mut received = offset;
    loop {
        match conn.recv_data().await.map_err(Failure::Holder)? {
            Message::Chunk { data } => {
                received += data.len() as u64;
                if received > ticket.size {
                    return Err(Failure::Holder(FrameError::Remote(
                        "holder sent more bytes than the file has".into(),
                    )));
                }
                // The writer stops only on a local error, which it reports itself.
                if chunks.send(data).await.is_err() {
                    return Ok(());
                }
                progress.send_modify(|p| p.sent = received);
            }
            Message::End if received == ticket.size => return Ok(()),
            Message::End => {
                return Err(Failure::Holder(FrameError::Remote(
                    "holder ended the stream early".into(),
                )));
            }
            other => return Err(Failure::Holder(FrameError::unexpected(&other, "Chunk"))),
        }
    }
}
