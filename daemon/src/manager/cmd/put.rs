//! `PutBegin`: the backup flow, from the manager's side.
//!
//! Choose the primary and replicas, tell the primary where to forward
//! (`Prepare`), give the client a ticket for the primary, then wait on the
//! primary's connection for the outcome and commit the catalog entry only
//! when every replica has confirmed.

use arca_shared::choice;
use arca_shared::limits::IDLE_TIMEOUT;
use arca_shared::protocol::{ReplicaTarget, ServerId};
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{BlobHash, Connection, FrameError, Message};

use super::{check_client, check_name};
use crate::manager::{Manager, refuse};

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: String,
    size: u64,
    hash: BlobHash,
    exclude: Vec<ServerId>,
) -> Result<(), FrameError> {
    check_client(&client)?;
    check_name(&name)?;
    let (c, n) = (client.clone(), name.clone());
    if let Some(latest) = manager.db(move |cat| cat.find(&c, &n, None)).await?
        && latest.hash == hash
        && latest.size == size
    {
        return conn
            .send(&Message::Unchanged {
                version: latest.version,
            })
            .await;
    }
    // Held until the catalog records the outcome, so a deletion of the same
    // content cannot remove the copies this upload relies on.
    let _guard = manager.hash_locks.lock(hash).await;
    let wanted = manager.config.replicas as usize;

    let holders = manager.db(move |c| c.holders(&hash)).await?;
    let live_holders: Vec<ServerId> = {
        let members = manager.members();
        holders
            .into_iter()
            .filter(|id| members.is_alive(*id))
            .collect()
    };
    if live_holders.len() >= wanted {
        // The content is already stored on enough servers: no bytes move.
        return commit(manager, conn, client, name, size, hash, live_holders).await;
    }

    let op = manager.next_op();
    let key = &manager.config.key;
    // Each primary that cannot be reached is suspected, so this ends.
    let (primary, replicas, mut primary_conn) = loop {
        let (primary, replicas) = choose(manager, size, &exclude)?;
        let targets: Vec<ReplicaTarget> = replicas
            .iter()
            .map(|(id, addr)| ReplicaTarget {
                addr: addr.clone(),
                ticket: Ticket::issue(key, TicketKind::Store, op, *id, hash, size),
            })
            .collect();
        match prepare(manager, &primary.1, op, targets).await {
            Ok(primary_conn) => break (primary, replicas, primary_conn),
            Err(e) => {
                tracing::warn!(server = primary.0, "chosen primary failed: {e}");
                manager.members().suspect(primary.0);
            }
        }
    };
    conn.send(&Message::PutTicket {
        primary: primary.1.clone(),
        ticket: Ticket::issue(key, TicketKind::Upload, op, primary.0, hash, size),
    })
    .await?;

    let holders = await_outcome(manager, &mut primary_conn, primary.0).await?;
    let planned: Vec<ServerId> = replicas.iter().map(|(id, _)| *id).collect();
    if holders != planned {
        return refuse("the primary reported copies on servers it was not given");
    }
    commit(manager, conn, client, name, size, hash, holders).await?;
    primary_conn.send(&Message::Ok).await
}

/// Step 3: tells the primary where to forward upload `op`.
async fn prepare(
    manager: &Manager,
    primary: &str,
    op: u64,
    replicas: Vec<ReplicaTarget>,
) -> Result<Connection, FrameError> {
    let mut conn = manager.connect(primary).await?;
    match conn
        .call(&Message::Prepare {
            upload_id: op,
            replicas,
        })
        .await?
    {
        Message::Ok => Ok(conn),
        other => Err(FrameError::unexpected(&other, "Ok")),
    }
}

/// A chosen server: its id and address.
type Pick = (ServerId, String);

/// The primary and the replicas for a file of `size` bytes.
/// Servers that failed recently are avoided while enough others remain.
fn choose(
    manager: &Manager,
    size: u64,
    exclude: &[ServerId],
) -> Result<(Pick, Vec<Pick>), FrameError> {
    let wanted = manager.config.replicas as usize;
    let members = manager.members();
    let weights = manager.config.weights;
    let mut ranked = choice::rank(&members.upload_candidates(exclude), size, weights);
    if ranked.len() < wanted {
        ranked = choice::rank(&members.upload_candidates(&[]), size, weights);
    }
    if ranked.len() < wanted {
        let alive = members.alive_count();
        return refuse(format!(
            "not enough live servers: {wanted} needed with room for {size} bytes, \
             {} such of {alive} alive; start more servers or free space",
            ranked.len()
        ));
    }
    let addr = |id: ServerId| members.get(id).map(|m| m.addr.clone()).unwrap_or_default();
    let primary = (ranked[0].id, addr(ranked[0].id));
    // With enough servers the primary only forwards; otherwise it is also a replica.
    let first_replica = usize::from(ranked.len() > wanted);
    let replicas = ranked[first_replica..first_replica + wanted]
        .iter()
        .map(|s| (s.id, addr(s.id)))
        .collect();
    Ok((primary, replicas))
}

/// Reads the primary's reports until it says how the upload ended.
async fn await_outcome(
    manager: &Manager,
    primary: &mut Connection,
    primary_id: ServerId,
) -> Result<Vec<ServerId>, FrameError> {
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
            Ok(other) => return Err(FrameError::unexpected(&other, "an upload report")),
            Err(e) => {
                manager.members().suspect(primary_id);
                return refuse(format!("upload failed: the primary went away ({e})"));
            }
        }
    }
}

async fn commit(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: String,
    size: u64,
    hash: BlobHash,
    holders: Vec<ServerId>,
) -> Result<(), FrameError> {
    let replicas = holders.len() as u32;
    let version = manager
        .db(move |c| c.commit(&client, &name, size, &hash, &holders))
        .await?;
    conn.send(&Message::Committed { version, replicas }).await
}
