//! Which blob is where: an index kept in memory, read from the pack
//! headers (and the loose blobs from before packs) when a server starts.
//! A blob stored twice counts at its newest copy: loose blobs are read
//! first, then packs by number, and a later copy replaces an earlier one,
//! whose pack is then untidy (to be rewritten without it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use arca_shared::BlobHash;

use super::blobs::{open_regular, open_regular_at};
use super::pack::{self, Entry};

pub(super) const PACKS: &str = "packs";
/// Blobs from before packs.
const LOOSE: &str = "blobs";

/// Where a blob's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Loose,
    Packed { pack: u64, offset: u64 },
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Stored {
    pub(super) size: u64,
    pub(super) place: Place,
    pub(super) written: SystemTime,
}

pub(super) struct PackInfo {
    pub(super) entries: Vec<Entry>,
    pub(super) written: SystemTime,
}

/// Which blob is where, and what the store holds in all.
#[derive(Default)]
pub(super) struct Index {
    pub(super) blobs: HashMap<BlobHash, Stored>,
    pub(super) packs: BTreeMap<u64, PackInfo>,
    pub(super) next_pack: u64,
    /// Live bytes.
    pub(super) stored: u64,
    /// Packs holding blobs that no longer count, to rewrite without them.
    pub(super) untidy: BTreeSet<u64>,
}

impl Index {
    /// Counts a blob, in place of any copy already counted; returns the
    /// place of a loose copy so replaced, to delete.
    pub(super) fn insert(&mut self, hash: BlobHash, stored: Stored) -> Option<PathBuf> {
        self.stored += stored.size;
        let old = self.blobs.insert(hash, stored)?;
        self.stored = self.stored.saturating_sub(old.size);
        self.forget(&hash, old)
    }

    /// A copy no longer counted: its pack is untidy, or (loose) it is
    /// returned to delete.
    pub(super) fn forget(&mut self, hash: &BlobHash, old: Stored) -> Option<PathBuf> {
        match old.place {
            Place::Packed { pack, .. } => {
                self.untidy.insert(pack);
                None
            }
            Place::Loose => Some(loose_path(hash)),
        }
    }

    pub(super) fn remove(&mut self, hash: &BlobHash) -> Option<(Stored, Option<PathBuf>)> {
        let old = self.blobs.remove(hash)?;
        self.stored = self.stored.saturating_sub(old.size);
        let loose = self.forget(hash, old);
        Some((old, loose))
    }

    /// Counts a pack's blobs; returns the loose copies they replace.
    pub(super) fn add_pack(
        &mut self,
        number: u64,
        entries: Vec<Entry>,
        written: SystemTime,
    ) -> Vec<PathBuf> {
        let mut replaced = Vec::new();
        for entry in &entries {
            let place = Place::Packed {
                pack: number,
                offset: entry.offset,
            };
            let stored = Stored {
                size: entry.size,
                place,
                written,
            };
            replaced.extend(self.insert(entry.hash, stored));
        }
        self.packs.insert(number, PackInfo { entries, written });
        self.next_pack = self.next_pack.max(number + 1);
        replaced
    }

    pub(super) fn fresh_pack(&mut self) -> u64 {
        self.next_pack += 1;
        self.next_pack - 1
    }

    /// The blobs of a pack that still count there.
    pub(super) fn live(&self, number: u64) -> Vec<Entry> {
        let Some(info) = self.packs.get(&number) else {
            return Vec::new();
        };
        info.entries
            .iter()
            .filter(|e| {
                self.blobs.get(&e.hash).is_some_and(|s| {
                    s.place
                        == Place::Packed {
                            pack: number,
                            offset: e.offset,
                        }
                })
            })
            .copied()
            .collect()
    }
}

/// A blob's place relative to the data folder.
pub(super) fn loose_path(hash: &BlobHash) -> PathBuf {
    let hex = hash.to_hex();
    Path::new(LOOSE).join(&hex[..2]).join(hex)
}

pub(super) fn pack_name(number: u64) -> String {
    format!("{number:016x}")
}

/// Counts the blobs from before packs, one file each.
pub(super) fn load_loose(root: &Path, index: &mut Index) -> io::Result<()> {
    let Ok(shards) = std::fs::read_dir(root.join(LOOSE)) else {
        return Ok(());
    };
    for shard in shards {
        for entry in std::fs::read_dir(shard?.path())? {
            let entry = entry?;
            if let Some(hash) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                && entry.file_type()?.is_file()
            {
                let meta = entry.metadata()?;
                let stored = Stored {
                    size: meta.len(),
                    place: Place::Loose,
                    written: meta.modified().unwrap_or_else(|_| SystemTime::now()),
                };
                index.insert(hash, stored);
            }
        }
    }
    Ok(())
}

pub(super) fn read_header(packs: &OwnedFd, number: u64) -> io::Result<(Vec<Entry>, SystemTime)> {
    let mut file = open_regular_at(packs, pack_name(number))?;
    let meta = file.metadata()?;
    let mut head = [0u8; pack::HEAD];
    file.read_exact(&mut head)?;
    let count = pack::count(&head).map_err(io::Error::other)?;
    let mut header = vec![0u8; pack::header_len(count)];
    header[..pack::HEAD].copy_from_slice(&head);
    file.read_exact(&mut header[pack::HEAD..])?;
    let entries = pack::parse(&header, meta.len()).map_err(io::Error::other)?;
    Ok((
        entries,
        meta.modified().unwrap_or_else(|_| SystemTime::now()),
    ))
}

/// A blob's bytes as a data folder holds them, read from disk.
#[derive(Debug, Clone)]
pub struct OnDisk {
    /// The pack (or, from before packs, the blob's own file).
    pub path: PathBuf,
    pub offset: u64,
    pub size: u64,
}

impl OnDisk {
    /// The blob's bytes.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        let mut file = open_regular(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.take(self.size).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Every blob a server's data folder holds on disk, each at its newest
/// copy, as the server would count them when it starts; packs that do not
/// read are passed over. For tools and tests: a running server answers
/// from its index.
pub fn on_disk(root: &Path) -> io::Result<HashMap<BlobHash, OnDisk>> {
    let mut index = Index::default();
    load_loose(root, &mut index)?;
    let packs = File::open(root.join(PACKS)).map(OwnedFd::from)?;
    let mut numbers: Vec<u64> = std::fs::read_dir(root.join(PACKS))?
        .filter_map(|e| u64::from_str_radix(e.ok()?.file_name().to_str()?, 16).ok())
        .collect();
    numbers.sort_unstable();
    for number in numbers {
        if let Ok((entries, written)) = read_header(&packs, number) {
            index.add_pack(number, entries, written);
        }
    }
    Ok(index
        .blobs
        .into_iter()
        .map(|(hash, stored)| {
            let (path, offset) = match stored.place {
                Place::Loose => (root.join(loose_path(&hash)), 0),
                Place::Packed { pack, offset } => (root.join(PACKS).join(pack_name(pack)), offset),
            };
            let size = stored.size;
            (hash, OnDisk { path, offset, size })
        })
        .collect())
}
