//! The restore's writer, on a thread of its own while the next chunks come:
//! each file is written into a temp file beside its destination and, once
//! whole, waits for the next durability point. There a committer, on a
//! thread of its own while the next files are written, makes the batch
//! durable with one `syncfs` (one `fsync` for a lone file) and only then
//! renames it into place: a file is never visible half written, and ten
//! thousand small files cost a few syncs, not ten thousand.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use arca_shared::limits::CHUNK_SIZE;
use arca_shared::meta::FileMeta;
use arca_shared::stream::SparseFile;
use arca_shared::vault::Opened;
use tokio::sync::mpsc;

use super::{RestoreEvent, RestoreEvents, Restored};
use crate::client::ClientError;
use crate::client::meta;

/// Whole files waiting for their durability point, at most.
const BATCH_FILES: usize = 1024;
const BATCH_BYTES: u64 = 256 << 20;
/// Files bigger than this are written around the page cache, and keep
/// their holes.
const BIG: u64 = CHUNK_SIZE as u64;

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
    sink: Sink,
    path: tempfile::TempPath,
    written: u64,
}

/// Where a file's bytes go: a big one around the page cache, its runs of
/// zeros left holes; a small one (a block or less) through it.
enum Sink {
    Small(File),
    Big(SparseFile),
}

/// A file written whole, not yet durable.
struct Written {
    file: File,
    path: tempfile::TempPath,
}

/// Whole files, ready for their durability point.
type Whole = Vec<(usize, Written)>;

struct Writer {
    settler: Settler,
    writing: HashMap<usize, Partial>,
    whole: Whole,
    whole_bytes: u64,
    /// Folders made so far, not to ask again for each file.
    made: HashSet<PathBuf>,
    commits: std_mpsc::SyncSender<Whole>,
    committer: std::thread::JoinHandle<Outcomes>,
}

impl Writer {
    fn new(targets: Vec<Target>, events: RestoreEvents) -> Self {
        let settler = Settler::new(Arc::new(targets), events);
        // One batch committing while the next is written.
        let (commits, batches) = std_mpsc::sync_channel(1);
        let committer = Committer {
            settler: settler.again(),
            renamed_on: HashMap::new(),
        };
        Self {
            settler,
            writing: HashMap::new(),
            whole: Vec::new(),
            whole_bytes: 0,
            made: HashSet::new(),
            commits,
            committer: std::thread::spawn(move || committer.run(batches)),
        }
    }

    fn take(&mut self, piece: Piece) {
        match piece {
            Piece::Settled { file, outcome } => {
                self.writing.remove(&file);
                self.settler.settle(file, outcome);
            }
            Piece::Bytes { file, bytes } => {
                if self.settler.outcomes[file].is_some() {
                    return;
                }
                if let Err(e) = self.write(file, &bytes) {
                    self.writing.remove(&file);
                    self.settler.settle(file, Err(e));
                }
            }
        }
        if self.whole.len() >= BATCH_FILES || self.whole_bytes >= BATCH_BYTES {
            self.hand_over();
        }
    }

    fn write(&mut self, file: usize, bytes: &[u8]) -> Result<(), ClientError> {
        let partial = match self.writing.remove(&file) {
            Some(partial) => partial,
            None => self.begin(file)?,
        };
        let mut partial = partial;
        let target = &self.settler.targets[file];
        let cannot = |e| ClientError::local(format!("cannot write {}", target.dest.display()), e);
        match &mut partial.sink {
            Sink::Small(file) => file.write_all(bytes),
            Sink::Big(file) => file.write(bytes),
        }
        .map_err(cannot)?;
        partial.written += bytes.len() as u64;
        if partial.written < target.size {
            self.writing.insert(file, partial);
            return Ok(());
        }
        let written = match partial.sink {
            Sink::Small(file) => file,
            Sink::Big(file) => file.finish().map_err(cannot)?,
        };
        self.whole_bytes += target.size;
        self.whole.push((
            file,
            Written {
                file: written,
                path: partial.path,
            },
        ));
        Ok(())
    }

    /// A temp file beside the destination, in a folder made if need be.
    fn begin(&mut self, file_index: usize) -> Result<Partial, ClientError> {
        let dest = &self.settler.targets[file_index].dest;
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
        let sink = match self.settler.targets[file_index].size > BIG {
            true => Sink::Big(SparseFile::new(file).map_err(|e| {
                ClientError::local(format!("cannot write in {}", dir.display()), e)
            })?),
            false => Sink::Small(file),
        };
        Ok(Partial {
            sink,
            path,
            written: 0,
        })
    }

    /// Hands the whole files to the committer.
    fn hand_over(&mut self) {
        let whole = std::mem::take(&mut self.whole);
        self.whole_bytes = 0;
        if whole.is_empty() {
            return;
        }
        if let Err(std_mpsc::SendError(whole)) = self.commits.send(whole) {
            for (file, _) in whole {
                let stopped = ClientError::Local("the restore's committer stopped".into());
                self.settler.settle(file, Err(stopped));
            }
        }
    }

    /// Commits what is whole; each file's outcome, from either thread.
    fn finish(mut self) -> Outcomes {
        self.hand_over();
        drop(self.commits);
        let committed = self.committer.join().unwrap_or_default();
        let mut outcomes = self.settler.outcomes;
        for (mine, theirs) in outcomes.iter_mut().zip(committed) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        outcomes
    }
}

/// Tells each file's outcome, and keeps it.
struct Settler {
    targets: Arc<Vec<Target>>,
    events: RestoreEvents,
    outcomes: Outcomes,
}

impl Settler {
    fn new(targets: Arc<Vec<Target>>, events: RestoreEvents) -> Self {
        let outcomes = targets.iter().map(|_| None).collect();
        Self {
            targets,
            events,
            outcomes,
        }
    }

    /// One for another thread, with outcomes of its own.
    fn again(&self) -> Self {
        Self::new(self.targets.clone(), self.events.clone())
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
}

/// Makes batches of whole files durable and renames them into place.
struct Committer {
    settler: Settler,
    /// A folder of each file system renamed into, to sync the renames at the end.
    renamed_on: HashMap<u64, PathBuf>,
}

impl Committer {
    fn run(mut self, batches: std_mpsc::Receiver<Whole>) -> Outcomes {
        for whole in batches {
            self.commit(whole);
        }
        for dir in self.renamed_on.values() {
            if let Err(e) = File::open(dir).and_then(|d| syncfs(&d)) {
                tracing::warn!("cannot flush the renames in {}: {e}", dir.display());
            }
        }
        self.settler.outcomes
    }

    fn commit(&mut self, whole: Whole) {
        let targets = self.settler.targets.clone();
        let mut ready = Vec::with_capacity(whole.len());
        for (file, partial) in whole {
            let target = &targets[file];
            match target
                .meta
                .as_ref()
                .map(|m| meta::apply_to(&partial.file, &target.dest, m))
            {
                Some(Err(e)) => self
                    .settler
                    .settle(file, Err(ClientError::Local(e.to_string()))),
                _ => ready.push((file, partial)),
            }
        }
        if let Err(e) = sync(&ready) {
            for (file, _) in ready {
                let e = ClientError::local("cannot flush the restored files", &e);
                self.settler.settle(file, Err(e));
            }
            return;
        }
        for (file, partial) in ready {
            let target = &targets[file];
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
            self.settler
                .settle(file, moved.map(|()| Restored::Written { version, size }));
        }
    }
}

/// Makes files durable: a lone one with its own `fsync`, more with one
/// `syncfs` for each file system they are on.
fn sync(files: &[(usize, Written)]) -> std::io::Result<()> {
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
