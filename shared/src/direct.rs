//! Reading and writing big files around the page cache (`O_DIRECT`). A
//! backup's bytes are not read again soon, and passing them through the page
//! cache costs more than the disk itself: on a virtual machine every fresh
//! page-cache page is a fault in the host. File systems without `O_DIRECT`,
//! and positions that are not aligned, get plain reads and writes.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;

use rustix::fs::OFlags;

use crate::limits::CHUNK_SIZE;

/// Direct I/O wants buffers, offsets and lengths aligned to the device's
/// block; 4 KiB covers the block sizes in use.
const ALIGN: usize = 4096;
/// Bytes per read or write (a multiple of [`ALIGN`]).
pub(crate) const BLOCK: usize = CHUNK_SIZE;

/// Room for a block at an aligned address, with a few bytes before it for a
/// frame's header, so a chunk read from disk is sent without a copy.
pub(crate) struct AlignedBuf {
    buf: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    pub(crate) fn new(head_room: usize) -> Self {
        let buf = vec![0u8; head_room + BLOCK + ALIGN];
        let start = head_room + buf[head_room..].as_ptr().align_offset(ALIGN);
        Self { buf, start }
    }

    pub(crate) fn block(&self) -> &[u8] {
        &self.buf[self.start..self.start + BLOCK]
    }

    pub(crate) fn block_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + BLOCK]
    }

    /// `head` followed by the block's first `len` bytes, as one slice.
    pub(crate) fn with_head(&mut self, head: &[u8], len: usize) -> &[u8] {
        let from = self.start - head.len();
        self.buf[from..self.start].copy_from_slice(head);
        &self.buf[from..self.start + len]
    }
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(file, flags)?;
    Ok(())
}

/// Turns direct I/O on for `file` if it may be used from where it stands.
fn try_direct(file: &mut File) -> bool {
    matches!(file.stream_position(), Ok(at) if at.is_multiple_of(ALIGN as u64))
        && set_direct(file, true).is_ok()
}

/// Reads a file sequentially, block by block.
pub(crate) struct DirectReader {
    file: File,
    direct: bool,
}

impl DirectReader {
    /// With `direct`, reads around the page cache; without, through it (for a
    /// file just read, which the page cache still holds).
    pub(crate) fn new(mut file: File, direct: bool) -> Self {
        let direct = direct && try_direct(&mut file);
        Self { file, direct }
    }

    /// Fills the first `len` bytes of `buf`'s block (`len` ≤ [`BLOCK`]).
    pub(crate) fn read_exact(&mut self, buf: &mut AlignedBuf, len: usize) -> io::Result<()> {
        let block = buf.block_mut();
        let mut got = 0;
        if self.direct {
            // An aligned length: the end of the file makes the read short.
            match self.file.read(&mut block[..len.next_multiple_of(ALIGN)]) {
                Ok(n) if n >= len => return Ok(()),
                Ok(n) => got = n,
                Err(e) if is_einval(&e) => {}
                Err(e) => return Err(e),
            }
            set_direct(&self.file, false)?;
            self.direct = false;
        }
        self.file.read_exact(&mut block[got..len])
    }
}

/// Writes a file sequentially from aligned blocks, from where it stood.
pub(crate) struct DirectWriter {
    file: File,
    direct: bool,
    /// Where the next byte goes.
    end: u64,
    /// Whether aligned blocks of zeros are left holes.
    holes: bool,
}

/// The size of a hole: file systems allocate whole blocks, so a run of
/// zeros becomes a hole only as whole blocks, aligned in the file.
const HOLE: usize = ALIGN;

impl DirectWriter {
    pub(crate) fn new(mut file: File) -> io::Result<Self> {
        let end = file.stream_position()?;
        let direct = try_direct(&mut file);
        Ok(Self {
            file,
            direct,
            end,
            holes: false,
        })
    }

    /// A writer that leaves every aligned block of zeros a hole, so a sparse
    /// file restores sparse. It must start at the end of the file: a skipped
    /// block reads as zeros only where nothing was.
    pub(crate) fn sparse(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let writer = Self {
            holes: true,
            ..Self::new(file)?
        };
        if len > writer.end {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a sparse write must start at the end of the file ({len}), not at {}: \
                     the zeros it skips would leave the bytes already there",
                    writer.end
                ),
            ));
        }
        Ok(writer)
    }

    /// Writes the first `len` bytes of `buf`'s block. A piece that is not
    /// aligned (the last of a file) goes through the page cache, and so
    /// does everything after it.
    pub(crate) fn write(&mut self, buf: &AlignedBuf, len: usize) -> io::Result<()> {
        let bytes = &buf.block()[..len];
        let mut run = 0;
        if self.holes {
            // Pieces cut where the file's blocks begin; whole ones of zeros
            // are skipped.
            let mut at = 0;
            while at < len {
                let next = len.min(at + HOLE - (self.end as usize + at) % HOLE);
                if next - at == HOLE && is_zero(&bytes[at..next]) {
                    self.put(&bytes[run..at], self.end + run as u64)?;
                    run = next;
                }
                at = next;
            }
        }
        self.put(&bytes[run..], self.end + run as u64)?;
        self.end += len as u64;
        Ok(())
    }

    /// The file, through the page cache again, its cursor and (holes at
    /// its end included) its length where the bytes end; not yet synced.
    pub(crate) fn into_file(mut self) -> io::Result<File> {
        if self.direct {
            self.buffered()?;
        }
        if self.holes {
            self.file.set_len(self.end)?;
        }
        self.file.seek(io::SeekFrom::Start(self.end))?;
        Ok(self.file)
    }

    fn put(&mut self, bytes: &[u8], at: u64) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let aligned = at.is_multiple_of(ALIGN as u64)
            && bytes.len().is_multiple_of(ALIGN)
            && (bytes.as_ptr() as usize).is_multiple_of(ALIGN);
        if self.direct && !aligned {
            self.buffered()?;
        }
        match self.file.write_all_at(bytes, at) {
            // Some file systems accept the flag but refuse the write.
            Err(e) if self.direct && is_einval(&e) => {
                self.buffered()?;
                self.file.write_all_at(bytes, at)
            }
            other => other,
        }
    }

    fn buffered(&mut self) -> io::Result<()> {
        set_direct(&self.file, false)?;
        self.direct = false;
        Ok(())
    }
}

/// Whether every byte is zero; folded in pieces, so the loop vectorises and
/// data stops it early.
fn is_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .all(|piece| piece.iter().fold(0, |all, b| all | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| (0..*size).map(|j| (i * 31 + j) as u8).collect())
            .collect()
    }

    #[test]
    fn writes_every_byte_whatever_the_blocks() {
        for sizes in [
            &[][..],
            &[1],
            &[BLOCK],
            &[BLOCK, BLOCK, ALIGN],
            &[BLOCK, 5000],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let mut writer = DirectWriter::new(File::create(&path).unwrap()).unwrap();
            let mut buf = AlignedBuf::new(0);
            for piece in pieces(sizes) {
                buf.block_mut()[..piece.len()].copy_from_slice(&piece);
                writer.write(&buf, piece.len()).unwrap();
            }
            writer.into_file().unwrap().sync_all().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), pieces(sizes).concat());
        }
    }

    #[test]
    fn reads_every_byte_from_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content = pieces(&[BLOCK * 2 + 999]).concat();
        std::fs::write(&path, &content).unwrap();
        for (from, direct) in [(0, true), (ALIGN, true), (7, true), (0, false)] {
            let mut file = File::open(&path).unwrap();
            file.seek(io::SeekFrom::Start(from as u64)).unwrap();
            let mut reader = DirectReader::new(file, direct);
            let mut buf = AlignedBuf::new(8);
            let mut read = Vec::new();
            while read.len() < content.len() - from {
                let len = BLOCK.min(content.len() - from - read.len());
                reader.read_exact(&mut buf, len).unwrap();
                read.extend_from_slice(&buf.block_mut()[..len]);
            }
            assert_eq!(read, content[from..], "from {from}, direct {direct}");
            let too_far = reader.read_exact(&mut buf, 1).unwrap_err();
            assert_eq!(too_far.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    fn a_head_goes_right_before_the_block() {
        let mut buf = AlignedBuf::new(4);
        buf.block_mut()[..3].copy_from_slice(b"abc");
        assert_eq!(buf.with_head(b"xy", 3), b"xyabc");
    }
}
