//! `Inventory`: every blob this server holds, for the manager to reconcile
//! with its catalog. Sent in pages, then `End`.

use arca_shared::{Connection, FrameError, Message};

use crate::storage::Server;

/// Blobs per page: well under the control frame cap.
const PAGE: usize = 512;

pub(crate) async fn run(server: &Server, conn: &mut Connection) -> Result<(), FrameError> {
    let blobs = server.store.list()?;
    for page in blobs.chunks(PAGE) {
        conn.send(&Message::Blobs {
            blobs: page.to_vec(),
        })
        .await?;
    }
    conn.send(&Message::End).await
}
