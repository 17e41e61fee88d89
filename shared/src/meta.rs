//! What a version records besides its bytes, so a restore gives the file
//! back as it was: its type, permission bits, modification time and owner.

use serde::{Deserialize, Serialize};

/// The permission bits a version keeps: rwx for all three, plus setuid,
/// setgid and sticky. The type bits are [`FileKind`]'s.
pub const PERMISSION_BITS: u32 = 0o7777;

/// A file's metadata as backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub kind: FileKind,
    /// `st_mode & PERMISSION_BITS`.
    pub mode: u32,
    /// Modification time, in nanoseconds since the Unix epoch (negative
    /// before it).
    pub mtime_ns: i64,
    /// (uid, gid), always recorded; a restore applies it only as root.
    pub owner: Option<(u32, u32)>,
}

/// What kind of file a version is. Folders are not versions: they come
/// back as the names under them need them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file: its bytes are the version's content.
    File,
    /// A symbolic link, stored as a link and never followed.
    Symlink {
        /// The target exactly as the OS returned it: not necessarily UTF-8,
        /// nor a path that exists.
        #[serde(with = "serde_bytes")]
        target: Vec<u8>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(meta: &FileMeta) -> Vec<u8> {
        let bytes = rmp_serde::to_vec_named(meta).unwrap();
        let back: FileMeta = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(&back, meta);
        bytes
    }

    #[test]
    fn metadata_survives_the_wire() {
        round_trip(&FileMeta {
            kind: FileKind::File,
            mode: 0o4755,
            mtime_ns: 1_700_000_000_123_456_789,
            owner: Some((1000, 100)),
        });
        // Before the epoch, no owner, the widest ids.
        round_trip(&FileMeta {
            kind: FileKind::File,
            mode: 0,
            mtime_ns: -1_500_000_001,
            owner: Some((u32::MAX, u32::MAX)),
        });
        let target = b"../latin-\xe9/\x01target".to_vec();
        let bytes = round_trip(&FileMeta {
            kind: FileKind::Symlink {
                target: target.clone(),
            },
            mode: 0o777,
            mtime_ns: i64::MIN,
            owner: None,
        });
        // The target travels as one binary blob (0xc4: bin 8 and its
        // length), not as an array of numbers.
        let blob = [&[0xc4, target.len() as u8][..], &target].concat();
        assert!(bytes.windows(blob.len()).any(|w| w == blob), "{bytes:x?}");
    }

    #[test]
    fn metadata_is_small() {
        let meta = FileMeta {
            kind: FileKind::File,
            mode: 0o644,
            mtime_ns: 1_700_000_000_123_456_789,
            owner: Some((1000, 1000)),
        };
        let size = rmp_serde::to_vec_named(&meta).unwrap().len();
        assert!(size < 64, "{size} bytes");
    }
}
