//! The restore's writer, on a thread of its own while the next chunks come:
//! each file is written into a temp file beside its destination and, once
//! whole, waits for the next durability point. There, a batch of files is
//! made durable with one `syncfs` (one `fsync` for a lone file) and only
//! then renamed into place: a file is never visible half written, and ten
//! thousand small files cost a few syncs, not ten thousand.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use arca_shared::meta::FileMeta;
use arca_shared::vault::Opened;
use tokio::sync::mpsc;

use super::{RestoreEvent, RestoreEvents, Restored};
use crate::client::ClientError;
use crate::client::meta;

/// Whole files waiting for their durability point, at most.
const BATCH_FILES: usize = 1024;
const BATCH_BYTES: u64 = 256 << 20;
/// Runs of zeros at least this long stay holes, as in a sparse file.
const HOLE_MIN: usize = 4096;

/// A file the restore writes or settles.
pub(super) struct Target {
    pub name: String,
    pub dest: PathBuf,
    pub version: u32,
    pub size: u64,
    pub meta: Option<FileMeta>,
}

/// What the writer is handed, in order.
pub(super) enum Piece {
    /// The next bytes of a file (none, for an empty one).
    Bytes { file: usize, bytes: Opened },
    /// A file decided without its bytes: already there, a link, or failed.
    Settled {
        file: usize,
        outcome: Result<Restored, ClientError>,
    },
}

pub(super) type Outcomes = Vec<Option<Result<Restored, ClientError>>>;

/// Starts the writer; it ends once the sender is dropped and hands back
/// each target's outcome (`None` for one it never heard the end of).
pub(super) fn start(
    targets: Vec<Target>,
    events: RestoreEvents,
) -> (mpsc::Sender<Vec<Piece>>, tokio::task::JoinHandle<Outcomes>) {
    // One window queued while one is written and the next fetched.
    let (pieces, mut incoming) = mpsc::channel::<Vec<Piece>>(1);
    let task = tokio::task::spawn_blocking(move || {
        let mut writer = Writer::new(targets, events);
        while let Some(window) = incoming.blocking_recv() {
            for piece in window {
                writer.take(piece);
            }
        }
        writer.finish()
    });
    (pieces, task)
}

/// A file being written.
struct Partial {
    file: File,
    path: tempfile::TempPath,
    written: u64,
}

struct Writer {
    targets: Vec<Target>,
    events: RestoreEvents,
    outcomes: Outcomes,
    writing: HashMap<usize, Partial>,
    whole: Vec<(usize, Partial)>,
    whole_bytes: u64,
    /// Folders made so far, not to ask again for each file.
    made: HashSet<PathBuf>,
    /// A folder of each file system written to, to sync the renames at the end.
    renamed_on: HashMap<u64, PathBuf>,
}

impl Writer {
    fn new(targets: Vec<Target>, events: RestoreEvents) -> Self {
        let outcomes = targets.iter().map(|_| None).collect();
        Self {
            targets,
            events,
            outcomes,
            writing: HashMap::new(),
            whole: Vec::new(),
            whole_bytes: 0,
            made: HashSet::new(),
            renamed_on: HashMap::new(),
        }
    }

    fn take(&mut self, piece: Piece) {
        match piece {
            Piece::Settled { file, outcome } => {
                self.writing.remove(&file);
                self.settle(file, outcome);
            }
            Piece::Bytes { file, bytes } => {
                if self.outcomes[file].is_some() {
                    return;
                }
                if let Err(e) = self.write(file, &bytes) {
                    self.writing.remove(&file);
                    self.settle(file, Err(e));
                }
            }
        }
        if self.whole.len() >= BATCH_FILES || self.whole_bytes >= BATCH_BYTES {
            self.commit();
        }
    }

    fn write(&mut self, file: usize, bytes: &[u8]) -> Result<(), ClientError> {
        let partial = match self.writing.remove(&file) {
            Some(partial) => partial,
            None => self.begin(file)?,
        };
        let mut partial = partial;
        let target = &self.targets[file];
        let cannot = |e| ClientError::local(format!("cannot write {}", target.dest.display()), e);
        if bytes.len() >= HOLE_MIN && bytes.iter().all(|b| *b == 0) {
            partial
                .file
                .seek(SeekFrom::Current(bytes.len() as i64))
                .map_err(cannot)?;
        } else {
            partial.file.write_all(bytes).map_err(cannot)?;
        }
        partial.written += bytes.len() as u64;
        if partial.written < target.size {
            self.writing.insert(file, partial);
            return Ok(());
        }
        // A hole at the end is only a cursor past it: give the file its length.
        partial.file.set_len(target.size).map_err(cannot)?;
        self.whole_bytes += target.size;
        self.whole.push((file, partial));
        Ok(())
    }

    /// A temp file beside the destination, in a folder made if need be.
    fn begin(&mut self, file: usize) -> Result<Partial, ClientError> {
        let dest = &self.targets[file].dest;
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        if !self.made.contains(&dir) {
            std::fs::create_dir_all(&dir).map_err(|e| ClientError::local(dir.display(), e))?;
            self.made.insert(dir.clone());
        }
        let (file, path) = tempfile::Builder::new()
            .prefix(".arca-restore-")
            .tempfile_in(&dir)
            .map_err(|e| ClientError::local(format!("cannot write in {}", dir.display()), e))?
            .into_parts();
        Ok(Partial {
            file,
            path,
            written: 0,
        })
    }

    /// Makes the whole files durable and renames them into place.
    fn commit(&mut self) {
        let whole = std::mem::take(&mut self.whole);
        self.whole_bytes = 0;
        if whole.is_empty() {
            return;
        }
        let mut ready = Vec::with_capacity(whole.len());
        for (file, partial) in whole {
            let target = &self.targets[file];
            match target
                .meta
                .as_ref()
                .map(|m| meta::apply_to(&partial.file, &target.dest, m))
            {
                Some(Err(e)) => self.settle(file, Err(ClientError::Local(e.to_string()))),
                _ => ready.push((file, partial)),
            }
        }
        if let Err(e) = sync(&ready) {
            for (file, _) in ready {
                let e = ClientError::local("cannot flush the restored files", &e);
                self.settle(file, Err(e));
            }
            return;
        }
        for (file, partial) in ready {
            let target = &self.targets[file];
            let dev = partial.file.metadata().map(|m| m.dev()).unwrap_or(0);
            let moved = partial
                .path
                .persist(&target.dest)
                .map_err(|e| ClientError::local(target.dest.display(), e.error));
            if moved.is_ok()
                && let Some(dir) = target.dest.parent()
            {
                self.renamed_on.entry(dev).or_insert_with(|| dir.to_owned());
            }
            let (version, size) = (target.version, target.size);
            self.settle(file, moved.map(|()| Restored::Written { version, size }));
        }
    }

    fn settle(&mut self, file: usize, outcome: Result<Restored, ClientError>) {
        let target = &self.targets[file];
        let _ = self.events.send(RestoreEvent::Done {
            name: target.name.clone(),
            dest: target.dest.clone(),
            outcome: outcome.as_ref().copied().map_err(ToString::to_string),
        });
        self.outcomes[file] = Some(outcome);
    }

    /// Commits what is whole, and makes the renames durable too.
    fn finish(mut self) -> Outcomes {
        self.commit();
        for dir in self.renamed_on.values() {
            if let Err(e) = File::open(dir).and_then(|d| syncfs(&d)) {
                tracing::warn!("cannot flush the renames in {}: {e}", dir.display());
            }
        }
        self.outcomes
    }
}

/// Makes files durable: a lone one with its own `fsync`, more with one
/// `syncfs` for each file system they are on.
fn sync(files: &[(usize, Partial)]) -> std::io::Result<()> {
    if let [(_, lone)] = files {
        return lone.file.sync_all();
    }
    let mut synced = HashSet::new();
    for (_, partial) in files {
        if synced.insert(partial.file.metadata()?.dev()) {
            syncfs(&partial.file)?;
        }
    }
    Ok(())
}

fn syncfs(file: &File) -> std::io::Result<()> {
    rustix::fs::syncfs(file).map_err(std::io::Error::from)
}
