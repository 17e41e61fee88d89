//! `Status`: the cluster as the manager sees it.

use arca_shared::protocol::ClusterStatus;
use arca_shared::{Connection, FrameError, Message};

use crate::manager::Manager;

pub(crate) async fn run(manager: &Manager, conn: &mut Connection) -> Result<(), FrameError> {
    let status = ClusterStatus {
        replicas: manager.config.replicas,
        servers: manager.members().status(manager.config.weights),
    };
    conn.send(&Message::Cluster { status }).await
}
