//! The accept loop both daemons share: bounded connections, the handshake
//! before anything else, one tracked task per connection, clean shutdown.

use std::future::Future;
use std::sync::Arc;

use arca_shared::handshake;
use arca_shared::keys::ClusterKey;
use arca_shared::{Connection, FrameError, Message};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most connections a daemon serves at once; more wait in the backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most of them still in their handshake: peers that never speak cannot
/// crowd out the ones that authenticate. Past it, new peers are closed.
pub const MAX_HANDSHAKES: usize = MAX_CONNECTIONS / 2;

/// Accepts connections until `shutdown` fires, authenticates each and hands
/// it to `handle`; then waits for every connection task to finish.
pub async fn serve<H, F>(
    listener: TcpListener,
    key: ClusterKey,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    handle: H,
) where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let handle = Arc::new(handle);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!("too many handshakes in progress; closing a new connection");
            continue;
        };
        let key = key.clone();
        let handle = handle.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut conn = match Connection::accepted(stream) {
                Ok(conn) => conn,
                Err(e) => return tracing::debug!("connection lost at once: {e}"),
            };
            let peer = conn.peer();
            let shaken = handshake::accept(&mut conn, &key).await;
            drop(handshake);
            if let Err(e) = shaken {
                return tracing::warn!(%peer, "refused connection: {e}");
            }
            let conn = conn.authenticated();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = handle(conn) => {}
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// The next request on an accepted connection; `None` once the peer hung up
/// or sent something unreadable (which is logged).
pub(crate) async fn next_request(conn: &mut Connection) -> Option<Message> {
    match conn.recv().await {
        Ok(request) => Some(request),
        Err(FrameError::Closed) => None,
        Err(e) => {
            tracing::warn!(peer = %conn.peer(), "closing connection: {e}");
            None
        }
    }
}
