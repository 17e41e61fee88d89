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
    let file = server
        .store
        .read(&hash)
        .await
        .map_err(|e| Error::local("this server cannot read the blob", e))?;
    let len = file.metadata().await?.len();
    if len != target.ticket.size {
        return Err(Error::Refused(format!(
            "stored copy has {len} bytes, the catalog says {}",
            target.ticket.size
        )));
    }
    let item = Item { hash, size: len };
    let mut dest = server.open_store(&target, &[item]).await?;
    Server::send_blob(&mut dest.writer, file, len).await?;
    loop {
        match dest.recv().await? {
            Message::Written { .. } => {}
            Message::Stored => return Ok(conn.send(&Message::Ok).await?),
            other => return Err(FrameError::unexpected(&other, "Stored").into()),
        }
    }
}
