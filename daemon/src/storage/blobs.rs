//! Blobs on disk. Each batch a server receives becomes one pack file,
//! `<data>/packs/<number>` (see [`super::pack`]), written through `<data>/tmp/`
//! so nothing is visible before it is complete, verified and durable: one
//! fsync of the pack, one rename, one fsync of the folder, whatever else the
//! file system holds unsynced. Blobs from before packs, one file each at
//! `<data>/blobs/<first two hex>/<hash>`, are still read, and deleted one by
//! one. Copies that fail their hash wait in `<data>/quarantine/<hash>`
//! until the manager says a good copy exists.
//!
//! Which blob is where lives in memory (see [`super::index`]). Deleting a packed blob drops it from the index at once; a compaction in
//! the background then rewrites its pack without it (or removes the pack),
//! so a deletion that a crash overtakes only brings back an orphan.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arca_shared::BlobHash;
use arca_shared::keys::Nonce;
use arca_shared::protocol::{BlobInfo, Item, ServerStats};
use arca_shared::stream::FileSink;
use arca_shared::sync::LockAnyway;
use rustix::fs::{AtFlags, Mode, OFlags};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::index::{Index, PACKS, PackInfo, Place, load_loose, loose_path, pack_name, read_header};
use super::pack::{self, Entry};

/// Where damaged copies are kept aside, outside what is served and listed.
const QUARANTINE: &str = "quarantine";

/// Length of a temp file's random name.
const TEMP_NAME: usize = 24;

/// How long deletions may keep coming before their packs are rewritten:
/// a collection deletes blob after blob, and each pack is best rewritten once.
const COMPACT_AFTER: Duration = Duration::from_millis(200);

/// The store's folders, held open: packs are written and moved into place
/// relative to them, with no path walked from the root.
struct Dirs {
    tmp: OwnedFd,
    packs: OwnedFd,
}

impl Dirs {
    fn sync_packs(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.packs).map_err(io::Error::from)
    }

    /// Moves a synced temp file to its pack's place, durably.
    fn place(&self, temp: &str, number: u64) -> io::Result<()> {
        rustix::fs::renameat(&self.tmp, temp, &self.packs, pack_name(number))?;
        self.sync_packs()
    }

    fn open_pack(&self, number: u64) -> io::Result<File> {
        open_regular_at(&self.packs, pack_name(number))
    }
}

pub struct BlobStore {
    root: PathBuf,
    dirs: Arc<Dirs>,
    capacity: Option<u64>,
    index: Arc<Mutex<Index>>,
    /// Serialises compactions: a quarantine rewrites its pack at once,
    /// while the background pass may be at the same pack.
    compacting: Arc<Mutex<()>>,
    untidy: Notify,
}

/// A temp file streamed to disk as its bytes arrive, from a blocking
/// thread; removed on drop unless kept.
pub struct TempFile {
    path: PathBuf,
    sink: Option<FileSink>,
    kept: bool,
}

fn temp_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

impl TempFile {
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Some(sink) => sink.write(bytes).await,
            None => Err(io::Error::other("this temp file is closed")),
        }
    }

    /// Waits until every byte is written, and hands the file back.
    async fn finish(&mut self) -> io::Result<File> {
        match self.sink.take() {
            Some(mut sink) => sink.finish().await,
            None => Err(io::Error::other("this temp file is closed")),
        }
    }

    /// Makes this file durable under `to` (a rename within the data folder).
    pub async fn persist(mut self, to: &Path) -> io::Result<()> {
        let file = self.finish().await?;
        let (from, to) = (self.path.clone(), to.to_owned());
        tokio::task::spawn_blocking(move || {
            file.sync_all()?;
            std::fs::rename(&from, &to)?;
            match to.parent() {
                Some(dir) => File::open(dir)?.sync_all(),
                None => Ok(()),
            }
        })
        .await
        .map_err(io::Error::other)??;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A batch being received as one pack: its header is written first, then
/// each blob's bytes as they come, padded to where the header put them.
pub struct IncomingPack {
    file: TempFile,
    entries: Vec<Entry>,
    /// The blob being written, and the file's length so far.
    next: usize,
    at: u64,
}

impl IncomingPack {
    /// The next bytes of the batch, in the order the blobs were announced.
    pub async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        while !bytes.is_empty() {
            while self
                .entries
                .get(self.next)
                .is_some_and(|e| self.at >= e.end())
            {
                self.next += 1;
            }
            let Some(entry) = self.entries.get(self.next).copied() else {
                return Err(io::Error::other("more bytes than the batch announced"));
            };
            while self.at < entry.offset {
                let pad = (entry.offset - self.at).min(ZEROS.len() as u64) as usize;
                self.file.write(&ZEROS[..pad]).await?;
                self.at += pad as u64;
            }
            let n = ((entry.end() - self.at) as usize).min(bytes.len());
            self.file.write(&bytes[..n]).await?;
            self.at += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn end(&self) -> u64 {
        self.entries
            .last()
            .map_or(pack::header_len(0) as u64, Entry::end)
    }
}

/// Opens a file this server wrote, to read it: never through a symbolic
/// link, never blocking (a FIFO planted in its place would block forever),
/// and only if it is a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    open_regular_at(&rustix::fs::CWD, path)
}

pub(super) fn open_regular_at(
    dir: &impl std::os::fd::AsFd,
    path: impl AsRef<Path>,
) -> io::Result<File> {
    let path = path.as_ref();
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::openat(dir, path, flags, Mode::empty())?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// A stored blob opened to read, positioned where the read starts.
pub struct BlobReader {
    pub file: File,
    /// The blob's whole size, and the bytes left from where the file stands.
    pub size: u64,
    pub left: u64,
}

impl BlobStore {
    /// Opens (creating) the store, empties `tmp/` of any interrupted writes
    /// and reads which blob is where.
    pub fn open(root: &Path, capacity: Option<u64>) -> io::Result<Self> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        for dir in [&tmp, &root.join(QUARANTINE), &root.join(PACKS)] {
            std::fs::create_dir_all(dir)?;
        }
        let open_dir = |path: &Path| File::open(path).map(OwnedFd::from);
        let dirs = Dirs {
            tmp: open_dir(&tmp)?,
            packs: open_dir(&root.join(PACKS))?,
        };
        let mut index = Index::default();
        load_loose(root, &mut index)?;
        load_packs(root, &dirs, &mut index)?;
        let store = Self {
            root: root.to_owned(),
            dirs: Arc::new(dirs),
            capacity,
            index: Arc::new(Mutex::new(index)),
            compacting: Arc::default(),
            untidy: Notify::new(),
        };
        store.untidy.notify_one();
        Ok(store)
    }

    /// Every blob held, with its size and age.
    pub fn list(&self) -> Vec<BlobInfo> {
        let index = self.index.lock_anyway();
        index
            .blobs
            .iter()
            .map(|(hash, stored)| BlobInfo {
                hash: *hash,
                size: stored.size,
                age_secs: stored.written.elapsed().map_or(0, |d| d.as_secs()),
            })
            .collect()
    }

    /// Opens a blob, positioned `from` bytes into it. The index is held
    /// while the file opens, so a compaction cannot remove it in between.
    fn open_blob(&self, hash: &BlobHash, from: u64) -> io::Result<BlobReader> {
        let index = self.index.lock_anyway();
        let not_here = || io::Error::new(io::ErrorKind::NotFound, "no such blob here");
        let stored = *index.blobs.get(hash).ok_or_else(not_here)?;
        let (mut file, offset) = match stored.place {
            Place::Loose => (open_regular(&self.root.join(loose_path(hash)))?, 0),
            Place::Packed { pack, offset } => (self.dirs.open_pack(pack)?, offset),
        };
        drop(index);
        if from > stored.size {
            return Err(io::Error::other(format!(
                "offset {from} is past the end ({} bytes)",
                stored.size
            )));
        }
        file.seek(SeekFrom::Start(offset + from))?;
        Ok(BlobReader {
            file,
            size: stored.size,
            left: stored.size - from,
        })
    }

    /// Opens a stored blob to read it from `from` on.
    pub async fn read(self: &Arc<Self>, hash: &BlobHash, from: u64) -> io::Result<BlobReader> {
        let (store, hash) = (self.clone(), *hash);
        tokio::task::spawn_blocking(move || store.open_blob(&hash, from))
            .await
            .map_err(io::Error::other)?
    }

    /// Several small stored blobs' bytes, read in one go.
    pub async fn read_small(
        self: &Arc<Self>,
        hashes: Vec<BlobHash>,
    ) -> io::Result<Vec<io::Result<Vec<u8>>>> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            hashes
                .iter()
                .map(|hash| {
                    let blob = store.open_blob(hash, 0)?;
                    let mut bytes = Vec::with_capacity(blob.size as usize);
                    blob.file.take(blob.size).read_to_end(&mut bytes)?;
                    Ok(bytes)
                })
                .collect()
        })
        .await
        .map_err(io::Error::other)
    }

    /// Hashes a stored blob in place: true if it still matches its name.
    pub async fn verify(self: &Arc<Self>, hash: &BlobHash) -> io::Result<bool> {
        let (store, hash) = (self.clone(), *hash);
        tokio::task::spawn_blocking(move || {
            let blob = store.open_blob(&hash, 0)?;
            let file = blob.file.take(blob.size);
            Ok(BlobHash::of_reader(file)? == hash)
        })
        .await
        .map_err(io::Error::other)?
    }

    fn temp_path(&self) -> PathBuf {
        let name = blake3::Hash::from(Nonce::fresh().0).to_hex();
        self.root.join("tmp").join(&name[..TEMP_NAME])
    }

    /// A temp file streamed to disk as it arrives.
    pub async fn temp(&self) -> io::Result<TempFile> {
        let path = self.temp_path();
        let file = tokio::fs::File::create_new(&path).await?.into_std().await;
        Ok(TempFile {
            path,
            sink: Some(FileSink::start(file)?),
            kept: false,
        })
    }

    /// Starts receiving `items` as one pack.
    pub async fn receive(&self, items: &[Item]) -> io::Result<IncomingPack> {
        let blobs: Vec<(BlobHash, u64)> = items.iter().map(|i| (i.hash, i.size)).collect();
        let (header, entries) = pack::layout(&blobs);
        let mut file = self.temp().await?;
        file.write(&header).await?;
        Ok(IncomingPack {
            file,
            at: header.len() as u64,
            entries,
            next: 0,
        })
    }

    /// Makes a received pack durable and its blobs visible, in place of any
    /// copies of them already here: one fsync of the pack, its rename into
    /// `packs/`, one fsync of that folder.
    pub async fn commit(&self, mut incoming: IncomingPack) -> io::Result<()> {
        if incoming.at != incoming.end() {
            return Err(io::Error::other(format!(
                "the batch ended after {} of its {} bytes",
                incoming.at,
                incoming.end()
            )));
        }
        let file = incoming.file.finish().await?;
        let dirs = self.dirs.clone();
        let index = self.index.clone();
        let temp = temp_name(&incoming.file.path);
        let entries = std::mem::take(&mut incoming.entries);
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            file.sync_data()?;
            let number = index.lock_anyway().fresh_pack();
            dirs.place(&temp, number)?;
            let replaced = index
                .lock_anyway()
                .add_pack(number, entries, SystemTime::now());
            for path in replaced {
                remove_if_there(&root.join(path))?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)??;
        incoming.file.kept = true;
        self.untidy.notify_one();
        Ok(())
    }

    /// Deletes a blob; returns the bytes freed (0 if it was not here).
    pub async fn remove(&self, hash: &BlobHash) -> io::Result<u64> {
        let removed = self.index.lock_anyway().remove(hash);
        let Some((stored, loose)) = removed else {
            return Ok(0);
        };
        match loose {
            Some(path) => remove_if_there(&self.root.join(path))?,
            None => self.untidy.notify_one(),
        }
        Ok(stored.size)
    }

    /// Moves a damaged blob out of what is served and listed into the
    /// quarantine, where it is not lost; false if it was not here. A packed
    /// one is copied out, and its pack rewritten without it at once.
    pub async fn quarantine(self: &Arc<Self>, hash: &BlobHash) -> io::Result<bool> {
        let store = self.clone();
        let hash = *hash;
        tokio::task::spawn_blocking(move || -> io::Result<bool> {
            match store.open_blob(&hash, 0) {
                Ok(blob) => store.copy_aside(&hash, blob)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                // Nothing readable to keep: it only stops being served.
                Err(e) => tracing::warn!(hash = %hash.short(), "unreadable copy dropped: {e}"),
            }
            let removed = store.index.lock_anyway().remove(&hash);
            match removed {
                Some((_, Some(loose))) => remove_if_there(&store.root.join(loose))?,
                Some((_, None)) => {
                    // Out of what is served already; a pack that will not
                    // rewrite waits for the next pass.
                    if let Err(e) = store.compact_untidy() {
                        tracing::error!("cannot rewrite a pack without a damaged blob: {e}");
                    }
                }
                None => {}
            }
            Ok(true)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Copies a blob's bytes, durably, into the quarantine.
    fn copy_aside(&self, hash: &BlobHash, blob: BlobReader) -> io::Result<()> {
        let temp = self.temp_path();
        let copied = (|| {
            let mut out = File::create_new(&temp)?;
            io::copy(&mut blob.file.take(blob.size), &mut out)?;
            out.sync_all()?;
            std::fs::rename(&temp, self.quarantined(hash))
        })();
        if copied.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        copied
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

    /// Rewrites packs holding blobs that no longer count, a moment after
    /// the last deletion, until `shutdown`.
    pub async fn keep_tidy(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.untidy.notified() => {}
            }
            // Let a run of deletions finish first.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(COMPACT_AFTER) => {}
            }
            let store = self.clone();
            let done = tokio::task::spawn_blocking(move || store.compact_untidy()).await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("cannot rewrite a pack without its deleted blobs: {e}")
                }
                Err(e) => tracing::error!("the pack compaction failed: {e}"),
            }
        }
    }

    fn compact_untidy(&self) -> io::Result<()> {
        loop {
            let next = self.index.lock_anyway().untidy.pop_first();
            match next {
                Some(number) => self.compact(number)?,
                None => return Ok(()),
            }
        }
    }

    /// Rewrites pack `number` with only the blobs that still count there,
    /// or removes it if none do. Readers that opened it keep reading it.
    fn compact(&self, number: u64) -> io::Result<()> {
        let _one_at_a_time = self.compacting.lock_anyway();
        let (live, written) = {
            let mut index = self.index.lock_anyway();
            index.untidy.remove(&number);
            let Some(info) = index.packs.get(&number) else {
                return Ok(());
            };
            let written = info.written;
            (index.live(number), written)
        };
        if !live.is_empty() {
            let rewritten = self.rewrite(number, &live, written)?;
            tracing::debug!(
                from = number,
                to = rewritten,
                blobs = live.len(),
                "pack rewritten"
            );
        }
        self.index.lock_anyway().packs.remove(&number);
        remove_if_there(&self.root.join(PACKS).join(pack_name(number)))?;
        self.dirs.sync_packs()
    }

    /// Copies `live` from pack `number` into a new pack, and points the
    /// index at it for every blob that still counts in the old one.
    fn rewrite(&self, number: u64, live: &[Entry], written: SystemTime) -> io::Result<u64> {
        let blobs: Vec<(BlobHash, u64)> = live.iter().map(|e| (e.hash, e.size)).collect();
        let (header, entries) = pack::layout(&blobs);
        let temp = self.temp_path();
        let mut from = self.dirs.open_pack(number)?;
        let result = (|| -> io::Result<()> {
            let mut out = io::BufWriter::new(File::create_new(&temp)?);
            out.write_all(&header)?;
            let mut at = header.len() as u64;
            for (old, new) in live.iter().zip(&entries) {
                io::copy(&mut io::repeat(0).take(new.offset - at), &mut out)?;
                from.seek(SeekFrom::Start(old.offset))?;
                let copied = io::copy(&mut (&mut from).take(old.size), &mut out)?;
                if copied != old.size {
                    return Err(io::Error::other("a pack ended before its blobs"));
                }
                at = new.end();
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_data()
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        let fresh = self.index.lock_anyway().fresh_pack();
        self.dirs.place(&temp_name(&temp), fresh)?;
        let mut index = self.index.lock_anyway();
        for (old, new) in live.iter().zip(&entries) {
            let here = Place::Packed {
                pack: number,
                offset: old.offset,
            };
            match index.blobs.get_mut(&old.hash) {
                Some(stored) if stored.place == here => {
                    stored.place = Place::Packed {
                        pack: fresh,
                        offset: new.offset,
                    };
                }
                // Deleted or replaced while it was copied.
                _ => {
                    index.untidy.insert(fresh);
                }
            }
        }
        index.packs.insert(fresh, PackInfo { entries, written });
        Ok(fresh)
    }

    /// Bytes this server can still take: its capacity left, bounded by the disk.
    pub fn free_bytes(&self) -> u64 {
        self.stats().free_bytes
    }

    pub fn stats(&self) -> ServerStats {
        let (stored, blobs) = {
            let index = self.index.lock_anyway();
            (index.stored, index.blobs.len() as u64)
        };
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
            blobs,
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

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads every pack's header, oldest first, so the newest copy of a blob
/// counts. A pack whose header does not read is set aside, never deleted.
fn load_packs(root: &Path, dirs: &Dirs, index: &mut Index) -> io::Result<()> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(root.join(PACKS))? {
        let name = entry?.file_name();
        match name.to_str().and_then(|n| u64::from_str_radix(n, 16).ok()) {
            Some(number) if name.len() == 16 => numbers.push(number),
            _ => tracing::warn!("{:?} in packs/ is not a pack; left alone", name),
        }
    }
    numbers.sort_unstable();
    for number in numbers {
        match read_header(&dirs.packs, number) {
            Ok((entries, written)) => {
                // Loose blobs were read first: a packed copy is the newer,
                // as a commit that a crash interrupted left it.
                for loose in index.add_pack(number, entries, written) {
                    remove_if_there(&root.join(loose))?;
                }
            }
            Err(e) => {
                let name = pack_name(number);
                tracing::error!("pack {name} cannot be read ({e}); set aside in quarantine/");
                index.next_pack = index.next_pack.max(number + 1);
                rustix::fs::renameat(
                    &dirs.packs,
                    name.as_str(),
                    rustix::fs::CWD,
                    root.join(QUARANTINE).join(format!("pack-{name}")),
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::on_disk;

    fn blob(seed: u8, len: usize) -> (Item, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let item = Item {
            hash: BlobHash::of(&bytes),
            size: len as u64,
        };
        (item, bytes)
    }

    async fn store_batch(store: &BlobStore, blobs: &[(Item, Vec<u8>)]) {
        let items: Vec<Item> = blobs.iter().map(|(item, _)| *item).collect();
        let mut pack = store.receive(&items).await.unwrap();
        for (_, bytes) in blobs {
            // In pieces, as frames bring them.
            for piece in bytes.chunks(1000) {
                pack.write(piece).await.unwrap();
            }
        }
        store.commit(pack).await.unwrap();
    }

    async fn read(store: &Arc<BlobStore>, hash: &BlobHash) -> Vec<u8> {
        let blob = store.read(hash, 0).await.unwrap();
        let mut bytes = Vec::new();
        blob.file.take(blob.left).read_to_end(&mut bytes).unwrap();
        bytes
    }

    fn packs(root: &Path) -> usize {
        std::fs::read_dir(root.join(PACKS)).unwrap().count()
    }

    #[tokio::test]
    async fn a_batch_is_one_pack_and_deletions_rewrite_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        let blobs = [blob(3, 10), blob(5, 100_000), blob(7, 0), blob(9, 5000)];
        store_batch(&store, &blobs).await;
        assert_eq!(packs(dir.path()), 1);
        for (item, bytes) in &blobs {
            assert_eq!(&read(&store, &item.hash).await, bytes);
            assert!(store.verify(&item.hash).await.unwrap());
        }
        assert_eq!(store.stats().stored_bytes, 105_010);

        assert_eq!(store.remove(&blobs[1].0.hash).await.unwrap(), 100_000);
        assert_eq!(store.list().len(), 3);
        store.compact_untidy().unwrap();
        assert_eq!(packs(dir.path()), 1);
        let reopened = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        assert_eq!(reopened.list().len(), 3);
        assert!(reopened.read(&blobs[1].0.hash, 0).await.is_err());
        assert_eq!(read(&reopened, &blobs[3].0.hash).await, blobs[3].1);
        assert_eq!(reopened.stats().stored_bytes, 5010);

        for (item, _) in &blobs {
            reopened.remove(&item.hash).await.unwrap();
        }
        reopened.compact_untidy().unwrap();
        assert_eq!(packs(dir.path()), 0, "an empty pack is removed");
    }

    #[tokio::test]
    async fn the_newest_copy_counts_and_older_ones_are_tidied_away() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        let (a, b) = (blob(3, 300), blob(5, 400));
        store_batch(&store, &[a.clone(), b.clone()]).await;
        // Stored again, as a replica replaces a copy it does not trust.
        store_batch(&store, std::slice::from_ref(&a)).await;
        assert_eq!(store.stats().stored_bytes, 700);
        store.compact_untidy().unwrap();
        assert_eq!(packs(dir.path()), 2);
        let reopened = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        assert_eq!(reopened.stats().stored_bytes, 700);
        assert_eq!(read(&reopened, &a.0.hash).await, a.1);
        assert_eq!(read(&reopened, &b.0.hash).await, b.1);
    }

    #[tokio::test]
    async fn blobs_from_before_packs_are_read_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (old, bytes) = blob(11, 2000);
        let path = dir.path().join(loose_path(&old.hash));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let store = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        assert_eq!(read(&store, &old.hash).await, bytes);
        assert!(store.verify(&old.hash).await.unwrap());
        assert_eq!(
            on_disk(dir.path()).unwrap()[&old.hash].read().unwrap(),
            bytes
        );
        // Stored again, the packed copy replaces the loose one.
        store_batch(&store, &[(old, bytes.clone())]).await;
        assert!(!path.exists());
        assert_eq!(read(&store, &old.hash).await, bytes);
        assert_eq!(store.remove(&old.hash).await.unwrap(), 2000);
        assert!(store.list().is_empty());
    }

    #[tokio::test]
    async fn a_damaged_copy_is_copied_aside_and_its_pack_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        let (bad, good) = (blob(3, 70_000), blob(5, 900));
        store_batch(&store, &[bad.clone(), good.clone()]).await;
        let at = on_disk(dir.path()).unwrap()[&bad.0.hash].clone();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&at.path)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, b"rot", at.offset + 10).unwrap();
        assert!(!store.verify(&bad.0.hash).await.unwrap());
        assert!(store.quarantine(&bad.0.hash).await.unwrap());
        let aside = std::fs::read(store.quarantined(&bad.0.hash)).unwrap();
        assert_eq!(&aside[10..13], b"rot");
        assert_eq!(aside.len(), 70_000);
        assert!(!on_disk(dir.path()).unwrap().contains_key(&bad.0.hash));
        assert_eq!(read(&store, &good.0.hash).await, good.1);
        assert!(!store.quarantine(&bad.0.hash).await.unwrap());
    }

    #[tokio::test]
    async fn a_pack_with_a_damaged_header_is_set_aside_and_the_rest_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        let (a, b) = (blob(3, 300), blob(5, 400));
        store_batch(&store, std::slice::from_ref(&a)).await;
        store_batch(&store, std::slice::from_ref(&b)).await;
        drop(store);
        let first = dir.path().join(PACKS).join(pack_name(0));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&first)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[0xff], 20).unwrap();
        let reopened = Arc::new(BlobStore::open(dir.path(), None).unwrap());
        assert_eq!(reopened.list().len(), 1);
        assert_eq!(read(&reopened, &b.0.hash).await, b.1);
        assert!(
            dir.path()
                .join(QUARANTINE)
                .join("pack-0000000000000000")
                .is_file()
        );
        // Its number is never given again.
        store_batch(&reopened, std::slice::from_ref(&a)).await;
        assert_eq!(read(&reopened, &a.0.hash).await, a.1);
    }

    #[tokio::test]
    async fn a_batch_that_ends_early_or_runs_over_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), None).unwrap();
        let (item, bytes) = blob(3, 300);
        let mut pack = store.receive(&[item]).await.unwrap();
        pack.write(&bytes[..100]).await.unwrap();
        assert!(store.commit(pack).await.is_err());
        let mut pack = store.receive(&[item]).await.unwrap();
        pack.write(&bytes).await.unwrap();
        assert!(pack.write(b"more").await.is_err());
        drop(pack);
        assert_eq!(packs(dir.path()), 0);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
