//! Restoring one file: the manager names the best live holder; the client
//! streams from it into a temp file beside the destination, hashing as it
//! writes, resumes from another holder if one fails mid-transfer, and renames
//! into place only once the hash matches the catalog. A file that fails its
//! hash is fetched again; a holder is blamed only for bytes all its own.

use std::io::Seek;
use std::path::Path;

use arca_shared::reply::Accepted;
use arca_shared::stream::FileSink;
use arca_shared::ticket::Ticket;
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, FrameError, Message};

use super::progress::set_phase;
use super::{ClientError, Phase, Progress, Session, open_server};

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
    path: tempfile::TempPath,
    sink: FileSink,
    hasher: blake3::Hasher,
    written: u64,
    /// How many holders the bytes written came from.
    holders: usize,
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
            let Some(mut part) = partial.take() else {
                continue;
            };
            let from = part.written;
            let fetched = download(&holder, &ticket, &mut part, progress, &self.settings.key).await;
            if part.written > from {
                part.holders += 1;
            }
            match fetched {
                Ok(()) if BlobHash::from(part.hasher.finalize()) == ticket.hash => {
                    let size = part.written;
                    part.finish(dest).await?;
                    return Ok(Restored::Written {
                        version: found,
                        size,
                    });
                }
                Ok(()) => {
                    last_failure = "a copy failed its hash check".into();
                    // Bytes from several holders may hold any one's fault:
                    // start over from this one alone before blaming it.
                    let blamed = part.holders == 1;
                    part.restart().await?;
                    if !blamed {
                        tracing::warn!("resumed copy of {name} is corrupt; starting over");
                        partial = Some(part);
                        continue;
                    }
                    tracing::warn!(%holder, "copy of {name} is corrupt; reporting it");
                    let _ = self
                        .call(&Message::ReportCorrupt {
                            ticket: ticket.clone(),
                        })
                        .await;
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
        let (file, path) = tempfile::Builder::new()
            .prefix(".arca-restore-")
            .tempfile_in(&dir)
            .map_err(|e| ClientError::local(format!("cannot write in {}", dir.display()), e))?
            .into_parts();
        Ok(Self {
            path,
            sink: FileSink::start(file),
            hasher: blake3::Hasher::new(),
            written: 0,
            holders: 0,
        })
    }

    /// Hashes here while the sink's thread writes.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.sink.write(bytes).await.map_err(cannot_write)?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Drops everything written: the copy it came from was bad.
    async fn restart(&mut self) -> Result<(), ClientError> {
        let mut file = self.sink.finish().await.map_err(cannot_write)?;
        file.set_len(0)
            .and_then(|()| file.rewind())
            .map_err(|e| ClientError::local("cannot reset the restored file", e))?;
        self.sink = FileSink::start(file);
        self.hasher.reset();
        self.written = 0;
        self.holders = 0;
        Ok(())
    }

    async fn finish(mut self, dest: &Path) -> Result<(), ClientError> {
        let file = self.sink.finish().await.map_err(cannot_write)?;
        let (path, dest) = (self.path, dest.to_owned());
        tokio::task::spawn_blocking(move || {
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

async fn same_content(path: &Path, hash: &BlobHash, size: u64) -> bool {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() && meta.len() == size => {}
        _ => return false,
    }
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || BlobHash::of_file(&path).ok())
        .await
        .ok()
        .flatten()
        == Some(*hash)
}

/// Streams from `holder` into `part` from where it stands; whatever
/// happens, the partial file stays, to resume from another holder.
async fn download(
    holder: &str,
    ticket: &Ticket,
    part: &mut Partial,
    progress: &Progress,
    key: &arca_shared::keys::ClusterKey,
) -> Result<(), Failure> {
    let mut conn = open_server(holder, key).await.map_err(Failure::Holder)?;
    let request = Message::Fetch {
        ticket: ticket.clone(),
        offset: part.written,
    };
    let Accepted = conn.request(&request).await.map_err(Failure::Holder)?;
    loop {
        let frame = conn.recv_data().await.map_err(Failure::Holder)?;
        let Some(data) = frame.chunk() else {
            return match frame.message().map_err(Failure::Holder)? {
                Message::End if part.written == ticket.size => Ok(()),
                Message::End => Err(Failure::Holder(FrameError::Refused(
                    "holder ended the stream early".into(),
                ))),
                other => Err(Failure::Holder(FrameError::unexpected(&other, "Chunk"))),
            };
        };
        if part.written + data.len() as u64 > ticket.size {
            return Err(Failure::Holder(FrameError::Refused(
                "holder sent more bytes than the file has".into(),
            )));
        }
        part.write(data).await.map_err(Failure::Local)?;
        progress.send_modify(|p| p.sent = part.written);
    }
}
