//! `Inventory`: every blob this server holds, for the manager to reconcile
//! with its catalog. Sent in pages, then `End`.

use arca_shared::connection::PageWriter;
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::storage::Server;

/// Blobs per page: well under the control frame cap.
const PAGE: usize = 512;

pub(crate) async fn run(server: &Server, conn: &mut Connection) -> Result<(), Error> {
    let mut pages = PageWriter::new(conn, PAGE, |blobs| Message::Blobs { blobs });
    for blob in server.store.list() {
        pages.push(blob).await?;
    }
    Ok(pages.finish().await?)
}
