//! `Store`: this server is a replica. It writes the stream to a temp file,
//! verifies size and hash, makes it durable and only then confirms.

use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{BlobHash, Connection, FrameError, Message};

use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    ticket: Ticket,
) -> Result<(), FrameError> {
    server.check(&ticket, TicketKind::Store)?;
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
    let mut temp = server.store.temp().await.map_err(disk_error)?;
    conn.send(&Message::Accepted).await?;
    let mut hasher = blake3::Hasher::new();
    let mut received = 0u64;
    loop {
        match conn.recv_data().await? {
            Message::Chunk { data } => {
                received += data.len() as u64;
                if received > ticket.size {
                    return Err(FrameError::Remote(format!(
                        "more than the {} bytes announced",
                        ticket.size
                    )));
                }
                hasher.update(&data);
                temp.write(&data).await.map_err(disk_error)?;
                conn.send(&Message::Written { bytes: received }).await?;
            }
            Message::End => {
                if received != ticket.size {
                    return Err(FrameError::Remote(format!(
                        "{received} bytes received, {} announced",
                        ticket.size
                    )));
                }
                if BlobHash::from(hasher.finalize()) != ticket.hash {
                    return Err(FrameError::Remote("hash mismatch; nothing stored".into()));
                }
                server
                    .store
                    .commit(temp, &ticket.hash, ticket.size)
                    .await
                    .map_err(disk_error)?;
                return conn.send(&Message::Stored).await;
            }
            other => return Err(FrameError::unexpected(&other, "Chunk or End")),
        }
    }
}
