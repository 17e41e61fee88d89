//! `Store`: this server is a replica. It writes the stream's files to one
//! temp pack as they arrive, verifying each one's size and hash; once every
//! file is in, it makes the pack durable and only then confirms.

use arca_shared::limits::CHUNK_SIZE;
use arca_shared::protocol::Item;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::storage::Server;
use crate::storage::item_check::ItemCheck;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    ticket: Ticket,
    items: Vec<Item>,
) -> Result<(), Error> {
    server.check_items(&ticket, TicketKind::Store, &items)?;
    if !server.first_use(&ticket) {
        return Err(Error::Refused("this store ticket was already used".into()));
    }
    let disk_error = |e: std::io::Error| {
        Error::local(
            format!("server {} cannot write the blob", server.config.advertise),
            e,
        )
    };
    let free = server.store.free_bytes();
    if free < ticket.size {
        return Err(Error::Refused(format!(
            "server {} is full: {free} bytes free, {} needed",
            server.config.advertise, ticket.size
        )));
    }
    conn.send(&Message::Accepted).await?;
    let mut pack = server.store.receive(&items).await.map_err(disk_error)?;
    let mut written = 0u64;
    let mut reported = 0u64;
    for item in items {
        let mut check = ItemCheck::new(item);
        while let Some(data) = conn.recv_chunk().await? {
            check.chunk(data)?;
            written += data.len() as u64;
            pack.write(data).await.map_err(disk_error)?;
            // Progress about once per chunk's worth, not per small file.
            if written - reported >= CHUNK_SIZE as u64 {
                reported = written;
                conn.send(&Message::Written { bytes: written }).await?;
            }
        }
        check.end()?;
    }
    if reported < written {
        conn.send(&Message::Written { bytes: written }).await?;
    }
    server.store.commit(pack).await.map_err(disk_error)?;
    Ok(conn.send(&Message::Stored).await?)
}
