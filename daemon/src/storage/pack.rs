//! The pack file format: many blobs in one file, so a batch of them is made
//! durable with one fsync of its own bytes (not a flush of the whole file
//! system), as restic packs its blobs.
//!
//! A pack is a header, then the blobs' bytes in the header's order:
//!
//! ```text
//! "ARCAPAK1" | count: u32 LE | 0: u32 | count × (hash: 32 bytes, offset: u64 LE, size: u64 LE)
//!            | BLAKE3 of everything before it: 32 bytes | blobs…
//! ```
//!
//! The header is written first (a batch announces its blobs before their
//! bytes arrive), so a pack streams to disk as it is received. Big blobs
//! start on a 4 KiB boundary, so they are read around the page cache like a
//! file of their own; small ones are packed tight.

use arca_shared::BlobHash;

const MAGIC: &[u8; 8] = b"ARCAPAK1";
/// Magic, count and the reserved word.
pub const HEAD: usize = 16;
const ENTRY: usize = 32 + 8 + 8;
const CHECKSUM: usize = 32;
/// Most blobs one pack may hold: well above a batch's, and a bound on what a
/// damaged count can make a reader allocate.
pub const MAX_BLOBS: usize = 65_536;
/// Blobs from this size start on an aligned offset.
const ALIGNED_FROM: u64 = 64 * 1024;
const ALIGN: u64 = 4096;

/// One blob in a pack: where its bytes are, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub hash: BlobHash,
    pub offset: u64,
    pub size: u64,
}

impl Entry {
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
    #[error("not a pack file (no pack header)")]
    NotAPack,
    #[error("the pack header says {0} blobs, more than a pack holds")]
    TooMany(u64),
    #[error("the pack header is damaged (its checksum does not match)")]
    Damaged,
    #[error("the pack header places blobs outside the file or over each other")]
    BadLayout,
}

/// Where each blob of a batch goes, in order, and the header that says so.
pub fn layout(blobs: &[(BlobHash, u64)]) -> (Vec<u8>, Vec<Entry>) {
    let mut at = header_len(blobs.len()) as u64;
    let entries: Vec<Entry> = blobs
        .iter()
        .map(|&(hash, size)| {
            if size >= ALIGNED_FROM {
                at = at.next_multiple_of(ALIGN);
            }
            let entry = Entry {
                hash,
                offset: at,
                size,
            };
            at += size;
            entry
        })
        .collect();
    (encode(&entries), entries)
}

/// The header's length for `count` blobs.
pub fn header_len(count: usize) -> usize {
    HEAD + count * ENTRY + CHECKSUM
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut header = Vec::with_capacity(header_len(entries.len()));
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    for entry in entries {
        header.extend_from_slice(&entry.hash.0);
        header.extend_from_slice(&entry.offset.to_le_bytes());
        header.extend_from_slice(&entry.size.to_le_bytes());
    }
    let checksum = blake3::hash(&header);
    header.extend_from_slice(checksum.as_bytes());
    header
}

/// How many blobs a pack's first [`HEAD`] bytes announce, so the reader
/// knows how much header to read.
pub fn count(head: &[u8]) -> Result<usize, PackError> {
    if head.len() < HEAD || &head[..8] != MAGIC {
        return Err(PackError::NotAPack);
    }
    let count = u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]));
    match usize::try_from(count) {
        Ok(n) if n <= MAX_BLOBS => Ok(n),
        _ => Err(PackError::TooMany(count)),
    }
}

/// Reads a whole header (as long as [`header_len`] of its [`count`]) of a
/// pack `file_len` bytes long: its blobs, checked to lie in order after the
/// header and inside the file.
pub fn parse(header: &[u8], file_len: u64) -> Result<Vec<Entry>, PackError> {
    let n = count(header)?;
    if header.len() != header_len(n) {
        return Err(PackError::BadLayout);
    }
    let (body, checksum) = header.split_at(header.len() - CHECKSUM);
    if blake3::hash(body).as_bytes() != checksum {
        return Err(PackError::Damaged);
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&body[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let mut end = header.len() as u64;
    let mut entries = Vec::with_capacity(n);
    for at in (HEAD..body.len()).step_by(ENTRY) {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&body[at..at + 32]);
        let entry = Entry {
            hash: BlobHash(hash),
            offset: word(at + 32),
            size: word(at + 40),
        };
        let Some(entry_end) = entry.offset.checked_add(entry.size) else {
            return Err(PackError::BadLayout);
        };
        if entry.offset < end || entry_end > file_len {
            return Err(PackError::BadLayout);
        }
        end = entry_end;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(sizes: &[u64]) -> Vec<(BlobHash, u64)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| (BlobHash::of(&i.to_le_bytes()), *size))
            .collect()
    }

    #[test]
    fn a_header_reads_back_as_it_was_laid_out() {
        let (header, entries) = layout(&blobs(&[10, 70_000, 3, 1 << 20, 0]));
        assert_eq!(header.len(), header_len(5));
        assert_eq!(entries[0].offset, header.len() as u64);
        // Big blobs start aligned; small ones follow without a gap.
        assert_eq!(entries[1].offset % ALIGN, 0);
        assert_eq!(entries[2].offset, entries[1].end());
        assert_eq!(entries[3].offset % ALIGN, 0);
        let file_len = entries[4].end();
        assert_eq!(count(&header[..HEAD]), Ok(5));
        assert_eq!(parse(&header, file_len), Ok(entries));
        assert_eq!(parse(&layout(&[]).0, 0).map(|e| e.len()), Ok(0));
    }

    #[test]
    fn a_damaged_or_truncated_header_is_refused() {
        let (header, entries) = layout(&blobs(&[100, 200]));
        let file_len = entries[1].end();
        assert_eq!(parse(&header, file_len - 1), Err(PackError::BadLayout));
        for at in [0, 9, HEAD + 5, header.len() - 1] {
            let mut bad = header.clone();
            bad[at] ^= 1;
            assert!(parse(&bad, file_len).is_err(), "a flip at {at} passed");
        }
        assert_eq!(count(b"ARCAPAK1"), Err(PackError::NotAPack));
        let mut huge = header.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(count(&huge), Err(PackError::TooMany(u64::from(u32::MAX))));
        assert_eq!(
            parse(&header[..header.len() - 1], file_len),
            Err(PackError::BadLayout)
        );
    }
}
