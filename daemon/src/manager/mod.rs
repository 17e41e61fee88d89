//! The manager: keeps the catalog and the membership, chooses servers,
//! issues tickets and instructs servers. It never moves file bytes itself.

pub(crate) mod catalog;
mod cmd;
mod gc;
mod hash_locks;
mod heal;
pub(crate) mod membership;
mod pacing;
mod placement;
mod rebalance;
mod reconcile;
mod recover;
mod snapshot;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arca_shared::choice::Weights;
use arca_shared::keys::ClusterKey;
use arca_shared::link::Peer;
use arca_shared::protocol::FileEntry;
use arca_shared::sync::LockAnyway;
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Connection, FrameError, Message};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Error;

pub use catalog::{Catalog, ChildRow, FileRow, NewVersion, Recorded};
use hash_locks::HashLocks;
use membership::Members;
pub use recover::{RecoverError, Recovered, recover};

#[derive(Clone)]
pub struct ManagerConfig {
    pub data: PathBuf,
    pub key: ClusterKey,
    /// Copies kept of every file.
    pub replicas: u32,
    /// Silence after which a server counts as dead.
    pub dead_after: Duration,
    pub ping_every: Duration,
    pub weights: Weights,
    /// How long a server may be dead before its blobs are copied elsewhere.
    pub heal_after: Duration,
    /// How old an unreferenced blob must be before it is removed.
    pub orphan_grace: Duration,
    /// How often a changed catalog is snapshotted to the servers.
    pub snapshot_every: Duration,
}

impl ManagerConfig {
    pub fn new(data: PathBuf, key: ClusterKey) -> Self {
        Self {
            data,
            key,
            replicas: 2,
            dead_after: Duration::from_secs(3),
            ping_every: Duration::from_millis(500),
            weights: Weights::default(),
            heal_after: Duration::from_secs(30),
            orphan_grace: Duration::from_secs(600),
            snapshot_every: Duration::from_secs(30),
        }
    }
}

pub(crate) struct Manager {
    config: ManagerConfig,
    catalog: Arc<Mutex<Catalog>>,
    members: Mutex<Members>,
    hash_locks: HashLocks,
    next_op: AtomicU64,
    /// Wakes the garbage collector after a removal.
    collect: Notify,
    /// Wakes healing after a copy was lost.
    heal: Notify,
    /// Wakes rebalancing when a server joins.
    rebalance: Notify,
    /// The contents below their replica count at the last healing pass.
    at_risk: Mutex<Vec<BlobHash>>,
    /// A server keeps a snapshot newer than this catalog, or of another
    /// history: acknowledged backups may be missing from it, so until the
    /// operator recovers it nothing is deleted, nothing new is recorded and
    /// no snapshot is taken.
    behind: AtomicBool,
    /// Copies being made right now to heal contents below their count.
    healing: AtomicU64,
    /// Copies being moved right now to even the load.
    moving: AtomicU64,
    /// The catalog's changes since this manager started, as of its last use.
    catalog_changes: AtomicU64,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Held for the manager's life: one manager (or recovery) per data folder.
    _claim: std::fs::File,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("another manager, or a recovery, is using the data folder {0}; stop it first")]
    InUse(PathBuf),
    #[error(
        "cannot open the catalog {path}: {source}. If it is damaged or lost, rebuild it \
         from the snapshots the servers keep: `daemon recover --data {data} --server HOST:PORT` \
         (name one or more servers), then start the manager again"
    )]
    Catalog {
        path: PathBuf,
        data: PathBuf,
        source: rusqlite::Error,
    },
}

/// Runs a manager on `listener` until `shutdown` fires.
pub async fn run_manager(
    listener: TcpListener,
    config: ManagerConfig,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let claim = claim(&config.data)?;
    let path = config.data.join(catalog::FILE);
    let opened = Catalog::open(&path).and_then(|c| Ok((c.servers()?, c)));
    let (servers, catalog) = opened.map_err(|source| StartError::Catalog {
        path,
        data: config.data.clone(),
        source,
    })?;
    tracing::info!(
        listen = ?listener.local_addr().ok(),
        data = %config.data.display(),
        replicas = config.replicas,
        "manager running"
    );
    let mut members = Members::new(config.dead_after);
    for (id, _, addr) in servers {
        members.remember(id, addr);
    }
    let tasks = TaskTracker::new();
    let manager = Arc::new(Manager {
        catalog: Arc::new(Mutex::new(catalog)),
        members: Mutex::new(members),
        hash_locks: HashLocks::default(),
        next_op: AtomicU64::new(seed_op()),
        collect: Notify::new(),
        heal: Notify::new(),
        rebalance: Notify::new(),
        at_risk: Mutex::default(),
        behind: AtomicBool::new(false),
        healing: AtomicU64::new(0),
        moving: AtomicU64::new(0),
        catalog_changes: AtomicU64::new(0),
        tasks: tasks.clone(),
        shutdown: shutdown.clone(),
        _claim: claim,
        config,
    });
    tasks.spawn(gc::run(manager.clone()));
    tasks.spawn(heal::run(manager.clone()));
    tasks.spawn(rebalance::run(manager.clone()));
    tasks.spawn(reconcile::run(manager.clone()));
    tasks.spawn(snapshot::run(manager.clone()));
    let acceptor = manager.config.key.links().acceptor.clone();
    crate::listener::serve(listener, acceptor, shutdown, tasks, manager).await;
    Ok(())
}

/// Creates the data folder and locks it for this process: two managers on
/// one catalog, or a recovery under a running manager, would lose commits.
pub(crate) fn claim(data: &std::path::Path) -> Result<std::fs::File, StartError> {
    let dir_error = |e| StartError::DataDir(data.to_owned(), e);
    std::fs::create_dir_all(data).map_err(dir_error)?;
    let lock = std::fs::File::create(data.join("manager.lock")).map_err(dir_error)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::InUse(data.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(dir_error(e)),
    }
}

/// How often a request waits on servers that are registering again after
/// a manager restart.
const AWAIT_POLL: Duration = Duration::from_millis(100);

/// Operation ids start from the clock so a restarted manager never reissues one.
fn seed_op() -> u64 {
    arca_shared::types::now_ms() << 16
}

/// Who is asking the manager.
pub(crate) enum Caller {
    /// A daemon of this cluster: it may ask anything.
    Daemon,
    /// The client a credential was issued to: it acts in its namespace only.
    Client(String),
}

impl crate::listener::Service for Manager {
    type Caller = Caller;

    async fn admit(&self, peer: Peer) -> Result<Caller, String> {
        let id = match peer {
            Peer::Node => return Ok(Caller::Daemon),
            Peer::Client(id) => id.0,
        };
        let known = self
            .db(move |c| c.credential(&id))
            .await
            .map_err(|e| format!("the manager cannot check this credential: {e}"))?;
        match known {
            None => Err(
                "this credential was not issued by this cluster's manager (its \
                 catalog has no record of it): ask the cluster's operator for a new one"
                    .into(),
            ),
            Some(row) if row.revoked_ms.is_some() => Err(format!(
                "this credential of client {:?} was revoked: ask the cluster's operator \
                 for a new one",
                row.client
            )),
            Some(row) => Ok(Caller::Client(row.client)),
        }
    }

    fn handle(
        self: Arc<Self>,
        conn: Connection,
        caller: Caller,
    ) -> impl std::future::Future<Output = ()> + Send {
        handle(self, conn, caller)
    }
}

/// What a client's credential may ask: its own namespace's requests and
/// the cluster's status; nothing only daemons send.
fn permitted(client: &str, request: &Message) -> Result<(), String> {
    match request.namespace() {
        Some(asked) if asked == client => Ok(()),
        Some(asked) => Err(format!(
            "this credential is client {client:?}'s: it cannot act as {asked:?}"
        )),
        None if matches!(request, Message::Status | Message::ReportCorrupt { .. }) => Ok(()),
        None => Err(format!(
            "a client credential cannot send {}: only the cluster's daemons can",
            request.kind()
        )),
    }
}

async fn handle(manager: Arc<Manager>, mut conn: Connection, caller: Caller) {
    let peer = conn.peer();
    while let Some(request) = crate::listener::next_request(&mut conn).await {
        let kind = request.kind();
        let allowed = match &caller {
            Caller::Client(client) => permitted(client, &request),
            Caller::Daemon => Ok(()),
        };
        let result = match request {
            _ if allowed.is_err() => allowed.map_err(Error::Refused),
            Message::Register {
                uuid,
                addr,
                zone,
                stats,
                snapshot,
            } => {
                let joining = cmd::register::Joining {
                    uuid,
                    addr,
                    zone,
                    stats,
                };
                return cmd::register::run(&manager, conn, joining, snapshot).await;
            }
            Message::Keys { client } => cmd::keys::list(&manager, &mut conn, client).await,
            Message::AddKey { client, key, first } => {
                cmd::keys::add(&manager, &mut conn, client, key, first).await
            }
            Message::RemoveKey { client, id } => {
                cmd::keys::remove(&manager, &mut conn, client, id).await
            }
            Message::HaveChunks { client, ids } => {
                cmd::have::run(&manager, &mut conn, client, ids).await
            }
            Message::PutChunks {
                client,
                chunks,
                exclude,
            } => cmd::put_chunks::run(&manager, &mut conn, client, chunks, exclude).await,
            Message::PutFiles { client, files } => {
                cmd::put_files::run(&manager, &mut conn, client, files).await
            }
            Message::Verify { client, name } => {
                cmd::verify::run(&manager, &mut conn, client, name).await
            }
            Message::GetBegin {
                client,
                name,
                version,
            } => cmd::get::begin(&manager, &mut conn, client, name, version).await,
            Message::Parts { client, versions } => {
                cmd::get::parts(&manager, &mut conn, client, versions).await
            }
            Message::FetchGrants {
                client,
                hashes,
                exclude,
            } => cmd::get::grants(&manager, &mut conn, client, hashes, exclude).await,
            Message::ReportCorrupt { ticket } => {
                cmd::corrupt::run(&manager, &mut conn, ticket).await
            }
            Message::List { client, name } => {
                cmd::list::run(&manager, &mut conn, client, name).await
            }
            Message::Browse {
                client,
                folder,
                filter,
                offset,
                limit,
            } => {
                cmd::list::browse(&manager, &mut conn, client, folder, filter, offset, limit).await
            }
            Message::Lookup { client, names } => {
                cmd::list::lookup(&manager, &mut conn, client, names).await
            }
            Message::Remove {
                client,
                name,
                version,
            } => cmd::remove::run(&manager, &mut conn, client, name, version).await,
            Message::Status => cmd::status::run(&manager, &mut conn).await,
            Message::AtRisk { client } => cmd::at_risk::run(&manager, &mut conn, client).await,
            other => Err(FrameError::unexpected(&other, "a request").into()),
        };
        let Err(e) = result else { continue };
        e.log(peer, kind);
        let told = conn.send(&e.to_message()).await;
        // After a refusal or this manager's own failure the exchange ended
        // cleanly and the peer may go on; a broken link or peer is closed.
        if told.is_err() || matches!(e, Error::Peer(_)) {
            return;
        }
    }
}

impl Manager {
    fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock_anyway()
    }

    /// Opens an authenticated connection to a server.
    async fn connect(&self, addr: &str) -> Result<Connection, Error> {
        Ok(arca_shared::handshake::connect(addr, &self.config.key.links().connector).await?)
    }

    /// Tries `attempt` on the membership until it succeeds. Just after this
    /// manager started, while a server it `needs` is still registering
    /// again, a failure is tried again a moment later instead of returned.
    async fn once_back<T, E>(
        &self,
        mut attempt: impl FnMut(&mut Members) -> Result<T, E>,
        needs: impl Fn(&Members) -> bool,
    ) -> Result<T, E> {
        loop {
            {
                let mut members = self.members();
                match attempt(&mut members) {
                    Err(_) if needs(&members) => {}
                    done => return done,
                }
            }
            tokio::time::sleep(AWAIT_POLL).await;
        }
    }

    /// The address of a live server.
    fn live_addr(&self, id: ServerId) -> Option<String> {
        let members = self.members();
        members
            .is_alive(id)
            .then(|| members.get(id).map(|m| m.addr.clone()))
            .flatten()
    }

    /// Whether this catalog is known to be stale (see `behind`).
    fn is_stale(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    /// Whether copies may be deleted now: not from a stale catalog, which may
    /// call unused what a lost backup needs, and not while servers are still
    /// registering after a restart, since one of them may yet show the
    /// catalog stale.
    fn may_delete(&self) -> bool {
        !self.is_stale() && !self.members().any_awaited()
    }

    /// Refuses a change to a stale catalog: recorded there, it could make a
    /// stale catalog look current, and the operator's recovery lose it.
    fn refuse_if_stale(&self) -> Result<(), Error> {
        if !self.is_stale() {
            return Ok(());
        }
        Err(Error::local(
            "this manager records nothing new",
            "its catalog is behind, or not the same as, the snapshots its servers keep \
             (see its log); the operator must recover it with `daemon recover --force`",
        ))
    }

    fn next_op(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a catalog operation off the async threads (SQLite fsyncs).
    async fn db<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Catalog) -> rusqlite::Result<T> + Send + 'static,
    {
        let catalog = self.catalog.clone();
        let (result, changes) = tokio::task::spawn_blocking(move || {
            let mut catalog = catalog.lock_anyway();
            let result = op(&mut catalog);
            (result, catalog.changes())
        })
        .await
        .map_err(|e| Error::local("the catalog task failed", e))?;
        self.catalog_changes.store(changes, Ordering::Relaxed);
        result.map_err(|e| Error::local("the catalog failed", e))
    }

    /// A catalog operation that records a backup: its failure says so.
    async fn record<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Catalog) -> rusqlite::Result<T> + Send + 'static,
    {
        self.db(op).await.map_err(|e| match e {
            Error::Local { cause, .. } => {
                Error::local("could not record the backup in the catalog", cause)
            }
            other => other,
        })
    }

    /// Catalog rows as clients see them, each with the live copies of its
    /// least-kept chunk (an empty file has nothing to lose: all wanted).
    async fn entries(&self, client: &str, rows: Vec<FileRow>) -> Result<Vec<FileEntry>, Error> {
        let client_rows: Vec<(String, u32)> =
            rows.iter().map(|r| (r.name.clone(), r.version)).collect();
        let client = client.to_owned();
        let blobs = self
            .db(move |c| {
                client_rows
                    .iter()
                    .map(|(name, version)| c.blobs_of(&client, name, *version))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let members = self.members();
        Ok(rows
            .into_iter()
            .zip(blobs)
            .map(|(row, blobs)| FileEntry {
                replicas: blobs
                    .iter()
                    .map(|(_, holders)| members.live(holders) as u32)
                    .min()
                    .unwrap_or(self.config.replicas),
                name: row.name,
                version: row.version,
                size: row.size,
                hash: row.hash,
                created_ms: row.created_ms,
                plain: row.plain,
                meta: row.meta,
            })
            .collect())
    }
}

/// A refusal the client can read and act on.
fn refuse<T>(reason: impl Into<String>) -> Result<T, Error> {
    Err(Error::Refused(reason.into()))
}
