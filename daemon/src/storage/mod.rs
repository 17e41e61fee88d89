//! The storage server: holds blobs, receives uploads as a primary and
//! forwards them to replicas, stores copies as a replica, serves restores.

mod blobs;
mod cmd;
mod index;
pub(crate) mod item_check;
mod membership;
mod pack;
mod scrub;
mod snapshots;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arca_shared::connection::FrameWriter;
use arca_shared::handshake;
use arca_shared::keys::ClusterKey;
use arca_shared::link::Peer;
use arca_shared::protocol::{Item, ReplicaTarget, items_digest};
use arca_shared::reply::Accepted;
use arca_shared::stream::{Reading, send_file};
use arca_shared::sync::LockAnyway;
use arca_shared::ticket::{Ticket, TicketError, TicketKind};
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Connection, FrameError, Message};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Error;
pub use blobs::{BlobReader, BlobStore};
pub use index::{OnDisk, on_disk};
use snapshots::Snapshots;

#[derive(Clone)]
pub struct ServerConfig {
    pub data: PathBuf,
    /// The manager to register with.
    pub manager: String,
    /// The address the manager and other servers reach this one at.
    pub advertise: String,
    /// Bytes this server offers; `None` means whatever the disk has.
    pub capacity: Option<u64>,
    /// The failure zone it is in: copies of the same data go to distinct zones.
    pub zone: Option<String>,
    pub key: ClusterKey,
    pub heartbeat_every: Duration,
    /// Pause between two scrubs of every blob.
    pub scrub_every: Duration,
    /// Most bytes per second a scrub reads.
    pub scrub_rate: u64,
}

impl ServerConfig {
    pub fn new(data: PathBuf, manager: String, advertise: String, key: ClusterKey) -> Self {
        Self {
            data,
            manager,
            advertise,
            capacity: None,
            zone: None,
            key,
            heartbeat_every: Duration::from_millis(750),
            scrub_every: Duration::from_secs(3600),
            scrub_rate: 64 << 20,
        }
    }
}

/// What the primary tells the connection that carried `Prepare`, which
/// relays it to the manager.
pub(crate) enum Report {
    Progress(u64),
    Done(Vec<ServerId>),
    Failed {
        reason: String,
        suspects: Vec<ServerId>,
    },
}

/// An upload the manager announced and its client has not yet started.
pub(crate) struct Plan {
    replicas: Vec<ReplicaTarget>,
    items: Vec<Item>,
    reports: mpsc::Sender<Report>,
}

pub(crate) struct Server {
    config: ServerConfig,
    store: Arc<BlobStore>,
    snapshots: Snapshots,
    /// Given by the manager at registration; 0 until then.
    id: AtomicU64,
    plans: Mutex<HashMap<u64, Plan>>,
    /// Store tickets already used, so each one stores at most once.
    used: Mutex<HashMap<u64, Instant>>,
    /// Blobs a scrub found damaged, for the manager.
    corrupt: mpsc::UnboundedSender<BlobHash>,
}

/// Runs a storage server on `listener` until `shutdown` fires.
pub async fn run_server(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let store = Arc::new(BlobStore::open(&config.data, config.capacity)?);
    let snapshots = Snapshots::open(&config.data)?;
    let (corrupt, found) = mpsc::unbounded_channel();
    let server = Arc::new(Server {
        config,
        store,
        snapshots,
        id: AtomicU64::new(0),
        plans: Mutex::default(),
        used: Mutex::default(),
        corrupt,
    });
    let tasks = TaskTracker::new();
    tasks.spawn(membership::run(server.clone(), found, shutdown.clone()));
    tasks.spawn(scrub::run(server.clone(), shutdown.clone()));
    tasks.spawn(server.store.clone().keep_tidy(shutdown.clone()));
    let acceptor = server.config.key.links().acceptor.clone();
    crate::listener::serve(listener, acceptor, shutdown, tasks, server).await;
    Ok(())
}

impl crate::listener::Service for Server {
    type Caller = Peer;

    /// Any peer with the authority's certificate: what a client may store
    /// or read here, a manager's ticket says.
    async fn admit(&self, peer: Peer) -> Result<Peer, String> {
        Ok(peer)
    }

    fn handle(
        self: Arc<Self>,
        conn: Connection,
        caller: Peer,
    ) -> impl std::future::Future<Output = ()> + Send {
        handle(self, conn, caller)
    }
}

async fn handle(server: Arc<Server>, mut conn: Connection, caller: Peer) {
    let peer = conn.peer();
    while let Some(request) = crate::listener::next_request(&mut conn).await {
        let kind = request.kind();
        // A client sends its data and reads it back, with tickets; the rest
        // is between daemons.
        let for_clients = matches!(
            request,
            Message::Ping | Message::Upload { .. } | Message::Fetch { .. }
        );
        let result = match request {
            _ if matches!(caller, Peer::Client(_)) && !for_clients => Err(Error::Refused(format!(
                "a client credential cannot send {kind}: only the cluster's daemons can"
            ))),
            Message::Ping => conn.send(&Message::Pong).await.map_err(Error::from),
            Message::Prepare {
                upload_id,
                replicas,
                items,
            } => cmd::prepare::run(&server, &mut conn, upload_id, replicas, items).await,
            Message::Upload { ticket } => cmd::upload::run(&server, &mut conn, ticket).await,
            Message::Store { ticket, items } => {
                cmd::store::run(&server, &mut conn, ticket, items).await
            }
            Message::Fetch { tickets } => cmd::fetch::run(&server, &mut conn, tickets).await,
            Message::DeleteBlob { hash } => cmd::delete::run(&server, &mut conn, hash).await,
            Message::Quarantine { hash } => {
                cmd::quarantine::set_aside(&server, &mut conn, hash).await
            }
            Message::DeleteDamaged { hash } => {
                cmd::quarantine::delete(&server, &mut conn, hash).await
            }
            Message::Replicate { hash, target } => {
                cmd::replicate::run(&server, &mut conn, hash, target).await
            }
            Message::Check { hash } => {
                let ok = server.store.verify(&hash).await.unwrap_or(false);
                conn.send(&Message::Checked { ok })
                    .await
                    .map_err(Error::from)
            }
            Message::Inventory => cmd::inventory::run(&server, &mut conn).await,
            Message::StoreSnapshot { snapshot } => {
                cmd::snapshot::store(&server, &mut conn, snapshot).await
            }
            Message::ListSnapshots => cmd::snapshot::list(&server, &mut conn).await,
            Message::FetchSnapshot { snapshot } => {
                cmd::snapshot::fetch(&server, &mut conn, snapshot).await
            }
            other => Err(FrameError::unexpected(&other, "a request").into()),
        };
        if let Err(e) = result {
            e.log(peer, kind);
            // Tell the peer why, then close: the stream may be mid-transfer.
            let _ = conn.send(&e.to_message()).await;
            return;
        }
    }
}

impl Server {
    /// Connects to a replica and presents its Store ticket for `items`.
    pub(crate) async fn open_store(
        &self,
        target: &ReplicaTarget,
        items: &[Item],
    ) -> Result<Connection, Error> {
        let mut conn = handshake::connect(&target.addr, &self.config.key.links().connector).await?;
        let Accepted = conn
            .request(&Message::Store {
                ticket: target.ticket.clone(),
                items: items.to_vec(),
            })
            .await?;
        Ok(conn)
    }

    /// Streams the rest of a stored blob as chunks, then `End`, reading
    /// ahead on a blocking thread, around the page cache, while this task
    /// sends.
    pub(crate) async fn send_blob(writer: &mut FrameWriter, blob: BlobReader) -> Result<(), Error> {
        send_file(writer, blob.file, blob.left, Reading::Direct, |_| {}).await?;
        Ok(writer.send(&Message::End).await?)
    }

    pub(crate) fn id(&self) -> ServerId {
        self.id.load(Ordering::Relaxed)
    }

    pub(crate) fn check(&self, ticket: &Ticket, kind: TicketKind) -> Result<(), Error> {
        ticket
            .verify(&self.config.key, kind, self.id())
            .map_err(|e: TicketError| Error::Refused(e.to_string()))
    }

    /// Checks a ticket for a list of items: the ticket must name exactly them.
    pub(crate) fn check_items(
        &self,
        ticket: &Ticket,
        kind: TicketKind,
        items: &[Item],
    ) -> Result<(), Error> {
        self.check(ticket, kind)?;
        let total: u64 = items.iter().map(|i| i.size).sum();
        if items.is_empty() || items_digest(items) != ticket.hash || total != ticket.size {
            return Err(Error::Refused("the ticket is for other files".into()));
        }
        Ok(())
    }

    /// Marks a Store ticket used; false if it already was.
    pub(crate) fn first_use(&self, ticket: &Ticket) -> bool {
        let mut used = self.used.lock_anyway();
        let now = Instant::now();
        used.retain(|_, at| now.duration_since(*at) < arca_shared::limits::TICKET_TTL * 2);
        used.insert(ticket.op, now).is_none()
    }
}
