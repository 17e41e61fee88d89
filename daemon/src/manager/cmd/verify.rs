//! `Verify`: every live holder hashes its copy in place (no bytes move); a
//! corrupt copy stops counting and is dropped, and healing replaces it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

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
            let holder = match servers.entry(server) {
                Entry::Occupied(open) => open.into_mut(),
                Entry::Vacant(slot) => match manager.connect(&addr).await {
                    Ok(holder) => slot.insert(holder),
                    Err(e) => {
                        tracing::warn!(server, "cannot verify a copy: {e}");
                        continue;
                    }
                },
            };
            let checked = check(holder, hash).await;
            let ok = match checked {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(server, "cannot verify a copy: {e}");
                    servers.remove(&server);
                    continue;
                }
            };
            if !ok {
                gc::drop_corrupt_copy(manager, hash, server).await?;
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

/// Has `holder` hash its copy of `hash` in place.
pub(super) async fn check(
    holder: &mut Connection,
    hash: arca_shared::BlobHash,
) -> Result<bool, FrameError> {
    match holder.call(&Message::Check { hash }).await? {
        Message::Checked { ok } => Ok(ok),
        other => Err(FrameError::unexpected(&other, "Checked")),
    }
}
