//! `Verify`: every live holder hashes its copy in place (no bytes move); a
//! damaged copy stops counting and is set aside, and healing replaces it.
//! Every version is reported, with its copies on servers that are down and
//! its damaged ones, so a version short of copies, or lost, is named.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use arca_shared::connection::PageWriter;
use arca_shared::protocol::VersionCheck;
use arca_shared::reply::Intact;
use arca_shared::types::ServerId;
use arca_shared::{Connection, Message};

use super::list;
use crate::error::Error;
use crate::manager::{Manager, gc};

/// Versions per page: well under the control frame cap.
const PAGE: usize = 32;

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: Option<String>,
) -> Result<(), Error> {
    let rows = list::rows(manager, client.clone(), name).await?;
    let mut servers: HashMap<ServerId, Connection> = HashMap::new();
    let mut pages = PageWriter::new(conn, PAGE, |versions| Message::Verified { versions });
    for row in rows {
        let (c, name, version) = (client.clone(), row.name.clone(), row.version);
        let blobs = manager
            .db(move |cat| {
                let blobs = cat.blobs_of(&c, &name, version)?;
                let hashes: Vec<_> = blobs.iter().map(|(hash, _)| *hash).collect();
                let damaged = cat.damaged_of(&hashes)?;
                Ok(blobs.into_iter().zip(damaged).collect::<Vec<_>>())
            })
            .await?;
        let chunks = blobs.len() as u32;
        // A version is as safe as its least-kept chunk: that one is reported.
        let mut weakest: Option<VersionCheck> = None;
        for ((hash, holders), damaged) in blobs {
            let mut checked = VersionCheck {
                name: row.name.clone(),
                version: row.version,
                chunks,
                copies: Vec::new(),
                unreachable: 0,
                damaged: damaged.len() as u32,
                wanted: manager.config.replicas,
            };
            for server in holders {
                match check_on(manager, &mut servers, server, hash).await {
                    Some(true) => checked.copies.push(true),
                    Some(false) => {
                        gc::set_aside_damaged(manager, hash, server).await?;
                        checked.copies.push(false);
                    }
                    None => checked.unreachable += 1,
                }
            }
            let weaker = weakest.as_ref().is_none_or(|w| {
                (checked.intact(), w.copies.len()) < (w.intact(), checked.copies.len())
            });
            if weaker {
                weakest = Some(checked);
            }
        }
        pages
            .push(weakest.unwrap_or(VersionCheck {
                name: row.name,
                version: row.version,
                chunks: 0,
                copies: Vec::new(),
                unreachable: 0,
                damaged: 0,
                wanted: manager.config.replicas,
            }))
            .await?;
    }
    Ok(pages.finish().await?)
}

/// Has `server` hash its copy, over a connection kept for the next
/// version; `None` if it is down or cannot be asked.
async fn check_on(
    manager: &Manager,
    servers: &mut HashMap<ServerId, Connection>,
    server: ServerId,
    hash: arca_shared::BlobHash,
) -> Option<bool> {
    let addr = manager.live_addr(server)?;
    let holder = match servers.entry(server) {
        Entry::Occupied(open) => open.into_mut(),
        Entry::Vacant(slot) => match manager.connect(&addr).await {
            Ok(holder) => slot.insert(holder),
            Err(e) => {
                tracing::warn!(server, "cannot verify a copy: {e}");
                return None;
            }
        },
    };
    match check(holder, hash).await {
        Ok(ok) => Some(ok),
        Err(e) => {
            tracing::warn!(server, "cannot verify a copy: {e}");
            servers.remove(&server);
            None
        }
    }
}

/// Has the server at `addr` hash its copy of `hash` in place.
pub(crate) async fn check_at(
    manager: &Manager,
    addr: &str,
    hash: arca_shared::BlobHash,
) -> Result<bool, Error> {
    check(&mut manager.connect(addr).await?, hash).await
}

/// Has `holder` hash its copy of `hash` in place.
pub(crate) async fn check(
    holder: &mut Connection,
    hash: arca_shared::BlobHash,
) -> Result<bool, Error> {
    let Intact(intact) = holder.request(&Message::Check { hash }).await?;
    Ok(intact)
}
