//! Reconciliation: a server's blobs against the catalog. Copies the catalog
//! forgot are hashed in place and recorded again only if intact (or, when
//! nothing uses them and they are older than the grace period, deleted);
//! copies it lost are forgotten, so healing makes new ones. Runs when a
//! server registers and periodically.

use std::collections::HashSet;
use std::sync::Arc;

use arca_shared::protocol::BlobInfo;
use arca_shared::reply::Done;
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Message};

use super::cmd::verify;
use super::{Manager, gc};
use crate::error::Error;

pub(crate) async fn run(manager: Arc<Manager>) {
    let every = (manager.config.orphan_grace / 2).max(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = manager.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let live: Vec<ServerId> = {
            let members = manager.members();
            members
                .status(manager.config.weights)
                .into_iter()
                .filter(|s| s.alive)
                .map(|s| s.id)
                .collect()
        };
        for id in live {
            if let Err(e) = server(&manager, id).await {
                tracing::warn!(id, "reconciling failed: {e}");
            }
        }
    }
}

pub(crate) async fn server(manager: &Manager, id: ServerId) -> Result<(), Error> {
    // Read the catalog first: anything recorded before the inventory is on disk.
    let mut recorded: HashSet<BlobHash> = manager
        .db(move |c| c.held_by(id))
        .await?
        .into_iter()
        .collect();
    let Some(addr) = manager.live_addr(id) else {
        return Ok(());
    };
    let mut conn = manager.connect(&addr).await?;
    let blobs: Vec<BlobInfo> = conn.request_pages(&Message::Inventory).await?;
    for blob in blobs {
        let hash = blob.hash;
        if recorded.remove(&hash) {
            continue;
        }
        let _guard = manager.hash_locks.lock(hash).await;
        if manager.db(move |c| c.is_referenced(&hash)).await? {
            // A copy is counted only once it is known to be intact.
            if verify::check(&mut conn, hash).await? {
                manager.db(move |c| c.add_holder(&hash, id)).await?;
                tracing::info!(id, hash = %hash.short(), "reconciled: a copy the catalog did not count");
            } else {
                gc::set_aside_damaged(manager, hash, id).await?;
            }
        } else if blob.age_secs >= manager.config.orphan_grace.as_secs()
            // In a stale catalog, an "orphan" may be a lost backup's only data.
            && manager.may_delete()
        {
            let Done = conn.request(&Message::DeleteBlob { hash }).await?;
            tracing::info!(id, hash = %hash.short(), "removed an orphan copy");
        }
    }
    for hash in &recorded {
        let hash = *hash;
        manager.db(move |c| c.remove_holder(&hash, id)).await?;
        tracing::warn!(id, hash = %hash.short(), "reconciled: a recorded copy is missing");
    }
    if !recorded.is_empty() {
        manager.heal.notify_one();
    }
    Ok(())
}
