//! The accept loop both daemons share: bounded connections, the handshake
//! (TLS, then the daemon's own admission of the peer) before anything else,
//! one tracked task per connection, clean shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arca_shared::handshake;
use arca_shared::link::{Acceptor, Peer};
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
/// so a flood of peers that never speak crowds out mostly itself.
pub const MAX_HANDSHAKES: usize = MAX_CONNECTIONS / 2;
/// Most handshakes one host may have waiting; past it, its own oldest is
/// dropped, so one host's flood cannot crowd out other hosts at all.
pub const MAX_HANDSHAKES_PER_HOST: usize = 64;

/// Handshakes in progress, oldest first: each with its host and the token
/// that drops it.
#[derive(Default)]
struct Handshakes {
    next: u64,
    waiting: VecDeque<(u64, IpAddr, CancellationToken)>,
}

impl Handshakes {
    /// Registers a new handshake from `host`, dropping that host's oldest
    /// if it has too many waiting, or else the oldest of all if there are.
    fn enter(&mut self, host: IpAddr) -> (u64, CancellationToken) {
        let from_host = self.waiting.iter().filter(|w| w.1 == host).count();
        let oldest = if from_host >= MAX_HANDSHAKES_PER_HOST {
            self.waiting.iter().position(|w| w.1 == host)
        } else {
            (self.waiting.len() >= MAX_HANDSHAKES).then_some(0)
        };
        if let Some((_, _, dropped)) = oldest.and_then(|i| self.waiting.remove(i)) {
            dropped.cancel();
        }
        self.next += 1;
        let token = CancellationToken::new();
        self.waiting.push_back((self.next, host, token.clone()));
        (self.next, token)
    }

    fn leave(&mut self, id: u64) {
        self.waiting.retain(|(waiting, _, _)| *waiting != id);
    }
}

/// What a daemon does with the links it accepts.
pub trait Service: Send + Sync + 'static {
    /// Who an admitted peer is, as this daemon's handlers need to know.
    type Caller: Send + 'static;

    /// Whether `peer`, past TLS, may go on and as whom; else why not.
    fn admit(&self, peer: Peer) -> impl Future<Output = Result<Self::Caller, String>> + Send;

    /// Serves an admitted peer's requests until it hangs up.
    fn handle(
        self: Arc<Self>,
        conn: Connection,
        caller: Self::Caller,
    ) -> impl Future<Output = ()> + Send;
}

/// Accepts connections until `shutdown` fires, authenticates and admits
/// each and hands it to `service`; then waits for every connection task.
pub async fn serve<S: Service>(
    listener: TcpListener,
    acceptor: Acceptor,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    service: Arc<S>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let handshakes = Arc::new(Mutex::new(Handshakes::default()));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, from) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (id, dropped) = handshakes.lock_anyway().enter(from.ip());
        let handshakes = handshakes.clone();
        let acceptor = acceptor.clone();
        let service = service.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let accepted = tokio::select! {
                () = dropped.cancelled() => {
                    return tracing::debug!(%from, "dropped a silent handshake to make room");
                }
                accepted = handshake::accept(stream, &acceptor) => accepted,
            };
            handshakes.lock_anyway().leave(id);
            let (mut conn, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => return refused(from, e),
            };
            let caller = service.admit(peer).await;
            let verdict = caller.as_ref().map(|_| ()).map_err(Clone::clone);
            if let Err(e) = handshake::admit(&mut conn, verdict).await {
                return refused(from, e);
            }
            let Ok(caller) = caller else { return };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = service.handle(conn, caller) => {}
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Logs a link that did not open: a peer with the wrong certificate, or
/// another version, is news; one that went quiet or away is not.
fn refused(from: std::net::SocketAddr, e: FrameError) {
    match e {
        FrameError::Auth(_) | FrameError::Refused(_) => {
            tracing::warn!(peer = %from, "refused connection: {e}");
        }
        e => tracing::debug!(peer = %from, "no handshake: {e}"),
    }
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
