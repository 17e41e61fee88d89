//! `Replicate`: healing. This server sends one of its blobs straight to
//! another server, which verifies and stores it as it would an upload.

use arca_shared::protocol::{Item, ReplicaTarget};
use arca_shared::{BlobHash, Connection, FrameError, Message};

use crate::error::Error;
use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    hash: BlobHash,
    target: ReplicaTarget,
) -> Result<(), Error> {
    let blob = server
        .store
        .read(&hash, 0)
        .await
        .map_err(|e| Error::local("this server cannot read the blob", e))?;
    if blob.size != target.ticket.size {
        return Err(Error::Refused(format!(
            "stored copy has {} bytes, the catalog says {}",
            blob.size, target.ticket.size
        )));
    }
    let item = Item {
        hash,
        size: blob.size,
    };
    let mut dest = server.open_store(&target, &[item]).await?;
    Server::send_blob(&mut dest.writer, blob).await?;
    loop {
        match dest.recv().await? {
            Message::Written { .. } => {}
            Message::Stored => return Ok(conn.send(&Message::Ok).await?),
            other => return Err(FrameError::unexpected(&other, "Stored").into()),
        }
    }
}
