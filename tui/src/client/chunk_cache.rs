//! The chunk ids of local files, remembered by path, size, modification
//! time and inode, so that backing up an unchanged tree reads no file
//! contents (as restic does with its parent snapshot). Saved between runs
//! in the user's cache folder; ids are only good for the namespace key they
//! were made with, so the cache remembers which one that was.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use arca_shared::BlobHash;
use arca_shared::protocol::content_digest;
use arca_shared::vault::{ChunkId, ChunkKeys};
use serde::{Deserialize, Serialize};

use super::local::{self, Skip, Stamp};

#[derive(Default, Serialize, Deserialize)]
pub struct ChunkCache {
    /// A keyed hash that tells which namespace key made the ids.
    namespace: Option<ChunkId>,
    entries: HashMap<PathBuf, (Stamp, Vec<ChunkId>)>,
    #[serde(skip)]
    file: Option<PathBuf>,
    #[serde(skip)]
    changed: bool,
    /// Paths looked up or learned in this run; the others are checked for
    /// existence on save, so deleted files do not accumulate.
    #[serde(skip)]
    touched: HashSet<PathBuf>,
}

impl ChunkCache {
    /// The cache kept for `client` in `$XDG_CACHE_HOME/arca` (or
    /// `~/.cache/arca`) for ids made with `keys`; empty if there is none
    /// yet, it cannot be read, or it was made with another key.
    pub fn load(client: &str, keys: &ChunkKeys) -> Self {
        let file = cache_file(client);
        let namespace = Some(keys.id(b"arca chunk cache"));
        let mut cache: Self = std::fs::read(&file)
            .ok()
            .and_then(|bytes| rmp_serde::from_slice(&bytes).ok())
            .filter(|cache: &Self| cache.namespace == namespace)
            .unwrap_or_default();
        cache.namespace = namespace;
        cache.file = Some(file);
        cache
    }

    /// Removes the cache kept for `client`, if any.
    pub fn forget(client: &str) {
        let _ = std::fs::remove_file(cache_file(client));
    }

    /// The size and content digest of `path`, reading it only if it changed.
    pub fn content(&mut self, path: &Path, keys: &ChunkKeys) -> Result<(u64, BlobHash), Skip> {
        let meta = std::fs::symlink_metadata(path)?;
        local::regular(&meta)?;
        if let Some(chunks) = self.known(path, Stamp::of(&meta)) {
            return Ok((meta.len(), content_digest(&chunks)));
        }
        let read = local::read_stable(path, 0, keys)?;
        let digest = content_digest(&read.chunks);
        self.remember(path, read.stamp, read.chunks);
        Ok((read.stamp.size(), digest))
    }

    /// The remembered chunk ids of `path`, if the file is unchanged since.
    pub fn known(&mut self, path: &Path, stamp: Stamp) -> Option<Vec<ChunkId>> {
        let key = std::path::absolute(path).ok()?;
        let found = self.entries.get(&key);
        let chunks = match found {
            Some((was, chunks)) if *was == stamp => Some(chunks.clone()),
            _ => None,
        };
        self.touched.insert(key);
        chunks
    }

    /// Remembers the chunk ids of `path` as it was when it had `stamp`.
    pub fn remember(&mut self, path: &Path, stamp: Stamp, chunks: Vec<ChunkId>) {
        if let Ok(key) = std::path::absolute(path) {
            self.entries.insert(key.clone(), (stamp, chunks));
            self.touched.insert(key);
            self.changed = true;
        }
    }

    /// Writes the cache back if it changed, forgetting files that are gone;
    /// a failure only costs a re-read.
    pub fn save(&mut self) {
        let Some(file) = &self.file else {
            return;
        };
        let before = self.entries.len();
        let touched = &self.touched;
        self.entries
            .retain(|path, _| touched.contains(path) || path.exists());
        if !self.changed && self.entries.len() == before {
            return;
        }
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| rmp_serde::to_vec(self).map_err(std::io::Error::other))
            .and_then(|bytes| {
                let temp = file.with_extension("tmp");
                std::fs::write(&temp, bytes)?;
                std::fs::rename(&temp, file)
            });
        if let Err(e) = written {
            tracing::warn!("cannot save the chunk cache at {}: {e}", file.display());
        }
    }
}

/// `$XDG_CACHE_HOME/arca`, else `~/.cache/arca`.
fn cache_file(client: &str) -> PathBuf {
    cache_dir().join(format!("chunks-{client}.msgpack"))
}

fn cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("arca")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ChunkKeys {
        arca_shared::vault::MasterKey::fresh()
            .unwrap()
            .chunk_keys()
            .unwrap()
    }

    #[test]
    fn deleted_files_are_forgotten_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys();
        let (kept, gone) = (dir.path().join("kept"), dir.path().join("gone"));
        std::fs::write(&kept, "k").unwrap();
        std::fs::write(&gone, "g").unwrap();
        let mut cache = ChunkCache::default();
        cache.content(&kept, &keys).unwrap();
        cache.content(&gone, &keys).unwrap();
        std::fs::remove_file(&gone).unwrap();
        cache.file = Some(dir.path().join("cache.msgpack"));
        cache.touched.clear();
        cache.save();
        let paths: Vec<_> = cache.entries.keys().cloned().collect();
        assert_eq!(paths, [std::path::absolute(&kept).unwrap()]);
    }

    #[test]
    fn unchanged_files_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let mut cache = ChunkCache::default();
        let (size, first) = cache.content(&path, &keys).unwrap();
        assert_eq!((size, first), (3, content_digest(&[keys.id(b"one")])));
        // Same stamp: the remembered ids come back even if we lie about them.
        let key = std::path::absolute(&path).unwrap();
        let stamp = cache.entries[&key].0;
        let lie = vec![keys.id(b"remembered")];
        cache.entries.insert(key, (stamp, lie.clone()));
        assert_eq!(cache.content(&path, &keys).unwrap().1, content_digest(&lie));
        // A changed file is read again.
        std::fs::write(&path, "changed!").unwrap();
        let digest = content_digest(&[keys.id(b"changed!")]);
        assert_eq!(cache.content(&path, &keys).unwrap(), (8, digest));
    }
}
