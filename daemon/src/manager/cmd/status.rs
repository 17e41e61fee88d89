//! `Status`: the cluster as the manager sees it.

use std::sync::atomic::Ordering;

use arca_shared::protocol::ClusterStatus;
use arca_shared::sync::LockAnyway;
use arca_shared::{Connection, Message};

use crate::error::Error;
use crate::manager::Manager;

pub(crate) async fn run(manager: &Manager, conn: &mut Connection) -> Result<(), Error> {
    let status = ClusterStatus {
        replicas: manager.config.replicas,
        servers: manager.members().status(manager.config.weights),
        under_replicated: manager.at_risk.lock_anyway().len() as u64,
        healing: manager.healing.load(Ordering::Relaxed),
        moving: manager.moving.load(Ordering::Relaxed),
        stale_catalog: manager.is_stale(),
        catalog_changes: manager.catalog_changes.load(Ordering::Relaxed),
    };
    Ok(conn.send(&Message::Cluster { status }).await?)
}
