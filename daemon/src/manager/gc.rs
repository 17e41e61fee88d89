//! Garbage collection: blobs that no version of any name references are
//! deleted from their holders, now after a removal and periodically for
//! holders that were down at the time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arca_shared::protocol::ServerId;
use arca_shared::{BlobHash, FrameError, Message};

use super::{Manager, pacing};

const EVERY: Duration = Duration::from_secs(5);

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

async fn collect(manager: &Manager) -> Result<(), FrameError> {
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
            // Re-check under the lock: an upload may have referenced it again.
            if manager.db(move |c| c.is_referenced(&hash)).await? {
                continue;
            }
            match conn.call(&Message::DeleteBlob { hash }).await? {
                Message::Ok => {}
                other => return Err(FrameError::unexpected(&other, "Ok")),
            }
            manager.db(move |c| c.remove_holder(&hash, server)).await?;
        }
    }
    Ok(())
}

/// Stops counting a damaged copy and asks its server to delete it; healing
/// then makes a good one. A server that cannot be told keeps an orphan,
/// which its next scrub or reconciliation finds.
pub(crate) async fn drop_corrupt_copy(
    manager: &Manager,
    hash: BlobHash,
    server: ServerId,
) -> Result<(), FrameError> {
    tracing::warn!(server, hash = %hash.short(), "corrupt copy found; healing it");
    manager.db(move |c| c.remove_holder(&hash, server)).await?;
    manager.heal.notify_one();
    if let Some(addr) = manager.live_addr(server)
        && let Err(e) = delete_blobs(manager, &addr, &[hash]).await
    {
        tracing::warn!(server, "could not drop the corrupt copy: {e}");
    }
    Ok(())
}

/// Tells the server at `addr` to delete these blobs.
pub(crate) async fn delete_blobs(
    manager: &Manager,
    addr: &str,
    hashes: &[BlobHash],
) -> Result<(), FrameError> {
    let mut conn = manager.connect(addr).await?;
    for hash in hashes {
        match conn.call(&Message::DeleteBlob { hash: *hash }).await? {
            Message::Ok => {}
            other => return Err(FrameError::unexpected(&other, "Ok")),
        }
    }
    Ok(())
}
