//! BLAKE3 content hashes, the identity of every stored blob.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Bytes a file is read in to be hashed.
const HASH_BLOCK: usize = 1 << 20;

/// The BLAKE3 hash of a file's content; blobs are stored under its hex form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobHash(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl BlobHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Hashes a file: read in big blocks, each hashed on every core.
    pub fn of_file(path: &Path) -> io::Result<Self> {
        Self::of_reader(std::fs::File::open(path)?)
    }

    /// Hashes everything `reader` gives, as [`BlobHash::of_file`] does.
    pub fn of_reader(mut reader: impl Read) -> io::Result<Self> {
        let mut hasher = blake3::Hasher::new();
        let mut block = vec![0u8; HASH_BLOCK];
        loop {
            let filled = read_full(&mut reader, &mut block)?;
            if filled == 0 {
                return Ok(hasher.finalize().into());
            }
            // Threads only pay off from about 128 KiB.
            if filled >= 128 * 1024 {
                hasher.update_rayon(&block[..filled]);
            } else {
                hasher.update(&block[..filled]);
            }
        }
    }

    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }

    /// The first characters of the hex form, for people to read.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl From<blake3::Hash> for BlobHash {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.short())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a BLAKE3 hash: expected 64 hex characters")]
pub struct BadHash;

impl FromStr for BlobHash {
    type Err = BadHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        blake3::Hash::from_hex(s)
            .map(Self::from)
            .map_err(|_| BadHash)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(from: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match from.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let hash = BlobHash::of(b"arca");
        assert_eq!(hash.to_hex().parse::<BlobHash>().unwrap(), hash);
        assert!("nope".parse::<BlobHash>().is_err());
    }

    #[test]
    fn a_file_hashes_like_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 200 * 1024, HASH_BLOCK, HASH_BLOCK * 2 + 12345] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let path = dir.path().join(len.to_string());
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(
                BlobHash::of_file(&path).unwrap(),
                BlobHash::of(&bytes),
                "{len} bytes"
            );
        }
    }
}
