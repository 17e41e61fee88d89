//! `ReportCorrupt`: a client found that a restored copy fails its hash. Its
//! word alone never costs a copy: the bad bytes may have come from another
//! holder earlier in a resumed restore, or from the client itself. So the
//! accused holder hashes its copy in place, in the background, and only a
//! copy that fails there stops counting and is set aside.

use std::sync::Arc;

use arca_shared::ticket::Ticket;
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Connection, Message};

use super::verify;
use crate::error::Error;
use crate::manager::{Manager, gc, refuse};

pub(crate) async fn run(
    manager: &Arc<Manager>,
    conn: &mut Connection,
    ticket: Ticket,
) -> Result<(), Error> {
    // Only tickets this cluster issued can accuse a server.
    if !ticket.authentic(&manager.config.key) {
        return refuse("corruption report with a forged ticket ignored");
    }
    tracing::warn!(server = ticket.server, "a client reported a corrupt copy");
    let (hash, server) = (ticket.hash, ticket.server);
    let checker = Arc::clone(manager);
    manager.tasks.spawn(async move {
        tokio::select! {
            () = checker.shutdown.cancelled() => {}
            () = check_reported(&checker, hash, server) => {}
        }
    });
    Ok(conn.send(&Message::Ok).await?)
}

async fn check_reported(manager: &Manager, hash: BlobHash, server: ServerId) {
    // A holder that is gone is healing's business, not this report's.
    let Some(addr) = manager.live_addr(server) else {
        return;
    };
    match verify::check_at(manager, &addr, hash).await {
        Ok(true) => tracing::warn!(server, "the reported copy checks out in place; kept"),
        Ok(false) => {
            if let Err(e) = gc::set_aside_damaged(manager, hash, server).await {
                tracing::warn!(server, "cannot set the corrupt copy aside: {e}");
            }
        }
        Err(e) => tracing::warn!(server, "cannot check the reported copy, so it is kept: {e}"),
    }
}
