//! Garbage collection: blobs that no version of any name references are
//! deleted from their holders, now after a removal and periodically for
//! holders that were down at the time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arca_shared::protocol::ServerId;
use arca_shared::{BlobHash, FrameError, Message};

use super::Manager;
use super::pacing::Pacing;

const EVERY: Duration = Duration::from_secs(5);

pub(crate) async fn run(manager: Arc<Manager>) {
    let mut pacing = Pacing::default();
    loop {
        let news = tokio::select! {
            _ = manager.shutdown.cancelled() => return,
            _ = manager.collect.notified() => true,
            _ = tokio::time::sleep(EVERY) => false,
        };
        // A holder that was down at a removal is collected when it is back.
        let health = manager.members().health(manager.config.heal_after);
        if !pacing.due(news, health) {
            continue;
        }
        pacing.busy = false;
        if let Err(e) = collect(&manager).await {
            tracing::warn!("garbage collection: {e}");
            pacing.busy = true;
        }
    }
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
