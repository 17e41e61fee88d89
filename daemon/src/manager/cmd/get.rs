//! A restore, from the manager's side: `GetBegin` names a version (a folder
//! restore lists its versions instead), `Parts` lists the chunks of many
//! versions at once, and `FetchGrants` names, for each stored chunk, a live
//! holder (spread over them, by the same score as uploads among equals,
//! skipping servers the client already gave up on) with a ticket it accepts.

use std::collections::HashMap;

use arca_shared::choice;
use arca_shared::limits::{FETCH_MAX, PARTS_MAX};
use arca_shared::protocol::Grant;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Connection, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::membership::Members;
use crate::manager::{FileRow, Manager, refuse};

/// Parts per page: well under the control frame cap.
const PAGE: usize = 256;

pub(crate) async fn begin(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: String,
    version: Option<u32>,
) -> Result<(), Error> {
    let row = find(manager, client.clone(), name, version).await?;
    let mut entries = manager.entries(&client, vec![row]).await?;
    let Some(entry) = entries.pop() else {
        return refuse("the version went away");
    };
    Ok(conn.send(&Message::Restoring { entry }).await?)
}

/// Each version's parts in turn; a version that is gone gets an `Error` of
/// its own, so one deleted file does not fail a folder's restore.
pub(crate) async fn parts(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    versions: Vec<(String, u32)>,
) -> Result<(), Error> {
    check_client(&client)?;
    if versions.len() > PARTS_MAX {
        return refuse(format!(
            "ask for at most {PARTS_MAX} versions' parts at once"
        ));
    }
    for (name, _) in &versions {
        check_name(name)?;
    }
    // One catalog visit for all of them; no parts and no such version is
    // a version gone (an empty file has no parts, but is there).
    let found = manager
        .db(move |c| {
            let mut found = Vec::with_capacity(versions.len());
            for (name, version) in &versions {
                let parts = c.parts(&client, name, *version)?;
                let gone = parts.is_empty() && c.find(&client, name, Some(*version))?.is_none();
                found.push((!gone).then_some(parts));
            }
            Ok(found)
        })
        .await?;
    // Queued, and sent at once at the end: a folder's restore asks for
    // thousands of versions, a few hundred per request.
    let writer = &mut conn.writer;
    for parts in found {
        match parts {
            None => writer.feed(&Message::error("that version is gone")).await?,
            Some(parts) => {
                for page in parts.chunks(PAGE) {
                    let parts = page.to_vec();
                    writer.feed(&Message::PartList { parts }).await?;
                }
                writer.feed(&Message::End).await?;
            }
        }
    }
    Ok(writer.flush().await?)
}

pub(crate) async fn grants(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    hashes: Vec<BlobHash>,
    exclude: Vec<ServerId>,
) -> Result<(), Error> {
    check_client(&client)?;
    if hashes.len() > FETCH_MAX {
        return refuse(format!("ask for at most {FETCH_MAX} chunks at once"));
    }
    let wanted = hashes.clone();
    let owned = manager.db(move |c| c.owned_blobs(&client, &wanted)).await?;
    let mut grants = Vec::with_capacity(hashes.len());
    // Grants spread over every live holder, the fewest-granted first (the
    // best-scored among equals): a folder or a big file is read from all
    // its replicas at once, not queued on the best one.
    let mut given: HashMap<ServerId, usize> = HashMap::new();
    for (hash, owned) in hashes.into_iter().zip(owned) {
        // Only blobs of the asking client's own chunks: no reading across
        // namespaces by naming another's hash.
        let Some((size, holders)) = owned else {
            return refuse(format!("no chunk of yours is stored as {}", hash.short()));
        };
        let best = |members: &mut Members| {
            let candidates: Vec<_> = members
                .candidates(&exclude)
                .into_iter()
                .filter(|c| holders.contains(&c.id))
                .collect();
            choice::rank(&candidates, 0, manager.config.weights)
                .iter()
                .min_by_key(|s| given.get(&s.id).copied().unwrap_or(0))
                .and_then(|s| members.get(s.id).map(|m| (s.id, m.addr.clone())))
                .ok_or(())
        };
        let holder_awaited = |members: &Members| holders.iter().any(|id| members.awaited(*id));
        let Ok((server, holder)) = manager.once_back(best, holder_awaited).await else {
            return refuse(unavailable(manager, hash, holders.len()).await?);
        };
        *given.entry(server).or_default() += 1;
        let ticket = Ticket::issue(
            &manager.config.key,
            TicketKind::Fetch,
            manager.next_op(),
            server,
            hash,
            size,
        );
        grants.push(Grant { holder, ticket });
    }
    Ok(conn.send(&Message::Grants { grants }).await?)
}

async fn find(
    manager: &Manager,
    client: String,
    name: String,
    version: Option<u32>,
) -> Result<FileRow, Error> {
    check_client(&client)?;
    check_name(&name)?;
    let n = name.clone();
    match manager
        .db(move |cat| cat.find(&client, &n, version))
        .await?
    {
        Some(row) => Ok(row),
        None => match version {
            Some(v) => refuse(format!(
                "{name} has no version {v}; `arca ls {name}` lists them"
            )),
            None => refuse(format!("no backup named {name}; `arca ls` lists them")),
        },
    }
}

/// Why no copy of a chunk can be read: its copies are on servers that are
/// down, or every copy failed its hash (then they are kept, set aside).
async fn unavailable(manager: &Manager, hash: BlobHash, holders: usize) -> Result<String, Error> {
    let damaged = manager.db(move |c| c.damaged_of(&[hash])).await?;
    let damaged = damaged.first().map_or(0, Vec::len);
    Ok(if holders == 0 && damaged > 0 {
        format!(
            "damaged: every copy of one of its chunks failed its hash check, so it \
             cannot be restored intact; the {damaged} damaged copies are kept aside on their \
             servers. Back the file up again if you still have it."
        )
    } else if holders == 0 {
        "lost: no server holds a copy of one of its chunks. Back the file up again \
         if you still have it."
            .to_string()
    } else {
        format!(
            "no live server holds a good copy of one of its chunks: its {holders} copies \
             are on servers that are down, or that this restore found failing (`arca verify` \
             says which); start the servers again, or back the file up again"
        )
    })
}
