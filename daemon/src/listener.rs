//! The accept loop both daemons share: bounded connections, the handshake
//! before anything else, one tracked task per connection, clean shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use arca_shared::handshake;
use arca_shared::keys::ClusterKey;
use arca_shared::sync::LockAnyway;
use arca_shared::{Connection, FrameError, Message};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most connections a daemon serves at once; more wait in the backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most of them still in their handshake. Past it, the oldest handshake is
/// dropped to make room: a real peer finishes its handshake in a moment,
/// so a flood of peers that never speak crowds out only itself.
pub const MAX_HANDSHAKES: usize = MAX_CONNECTIONS / 2;

/// Handshakes in progress, oldest first, each with the token that drops it.
#[derive(Default)]
struct Handshakes {
    next: u64,
    waiting: VecDeque<(u64, CancellationToken)>,
}

impl Handshakes {
    /// Registers a new handshake, dropping the oldest one if there are too many.
    fn enter(&mut self) -> (u64, CancellationToken) {
        if self.waiting.len() >= MAX_HANDSHAKES
            && let Some((_, oldest)) = self.waiting.pop_front()
        {
            oldest.cancel();
        }
        self.next += 1;
        let token = CancellationToken::new();
        self.waiting.push_back((self.next, token.clone()));
        (self.next, token)
    }

    fn leave(&mut self, id: u64) {
        self.waiting.retain(|(waiting, _)| *waiting != id);
    }
}

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
    let handshakes = Arc::new(Mutex::new(Handshakes::default()));
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
        let (id, dropped) = handshakes.lock_anyway().enter();
        let handshakes = handshakes.clone();
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
            let shaken = tokio::select! {
                () = dropped.cancelled() => {
                    return tracing::debug!(%peer, "dropped a silent handshake to make room");
                }
                shaken = handshake::accept(&mut conn, &key) => shaken,
            };
            handshakes.lock_anyway().leave(id);
            match shaken {
                Ok(()) => {}
                // A peer that knows the wrong secret, or speaks another
                // version, is news; one that went quiet or away is not.
                Err(e @ (FrameError::Auth(_) | FrameError::Refused(_))) => {
                    return tracing::warn!(%peer, "refused connection: {e}");
                }
                Err(e) => return tracing::debug!(%peer, "no handshake: {e}"),
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
