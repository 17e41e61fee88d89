//! `DeleteBlob`: the manager found no catalog entry using this blob any more.

use arca_shared::{BlobHash, Connection, Message};

use crate::error::Error;
use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    hash: BlobHash,
) -> Result<(), Error> {
    let freed = server.store.remove(&hash).await?;
    if freed > 0 {
        tracing::info!(hash = %hash.short(), freed, "deleted blob");
    }
    Ok(conn.send(&Message::Ok).await?)
}
