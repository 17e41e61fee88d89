//! `PutBegin`: the backup flow, from the manager's side, for a batch of
//! files (one file is a batch of one).
//!
//! Unchanged files and content already stored on enough servers are settled
//! at once. For the rest: choose the primary and replicas, tell the primary
//! where to forward (`Prepare`), give the client one ticket for the whole
//! batch, then wait on the primary's connection for the outcome and commit
//! every entry, in one transaction, only when every replica has confirmed.

use std::collections::BTreeSet;

use arca_shared::choice;
use arca_shared::limits::{IDLE_TIMEOUT, LIST_MAX};
use arca_shared::protocol::{Item, PutFile, PutResult, ReplicaTarget, UploadGrant, items_digest};
use arca_shared::reply::Done;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Connection, FrameError, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::membership::Members;
use crate::manager::{Manager, NewVersion, refuse};

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    files: Vec<PutFile>,
    exclude: Vec<ServerId>,
) -> Result<(), Error> {
    check_client(&client)?;
    manager.refuse_if_stale()?;
    if files.is_empty() || files.len() > LIST_MAX {
        return refuse(format!(
            "a backup carries 1 to {LIST_MAX} files, not {}",
            files.len()
        ));
    }
    for file in &files {
        check_name(&file.name)?;
    }
    let (c, names) = (
        client.clone(),
        files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
    );
    let latest = manager.db(move |cat| cat.latest_of(&c, &names)).await?;
    let wanted = manager.config.replicas as usize;
    let mut results = vec![PutResult::Send; files.len()];
    let mut changed = Vec::new();
    {
        let members = manager.members();
        for (i, (file, latest)) in files.iter().zip(latest).enumerate() {
            match latest {
                // Unchanged content short of copies is taken again: the
                // client that has it heals it.
                Some((l, holders))
                    if l.hash == file.hash
                        && l.size == file.size
                        && holders.iter().filter(|id| members.is_alive(**id)).count() >= wanted =>
                {
                    results[i] = PutResult::Unchanged { version: l.version };
                }
                _ => changed.push(i),
            }
        }
    }
    if changed.is_empty() {
        return Ok(conn
            .send(&Message::Planned {
                results,
                upload: None,
            })
            .await?);
    }

    // Held until the catalog records the outcome, so a deletion of the same
    // content cannot remove the copies this upload relies on. Sorted, so two
    // batches never wait on each other in a circle.
    let hashes: BTreeSet<BlobHash> = changed.iter().map(|i| files[*i].hash).collect();
    let mut guards = Vec::with_capacity(hashes.len());
    for hash in hashes {
        guards.push(manager.hash_locks.lock(hash).await);
    }
    let wanted_hashes: Vec<BlobHash> = changed.iter().map(|i| files[*i].hash).collect();
    let holders = manager
        .db(move |cat| cat.holders_of(&wanted_hashes))
        .await?;
    let mut stored: Vec<(usize, NewVersion)> = Vec::new();
    let mut send: Vec<usize> = Vec::new();
    {
        let members = manager.members();
        for (i, holders) in changed.into_iter().zip(holders) {
            let live: Vec<ServerId> = holders
                .into_iter()
                .filter(|id| members.is_alive(*id))
                .collect();
            if live.len() >= wanted {
                // The content is already stored on enough servers: no bytes move.
                stored.push((i, new_version(&files[i], live)));
            } else {
                send.push(i);
            }
        }
    }
    if !stored.is_empty() {
        let versions = commit(
            manager,
            &client,
            stored.iter().map(|(_, v)| v.clone()).collect(),
        )
        .await?;
        for ((i, new), version) in stored.iter().zip(versions) {
            results[*i] = PutResult::Committed {
                version,
                replicas: new.holders.len() as u32,
            };
        }
    }
    if send.is_empty() {
        return Ok(conn
            .send(&Message::Planned {
                results,
                upload: None,
            })
            .await?);
    }

    let items: Vec<Item> = send
        .iter()
        .map(|i| Item {
            hash: files[*i].hash,
            size: files[*i].size,
        })
        .collect();
    let total: u64 = items.iter().map(|i| i.size).sum();
    let digest = items_digest(&items);
    let op = manager.next_op();
    let key = &manager.config.key;
    // Each primary that cannot be reached is suspected, so this ends.
    let (primary, replicas, mut primary_conn) = loop {
        let chosen = |members: &Members| choose(manager, members, total, &exclude);
        let (primary, replicas) = manager.once_back(chosen, Members::any_awaited).await?;
        let targets: Vec<ReplicaTarget> = replicas
            .iter()
            .map(|(id, addr)| ReplicaTarget {
                addr: addr.clone(),
                ticket: Ticket::issue(key, TicketKind::Store, op, *id, digest, total),
            })
            .collect();
        match prepare(manager, &primary.1, op, targets, items.clone()).await {
            Ok(primary_conn) => break (primary, replicas, primary_conn),
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
    conn.send(&Message::Planned {
        results,
        upload: Some(upload),
    })
    .await?;

    let holders = await_outcome(manager, &mut primary_conn, primary.0).await?;
    let planned: Vec<ServerId> = replicas.iter().map(|(id, _)| *id).collect();
    if holders != planned {
        return refuse("the primary reported copies on servers it was not given");
    }
    let sent = send
        .iter()
        .map(|i| new_version(&files[*i], holders.clone()))
        .collect();
    let versions = commit(manager, &client, sent).await?;
    conn.send(&Message::Committed {
        versions,
        replicas: holders.len() as u32,
    })
    .await?;
    Ok(primary_conn.send(&Message::Ok).await?)
}

fn new_version(file: &PutFile, holders: Vec<ServerId>) -> NewVersion {
    NewVersion {
        name: file.name.clone(),
        size: file.size,
        hash: file.hash,
        holders,
    }
}

async fn commit(
    manager: &Manager,
    client: &str,
    versions: Vec<NewVersion>,
) -> Result<Vec<u32>, Error> {
    let client = client.to_owned();
    manager
        .db(move |c| c.commit(&client, &versions))
        .await
        .map_err(|e| match e {
            Error::Local { cause, .. } => {
                Error::local("could not record the backup in the catalog", cause)
            }
            other => other,
        })
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

/// A chosen server: its id and address.
type Pick = (ServerId, String);

/// The primary and the replicas for `size` bytes. Servers that failed
/// recently are avoided while enough others remain.
fn choose(
    manager: &Manager,
    members: &Members,
    size: u64,
    exclude: &[ServerId],
) -> Result<(Pick, Vec<Pick>), Error> {
    let wanted = manager.config.replicas as usize;
    let weights = manager.config.weights;
    let mut ranked = choice::rank(&members.upload_candidates(exclude), size, weights);
    if ranked.len() < wanted {
        ranked = choice::rank(&members.upload_candidates(&[]), size, weights);
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
