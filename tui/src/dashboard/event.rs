//! What flows through the dashboard's event loop: messages tasks send to
//! the app, and effects the app asks the loop to run. Both the app and the
//! tasks depend on this module, and it on neither.

use std::path::PathBuf;

use arca_shared::BlobHash;
use arca_shared::protocol::{ClusterStatus, FileEntry};

use crate::client::TransferProgress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Upload,
    Restore,
}

/// Work the event loop must start for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// List a folder, relative to the files folder ("" is the top).
    ListDir(String),
    Upload(Vec<PathBuf>),
    Restore {
        name: String,
        version: Option<u32>,
    },
    Delete {
        name: String,
        version: Option<u32>,
    },
    Versions(String),
    /// Try this passphrase on the client's key.
    Unlock(Secret),
}

/// Typed text that is never shown, nor printed in a debug line.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The state of the dashboard's link to the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    Down(String),
}

/// One local file or folder, as the browser shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEntry {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub modified_ms: u64,
    /// The content hash, once computed (files only).
    pub hash: Option<BlobHash>,
}

/// What tasks tell the UI loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Link(Link),
    Cluster(ClusterStatus),
    Catalog(Vec<FileEntry>),
    Versions(String, Vec<FileEntry>),
    /// The entries of a folder, relative to the files folder.
    Dir(String, Vec<LocalEntry>),
    Queued {
        id: u64,
        name: String,
        kind: Kind,
    },
    Progress {
        id: u64,
        progress: TransferProgress,
    },
    /// A one-line message for the status bar.
    Flash(String),
    /// This client's key is open: local files can be compared with backups.
    Unlocked,
    /// The passphrase typed does not open the key.
    PassphraseRefused(String),
}
