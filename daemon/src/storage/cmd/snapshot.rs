//! `StoreSnapshot`, `ListSnapshots` and `FetchSnapshot`: this server keeps
//! the manager's sealed catalog snapshots and hands them back for recovery.

use arca_shared::protocol::{Item, SnapshotInfo};
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::storage::blobs::open_regular;
use crate::storage::item_check::ItemCheck;
use crate::storage::{BlobReader, Server};

pub(crate) async fn store(
    server: &Server,
    conn: &mut Connection,
    snapshot: SnapshotInfo,
) -> Result<(), Error> {
    let disk_error = |e: std::io::Error| Error::local("cannot keep the catalog snapshot", e);
    let free = server.store.free_bytes();
    if free < snapshot.size {
        return Err(Error::Refused(format!(
            "server {} has {free} bytes free, the snapshot needs {}",
            server.config.advertise, snapshot.size
        )));
    }
    let mut temp = server.store.temp().await.map_err(disk_error)?;
    conn.send(&Message::Accepted).await?;
    let mut check = ItemCheck::new(Item {
        hash: snapshot.hash,
        size: snapshot.size,
    });
    while let Some(data) = conn.recv_chunk().await? {
        check.chunk(data)?;
        temp.write(data).await.map_err(disk_error)?;
    }
    check.end()?;
    server
        .snapshots
        .keep(temp, &snapshot)
        .await
        .map_err(disk_error)?;
    tracing::info!(generation = snapshot.generation, "kept a catalog snapshot");
    Ok(conn.send(&Message::Stored).await?)
}

pub(crate) async fn list(server: &Server, conn: &mut Connection) -> Result<(), Error> {
    let snapshots = server.snapshots.list()?;
    Ok(conn.send(&Message::Snapshots { snapshots }).await?)
}

pub(crate) async fn fetch(
    server: &Server,
    conn: &mut Connection,
    snapshot: SnapshotInfo,
) -> Result<(), Error> {
    let path = server.snapshots.path(&snapshot);
    let file = tokio::task::spawn_blocking(move || open_regular(&path))
        .await
        .map_err(|e| Error::local("the snapshot task failed", e))?
        .map_err(|e| Error::Refused(format!("no such snapshot here: {e}")))?;
    let size = file.metadata()?.len();
    let snapshot = BlobReader {
        file,
        size,
        left: size,
    };
    conn.send(&Message::Accepted).await?;
    Server::send_blob(&mut conn.writer, snapshot).await
}
