//! The manager's catalog snapshots this server keeps, sealed (it cannot
//! read them): `<data>/snapshots/<generation>-<created ms>-<lineage>-<hash>`,
//! the newest few generations, so a lost catalog can be rebuilt with
//! `daemon recover`.

use std::io;
use std::path::{Path, PathBuf};

use arca_shared::protocol::SnapshotInfo;

use super::blobs::TempFile;

/// Snapshots kept; older ones are deleted as new ones arrive.
const KEEP: usize = 3;

pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    pub fn open(root: &Path) -> io::Result<Self> {
        let dir = root.join("snapshots");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Every snapshot kept, oldest first.
    pub fn list(&self) -> io::Result<Vec<SnapshotInfo>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let parsed = entry.file_name().to_str().and_then(parse_name);
            // Only regular files: anything else was not put here by this server.
            if let Some((generation, created_ms, lineage, hash)) = parsed
                && entry.file_type()?.is_file()
            {
                found.push(SnapshotInfo {
                    generation,
                    created_ms,
                    lineage,
                    size: entry.metadata()?.len(),
                    hash,
                });
            }
        }
        found.sort();
        Ok(found)
    }

    pub fn newest(&self) -> Option<SnapshotInfo> {
        self.list().ok()?.pop()
    }

    pub fn path(&self, snapshot: &SnapshotInfo) -> PathBuf {
        self.dir.join(format!(
            "{:020}-{:020}-{}-{}",
            snapshot.generation,
            snapshot.created_ms,
            blake3::Hash::from(snapshot.lineage).to_hex(),
            snapshot.hash.to_hex()
        ))
    }

    /// Keeps a received, verified snapshot durably, then forgets older
    /// copies of the same catalog state and all but the newest few.
    pub async fn keep(&self, temp: TempFile, snapshot: &SnapshotInfo) -> io::Result<()> {
        temp.persist(&self.path(snapshot)).await?;
        let mut all = self.list()?;
        let same_state = |a: &SnapshotInfo, b: &SnapshotInfo| {
            (a.generation, a.lineage) == (b.generation, b.lineage)
        };
        let mut drop: Vec<SnapshotInfo> = all
            .iter()
            .filter(|old| old != &snapshot && same_state(old, snapshot))
            .copied()
            .collect();
        all.retain(|s| !drop.contains(s));
        drop.extend_from_slice(&all[..all.len().saturating_sub(KEEP)]);
        for old in drop {
            std::fs::remove_file(self.path(&old))?;
        }
        Ok(())
    }
}

fn parse_name(name: &str) -> Option<(u64, u64, [u8; 32], arca_shared::BlobHash)> {
    let mut parts = name.splitn(4, '-');
    let generation = parts.next()?.parse().ok()?;
    let created_ms = parts.next()?.parse().ok()?;
    let lineage = *blake3::Hash::from_hex(parts.next()?).ok()?.as_bytes();
    let hash = parts.next()?.parse().ok()?;
    Some((generation, created_ms, lineage, hash))
}
