//! `Fetch`: streams a stored blob from an offset; the client verifies it.

use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    ticket: Ticket,
    offset: u64,
) -> Result<(), Error> {
    server.check(&ticket, TicketKind::Fetch)?;
    let blob = server
        .store
        .read(&ticket.hash, offset.min(ticket.size))
        .await
        .map_err(|e| Error::local("this server cannot read the blob", e))?;
    if blob.size != ticket.size {
        return Err(Error::Refused(format!(
            "stored copy has {} bytes, the catalog says {}",
            blob.size, ticket.size
        )));
    }
    if offset > blob.size {
        return Err(Error::Refused(format!(
            "offset {offset} is past the end ({} bytes)",
            blob.size
        )));
    }
    conn.send(&Message::Accepted).await?;
    Server::send_blob(&mut conn.writer, blob).await
}
