//! Every message any two Arca components exchange.
//!
//! One enum for the whole protocol keeps decoding in one place; each handler
//! accepts only the variants its step expects and closes the connection on
//! anything else.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::hash::BlobHash;
use crate::meta::FileMeta;
use crate::ticket::Ticket;
use crate::types::ServerId;
use crate::vault::{ChunkId, WrappedKey};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    // Handshake, first on every link once its TLS is up (see `handshake`).
    Hello {
        version: u32,
    },
    Welcome,
    /// Ends the current exchange with a reason for people to read, and
    /// whose fault it is.
    Error {
        message: String,
        fault: Fault,
    },
    /// A generic "done" for requests that return nothing else.
    Ok,

    // Server → manager: membership.
    Register {
        uuid: String,
        addr: String,
        /// The failure zone it is in (`--zone`), if any.
        zone: Option<String>,
        stats: ServerStats,
        /// The newest catalog snapshot this server keeps.
        snapshot: Option<SnapshotInfo>,
    },
    Registered {
        id: ServerId,
    },
    Heartbeat {
        stats: ServerStats,
    },
    /// A scrub found this blob damaged; the server already set it aside.
    Corrupt {
        hash: BlobHash,
    },

    // Manager → server.
    Ping,
    Pong,
    /// Step 3 of the backup flow: where the primary forwards upload `upload_id`.
    /// The files of the upload, in the order they will stream.
    Prepare {
        upload_id: u64,
        replicas: Vec<ReplicaTarget>,
        items: Vec<Item>,
    },
    DeleteBlob {
        hash: BlobHash,
    },
    /// A copy failed its hash: move it out of the blobs served and keep it
    /// aside, since it may be the last trace of its content.
    Quarantine {
        hash: BlobHash,
    },
    /// Delete a damaged copy kept aside: a good copy exists, or nothing
    /// uses the content any more.
    DeleteDamaged {
        hash: BlobHash,
    },
    /// Healing: send this blob, server to server, to `target`.
    Replicate {
        hash: BlobHash,
        target: ReplicaTarget,
    },
    /// Keep a sealed catalog snapshot: `Accepted`, its bytes as chunks,
    /// `End`, then `Stored` once it is durable.
    StoreSnapshot {
        snapshot: SnapshotInfo,
    },
    /// The catalog snapshots kept; answered with `Snapshots`.
    ListSnapshots,
    Snapshots {
        snapshots: Vec<SnapshotInfo>,
    },
    /// Send a kept snapshot: `Accepted`, its bytes as chunks, then `End`.
    FetchSnapshot {
        snapshot: SnapshotInfo,
    },
    /// Hash a blob in place; answered with `Checked`.
    Check {
        hash: BlobHash,
    },
    Checked {
        ok: bool,
    },
    /// List every blob held; answered with `Blobs` pages, then `End`.
    Inventory,
    Blobs {
        blobs: Vec<BlobInfo>,
    },

    // Primary → manager, on the connection that carried `Prepare`.
    UploadProgress {
        bytes: u64,
    },
    UploadDone {
        holders: Vec<ServerId>,
    },
    /// `suspects` are servers the primary saw fail.
    UploadFailed {
        reason: String,
        suspects: Vec<ServerId>,
    },

    // Client → manager: the namespace's wrapped master keys.
    /// Answered with `KeyList`.
    Keys {
        client: String,
    },
    KeyList {
        keys: Vec<WrappedKey>,
    },
    /// Keeps one more wrapping of the master key. With `first`, only if the
    /// namespace has none yet: two first backups cannot make two keys.
    AddKey {
        client: String,
        key: WrappedKey,
        first: bool,
    },
    /// Forgets the wrapping with this id (never the last one).
    RemoveKey {
        client: String,
        id: String,
    },

    // Client → manager: backing up.
    /// Which of these chunks the namespace already keeps on enough live
    /// servers; answered with `Have`.
    HaveChunks {
        client: String,
        ids: Vec<ChunkId>,
    },
    Have {
        have: Vec<bool>,
    },
    /// Store these sealed chunks. `exclude` lists servers that failed this
    /// client's earlier attempts. Answered with `ChunkPlan`; with an upload,
    /// the chunks stream to its primary, in order, and `ChunksStored` follows.
    PutChunks {
        client: String,
        chunks: Vec<NewChunk>,
        exclude: Vec<ServerId>,
    },
    ChunkPlan {
        upload: Option<UploadGrant>,
    },
    ChunksStored {
        replicas: u32,
    },
    /// Record versions made of chunks already stored; answered with
    /// `Committed`. A file's chunk ids longer than one frame continue in
    /// `MoreChunks` frames, right after, in file order.
    PutFiles {
        client: String,
        files: Vec<PutFile>,
    },
    MoreChunks {
        ids: Vec<ChunkId>,
    },
    /// What became of each file of a `PutFiles`, in order.
    Committed {
        results: Vec<PutResult>,
    },

    // Client → manager: restoring.
    /// Answered with `Restoring`.
    GetBegin {
        client: String,
        name: String,
        version: Option<u32>,
    },
    Restoring {
        entry: FileEntry,
    },
    /// Some versions' chunks, in order: for each version in turn, `PartList`
    /// pages then `End`, or an `Error` of its own (the rest still come).
    Parts {
        client: String,
        versions: Vec<(String, u32)>,
    },
    PartList {
        parts: Vec<Part>,
    },
    /// Where to fetch each of these stored chunks; answered with `Grants`.
    FetchGrants {
        client: String,
        hashes: Vec<BlobHash>,
        exclude: Vec<ServerId>,
    },
    Grants {
        grants: Vec<Grant>,
    },
    ReportCorrupt {
        ticket: Ticket,
    },
    List {
        client: String,
        name: Option<String>,
    },
    Listing {
        files: Vec<FileEntry>,
    },
    /// A window of one folder's children ("" is the top, else a name
    /// ending in '/'), whose names contain `filter` (ignoring ASCII case):
    /// its subfolders by name, then the newest version of its files by
    /// name; `limit` of them from the `offset`-th. Answered with `Browsed`,
    /// then `Children` pages, then `End`.
    Browse {
        client: String,
        folder: String,
        filter: String,
        offset: u64,
        limit: u32,
    },
    /// How many children match in all.
    Browsed {
        total: u64,
    },
    Children {
        children: Vec<Child>,
    },
    /// The newest version of each of these names that has one; answered
    /// with `Listing` pages, then `End`.
    Lookup {
        client: String,
        names: Vec<String>,
    },
    Remove {
        client: String,
        name: String,
        version: Option<u32>,
    },
    Removed {
        versions: Vec<u32>,
    },
    Status,
    Cluster {
        status: ClusterStatus,
    },
    /// Have every holder hash its copy in place; `Verified` pages, then `End`.
    Verify {
        client: String,
        name: Option<String>,
    },
    Verified {
        versions: Vec<VersionCheck>,
    },
    /// This client's versions with fewer intact copies on live servers than
    /// wanted; answered with `Risks` pages, then `End`.
    AtRisk {
        client: String,
    },
    Risks {
        versions: Vec<VersionHealth>,
    },

    // Client → primary, primary → replica, client → holder.
    Upload {
        ticket: Ticket,
    },
    /// `ticket.hash` is the digest of `items` (see [`items_digest`]).
    Store {
        ticket: Ticket,
        items: Vec<Item>,
    },
    /// Some stored blobs, each in turn as `Accepted`, its chunks and `End`,
    /// or as an `Error` of its own (the rest still come).
    Fetch {
        tickets: Vec<Ticket>,
    },
    Accepted,
    Chunk {
        data: ByteBuf,
    },
    End,
    /// Replica → primary: bytes written so far.
    Written {
        bytes: u64,
    },
    /// Primary → client: bytes a replica has written so far.
    ReplicaProgress {
        replica: u8,
        bytes: u64,
    },
    /// Replica → primary and primary → client: every copy is durable.
    Stored,
}

impl Message {
    /// The client namespace a client's request acts in, if it is one.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Message::Keys { client, .. }
            | Message::AddKey { client, .. }
            | Message::RemoveKey { client, .. }
            | Message::HaveChunks { client, .. }
            | Message::PutChunks { client, .. }
            | Message::PutFiles { client, .. }
            | Message::GetBegin { client, .. }
            | Message::Parts { client, .. }
            | Message::FetchGrants { client, .. }
            | Message::List { client, .. }
            | Message::Browse { client, .. }
            | Message::Lookup { client, .. }
            | Message::Remove { client, .. }
            | Message::Verify { client, .. }
            | Message::AtRisk { client, .. } => Some(client),
            _ => None,
        }
    }

    /// The variant's name, for logs and errors (never the payload).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Welcome => "Welcome",
            Message::Error { .. } => "Error",
            Message::Ok => "Ok",
            Message::Register { .. } => "Register",
            Message::Registered { .. } => "Registered",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::Corrupt { .. } => "Corrupt",
            Message::Replicate { .. } => "Replicate",
            Message::StoreSnapshot { .. } => "StoreSnapshot",
            Message::ListSnapshots => "ListSnapshots",
            Message::Snapshots { .. } => "Snapshots",
            Message::FetchSnapshot { .. } => "FetchSnapshot",
            Message::Check { .. } => "Check",
            Message::Checked { .. } => "Checked",
            Message::Inventory => "Inventory",
            Message::Blobs { .. } => "Blobs",
            Message::Verify { .. } => "Verify",
            Message::Verified { .. } => "Verified",
            Message::AtRisk { .. } => "AtRisk",
            Message::Risks { .. } => "Risks",
            Message::Ping => "Ping",
            Message::Pong => "Pong",
            Message::Prepare { .. } => "Prepare",
            Message::DeleteBlob { .. } => "DeleteBlob",
            Message::Quarantine { .. } => "Quarantine",
            Message::DeleteDamaged { .. } => "DeleteDamaged",
            Message::UploadProgress { .. } => "UploadProgress",
            Message::UploadDone { .. } => "UploadDone",
            Message::UploadFailed { .. } => "UploadFailed",
            Message::Committed { .. } => "Committed",
            Message::Keys { .. } => "Keys",
            Message::KeyList { .. } => "KeyList",
            Message::AddKey { .. } => "AddKey",
            Message::RemoveKey { .. } => "RemoveKey",
            Message::HaveChunks { .. } => "HaveChunks",
            Message::Have { .. } => "Have",
            Message::PutChunks { .. } => "PutChunks",
            Message::ChunkPlan { .. } => "ChunkPlan",
            Message::ChunksStored { .. } => "ChunksStored",
            Message::PutFiles { .. } => "PutFiles",
            Message::MoreChunks { .. } => "MoreChunks",
            Message::Restoring { .. } => "Restoring",
            Message::Parts { .. } => "Parts",
            Message::PartList { .. } => "PartList",
            Message::FetchGrants { .. } => "FetchGrants",
            Message::Grants { .. } => "Grants",
            Message::GetBegin { .. } => "GetBegin",
            Message::ReportCorrupt { .. } => "ReportCorrupt",
            Message::List { .. } => "List",
            Message::Listing { .. } => "Listing",
            Message::Browse { .. } => "Browse",
            Message::Browsed { .. } => "Browsed",
            Message::Children { .. } => "Children",
            Message::Lookup { .. } => "Lookup",
            Message::Remove { .. } => "Remove",
            Message::Removed { .. } => "Removed",
            Message::Status => "Status",
            Message::Cluster { .. } => "Cluster",
            Message::Upload { .. } => "Upload",
            Message::Store { .. } => "Store",
            Message::Fetch { .. } => "Fetch",
            Message::Accepted => "Accepted",
            Message::Chunk { .. } => "Chunk",
            Message::End => "End",
            Message::Written { .. } => "Written",
            Message::ReplicaProgress { .. } => "ReplicaProgress",
            Message::Stored => "Stored",
        }
    }

    /// A refusal: the request cannot be done as asked.
    pub fn error(message: impl Into<String>) -> Self {
        Message::Error {
            message: message.into(),
            fault: Fault::Refused,
        }
    }

    /// The sender failed at its own work; the request itself was fine.
    pub fn failure(message: impl Into<String>) -> Self {
        Message::Error {
            message: message.into(),
            fault: Fault::Failed,
        }
    }
}

/// Whose fault an `Error` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The request cannot be done as asked; the asker can act on the reason.
    Refused,
    /// The sender failed at its own work (its disk, its catalog).
    Failed,
}

/// A server's own account of itself, sent with every heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerStats {
    pub stored_bytes: u64,
    pub capacity_bytes: u64,
    /// 0 while the disk refuses writes.
    pub free_bytes: u64,
    pub blobs: u64,
    /// The data folder's file system refuses writes.
    pub read_only: bool,
}

/// A sealed copy of the manager's catalog, kept by the servers so that a
/// lost or damaged catalog can be rebuilt (`daemon recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The catalog's count of recorded changes when it was taken…
    pub generation: u64,
    /// …and the random token of the last one: two catalogs at the same
    /// generation with different tokens went different ways.
    #[serde(with = "serde_bytes")]
    pub lineage: [u8; 32],
    /// Milliseconds since the Unix epoch when it was taken.
    pub created_ms: u64,
    /// Size and BLAKE3 of the sealed bytes.
    pub size: u64,
    pub hash: BlobHash,
}

impl SnapshotInfo {
    /// What the snapshot's seal is bound to, so one cannot pass for another.
    pub fn context(&self) -> Vec<u8> {
        let mut context = b"arca catalog snapshot".to_vec();
        context.extend_from_slice(&self.generation.to_le_bytes());
        context.extend_from_slice(&self.lineage);
        context.extend_from_slice(&self.created_ms.to_le_bytes());
        context
    }
}

/// One file in a `PutFiles`: a new version made of these chunks, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutFile {
    pub name: String,
    pub size: u64,
    pub meta: FileMeta,
    pub chunks: Vec<ChunkId>,
    /// How many `MoreChunks` frames carry the rest of its chunk ids.
    pub continued: u32,
}

/// A sealed chunk to store: its id in the namespace, and the size and
/// BLAKE3 of its stored (sealed) bytes, which the servers check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewChunk {
    pub id: ChunkId,
    pub hash: BlobHash,
    pub size: u64,
    pub plain_size: u64,
}

/// One chunk of a version, as a restore needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub id: ChunkId,
    pub hash: BlobHash,
    pub size: u64,
    pub plain_size: u64,
    /// False for a whole file stored before chunks: plain bytes, not sealed.
    pub sealed: bool,
}

/// Where to fetch one stored chunk, and the ticket that holder accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub holder: String,
    pub ticket: Ticket,
}

/// The identity of a version's content: the digest of its chunk ids.
pub fn content_digest(chunks: &[ChunkId]) -> BlobHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"arca content");
    for id in chunks {
        hasher.update(&id.0);
    }
    BlobHash::from(hasher.finalize())
}

/// One file of an upload stream: it comes as chunks, then `End`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub hash: BlobHash,
    pub size: u64,
}

/// The identity of a list of items, which upload and store tickets carry.
pub fn items_digest(items: &[Item]) -> BlobHash {
    let mut hasher = blake3::Hasher::new();
    for item in items {
        hasher.update(&item.hash.0);
        hasher.update(&item.size.to_le_bytes());
    }
    BlobHash::from(hasher.finalize())
}

/// What became of one file of a `PutFiles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutResult {
    /// The newest version already has this content.
    Unchanged { version: u32 },
    /// A new version, its chunks each on at least `replicas` live servers.
    Committed { version: u32, replicas: u32 },
}

/// Where to stream the chunks of a `PutChunks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadGrant {
    pub primary: String,
    pub ticket: Ticket,
}

/// A replica the primary forwards to, with the ticket it must present there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaTarget {
    pub addr: String,
    pub ticket: Ticket,
}

/// One version of one name in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub version: u32,
    pub size: u64,
    /// The content's identity (see [`content_digest`]).
    pub hash: BlobHash,
    /// Confirmed copies on live servers of its least-kept chunk.
    pub replicas: u32,
    /// Milliseconds since the Unix epoch when the version was committed.
    pub created_ms: u64,
    /// Stored before chunks: one plain, unencrypted whole-file copy.
    pub plain: bool,
    /// What a restore gives back besides the bytes (none before chunks).
    pub meta: Option<FileMeta>,
}

/// One child of a folder being browsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Child {
    Folder(FolderEntry),
    File(FileEntry),
}

impl Child {
    /// Its whole name; a folder's ends in '/'.
    pub fn name(&self) -> &str {
        match self {
            Child::Folder(f) => &f.name,
            Child::File(f) => &f.name,
        }
    }
}

/// A folder of backed-up names: what the newest versions under it hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderEntry {
    /// Its whole name, ending in '/'.
    pub name: String,
    pub files: u64,
    pub size: u64,
    /// Versions under it short of copies, as the last healing pass counted.
    pub short: u64,
    /// When the newest of them was committed (ms since the Unix epoch).
    pub newest_ms: u64,
}

/// The cluster as the manager sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub replicas: u32,
    pub servers: Vec<ServerStatus>,
    /// Stored contents with fewer live copies than `replicas`.
    pub under_replicated: u64,
    /// Copies being made right now to heal them.
    pub healing: u64,
    /// Copies being moved right now to even the load over the servers.
    pub moving: u64,
    /// The manager's catalog is older than the snapshots its servers keep:
    /// it records nothing new until the operator recovers it.
    pub stale_catalog: bool,
    /// Grows with every change to the catalog (backups, removals, copies
    /// made or dropped), so a viewer refetches only when it moved.
    pub catalog_changes: u64,
}

/// One blob a server holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    pub hash: BlobHash,
    pub size: u64,
    /// Seconds since the blob was written.
    pub age_secs: u64,
}

/// One version's copies, each hashed where it lives. A version is as safe
/// as its least-kept chunk: the counts are that chunk's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCheck {
    pub name: String,
    pub version: u32,
    /// How many distinct chunks were checked.
    pub chunks: u32,
    /// Each copy on a live server, in order: true if it hashed intact.
    pub copies: Vec<bool>,
    /// Copies on servers that are down or could not be asked.
    pub unreachable: u32,
    /// Copies that failed their hash earlier, kept aside.
    pub damaged: u32,
    /// Intact copies the cluster keeps of every version.
    pub wanted: u32,
}

impl VersionCheck {
    pub fn intact(&self) -> u32 {
        self.copies.iter().filter(|ok| **ok).count() as u32
    }
}

/// A version with fewer intact copies on live servers than wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionHealth {
    pub name: String,
    pub version: u32,
    /// Copies on live servers, not known to be damaged.
    pub live: u32,
    /// Copies that failed their hash, kept aside.
    pub damaged: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub id: ServerId,
    pub addr: String,
    pub zone: Option<String>,
    pub alive: bool,
    /// Milliseconds since the last heartbeat.
    pub silent_ms: u64,
    pub latency_ms: f64,
    /// Recent round trips, oldest first, for a sparkline.
    pub latency_history_ms: Vec<f64>,
    pub stored_bytes: u64,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    pub blobs: u64,
    pub read_only: bool,
    /// The server-choice score among the live servers; lower is better.
    pub score: Option<f64>,
}
