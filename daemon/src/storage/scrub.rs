//! Scrubbing: every stored blob is re-hashed in the background at a bounded
//! rate. A damaged one is set aside (never deleted: it may be the last trace
//! of its content) and reported, so the manager heals it from a good copy.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Server;

pub(crate) async fn run(server: Arc<Server>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(server.config.scrub_every) => {}
        }
        for blob in server.store.list() {
            if shutdown.is_cancelled() {
                return;
            }
            match server.store.verify(&blob.hash).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(hash = %blob.hash.short(), "scrub found a corrupt blob; setting it aside");
                    if let Err(e) = server.store.quarantine(&blob.hash).await {
                        tracing::warn!("cannot set the corrupt blob aside: {e}");
                    }
                    let _ = server.corrupt.send(blob.hash);
                }
                // Deleted since it was listed: nothing to check.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(hash = %blob.hash.short(), "scrub cannot read blob: {e}"),
            }
            // Keep to the rate: a blob of `size` bytes earns size/rate seconds.
            let pause =
                Duration::from_secs_f64(blob.size as f64 / server.config.scrub_rate.max(1) as f64);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
