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
    tracing::warn!(server = ticket.server, "a client reported a corrupt copy");
    gc::drop_corrupt_copy(manager, ticket.hash, ticket.server).await?;
    conn.send(&Message::Ok).await
}
