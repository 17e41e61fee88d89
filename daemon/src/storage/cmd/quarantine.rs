//! `Quarantine` and `DeleteDamaged`: a copy that failed its hash is moved
//! aside, not deleted, until the manager knows a good copy exists.

use arca_shared::{BlobHash, Connection, Message};

use crate::error::Error;
use crate::storage::Server;

pub(crate) async fn set_aside(
    server: &Server,
    conn: &mut Connection,
    hash: BlobHash,
) -> Result<(), Error> {
    if server.store.quarantine(&hash).await? {
        tracing::warn!(hash = %hash.short(), "damaged copy set aside");
    }
    Ok(conn.send(&Message::Ok).await?)
}

pub(crate) async fn delete(
    server: &Server,
    conn: &mut Connection,
    hash: BlobHash,
) -> Result<(), Error> {
    server.store.delete_quarantined(&hash).await?;
    Ok(conn.send(&Message::Ok).await?)
}
