//! `Fetch`: streams stored blobs, one after another on one request, so a
//! folder's restore costs a round trip per batch, not per chunk. A blob this
//! server cannot give is answered with an `Error` of its own and the rest
//! still come; the client verifies every blob it gets.

use arca_shared::limits::{CHUNK_SIZE, FETCH_MAX};
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::storage::Server;

/// Blobs up to this size are read through the page cache, a run of them in
/// one go; bigger ones stream around it.
const SMALL: u64 = 256 * 1024;
/// Bytes of small blobs read in one go, at most.
const RUN_BYTES: u64 = 4 << 20;

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
    let mut rest = tickets.as_slice();
    while let Some(ticket) = rest.first() {
        if ticket.size > SMALL {
            send_big(server, conn, ticket).await?;
            rest = &rest[1..];
            continue;
        }
        let mut bytes = 0;
        let run = rest
            .iter()
            .take_while(|t| {
                bytes += t.size;
                t.size <= SMALL && bytes <= RUN_BYTES
            })
            .count()
            .max(1);
        send_small(server, conn, &rest[..run]).await?;
        rest = &rest[run..];
    }
    Ok(conn.writer.flush().await?)
}

/// A big blob, streamed from the disk as it is read.
async fn send_big(server: &Server, conn: &mut Connection, ticket: &Ticket) -> Result<(), Error> {
    let opened = match server.check(ticket, TicketKind::Fetch) {
        Ok(()) => server
            .store
            .read(&ticket.hash, 0)
            .await
            .map_err(cannot_read)
            .and_then(|blob| sized(ticket, blob.size).map(|()| blob)),
        Err(e) => Err(e),
    };
    match opened {
        Ok(blob) => {
            conn.writer.feed(&Message::Accepted).await?;
            Server::send_blob(&mut conn.writer, blob).await
        }
        Err(e) => refuse(conn, e).await,
    }
}

/// A run of small blobs, read in one go and queued.
async fn send_small(
    server: &Server,
    conn: &mut Connection,
    tickets: &[Ticket],
) -> Result<(), Error> {
    let checked: Vec<Result<(), Error>> = tickets
        .iter()
        .map(|t| server.check(t, TicketKind::Fetch))
        .collect();
    let wanted = tickets
        .iter()
        .zip(&checked)
        .filter(|(_, c)| c.is_ok())
        .map(|(t, _)| t.hash)
        .collect();
    let mut read = server
        .store
        .read_small(wanted)
        .await
        .map_err(cannot_read)?
        .into_iter();
    for (ticket, checked) in tickets.iter().zip(checked) {
        let blob = checked.and_then(|()| match read.next() {
            Some(bytes) => bytes.map_err(cannot_read),
            None => Err(Error::local("this server lost track of a read", "")),
        });
        match blob.and_then(|bytes| sized(ticket, bytes.len() as u64).map(|()| bytes)) {
            Ok(bytes) => {
                conn.writer.feed(&Message::Accepted).await?;
                for piece in bytes.chunks(CHUNK_SIZE) {
                    conn.writer.feed_chunk(piece).await?;
                }
                conn.writer.feed(&Message::End).await?;
            }
            Err(e) => refuse(conn, e).await?,
        }
    }
    Ok(())
}

fn cannot_read(e: std::io::Error) -> Error {
    Error::local("this server cannot read the blob", e)
}

fn sized(ticket: &Ticket, size: u64) -> Result<(), Error> {
    if size == ticket.size {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "stored copy has {size} bytes, the catalog says {}",
        ticket.size
    )))
}

/// This one blob's refusal; the link goes on with the next.
async fn refuse(conn: &mut Connection, e: Error) -> Result<(), Error> {
    e.log(conn.peer(), "Fetch");
    Ok(conn.writer.feed(&e.to_message()).await?)
}
