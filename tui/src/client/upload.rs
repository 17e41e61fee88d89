//! Backing one file up: hash it, ask the manager, stream it to the primary
//! while following every replica's progress, then hear the commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arca_shared::auth::ClusterKey;
use arca_shared::connection::{FrameReader, FrameWriter};
use arca_shared::limits::CHUNK_SIZE;
use arca_shared::protocol::{PutFile, PutResult, ServerId};
use arca_shared::stream::{Reading, SendFileError, send_file};
use arca_shared::ticket::Ticket;
use arca_shared::{BlobHash, Connection, FrameError, Message, name};

use super::hashes::HashCache;
use super::progress::set_phase;
use super::{ClientError, Phase, Progress, Session, open_server};

/// How a backup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    Committed {
        version: u32,
        replicas: u32,
    },
    /// The newest version already has this content; nothing moved.
    Unchanged {
        version: u32,
    },
}

/// A local file ready to back up: where it is, its name, size and hash,
/// and its bytes when they were already read to hash it (small files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub hash: BlobHash,
    pub content: Option<Arc<[u8]>>,
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
        let result = match hash_file(local).await {
            Ok((size, hash)) => {
                let file = LocalFile {
                    path: local.to_owned(),
                    name: name.to_owned(),
                    size,
                    hash,
                    content: None,
                };
                self.put_batch(&[file], progress).await.map(|done| done[0])
            }
            Err(e) => Err(e),
        };
        set_phase(
            progress,
            match &result {
                Ok(Uploaded::Committed { version, .. }) => Phase::Committed { version: *version },
                Ok(Uploaded::Unchanged { version }) => Phase::Unchanged { version: *version },
                Err(e) => Phase::Failed(e.to_string()),
            },
        );
        result
    }

    /// Backs up a batch of files with one request, one ticket, one stream
    /// and one catalog commit; returns each file's outcome, in order.
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
        let mut exclude = Vec::new();
        let mut reasons = Vec::new();
        let mut reconnected = false;
        for attempt in 1..=ATTEMPTS {
            let reason = match self.put_once(files, &exclude, progress).await {
                Ok(done) => return Ok(done),
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
            tracing::warn!(attempt, "backup attempt failed: {reason}");
            reasons.push(reason.clone());
            if attempt < ATTEMPTS {
                set_phase(progress, Phase::Retrying { attempt, reason });
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
        }
        Err(ClientError::Refused(format!(
            "gave up after {ATTEMPTS} attempts: {}",
            reasons.join("; ")
        )))
    }

    async fn put_once(
        &mut self,
        files: &[LocalFile],
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
        let to_send: Vec<&LocalFile> = files
            .iter()
            .zip(&results)
            .filter(|(_, r)| **r == PutResult::Send)
            .map(|(f, _)| f)
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
        let transfer = send(conn, &to_send, progress).await;
        // The manager has the last word: it commits, or says why not.
        let verdict = self.reply().await;
        match (transfer, verdict) {
            (_, Ok(Message::Committed { versions, replicas }))
                if versions.len() == to_send.len() =>
            {
                Ok(outcomes(&results, versions, replicas))
            }
            (Err(Transfer::Local(e)), _) => Err(Attempt::Final(e)),
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
    /// This machine's side: the file could not be read.
    Local(ClientError),
    /// The primary said why, or (`lost`) the connection to it broke.
    Primary { reason: String, lost: bool },
}

impl Transfer {
    fn primary(e: FrameError) -> Self {
        let lost = !matches!(e, FrameError::Remote(_));
        Transfer::Primary {
            reason: format!("upload to the primary failed: {e}"),
            lost,
        }
    }
}

/// The size and hash of one file (without a cache: the dashboard's single
/// uploads are few).
async fn hash_file(path: &Path) -> Result<(u64, BlobHash), ClientError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || HashCache::default().hash(&owned))
        .await
        .map_err(|e| ClientError::local("hashing task", e))?
        .map_err(|e| ClientError::local(path.display(), e))
}

/// Connects to the primary and presents the ticket.
async fn open_upload(
    key: &ClusterKey,
    primary: &str,
    ticket: Ticket,
) -> Result<Connection, FrameError> {
    let mut conn = open_server(primary, key).await?;
    match conn.call(&Message::Upload { ticket }).await? {
        Message::Accepted => Ok(conn),
        other => Err(FrameError::unexpected(&other, "Accepted")),
    }
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
    for file in files {
        match &file.content {
            Some(bytes) => {
                for chunk in bytes.chunks(CHUNK_SIZE) {
                    primary.feed_chunk(chunk).await.map_err(Transfer::primary)?;
                }
            }
            None => {
                let local =
                    |e: std::io::Error| Transfer::Local(ClientError::local(file.path.display(), e));
                let reader = std::fs::File::open(&file.path).map_err(local)?;
                // Just hashed, the file is still in the page cache.
                send_file(primary, reader, file.size, Reading::Cached, |n| {
                    progress.send_modify(|p| p.sent = sent + n)
                })
                .await
                .map_err(|e| match e {
                    SendFileError::Read(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        let what = format!(
                            "{} shrank while it was being backed up",
                            file.path.display()
                        );
                        Transfer::Local(ClientError::local(what, e))
                    }
                    SendFileError::Read(e) => local(e),
                    SendFileError::Send(e) => Transfer::primary(e),
                })?;
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
