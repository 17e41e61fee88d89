//! `ReportCorrupt`: a client found that a holder's copy fails its hash. The
//! copy stops counting as a holder and the server is told to drop it.

use arca_shared::ticket::Ticket;
use arca_shared::{Connection, FrameError, Message};

use crate::manager::{Manager, gc, refuse};

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    ticket: Ticket,
) -> Result<(), FrameError> {
    // Only tickets this cluster issued can accuse a server.
    if !ticket.authentic(&manager.config.key) {
        return refuse("corruption report with a forged ticket ignored");
    }
    let (hash, server) = (ticket.hash, ticket.server);
    tracing::warn!(server, hash = %hash.short(), "client reported a corrupt copy");
    manager.db(move |c| c.remove_holder(&hash, server)).await?;
    if let Some(addr) = manager.live_addr(server)
        && let Err(e) = gc::delete_blobs(manager, &addr, &[hash]).await
    {
        tracing::warn!(server, "could not drop the corrupt copy: {e}");
    }
    conn.send(&Message::Ok).await
}
