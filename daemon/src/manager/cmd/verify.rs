//! `Verify`: every live holder hashes its copy in place (no bytes move); a
//! corrupt copy stops counting and is dropped, and healing replaces it.

use std::collections::HashMap;

use arca_shared::connection::PageWriter;
use arca_shared::protocol::{CopyCheck, ServerId};
use arca_shared::{Connection, FrameError, Message};

use super::list;
use crate::manager::{Manager, gc};

/// Checks per page: well under the control frame cap.
const PAGE: usize = 32;

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: Option<String>,
) -> Result<(), FrameError> {
    let rows = list::rows(manager, client, name).await?;
    let mut servers: HashMap<ServerId, Connection> = HashMap::new();
    let mut pages = PageWriter::new(conn, PAGE, |copies| Message::Verified { copies });
    for row in rows {
        let hash = row.hash;
        let holders = manager.db(move |c| c.holders(&hash)).await?;
        let mut copy = 0;
        for server in holders {
            let Some(addr) = manager.live_addr(server) else {
                continue;
            };
            copy += 1;
            let ok = match servers.get_mut(&server) {
                Some(holder) => check(holder, hash).await,
                None => match manager.connect(&addr).await {
                    Ok(mut holder) => {
                        let ok = check(&mut holder, hash).await;
                        servers.insert(server, holder);
                        ok
                    }
                    Err(e) => Err(e),
                },
            };
            let ok = match ok {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(server, "cannot verify a copy: {e}");
                    servers.remove(&server);
                    continue;
                }
            };
            if !ok {
                tracing::warn!(server, hash = %hash.short(), "verify found a corrupt copy; healing it");
                manager.db(move |c| c.remove_holder(&hash, server)).await?;
                if let Err(e) = gc::delete_blobs(manager, &addr, &[hash]).await {
                    tracing::warn!(server, "could not drop the corrupt copy: {e}");
                }
            }
            pages
                .push(CopyCheck {
                    name: row.name.clone(),
                    version: row.version,
                    copy,
                    ok,
                })
                .await?;
        }
    }
    pages.finish().await
}

async fn check(holder: &mut Connection, hash: arca_shared::BlobHash) -> Result<bool, FrameError> {
    match holder.call(&Message::Check { hash }).await? {
        Message::Checked { ok } => Ok(ok),
        other => Err(FrameError::unexpected(&other, "Checked")),
    }
}
