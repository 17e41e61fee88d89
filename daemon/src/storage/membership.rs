//! Registration and heartbeats: the server keeps one connection to the
//! manager, re-registering by itself whenever the manager comes back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arca_shared::BlobHash;
use arca_shared::Message;
use arca_shared::handshake;
use arca_shared::reply::Registered;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Server;
use crate::error::Error;

pub(crate) async fn run(
    server: Arc<Server>,
    mut corrupt: mpsc::UnboundedReceiver<BlobHash>,
    shutdown: CancellationToken,
) {
    let uuid = match server_uuid(&server) {
        Ok(uuid) => uuid,
        Err(e) => {
            tracing::error!("cannot read or create the server's identity file: {e}");
            return;
        }
    };
    let mut warned = false;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = session(&server, &uuid, &mut corrupt) => outcome,
        };
        if let Err(e) = outcome {
            if !warned {
                tracing::warn!(manager = %server.config.manager, "manager unreachable, retrying: {e}");
            }
            warned = true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
}

async fn session(
    server: &Server,
    uuid: &str,
    corrupt: &mut mpsc::UnboundedReceiver<BlobHash>,
) -> Result<(), Error> {
    let mut conn =
        handshake::connect(&server.config.manager, &server.config.key.links().connector).await?;
    let Registered(id) = conn
        .request(&Message::Register {
            uuid: uuid.to_owned(),
            addr: server.config.advertise.clone(),
            zone: server.config.zone.clone(),
            stats: server.store.stats(),
            snapshot: server.snapshots.newest(),
        })
        .await?;
    server.id.store(id, Ordering::Relaxed);
    tracing::info!(id, manager = %server.config.manager, "registered with the manager");
    let mut beat = tokio::time::interval(server.config.heartbeat_every);
    loop {
        let message = tokio::select! {
            _ = beat.tick() => Message::Heartbeat { stats: server.store.stats() },
            Some(hash) = corrupt.recv() => Message::Corrupt { hash },
        };
        conn.send(&message).await?;
    }
}

/// A random identity kept in the data folder, so the manager knows this
/// server again after a restart even if its address changed.
fn server_uuid(server: &Server) -> std::io::Result<String> {
    let path = server.config.data.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let uuid =
                blake3::Hash::from(arca_shared::keys::Nonce::fresh().0).to_hex()[..32].to_owned();
            std::fs::write(&path, &uuid)?;
            Ok(uuid)
        }
        Err(e) => Err(e),
    }
}
