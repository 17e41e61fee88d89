//! Garbage collection: chunks no version uses are forgotten (those never
//! used only after a grace), and blobs no chunk is stored as are deleted
//! from their holders, now after a removal and periodically for
//! holders that were down at the time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arca_shared::reply::Done;
use arca_shared::types::{ServerId, now_ms};
use arca_shared::{BlobHash, Message};

use super::{Manager, pacing};
use crate::error::Error;

const EVERY: Duration = Duration::from_secs(5);

/// How long a chunk stored but not yet used by any version is kept: a
/// backup stores all of a file's chunks before it records the version, and
/// a big file over a slow link takes hours.
const UNUSED_CHUNK_GRACE: Duration = Duration::from_secs(6 * 3600);

/// A holder that was down at a removal is collected when it is back: a
/// membership change makes a pass due.
pub(crate) async fn run(manager: Arc<Manager>) {
    let manager = &*manager;
    let pass = || async move {
        match collect(manager).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!("garbage collection: {e}");
                true
            }
        }
    };
    pacing::run_passes(manager, &manager.collect, EVERY, pass).await;
}

async fn collect(manager: &Manager) -> Result<(), Error> {
    collect_damaged(manager).await?;
    let before = now_ms().saturating_sub(UNUSED_CHUNK_GRACE.as_millis() as u64);
    manager.db(move |c| c.forget_unused_chunks(before)).await?;
    let mut by_server: BTreeMap<ServerId, Vec<BlobHash>> = BTreeMap::new();
    for (hash, server) in manager.db(|c| c.unreferenced()).await? {
        by_server.entry(server).or_default().push(hash);
    }
    for (server, hashes) in by_server {
        let Some(addr) = manager.live_addr(server) else {
            continue;
        };
        let mut conn = manager.connect(&addr).await?;
        for hash in hashes {
            let _guard = manager.hash_locks.lock(hash).await;
            if !manager.may_delete() {
                return Ok(());
            }
            // Re-check under the lock: an upload may have referenced it again.
            if manager.db(move |c| c.is_referenced(&hash)).await? {
                continue;
            }
            let Done = conn.request(&Message::DeleteBlob { hash }).await?;
            manager.db(move |c| c.remove_holder(&hash, server)).await?;
        }
    }
    Ok(())
}

/// Stops counting a copy that failed its hash and has its server set it
/// aside, never delete it: it may be the last trace of its content. Healing
/// makes a good copy from another holder; collection deletes the damaged
/// one once enough good copies exist. A server that cannot be told keeps
/// the copy in place, where its next scrub finds it.
pub(crate) async fn set_aside_damaged(
    manager: &Manager,
    hash: BlobHash,
    server: ServerId,
) -> Result<(), Error> {
    tracing::warn!(server, hash = %hash.short(), "damaged copy found; setting it aside and healing");
    manager.db(move |c| c.set_aside(&hash, server)).await?;
    manager.heal.notify_one();
    if let Some(addr) = manager.live_addr(server)
        && let Err(e) = tell(manager, &addr, &[Message::Quarantine { hash }]).await
    {
        tracing::warn!(server, "could not set the damaged copy aside: {e}");
    }
    Ok(())
}

/// Deletes damaged copies whose content has all its good copies again, or
/// that nothing uses any more.
async fn collect_damaged(manager: &Manager) -> Result<(), Error> {
    let damaged = manager.db(|c| c.damaged()).await?;
    if damaged.is_empty() {
        return Ok(());
    }
    let hashes: Vec<BlobHash> = damaged.iter().map(|d| d.0).collect();
    let holders = manager.db(move |c| c.holders_of(&hashes)).await?;
    let wanted = manager.config.replicas as usize;
    for ((hash, server, referenced), holders) in damaged.into_iter().zip(holders) {
        let good = {
            let members = manager.members();
            holders.iter().filter(|id| members.is_alive(**id)).count()
        };
        if referenced && good < wanted {
            continue;
        }
        let Some(addr) = manager.live_addr(server) else {
            continue;
        };
        if !manager.may_delete() {
            return Ok(());
        }
        tell(manager, &addr, &[Message::DeleteDamaged { hash }]).await?;
        manager.db(move |c| c.drop_damaged(&hash, server)).await?;
        tracing::info!(server, hash = %hash.short(), "deleted a damaged copy: good copies exist");
    }
    Ok(())
}

/// Tells the server at `addr` to delete these blobs.
pub(crate) async fn delete_blobs(
    manager: &Manager,
    addr: &str,
    hashes: &[BlobHash],
) -> Result<(), Error> {
    let requests: Vec<Message> = hashes
        .iter()
        .map(|hash| Message::DeleteBlob { hash: *hash })
        .collect();
    tell(manager, addr, &requests).await
}

/// Sends the server at `addr` each request, each answered with `Ok`.
async fn tell(manager: &Manager, addr: &str, requests: &[Message]) -> Result<(), Error> {
    let mut conn = manager.connect(addr).await?;
    for request in requests {
        let Done = conn.request(request).await?;
    }
    Ok(())
}
