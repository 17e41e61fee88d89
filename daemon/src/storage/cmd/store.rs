//! `Store`: this server is a replica. It writes each file of the stream to a
//! temp file and verifies its size and hash; once every file is in, it makes
//! them all durable together and only then confirms.

use arca_shared::limits::CHUNK_SIZE;
use arca_shared::protocol::Item;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::storage::Server;
use crate::storage::item_check::ItemCheck;

/// Files up to this size are kept in memory until the batch is complete…
const SMALL_BLOB: u64 = 256 * 1024;
/// …as long as the batch's in-memory files stay under this.
const BATCH_MEMORY: u64 = 16 << 20;

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
    let mut received = Vec::with_capacity(items.len());
    let mut written = 0u64;
    let mut reported = 0u64;
    let mut in_memory = 0u64;
    for item in items {
        // Small files wait in memory (within a bound) and reach the disk together.
        let mut temp = if item.size <= SMALL_BLOB && in_memory + item.size <= BATCH_MEMORY {
            in_memory += item.size;
            server.store.temp_in_memory(item.size as usize)
        } else {
            server.store.temp().await.map_err(disk_error)?
        };
        let mut check = ItemCheck::new(item);
        while let Some(data) = conn.recv_chunk().await? {
            check.chunk(data)?;
            written += data.len() as u64;
            temp.write(data).await.map_err(disk_error)?;
            // Progress about once per chunk's worth, not per small file.
            if written - reported >= CHUNK_SIZE as u64 {
                reported = written;
                conn.send(&Message::Written { bytes: written }).await?;
            }
        }
        check.end()?;
        temp.close().await.map_err(disk_error)?;
        received.push((temp, item));
    }
    if reported < written {
        conn.send(&Message::Written { bytes: written }).await?;
    }
    server.store.commit(received).await.map_err(disk_error)?;
    Ok(conn.send(&Message::Stored).await?)
}
