//! Content hashes of local files, remembered by path, size, modification
//! time and inode, so that backing up an unchanged tree reads no file
//! contents (as restic does with its parent snapshot). Saved between runs
//! in the user's cache folder.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use arca_shared::BlobHash;
use serde::{Deserialize, Serialize};

use super::local::{self, Skip, Stamp};

#[derive(Default, Serialize, Deserialize)]
pub struct HashCache {
    entries: HashMap<PathBuf, (Stamp, BlobHash)>,
    #[serde(skip)]
    file: Option<PathBuf>,
    #[serde(skip)]
    changed: bool,
    /// Paths looked up or learned in this run; the others are checked for
    /// existence on save, so deleted files do not accumulate.
    #[serde(skip)]
    touched: HashSet<PathBuf>,
}

impl HashCache {
    /// The cache kept for `client` in `$XDG_CACHE_HOME/arca` (or
    /// `~/.cache/arca`); empty if there is none yet or it cannot be read.
    pub fn load(client: &str) -> Self {
        let file = cache_dir().join(format!("hashes-{client}.msgpack"));
        let mut cache: Self = std::fs::read(&file)
            .ok()
            .and_then(|bytes| rmp_serde::from_slice(&bytes).ok())
            .unwrap_or_default();
        cache.file = Some(file);
        cache
    }

    /// The size and hash of `path`, reading it only if it changed.
    pub fn hash(&mut self, path: &Path) -> Result<(u64, BlobHash), Skip> {
        let meta = std::fs::symlink_metadata(path)?;
        local::regular(&meta)?;
        if let Some(hash) = self.known(path, Stamp::of(&meta)) {
            return Ok((meta.len(), hash));
        }
        let read = local::read_stable(path, 0)?;
        self.remember(path, read.stamp, read.hash);
        Ok((read.stamp.size(), read.hash))
    }

    /// The remembered hash of `path`, if the file is unchanged since.
    pub fn known(&mut self, path: &Path, stamp: Stamp) -> Option<BlobHash> {
        let key = std::path::absolute(path).ok()?;
        let found = self.entries.get(&key).copied();
        self.touched.insert(key);
        match found {
            Some((was, hash)) if was == stamp => Some(hash),
            _ => None,
        }
    }

    /// Remembers the hash of `path` as it was when it had `stamp`.
    pub fn remember(&mut self, path: &Path, stamp: Stamp, hash: BlobHash) {
        if let Ok(key) = std::path::absolute(path) {
            self.entries.insert(key.clone(), (stamp, hash));
            self.touched.insert(key);
            self.changed = true;
        }
    }

    /// Writes the cache back if it changed, forgetting files that are gone;
    /// a failure only costs a re-hash.
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
            tracing::warn!("cannot save the hash cache at {}: {e}", file.display());
        }
    }
}

/// `$XDG_CACHE_HOME/arca`, else `~/.cache/arca`.
fn cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("arca")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_files_are_forgotten_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, gone) = (dir.path().join("kept"), dir.path().join("gone"));
        std::fs::write(&kept, "k").unwrap();
        std::fs::write(&gone, "g").unwrap();
        let mut cache = HashCache::default();
        cache.hash(&kept).unwrap();
        cache.hash(&gone).unwrap();
        std::fs::remove_file(&gone).unwrap();
        cache.file = Some(dir.path().join("cache.msgpack"));
        cache.touched.clear();
        cache.save();
        let keys: Vec<_> = cache.entries.keys().cloned().collect();
        assert_eq!(keys, [std::path::absolute(&kept).unwrap()]);
    }

    #[test]
    fn unchanged_files_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let mut cache = HashCache::default();
        let (size, first) = cache.hash(&path).unwrap();
        assert_eq!((size, first), (3, BlobHash::of(b"one")));
        // Same stamp: the remembered hash comes back even if we lie about it.
        let key = std::path::absolute(&path).unwrap();
        let stamp = cache.entries[&key].0;
        cache
            .entries
            .insert(key, (stamp, BlobHash::of(b"remembered")));
        assert_eq!(cache.hash(&path).unwrap().1, BlobHash::of(b"remembered"));
        // A changed file is hashed again.
        std::fs::write(&path, "changed!").unwrap();
        assert_eq!(cache.hash(&path).unwrap(), (8, BlobHash::of(b"changed!")));
    }
}
