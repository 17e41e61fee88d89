//! What a transfer reports while it runs, for progress bars and the dashboard.

use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Queued,
    Hashing,
    Uploading,
    /// Every byte reached the primary; replicas are still confirming.
    Replicating,
    Committed {
        version: u32,
    },
    Unchanged {
        version: u32,
    },
    /// A batch of files is backed up (each committed, unchanged or skipped).
    BackedUp {
        files: usize,
    },
    /// An attempt failed; the next one starts soon.
    Retrying {
        attempt: u32,
        reason: String,
    },
    Restoring,
    Restored {
        version: u32,
    },
    /// The files of a folder are restored (each written, current, or failed).
    RestoredFiles {
        files: usize,
    },
    Failed(String),
}

impl Phase {
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Phase::Committed { .. }
                | Phase::Unchanged { .. }
                | Phase::BackedUp { .. }
                | Phase::Restored { .. }
                | Phase::RestoredFiles { .. }
                | Phase::Failed(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransferProgress {
    pub phase: Phase,
    pub total: u64,
    /// Bytes sent to the primary (or received, for a restore).
    pub sent: u64,
    /// Bytes each replica has written, by replica number.
    pub replicas: Vec<u64>,
}

/// The sending side of a transfer's progress.
pub type Progress = watch::Sender<TransferProgress>;

pub(crate) fn set_phase(progress: &Progress, phase: Phase) {
    progress.send_modify(|p| p.phase = phase);
}
