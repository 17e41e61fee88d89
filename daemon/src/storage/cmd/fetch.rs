//! `Fetch`: streams a stored blob from an offset; the client verifies it.

use std::io::SeekFrom;

use arca_shared::limits::CHUNK_SIZE;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, FrameError, Message};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::storage::Server;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    ticket: Ticket,
    offset: u64,
) -> Result<(), FrameError> {
    server.check(&ticket, TicketKind::Fetch)?;
    let mut file = tokio::fs::File::open(server.store.path(&ticket.hash))
        .await
        .map_err(|e| FrameError::Remote(format!("this server cannot read the blob: {e}")))?;
    let len = file.metadata().await?.len();
    if len != ticket.size {
        return Err(FrameError::Remote(format!(
            "stored copy has {len} bytes, the catalog says {}",
            ticket.size
        )));
    }
    if offset > len {
        return Err(FrameError::Remote(format!(
            "offset {offset} is past the end ({len} bytes)"
        )));
    }
    file.seek(SeekFrom::Start(offset)).await?;
    conn.send(&Message::Accepted).await?;
    let mut left = len - offset;
    while left > 0 {
        let mut buf = vec![0u8; CHUNK_SIZE.min(left as usize)];
        file.read_exact(&mut buf).await?;
        left -= buf.len() as u64;
        conn.send(&Message::Chunk {
            data: ByteBuf::from(buf),
        })
        .await?;
    }
    conn.send(&Message::End).await
}
