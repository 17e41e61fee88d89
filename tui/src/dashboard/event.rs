//! What flows through the dashboard's event loop: messages tasks send to
//! the app, and effects the app asks the loop to run. Both the app and the
//! tasks depend on this module, and it on neither.

use std::path::PathBuf;

use arca_shared::BlobHash;
use arca_shared::protocol::{Child, ClusterStatus, FileEntry};

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
    /// Show this part of the catalog from now on.
    View(View),
    /// Try this passphrase on the client's key.
    Unlock(Secret),
}

/// The part of the catalog on screen, which the poller fetches again
/// whenever the catalog changes: a window of the Backups folder shown (its
/// children matching the filter), the versions of the name expanded there,
/// and the names of the local files shown, for their backup state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub folder: String,
    pub filter: String,
    pub offset: u64,
    pub limit: u32,
    pub expanded: Option<String>,
    pub names: Vec<String>,
}

/// A window of the Backups tree: `entries` are the children of `folder`
/// matching `filter` from the `offset`-th, of `total` in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub folder: String,
    pub filter: String,
    pub total: u64,
    pub offset: u64,
    pub entries: Vec<Child>,
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
    Catalog(Window),
    Versions(String, Vec<FileEntry>),
    /// The newest backups of the names asked about (those that have one).
    States {
        names: Vec<String>,
        found: Vec<FileEntry>,
    },
    /// The entries of a folder, relative to the files folder.
    Dir(String, Vec<LocalEntry>),
    /// A transfer starts: on its own, or as a part of a job.
    Queued {
        id: u64,
        name: String,
        kind: Kind,
        job: Option<u64>,
    },
    /// A job of many files starts: this many, of these bytes in all.
    Job {
        id: u64,
        name: String,
        kind: Kind,
        files: usize,
        bytes: u64,
    },
    /// One of a job's files is done, or failed: its name and why.
    FileDone {
        job: u64,
        failure: Option<String>,
    },
    /// A job ended; why, if it stopped before its end.
    JobEnded {
        job: u64,
        stopped: Option<String>,
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
