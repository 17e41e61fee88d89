//! Blobs on disk: `<data>/blobs/<first two hex>/<hash>`, written through
//! `<data>/tmp/` so nothing is visible in `blobs/` before it is complete,
//! verified and fsynced.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arca_shared::BlobHash;
use arca_shared::auth::Nonce;
use arca_shared::protocol::{BlobInfo, Item, ServerStats};
use futures::future::try_join_all;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;

pub struct BlobStore {
    root: PathBuf,
    capacity: Option<u64>,
    stored: AtomicU64,
    blobs: AtomicU64,
}

/// A blob being received; removed on drop unless committed.
pub struct TempBlob {
    path: PathBuf,
    file: File,
    committed: bool,
}

impl TempBlob {
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).await
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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
        std::fs::create_dir_all(root.join("blobs"))?;
        let store = Self {
            root: root.to_owned(),
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
                if let Some(hash) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
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
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(std::fs::File::open(path)?)?;
            Ok(BlobHash::from(hasher.finalize()) == expected)
        })
        .await
        .map_err(io::Error::other)?
    }

    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("blobs").join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_file()
    }

    pub async fn temp(&self) -> io::Result<TempBlob> {
        let name = blake3::Hash::from(Nonce::fresh().0).to_hex();
        let path = self.root.join("tmp").join(&name[..24]);
        let file = File::create_new(&path).await?;
        Ok(TempBlob {
            path,
            file,
            committed: false,
        })
    }

    /// Makes verified temp blobs durable and visible: fsync every file,
    /// rename each into place, fsync every folder touched. The fsyncs run
    /// together, so the file system can commit them as one.
    pub async fn commit(&self, blobs: Vec<(TempBlob, Item)>) -> io::Result<()> {
        let mut blobs = blobs;
        try_join_all(blobs.iter_mut().map(|(temp, _)| async {
            temp.file.flush().await?;
            temp.file.sync_all().await
        }))
        .await?;
        let mut shards = BTreeSet::new();
        for (mut temp, item) in blobs {
            let target = self.path(&item.hash);
            let shard = target.parent().map(Path::to_owned).unwrap_or_default();
            tokio::fs::create_dir_all(&shard).await?;
            if tokio::fs::try_exists(&target).await? {
                // Content-addressed: an identical blob is already here.
                continue;
            }
            tokio::fs::rename(&temp.path, &target).await?;
            temp.committed = true;
            shards.insert(shard);
            self.stored.fetch_add(item.size, Ordering::Relaxed);
            self.blobs.fetch_add(1, Ordering::Relaxed);
        }
        try_join_all(
            shards
                .iter()
                .map(|shard| async move { File::open(shard).await?.sync_all().await }),
        )
        .await?;
        Ok(())
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
        self.stored.fetch_sub(size, Ordering::Relaxed);
        self.blobs.fetch_sub(1, Ordering::Relaxed);
        Ok(size)
    }

    /// Bytes this server can still take: its capacity left, bounded by the disk.
    pub fn free_bytes(&self) -> u64 {
        self.stats().free_bytes
    }

    pub fn stats(&self) -> ServerStats {
        let stored = self.stored.load(Ordering::Relaxed);
        let disk_free = fs4::available_space(&self.root).unwrap_or(0);
        let capacity = self.capacity.unwrap_or(stored + disk_free);
        ServerStats {
            stored_bytes: stored,
            capacity_bytes: capacity,
            free_bytes: capacity.saturating_sub(stored).min(disk_free),
            blobs: self.blobs.load(Ordering::Relaxed),
        }
    }
}
