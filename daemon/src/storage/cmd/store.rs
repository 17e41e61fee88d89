//! `Store`: this server is a replica. It writes each file of the stream to a
//! temp file and verifies its size and hash; once every file is in, it makes
//! them all durable together and only then confirms.

use arca_shared::protocol::Item;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{BlobHash, Connection, FrameError, Message};

use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    ticket: Ticket,
    items: Vec<Item>,
) -> Result<(), FrameError> {
    server.check_items(&ticket, TicketKind::Store, &items)?;
    if !server.first_use(&ticket) {
        return Err(FrameError::Remote(
            "this store ticket was already used".into(),
        ));
    }
    let disk_error = |e: std::io::Error| {
        FrameError::Remote(format!(
            "server {} cannot write the blob: {e}",
            server.config.advertise
        ))
    };
    let free = server.store.free_bytes();
    if free < ticket.size {
        return Err(FrameError::Remote(format!(
            "server {} is full: {free} bytes free, {} needed",
            server.config.advertise, ticket.size
        )));
    }
    conn.send(&Message::Accepted).await?;
    let mut received = Vec::with_capacity(items.len());
    let mut written = 0u64;
    for item in items {
        let mut temp = server.store.temp().await.map_err(disk_error)?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        loop {
            match conn.recv_data().await? {
                Message::Chunk { data } => {
                    size += data.len() as u64;
                    if size > item.size {
                        return Err(FrameError::Remote(format!(
                            "more than the {} bytes announced",
                            item.size
                        )));
                    }
                    hasher.update(&data);
                    temp.write(&data).await.map_err(disk_error)?;
                    written += data.len() as u64;
                    conn.send(&Message::Written { bytes: written }).await?;
                }
                Message::End => break,
                other => return Err(FrameError::unexpected(&other, "Chunk or End")),
            }
        }
        if size != item.size {
            return Err(FrameError::Remote(format!(
                "{size} bytes received, {} announced",
                item.size
            )));
        }
        if BlobHash::from(hasher.finalize()) != item.hash {
            return Err(FrameError::Remote("hash mismatch; nothing stored".into()));
        }
        received.push((temp, item));
    }
    server.store.commit(received).await.map_err(disk_error)?;
    conn.send(&Message::Stored).await
}
