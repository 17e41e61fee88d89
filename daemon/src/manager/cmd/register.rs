//! `Register`: a server joins (or rejoins) and then heartbeats on this
//! connection for as long as it lives.

use std::sync::Arc;

use arca_shared::protocol::{ServerStats, SnapshotInfo};
use arca_shared::{Connection, FrameError, Message};

use crate::error::Error;
use crate::manager::{Manager, gc, membership, reconcile, snapshot};

pub(crate) async fn run(
    manager: &Arc<Manager>,
    mut conn: Connection,
    uuid: String,
    addr: String,
    stats: ServerStats,
    snapshot: Option<SnapshotInfo>,
) {
    let peer = conn.peer();
    if let Some(snapshot) = snapshot {
        snapshot::compare(manager, &addr, snapshot).await;
    }
    if let Err(e) = session(manager, &mut conn, uuid, addr, stats).await {
        tracing::info!(%peer, "server session ended: {e}");
    }
}

async fn session(
    manager: &Arc<Manager>,
    conn: &mut Connection,
    uuid: String,
    addr: String,
    stats: ServerStats,
) -> Result<(), Error> {
    if uuid.is_empty() || uuid.len() > 64 || addr.len() > 256 {
        return Err(Error::Refused("malformed registration".into()));
    }
    let id = manager
        .db({
            let addr = addr.clone();
            move |c| c.server_id(&uuid, &addr)
        })
        .await?;
    conn.send(&Message::Registered { id }).await?;
    tracing::info!(id, %addr, "server registered");
    // A returning server may hold copies the catalog forgot, or lack some.
    let reconciling = manager.clone();
    manager.tasks.spawn(async move {
        if let Err(e) = reconcile::server(&reconciling, id).await {
            tracing::warn!(id, "reconciling the server failed: {e}");
        }
    });
    let mut stats = stats;
    loop {
        let start_pinging = manager.members().heartbeat(id, &addr, stats);
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
