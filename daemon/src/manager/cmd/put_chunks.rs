//! `PutChunks`: the backup flow, from the manager's side, for a group of
//! sealed chunks (one placement decision per group, so a big file spreads
//! over the cluster).
//!
//! The client sends only chunks the namespace does not keep on enough live
//! servers (it asked with `HaveChunks`). Choose the primary and replicas, tell the primary
//! where to forward (`Prepare`), give the client one ticket for the group,
//! then wait on the primary's connection for the outcome and record every
//! chunk, in one transaction, only when every replica has confirmed. The
//! versions that use them are recorded afterwards (`PutFiles`).

use std::collections::BTreeSet;

use arca_shared::limits::{IDLE_TIMEOUT, LIST_MAX};
use arca_shared::protocol::{Item, NewChunk, ReplicaTarget, UploadGrant, items_digest};
use arca_shared::reply::Done;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::types::ServerId;
use arca_shared::vault::{CHUNK_MAX, SEALED_MAX};
use arca_shared::{BlobHash, Connection, FrameError, Message};

use super::check_client;
use crate::error::Error;
use crate::manager::membership::Members;
use crate::manager::placement::{self, Pick, Promise};
use crate::manager::{Manager, refuse};

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    send: Vec<NewChunk>,
    exclude: Vec<ServerId>,
) -> Result<(), Error> {
    check_client(&client)?;
    manager.refuse_if_stale()?;
    if send.is_empty() || send.len() > LIST_MAX {
        return refuse(format!(
            "a group carries 1 to {LIST_MAX} chunks, not {}",
            send.len()
        ));
    }
    if let Some(c) = send
        .iter()
        .find(|c| c.plain_size > CHUNK_MAX as u64 || c.size > SEALED_MAX as u64)
    {
        return refuse(format!(
            "a chunk of {} bytes ({} stored) is over the largest, {CHUNK_MAX}",
            c.plain_size, c.size
        ));
    }
    // Held until the catalog records the outcome, so a collection of the
    // same blobs cannot remove the copies this upload relies on. Sorted, so
    // two groups never wait on each other in a circle.
    let hashes: BTreeSet<BlobHash> = send.iter().map(|c| c.hash).collect();
    let mut guards = Vec::with_capacity(hashes.len());
    for hash in hashes {
        guards.push(manager.hash_locks.lock(hash).await);
    }
    let items: Vec<Item> = send
        .iter()
        .map(|c| Item {
            hash: c.hash,
            size: c.size,
        })
        .collect();
    let total: u64 = items.iter().map(|i| i.size).sum();
    let digest = items_digest(&items);
    let op = manager.next_op();
    let key = &manager.config.key;
    // Each primary that cannot be reached is suspected, so this ends.
    let (primary, replicas, promise, mut primary_conn) = loop {
        let chosen = |members: &mut Members| {
            let (primary, replicas) = choose(manager, members, total, &exclude)?;
            let holders = replicas.iter().map(|(id, _)| *id).collect();
            let promise = Promise::new(manager, members, holders, total);
            Ok::<_, Error>((primary, replicas, promise))
        };
        let (primary, replicas, promise) = manager.once_back(chosen, Members::any_awaited).await?;
        let targets: Vec<ReplicaTarget> = replicas
            .iter()
            .map(|(id, addr)| ReplicaTarget {
                addr: addr.clone(),
                ticket: Ticket::issue(key, TicketKind::Store, op, *id, digest, total),
            })
            .collect();
        match prepare(manager, &primary.1, op, targets, items.clone()).await {
            Ok(primary_conn) => break (primary, replicas, promise, primary_conn),
            Err(e) => {
                tracing::warn!(server = primary.0, "chosen primary failed: {e}");
                manager.members().suspect(primary.0);
            }
        }
    };
    let upload = UploadGrant {
        primary: primary.1.clone(),
        ticket: Ticket::issue(key, TicketKind::Upload, op, primary.0, digest, total),
    };
    conn.send(&Message::ChunkPlan {
        upload: Some(upload),
    })
    .await?;

    let holders = await_outcome(manager, &mut primary_conn, primary.0).await?;
    let planned: Vec<ServerId> = replicas.iter().map(|(id, _)| *id).collect();
    if holders != planned {
        return refuse("the primary reported copies on servers it was not given");
    }
    manager
        .record(move |cat| cat.record_chunks(&client, &send, &holders))
        .await?;
    promise.stored();
    conn.send(&Message::ChunksStored {
        replicas: planned.len() as u32,
    })
    .await?;
    Ok(primary_conn.send(&Message::Ok).await?)
}

/// Step 3: tells the primary where to forward upload `op`.
async fn prepare(
    manager: &Manager,
    primary: &str,
    op: u64,
    replicas: Vec<ReplicaTarget>,
    items: Vec<Item>,
) -> Result<Connection, Error> {
    let mut conn = manager.connect(primary).await?;
    let Done = conn
        .request(&Message::Prepare {
            upload_id: op,
            replicas,
            items,
        })
        .await?;
    Ok(conn)
}

/// The primary and the replicas for `size` bytes, the replicas in
/// distinct zones where there are enough. Servers that failed recently are
/// avoided while enough others remain.
fn choose(
    manager: &Manager,
    members: &Members,
    size: u64,
    exclude: &[ServerId],
) -> Result<(Pick, Vec<Pick>), Error> {
    let wanted = manager.config.replicas as usize;
    let weights = manager.config.weights;
    let mut ranked = placement::ranked(members, weights, size, exclude);
    if ranked.len() < wanted {
        ranked = placement::ranked(members, weights, size, &[]);
    }
    if ranked.len() < wanted {
        let alive = members.alive_count();
        let read_only = match members.read_only_count() {
            0 => String::new(),
            n => format!(" ({n} of them read-only: their disks refuse writes)"),
        };
        return refuse(format!(
            "not enough live servers: {wanted} needed with room for {size} bytes, \
             {} such of {alive} alive{read_only}; start more servers, free space or \
             make the read-only disks writable",
            ranked.len()
        ));
    }
    let addr = |id: ServerId| members.get(id).map(|m| m.addr.clone()).unwrap_or_default();
    let primary = ranked[0];
    // With enough servers the primary only forwards; otherwise it is also a replica.
    let pool = &ranked[usize::from(ranked.len() > wanted)..];
    let replicas = placement::spread(pool, placement::zone_of(members), &[], wanted)
        .into_iter()
        .map(|id| (id, addr(id)))
        .collect();
    Ok(((primary, addr(primary)), replicas))
}

/// Reads the primary's reports until it says how the upload ended.
async fn await_outcome(
    manager: &Manager,
    primary: &mut Connection,
    primary_id: ServerId,
) -> Result<Vec<ServerId>, Error> {
    primary.set_timeout(arca_shared::limits::TICKET_TTL.max(IDLE_TIMEOUT));
    loop {
        match primary.recv().await {
            Ok(Message::UploadProgress { .. }) => continue,
            Ok(Message::UploadDone { holders }) => return Ok(holders),
            Ok(Message::UploadFailed { reason, suspects }) => {
                let mut members = manager.members();
                for id in suspects {
                    members.suspect(id);
                }
                return refuse(format!("upload failed: {reason}"));
            }
            Ok(other) => return Err(FrameError::unexpected(&other, "an upload report").into()),
            Err(e) => {
                manager.members().suspect(primary_id);
                return refuse(format!("upload failed: the primary went away ({e})"));
            }
        }
    }
}
