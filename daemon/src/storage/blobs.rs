//! Blobs on disk: `<data>/blobs/<first two hex>/<hash>`, written through
//! `<data>/tmp/` so nothing is visible in `blobs/` before it is complete,
//! verified and fsynced. Copies that fail their hash wait in
//! `<data>/quarantine/<hash>` until the manager says a good copy exists.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_shared::BlobHash;
use arca_shared::keys::Nonce;
use arca_shared::protocol::{BlobInfo, Item, ServerStats};
use arca_shared::stream::FileSink;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Where a blob lives inside `blobs/`: `<first two hex>/<hash>`.
fn in_blobs(hash: &BlobHash) -> String {
    let hex = hash.to_hex();
    format!("{}/{hex}", &hex[..2])
}

/// Where damaged copies are kept aside, outside what is served and listed.
const QUARANTINE: &str = "quarantine";

/// Length of a temp file's random name.
const TEMP_NAME: usize = 24;

/// The store's two folders, held open: temp files are written and moved into
/// place relative to them, with no path walked from the root.
struct Dirs {
    tmp: OwnedFd,
    blobs: OwnedFd,
}

impl Dirs {
    fn write_temp(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.tmp, name, flags, Mode::from(0o644))?;
        std::fs::File::from(fd).write_all(bytes)
    }

    /// Moves a verified temp file to its blob's place. A file already
    /// there is replaced, never trusted: it may have been damaged or planted
    /// since it was written. Returns the size of the file replaced, if any.
    fn place(&self, name: &str, hash: &BlobHash) -> io::Result<Option<u64>> {
        let target = in_blobs(hash);
        let renamed = rustix::fs::renameat_with(
            &self.tmp,
            name,
            &self.blobs,
            &target,
            RenameFlags::NOREPLACE,
        );
        match renamed {
            Ok(()) => return Ok(None),
            // A file system without the flag, or a blob already there.
            Err(Errno::EXIST | Errno::INVAL | Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
        let replaced = match rustix::fs::statat(&self.blobs, &target, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Some(stat.st_size as u64),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(e.into()),
        };
        rustix::fs::renameat(&self.tmp, name, &self.blobs, &target)?;
        Ok(replaced)
    }

    /// Flushes everything written to the store's file system to disk.
    fn sync(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.tmp).map_err(io::Error::from)
    }
}

pub struct BlobStore {
    root: PathBuf,
    dirs: Arc<Dirs>,
    capacity: Option<u64>,
    stored: AtomicU64,
    blobs: AtomicU64,
}

/// A blob being received; removed on drop unless committed. Small blobs of
/// a batch wait in memory and reach the disk together at commit; big ones
/// stream to disk from a blocking thread as they arrive.
pub struct TempBlob {
    path: PathBuf,
    content: Content,
    committed: bool,
}

enum Content {
    Memory(Vec<u8>),
    /// Being written by its sink's thread.
    Disk(FileSink),
    /// Written out; the sink's thread and buffers are gone.
    Written,
}

impl TempBlob {
    fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.content {
            Content::Disk(disk) => disk.write(bytes).await,
            Content::Memory(memory) => {
                memory.extend_from_slice(bytes);
                Ok(())
            }
            Content::Written => Err(io::Error::other("this temp blob is closed")),
        }
    }

    /// Makes this file durable under `to` (a rename within the data
    /// folder) instead of in `blobs/`.
    pub async fn persist(mut self, to: &Path) -> io::Result<()> {
        self.close().await?;
        let memory = match std::mem::replace(&mut self.content, Content::Written) {
            Content::Memory(memory) => Some(memory),
            _ => None,
        };
        let (from, to) = (self.path.clone(), to.to_owned());
        tokio::task::spawn_blocking(move || {
            if let Some(memory) = memory {
                std::fs::write(&from, memory)?;
            }
            std::fs::File::open(&from)?.sync_all()?;
            std::fs::rename(&from, &to)?;
            match to.parent() {
                Some(dir) => std::fs::File::open(dir)?.sync_all(),
                None => Ok(()),
            }
        })
        .await
        .map_err(io::Error::other)??;
        self.committed = true;
        Ok(())
    }

    /// Waits until a streamed blob is all on disk, so a batch holds no
    /// writer thread per file until it commits.
    pub async fn close(&mut self) -> io::Result<()> {
        if let Content::Disk(disk) = &mut self.content {
            disk.finish().await?;
            self.content = Content::Written;
        }
        Ok(())
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens a file this server wrote, to read it: never through a symbolic
/// link, never blocking (a FIFO planted in its place would block forever),
/// and only if it is a regular file.
pub fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = std::fs::File::from(rustix::fs::open(path, flags, Mode::empty())?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

impl BlobStore {
    /// Opens (creating) the store, empties `tmp/` of any interrupted writes
    /// and counts what is stored.
    pub fn open(root: &Path, capacity: Option<u64>) -> io::Result<Self> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(root.join(QUARANTINE))?;
        let blobs = root.join("blobs");
        // Every shard up front: commits then never look for one.
        for shard in 0..=255u8 {
            std::fs::create_dir_all(blobs.join(format!("{shard:02x}")))?;
        }
        let open_dir = |path: &Path| std::fs::File::open(path).map(OwnedFd::from);
        let store = Self {
            root: root.to_owned(),
            dirs: Arc::new(Dirs {
                tmp: open_dir(&tmp)?,
                blobs: open_dir(&blobs)?,
            }),
            capacity,
            stored: AtomicU64::new(0),
            blobs: AtomicU64::new(0),
        };
        for blob in store.list()? {
            store.stored.fetch_add(blob.size, Ordering::Relaxed);
            store.blobs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// Every complete blob, with its size and age.
    pub fn list(&self) -> io::Result<Vec<BlobInfo>> {
        let mut found = Vec::new();
        for shard in std::fs::read_dir(self.root.join("blobs"))? {
            for entry in std::fs::read_dir(shard?.path())? {
                let entry = entry?;
                if let Some(hash) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                    && entry.file_type()?.is_file()
                {
                    let meta = entry.metadata()?;
                    let age_secs = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .map_or(0, |d| d.as_secs());
                    found.push(BlobInfo {
                        hash,
                        size: meta.len(),
                        age_secs,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Hashes a stored blob in place: true if it still matches its name.
    pub async fn verify(&self, hash: &BlobHash) -> io::Result<bool> {
        let path = self.path(hash);
        let expected = *hash;
        tokio::task::spawn_blocking(move || {
            Ok(BlobHash::of_reader(open_regular(&path)?)? == expected)
        })
        .await
        .map_err(io::Error::other)?
    }

    fn path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("blobs").join(in_blobs(hash))
    }

    /// Opens a stored blob to read it (see [`open_regular`]).
    pub async fn read(&self, hash: &BlobHash) -> io::Result<tokio::fs::File> {
        let path = self.path(hash);
        let file = tokio::task::spawn_blocking(move || open_regular(&path))
            .await
            .map_err(io::Error::other)??;
        Ok(tokio::fs::File::from_std(file))
    }

    /// A temp blob streamed to a file as it arrives.
    pub async fn temp(&self) -> io::Result<TempBlob> {
        let path = self.temp_path();
        let file = tokio::fs::File::create_new(&path).await?.into_std().await;
        Ok(TempBlob {
            path,
            content: Content::Disk(FileSink::start(file)),
            committed: false,
        })
    }

    /// A temp blob kept in memory until [`BlobStore::commit`].
    pub fn temp_in_memory(&self, size: usize) -> TempBlob {
        TempBlob {
            path: self.temp_path(),
            content: Content::Memory(Vec::with_capacity(size)),
            committed: false,
        }
    }

    fn temp_path(&self) -> PathBuf {
        let name = blake3::Hash::from(Nonce::fresh().0).to_hex();
        self.root.join("tmp").join(&name[..TEMP_NAME])
    }

    /// Makes verified temp blobs durable and visible, all in one blocking
    /// task: in-memory blobs are written out, one `syncfs` makes every temp
    /// file durable, each is renamed into place, and a second `syncfs` makes
    /// the renames durable. Two syncs per batch, not an fsync per file.
    pub async fn commit(&self, blobs: Vec<(TempBlob, Item)>) -> io::Result<()> {
        let mut blobs = blobs;
        for (temp, _) in &mut blobs {
            temp.close().await?;
        }
        let dirs = self.dirs.clone();
        let (added, replaced) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            for (temp, _) in &blobs {
                if let Content::Memory(memory) = &temp.content {
                    dirs.write_temp(temp.name(), memory)?;
                }
            }
            dirs.sync()?;
            let (mut added, mut replaced) = ((0, 0), (0, 0));
            for (temp, item) in &mut blobs {
                let old = dirs.place(temp.name(), &item.hash)?;
                temp.committed = true;
                added = (added.0 + item.size, added.1 + 1);
                if let Some(old) = old {
                    replaced = (replaced.0 + old, replaced.1 + 1);
                }
            }
            dirs.sync()?;
            Ok((added, replaced))
        })
        .await
        .map_err(io::Error::other)??;
        self.stored.fetch_add(added.0, Ordering::Relaxed);
        self.blobs.fetch_add(added.1, Ordering::Relaxed);
        self.forget(replaced.0, replaced.1);
        Ok(())
    }

    /// Takes bytes and blobs off the counts, never below zero.
    fn forget(&self, bytes: u64, blobs: u64) {
        let less = |by: u64| move |n: u64| Some(n.saturating_sub(by));
        let _ = self
            .stored
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less(bytes));
        let _ = self
            .blobs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less(blobs));
    }

    /// Deletes a blob; returns the bytes freed (0 if it was not here).
    pub async fn remove(&self, hash: &BlobHash) -> io::Result<u64> {
        let path = self.path(hash);
        let size = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        tokio::fs::remove_file(&path).await?;
        self.forget(size, 1);
        Ok(size)
    }

    /// Moves a damaged blob out of `blobs/` into the quarantine, where it
    /// is neither served nor listed but not lost; false if it was not here.
    pub async fn quarantine(&self, hash: &BlobHash) -> io::Result<bool> {
        let from = self.path(hash);
        let size = match tokio::fs::symlink_metadata(&from).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        tokio::fs::rename(&from, self.quarantined(hash)).await?;
        self.forget(size, 1);
        Ok(true)
    }

    /// Deletes a damaged copy kept aside, if there is one.
    pub async fn delete_quarantined(&self, hash: &BlobHash) -> io::Result<()> {
        match tokio::fs::remove_file(self.quarantined(hash)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn quarantined(&self, hash: &BlobHash) -> PathBuf {
        self.root.join(QUARANTINE).join(hash.to_hex().as_str())
    }

    /// Bytes this server can still take: its capacity left, bounded by the disk.
    pub fn free_bytes(&self) -> u64 {
        self.stats().free_bytes
    }

    pub fn stats(&self) -> ServerStats {
        let stored = self.stored.load(Ordering::Relaxed);
        // One look at the file system tells both its room and whether it
        // is mounted read-only.
        let disk = rustix::fs::fstatvfs(&self.dirs.tmp).ok();
        let disk_free = disk
            .as_ref()
            .map_or(0, |d| d.f_frsize.saturating_mul(d.f_bavail));
        let capacity = self.capacity.unwrap_or(stored + disk_free);
        let mounted_read_only =
            disk.is_some_and(|d| d.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
        let read_only = mounted_read_only || !self.may_write();
        ServerStats {
            stored_bytes: stored,
            capacity_bytes: capacity,
            free_bytes: if read_only {
                0
            } else {
                capacity.saturating_sub(stored).min(disk_free)
            },
            blobs: self.blobs.load(Ordering::Relaxed),
            read_only,
        }
    }

    /// Whether this process may write to the temp folder.
    fn may_write(&self) -> bool {
        rustix::fs::accessat(
            &self.dirs.tmp,
            ".",
            rustix::fs::Access::WRITE_OK,
            AtFlags::empty(),
        )
        .is_ok()
    }
}
