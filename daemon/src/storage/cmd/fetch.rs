//! `Fetch`: streams a stored blob from an offset; the client verifies it.

use std::io::SeekFrom;

use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, Message};
use tokio::io::AsyncSeekExt;

use crate::error::Error;
use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    ticket: Ticket,
    offset: u64,
) -> Result<(), Error> {
    server.check(&ticket, TicketKind::Fetch)?;
    let mut file = server
        .store
        .read(&ticket.hash)
        .await
        .map_err(|e| Error::local("this server cannot read the blob", e))?;
    let len = file.metadata().await?.len();
    if len != ticket.size {
        return Err(Error::Refused(format!(
            "stored copy has {len} bytes, the catalog says {}",
            ticket.size
        )));
    }
    if offset > len {
        return Err(Error::Refused(format!(
            "offset {offset} is past the end ({len} bytes)"
        )));
    }
    file.seek(SeekFrom::Start(offset)).await?;
    conn.send(&Message::Accepted).await?;
    Server::send_blob(&mut conn.writer, file, len - offset).await
}
