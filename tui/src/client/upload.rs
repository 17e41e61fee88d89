//! Backing one file up: hash it, ask the manager, stream it to the primary
//! while following every replica's progress, then hear the commit.

use std::path::Path;

use arca_shared::auth::ClusterKey;
use arca_shared::connection::{FrameReader, FrameWriter};
use arca_shared::limits::CHUNK_SIZE;
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

impl Session {
    /// Backs up the file at `local` under catalog name `name`.
    pub async fn put(
        &mut self,
        local: &Path,
        name: &str,
        progress: &Progress,
    ) -> Result<Uploaded, ClientError> {
        let result = self.try_put(local, name, progress).await;
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

    async fn try_put(
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
        let request = Message::PutBegin {
            client: self.settings.client.clone(),
            name: name.to_owned(),
            size,
            hash,
        };
        let (primary, ticket) = match self.call(&request).await? {
            Message::Unchanged { version } => return Ok(Uploaded::Unchanged { version }),
            Message::Committed { version, replicas } => {
                return Ok(Uploaded::Committed { version, replicas });
            }
            Message::PutTicket { primary, ticket } => (primary, ticket),
            other => return Err(FrameError::unexpected(&other, "PutTicket").into()),
        };
        set_phase(progress, Phase::Uploading);
        let conn = match open_upload(&self.settings.key, &primary, ticket).await {
            Ok(conn) => conn,
            Err(e) => {
                // The manager would wait for the ticket to expire: start afresh.
                self.reconnect().await?;
                return Err(e);
            }
        };
        let transfer = send(conn, local, size, progress).await;
        // The manager has the last word: it commits, or says why not.
        let verdict = self.reply().await;
        match (transfer, verdict) {
            (_, Ok(Message::Committed { version, replicas })) => {
                Ok(Uploaded::Committed { version, replicas })
            }
            (Err(local), Err(ClientError::Refused(_))) => Err(local),
            (_, Ok(other)) => Err(FrameError::unexpected(&other, "Committed").into()),
            (_, Err(e)) => Err(e),
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
) -> Result<Connection, ClientError> {
    let transfer = |e: FrameError| ClientError::Local(format!("upload to the primary failed: {e}"));
    let mut conn = open_server(primary, key).await.map_err(transfer)?;
    match conn.call(&Message::Upload { ticket }).await {
        Ok(Message::Accepted) => Ok(conn),
        Ok(other) => Err(transfer(FrameError::unexpected(&other, "Accepted"))),
        Err(e) => Err(transfer(e)),
    }
}

async fn send(
    mut conn: Connection,
    local: &Path,
    size: u64,
    progress: &Progress,
) -> Result<(), ClientError> {
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| ClientError::local(local.display(), e))?;
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
) -> Result<(), ClientError> {
    let mut sent = 0u64;
    while sent < size {
        let mut chunk = vec![0u8; CHUNK_SIZE.min((size - sent) as usize)];
        let n = file
            .read_exact(&mut chunk)
            .await
            .map_err(|e| ClientError::local("the file shrank while it was being backed up", e))?;
        primary
            .send(&Message::Chunk {
                data: ByteBuf::from(chunk),
            })
            .await
            .map_err(|e| ClientError::Local(format!("the primary stopped receiving: {e}")))?;
        sent += n as u64;
        progress.send_modify(|p| p.sent = sent);
    }
    primary
        .send(&Message::End)
        .await
        .map_err(|e| ClientError::Local(format!("the primary stopped receiving: {e}")))?;
    set_phase(progress, Phase::Replicating);
    Ok(())
}

async fn follow_replicas(
    primary: &mut FrameReader,
    progress: &Progress,
) -> Result<(), ClientError> {
    loop {
        match primary.recv().await {
            Ok(Message::ReplicaProgress { replica, bytes }) => progress.send_modify(|p| {
                let i = usize::from(replica);
                if p.replicas.len() <= i {
                    p.replicas.resize(i + 1, 0);
                }
                p.replicas[i] = bytes.min(p.total);
            }),
            Ok(Message::Stored) => return Ok(()),
            Ok(other) => {
                return Err(ClientError::Local(format!(
                    "upload failed: {}",
                    FrameError::unexpected(&other, "ReplicaProgress")
                )));
            }
            Err(e) => return Err(ClientError::Local(format!("upload failed: {e}"))),
        }
    }
}
