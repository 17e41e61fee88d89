//! Backing one file up: hash it, ask the manager, stream it to the primary
//! while following every replica's progress, then hear the commit.

use std::path::Path;
use std::time::Duration;

use arca_shared::auth::ClusterKey;
use arca_shared::connection::{FrameReader, FrameWriter};
use arca_shared::limits::CHUNK_SIZE;
use arca_shared::protocol::ServerId;
use arca_shared::ticket::Ticket;
use arca_shared::{BlobHash, Connection, FrameError, Message, name};
use serde_bytes::ByteBuf;
use tokio::io::AsyncReadExt;

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

/// Attempts per file before giving up.
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
        let result = self.put_with_retries(local, name, progress).await;
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

    async fn put_with_retries(
        &mut self,
        local: &Path,
        name: &str,
        progress: &Progress,
    ) -> Result<Uploaded, ClientError> {
        name::validate(name).map_err(|e| ClientError::local(format!("bad name {name:?}"), e))?;
        let size = tokio::fs::metadata(local)
            .await
            .map_err(|e| ClientError::local(local.display(), e))?
            .len();
        progress.send_modify(|p| {
            p.total = size;
            p.phase = Phase::Hashing;
        });
        let hash = hash_file(local).await?;
        let mut exclude = Vec::new();
        let mut reasons = Vec::new();
        let mut reconnected = false;
        for attempt in 1..=ATTEMPTS {
            let reason = match self
                .put_once(local, name, size, hash, &exclude, progress)
                .await
            {
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
            tracing::warn!(name, attempt, "backup attempt failed: {reason}");
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
        local: &Path,
        name: &str,
        size: u64,
        hash: BlobHash,
        exclude: &[ServerId],
        progress: &Progress,
    ) -> Result<Uploaded, Attempt> {
        progress.send_modify(|p| {
            p.sent = 0;
            p.replicas.clear();
        });
        let request = Message::PutBegin {
            client: self.settings.client.clone(),
            name: name.to_owned(),
            size,
            hash,
            exclude: exclude.to_vec(),
        };
        let (primary, ticket) = match self.call(&request).await? {
            Message::Unchanged { version } => return Ok(Uploaded::Unchanged { version }),
            Message::Committed { version, replicas } => {
                return Ok(Uploaded::Committed { version, replicas });
            }
            Message::PutTicket { primary, ticket } => (primary, ticket),
            other => {
                return Err(ClientError::from(FrameError::unexpected(&other, "PutTicket")).into());
            }
        };
        let primary_id = ticket.server;
        set_phase(progress, Phase::Uploading);
        let conn = match open_upload(&self.settings.key, &primary, ticket).await {
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
        let transfer = send(conn, local, size, progress).await;
        // The manager has the last word: it commits, or says why not.
        let verdict = self.reply().await;
        match (transfer, verdict) {
            (_, Ok(Message::Committed { version, replicas })) => {
                Ok(Uploaded::Committed { version, replicas })
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

async fn hash_file(path: &Path) -> Result<BlobHash, ClientError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(std::fs::File::open(&path)?)
            .map(|h| BlobHash::from(h.finalize()))
    })
    .await
    .map_err(|e| ClientError::local("hashing task", e))?
    .map_err(|e| ClientError::local("cannot read file", e))
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
    local: &Path,
    size: u64,
    progress: &Progress,
) -> Result<(), Transfer> {
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| Transfer::Local(ClientError::local(local.display(), e)))?;
    tokio::try_join!(
        stream_file(&mut conn.writer, file, size, progress),
        follow_replicas(&mut conn.reader, progress),
    )?;
    Ok(())
}

async fn stream_file(
    primary: &mut FrameWriter,
    mut file: tokio::fs::File,
    size: u64,
    progress: &Progress,
) -> Result<(), Transfer> {
    let mut sent = 0u64;
    while sent < size {
        let mut chunk = vec![0u8; CHUNK_SIZE.min((size - sent) as usize)];
        let n = file.read_exact(&mut chunk).await.map_err(|e| {
            Transfer::Local(ClientError::local(
                "the file shrank while it was being backed up",
                e,
            ))
        })?;
        primary
            .send(&Message::Chunk {
                data: ByteBuf::from(chunk),
            })
            .await
            .map_err(Transfer::primary)?;
        sent += n as u64;
        progress.send_modify(|p| p.sent = sent);
    }
    primary
        .send(&Message::End)
        .await
        .map_err(Transfer::primary)?;
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
