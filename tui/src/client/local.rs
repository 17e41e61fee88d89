//! Reading local files for backup without being fooled by them: nothing is
//! opened through a symbolic link, nothing but a regular file is read (a
//! FIFO would block forever), and a file that changes while it is read is
//! noticed instead of being sent with a hash its bytes no longer have.

use std::fs::{File, Metadata};
use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use arca_shared::meta::FileMeta;

use super::{chunker, meta};

use arca_shared::vault::{ChunkId, ChunkKeys};
use rustix::fs::{CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

/// What a file looked like when it was read: if any of it moves, its bytes
/// may have too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    size: u64,
    mtime_ns: i128,
    inode: u64,
}

impl Stamp {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// Why a file is not backed up: it is skipped, and the others go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Skip(pub String);

impl Skip {
    pub(crate) fn changed() -> Self {
        Self("changed while being read".into())
    }
}

impl From<std::io::Error> for Skip {
    fn from(e: std::io::Error) -> Self {
        Self(format!("cannot read it: {e}"))
    }
}

/// Opens `path` to read it for backup: through no symbolic link anywhere on
/// the path (on kernels before 5.6, which lack `openat2`, the last component
/// only), without blocking (`O_NONBLOCK`: opening a FIFO that has no writer
/// waits forever), and only if what was opened is a regular file.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), Skip> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let opened =
        match rustix::fs::openat2(CWD, path, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
            Err(Errno::NOSYS) => rustix::fs::openat(CWD, path, flags, Mode::empty()),
            other => other,
        };
    let file = File::from(opened.map_err(|e| match e {
        Errno::LOOP => Skip("a symbolic link is on its way now; links are not followed".into()),
        e => Skip::from(std::io::Error::from(e)),
    })?);
    let meta = file.metadata()?;
    regular(&meta)?;
    Ok((file, meta))
}

/// Regular files are backed up, and symbolic links as links.
pub fn backed_up(meta: &Metadata) -> Result<(), Skip> {
    match meta.file_type().is_symlink() {
        true => Ok(()),
        false => regular(meta),
    }
}

/// Only regular files have bytes to read.
pub fn regular(meta: &Metadata) -> Result<(), Skip> {
    match FileType::from_raw_mode(meta.mode()) {
        FileType::RegularFile => Ok(()),
        other => Err(not_regular(other)),
    }
}

/// The skip for anything that is not a regular file or a folder.
pub fn not_regular(kind: FileType) -> Skip {
    let what = match kind {
        FileType::Symlink => "a symbolic link; links are not followed",
        FileType::Fifo => "a FIFO, not a regular file",
        FileType::Socket => "a socket, not a regular file",
        FileType::BlockDevice | FileType::CharacterDevice => "a device, not a regular file",
        _ => "not a regular file",
    };
    Skip(format!("it is {what}"))
}

/// A file as read: its stamp, its chunks' ids, and its bytes if they
/// were kept.
pub struct Snapshot {
    pub stamp: Stamp,
    pub meta: FileMeta,
    pub chunks: Vec<ChunkId>,
    pub content: Option<Arc<[u8]>>,
}

/// Reads `path` and names its chunks, keeping its bytes if it is smaller
/// than `keep_below`. A file that changes while it is read is read once
/// more; if it changes again, it is skipped.
pub fn read_stable(path: &Path, keep_below: u64, keys: &ChunkKeys) -> Result<Snapshot, Skip> {
    for _ in 0..2 {
        let (file, before) = open_regular(path)?;
        let size = before.len();
        let mut bytes = (&file).take(size);
        let (chunks, content) = if size < keep_below {
            let mut kept = Vec::with_capacity(size as usize);
            if bytes.read_to_end(&mut kept)? as u64 != size {
                continue;
            }
            let chunks = chunker::cut(&kept, keys.chunker_seed())
                .map(|c| keys.id(c))
                .collect();
            (chunks, Some(kept.into()))
        } else {
            let mut chunks = Vec::new();
            for chunk in chunker::stream(bytes, keys.chunker_seed()) {
                chunks.push(keys.id(&chunk?));
            }
            (chunks, None)
        };
        let stamp = Stamp::of(&before);
        if Stamp::of(&file.metadata()?) == stamp {
            return Ok(Snapshot {
                stamp,
                meta: meta::of_file(&before),
                chunks,
                content,
            });
        }
    }
    Err(Skip::changed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_opened_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(open_regular(&file).is_ok());

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let skip = open_regular(&link).unwrap_err();
        assert!(skip.0.contains("symbolic link"), "{skip}");
        // A link to a folder on the way counts as much as one at the end.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("f"), "y").unwrap();
        let via = dir.path().join("via");
        std::os::unix::fs::symlink(&sub, &via).unwrap();
        let skip = open_regular(&via.join("f")).unwrap_err();
        assert!(skip.0.contains("symbolic link"), "{skip}");

        // A FIFO with no writer: opening it must not wait.
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        let skip = open_regular(&fifo).unwrap_err();
        assert!(skip.0.contains("FIFO"), "{skip}");
        assert!(open_regular(dir.path()).is_err());
    }

    #[test]
    fn a_stable_file_is_read_and_its_bytes_kept_when_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "content").unwrap();
        let keys = arca_shared::vault::MasterKey::fresh()
            .unwrap()
            .chunk_keys()
            .unwrap();
        let small = read_stable(&path, 1024, &keys).unwrap();
        assert_eq!(small.chunks, [keys.id(b"content")]);
        assert_eq!(small.content.as_deref(), Some(&b"content"[..]));
        let big = read_stable(&path, 0, &keys).unwrap();
        assert_eq!((big.chunks, big.content), (small.chunks, None));
    }
}
