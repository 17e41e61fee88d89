//! `DeleteBlob`: the manager found no catalog entry using this blob any more.

use arca_shared::{BlobHash, Connection, FrameError, Message};

use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    hash: BlobHash,
) -> Result<(), FrameError> {
    let freed = server.store.remove(&hash).await?;
    if freed > 0 {
        tracing::info!(hash = %hash.short(), freed, "deleted blob");
    }
    conn.send(&Message::Ok).await
}
