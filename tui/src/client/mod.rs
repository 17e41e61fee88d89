//! Talking to the cluster: a session with the manager, and the transfers it
//! hands out to servers. Used by the headless commands and the dashboard.

mod backup;
mod chunk_cache;
mod chunker;
mod keys;
mod local;
pub mod meta;
mod progress;
mod restore;
mod upload;

use std::path::PathBuf;

use arca_shared::handshake;
use arca_shared::limits::{IDLE_TIMEOUT, LOOKUP_MAX};
use arca_shared::link::Connector;
use arca_shared::name;
use arca_shared::protocol::{Child, ClusterStatus, FileEntry, VersionCheck, VersionHealth};
use arca_shared::reply::{Browsed, Removed, Reply};
use arca_shared::{Connection, FrameError, Message};

pub use backup::{BackupEvent, BackupEvents, BackupSummary, backup};
pub use chunk_cache::ChunkCache;
pub use keys::{Passphrase, Vault};
pub use local::{Skip, Stamp, backed_up, not_regular, regular};
pub use progress::{Phase, Progress, TransferProgress};
pub use restore::{Outcomes, RestoreEvent, RestoreEvents, Restored, Wanted};
pub use upload::{LocalFile, Uploaded};

/// How long a client waits for a restarting manager before giving up.
const RECONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Who this client is and where its cluster is.
#[derive(Clone)]
pub struct Settings {
    pub manager: String,
    /// Namespaces this client's catalog.
    pub client: String,
    /// How this client opens links (its credential).
    pub link: Connector,
    /// The local folder catalog names are relative to.
    pub files: PathBuf,
    /// Opens this client's master key (shared by every session of a run).
    pub vault: std::sync::Arc<Vault>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the manager at {addr}: {source}; is `daemon --role manager` running there?"
    )]
    Unreachable { addr: String, source: FrameError },
    /// The manager does not take this client's credential: retrying
    /// cannot help. The reason says which and what to do.
    #[error(
        "the manager at {addr} refused this client: {reason} (the credential is \
         --credential or ARCA_CREDENTIAL, else ~/.config/arca/credential)"
    )]
    NotAdmitted { addr: String, reason: String },
    #[error("{0}")]
    Refused(String),
    /// The manager failed at its own work: nothing about the request or the
    /// files was wrong.
    #[error(
        "the manager failed: {0}. The fault is on the manager's side (see its log), \
         not in your files; try again once it is fixed"
    )]
    ManagerFailed(String),
    #[error("{0}")]
    Local(String),
    #[error("connection to the manager failed: {0}")]
    Protocol(#[from] FrameError),
}

impl ClientError {
    pub(crate) fn local(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        Self::Local(format!("{what}: {e}"))
    }

    /// The link to the manager is gone (or never came): what used it must
    /// stop, and its session be replaced.
    pub fn lost_link(&self) -> bool {
        matches!(self, Self::Protocol(_) | Self::Unreachable { .. })
    }
}

/// A connection to the manager, kept open for many requests.
pub struct Session {
    pub settings: Settings,
    conn: Connection,
}

impl Session {
    pub async fn connect(settings: Settings) -> Result<Self, ClientError> {
        let addr = settings.manager.clone();
        let conn = handshake::connect(&settings.manager, &settings.link)
            .await
            .map_err(|source| match source {
                FrameError::Auth(reason) => ClientError::NotAdmitted { addr, reason },
                source => ClientError::Unreachable { addr, source },
            })?;
        Ok(Self { settings, conn })
    }

    /// Replaces the connection to the manager with a fresh one, waiting
    /// a while for a restarting manager to come back.
    async fn reconnect_patiently(&mut self) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + RECONNECT_PATIENCE;
        loop {
            match Self::connect(self.settings.clone()).await {
                Ok(fresh) => {
                    self.conn = fresh.conn;
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            }
        }
    }

    /// Sends a request and reads the reply, turning the manager's refusals
    /// into [`ClientError::Refused`].
    async fn call(&mut self, request: &Message) -> Result<Message, ClientError> {
        self.conn.send(request).await?;
        self.reply().await
    }

    async fn reply(&mut self) -> Result<Message, ClientError> {
        self.conn.recv().await.map_err(refusal)
    }

    pub async fn status(&mut self) -> Result<ClusterStatus, ClientError> {
        self.conn.request(&Message::Status).await.map_err(refusal)
    }

    /// With no name, the newest version of every file; with a name ending in
    /// '/', the newest of every file under it; else every version of it.
    pub async fn list(&mut self, name: Option<&str>) -> Result<Vec<FileEntry>, ClientError> {
        let client = self.settings.client.clone();
        let name = name.map(str::to_owned);
        self.pages(&Message::List { client, name }).await
    }

    /// The newest version of every file backed up under the folder name
    /// `prefix` (ending in '/'), and any the manager listed outside it: its
    /// list is checked, not trusted. No file there is an error.
    pub async fn list_under(
        &mut self,
        prefix: &str,
    ) -> Result<(Vec<FileEntry>, Vec<FileEntry>), ClientError> {
        name::validate_prefix(prefix)
            .map_err(|e| ClientError::Local(format!("bad name {prefix:?}: {e}")))?;
        let entries = self.list(Some(prefix)).await?;
        if entries.is_empty() {
            return Err(ClientError::Refused(format!("no backups under {prefix}")));
        }
        Ok(entries
            .into_iter()
            .partition(|e| e.name.starts_with(prefix)))
    }

    /// A window of a folder's children whose names contain `filter` (see
    /// `Message::Browse`): `limit` from the `offset`-th, and how many match.
    pub async fn browse(
        &mut self,
        folder: &str,
        filter: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(u64, Vec<Child>), ClientError> {
        let request = Message::Browse {
            client: self.settings.client.clone(),
            folder: folder.to_owned(),
            filter: filter.to_owned(),
            offset,
            limit,
        };
        let Browsed(total) = self.conn.request(&request).await.map_err(refusal)?;
        let children = self.conn.recv_pages().await.map_err(refusal)?;
        Ok((total, children))
    }

    /// The newest version of each of `names` that has one.
    pub async fn lookup(&mut self, names: &[String]) -> Result<Vec<FileEntry>, ClientError> {
        let mut found = Vec::new();
        for some in names.chunks(LOOKUP_MAX) {
            let request = Message::Lookup {
                client: self.settings.client.clone(),
                names: some.to_vec(),
            };
            found.extend(self.pages(&request).await?);
        }
        Ok(found)
    }

    /// Has every live holder hash its copy in place; names as for [`Session::list`].
    pub async fn verify(&mut self, name: Option<&str>) -> Result<Vec<VersionCheck>, ClientError> {
        let client = self.settings.client.clone();
        let name = name.map(str::to_owned);
        self.pages(&Message::Verify { client, name }).await
    }

    /// This client's versions short of intact copies on live servers.
    pub async fn at_risk(&mut self) -> Result<Vec<VersionHealth>, ClientError> {
        let client = self.settings.client.clone();
        self.pages(&Message::AtRisk { client }).await
    }

    async fn pages<T>(&mut self, request: &Message) -> Result<Vec<T>, ClientError>
    where
        Vec<T>: Reply,
    {
        self.conn.request_pages(request).await.map_err(refusal)
    }

    /// Removes one version, or every version with `None`; returns those removed.
    pub async fn remove(
        &mut self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Vec<u32>, ClientError> {
        let request = Message::Remove {
            client: self.settings.client.clone(),
            name: name.to_owned(),
            version,
        };
        let Removed(versions) = self.conn.request(&request).await.map_err(refusal)?;
        Ok(versions)
    }
}

/// The manager's refusals are [`ClientError::Refused`], its own failures
/// [`ClientError::ManagerFailed`]; the rest is the link.
fn refusal(e: FrameError) -> ClientError {
    match e {
        FrameError::Refused(reason) => ClientError::Refused(reason),
        FrameError::PeerFailed(reason) => ClientError::ManagerFailed(reason),
        other => other.into(),
    }
}

/// Opens an authenticated connection to a storage server.
async fn open_server(addr: &str, link: &Connector) -> Result<Connection, FrameError> {
    let mut conn = handshake::connect(addr, link).await?;
    conn.set_timeout(IDLE_TIMEOUT);
    Ok(conn)
}
