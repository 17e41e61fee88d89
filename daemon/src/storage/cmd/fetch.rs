//! `Fetch`: streams stored blobs, one after another on one request, so a
//! folder's restore costs a round trip per batch, not per chunk. A blob this
//! server cannot give is answered with an `Error` of its own and the rest
//! still come; the client verifies every blob it gets.

use arca_shared::limits::FETCH_MAX;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::storage::{BlobReader, Server};

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    tickets: Vec<Ticket>,
) -> Result<(), Error> {
    if tickets.len() > FETCH_MAX {
        return Err(Error::Refused(format!(
            "ask for at most {FETCH_MAX} blobs at once"
        )));
    }
    for ticket in tickets {
        match open(server, &ticket).await {
            Ok(blob) => {
                conn.writer.feed(&Message::Accepted).await?;
                Server::send_blob(&mut conn.writer, blob).await?;
            }
            Err(e) => {
                e.log(conn.peer(), "Fetch");
                conn.writer.feed(&e.to_message()).await?;
            }
        }
    }
    Ok(conn.writer.flush().await?)
}

async fn open(server: &Server, ticket: &Ticket) -> Result<BlobReader, Error> {
    server.check(ticket, TicketKind::Fetch)?;
    let blob = server
        .store
        .read(&ticket.hash, 0)
        .await
        .map_err(|e| Error::local("this server cannot read the blob", e))?;
    if blob.size != ticket.size {
        return Err(Error::Refused(format!(
            "stored copy has {} bytes, the catalog says {}",
            blob.size, ticket.size
        )));
    }
    Ok(blob)
}
