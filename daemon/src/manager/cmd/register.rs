//! `Register`: a server joins (or rejoins) and then heartbeats on this
//! connection for as long as it lives.

use std::sync::Arc;

use arca_shared::protocol::{ServerStats, SnapshotInfo};
use arca_shared::types::zone;
use arca_shared::{Connection, FrameError, Message};

use crate::error::Error;
use crate::manager::{Manager, gc, membership, reconcile, snapshot};

/// What a server says of itself when it registers.
pub(crate) struct Joining {
    pub uuid: String,
    pub addr: String,
    pub zone: Option<String>,
    pub stats: ServerStats,
}

pub(crate) async fn run(
    manager: &Arc<Manager>,
    mut conn: Connection,
    joining: Joining,
    snapshot: Option<SnapshotInfo>,
) {
    let peer = conn.peer();
    if let Some(snapshot) = snapshot {
        snapshot::compare(manager, &joining.addr, snapshot).await;
    }
    if let Err(e) = session(manager, &mut conn, joining).await {
        tracing::info!(%peer, "server session ended: {e}");
    }
}

async fn session(
    manager: &Arc<Manager>,
    conn: &mut Connection,
    joining: Joining,
) -> Result<(), Error> {
    let Joining {
        uuid,
        addr,
        zone,
        stats,
    } = joining;
    if uuid.is_empty() || uuid.len() > 64 || addr.len() > 256 {
        return Err(Error::Refused("malformed registration".into()));
    }
    if zone.as_deref().is_some_and(|z| !zone::valid(z)) {
        return Err(Error::Refused(zone::RULE.into()));
    }
    let id = manager
        .db({
            let addr = addr.clone();
            move |c| c.server_id(&uuid, &addr)
        })
        .await?;
    conn.send(&Message::Registered { id }).await?;
    tracing::info!(id, %addr, zone = zone.as_deref().unwrap_or("none"), "server registered");
    manager.rebalance.notify_one();
    // A returning server may hold copies the catalog forgot, or lack some.
    let reconciling = manager.clone();
    manager.tasks.spawn(async move {
        if let Err(e) = reconcile::server(&reconciling, id).await {
            tracing::warn!(id, "reconciling the server failed: {e}");
        }
    });
    let mut stats = stats;
    loop {
        let start_pinging = manager
            .members()
            .heartbeat(id, &addr, zone.as_deref(), stats);
        if start_pinging {
            manager.tasks.spawn(membership::ping(
                manager.clone(),
                id,
                manager.shutdown.clone(),
            ));
        }
        loop {
            match conn.recv().await? {
                Message::Heartbeat { stats: fresh } => {
                    stats = fresh;
                    break;
                }
                Message::Corrupt { hash } => {
                    gc::set_aside_damaged(manager, hash, id).await?;
                }
                other => return Err(FrameError::unexpected(&other, "Heartbeat").into()),
            }
        }
    }
}
