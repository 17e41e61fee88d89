//! Cutting files into content-defined chunks (FastCDC), so an edit in the
//! middle of a big file changes only the chunks around it. About 1 MiB on
//! average; a file under the smallest size is one chunk. Where the cuts
//! fall depends on a seed from the namespace's key, so the sizes of stored
//! chunks do not tell which known file a client holds.

use std::io::{self, Read};

use arca_shared::vault::CHUNK_MAX;
use fastcdc::v2020::{FastCDC, Normalization};

const MIN: u32 = 256 * 1024;
const AVG: u32 = 1024 * 1024;
const MAX: u32 = CHUNK_MAX as u32;

fn cutter(bytes: &[u8], seed: u64) -> FastCDC<'_> {
    FastCDC::with_level_and_seed(bytes, MIN, AVG, MAX, Normalization::Level1, seed)
}

/// The chunks of bytes in memory, cut as `seed` says. Empty input has none.
pub fn cut(bytes: &[u8], seed: u64) -> impl Iterator<Item = &[u8]> {
    cutter(bytes, seed).map(move |c| &bytes[c.offset..c.offset + c.length])
}

/// The chunks of everything `reader` gives, read as they are cut (one
/// largest chunk's worth in memory), the same as [`cut`] would give.
pub fn stream<R: Read>(reader: R, seed: u64) -> Stream<R> {
    Stream {
        reader,
        seed,
        buffer: vec![0; CHUNK_MAX],
        filled: 0,
        eof: false,
    }
}

/// Cuts as it reads. (The crate's own `StreamCDC` copies every chunk out
/// byte by byte, and is generic, so it runs unoptimised in debug builds.)
pub struct Stream<R> {
    reader: R,
    seed: u64,
    buffer: Vec<u8>,
    filled: usize,
    eof: bool,
}

impl<R: Read> Iterator for Stream<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        // A full buffer holds the largest chunk: the cut is where it would
        // be with the whole input in memory.
        while !self.eof && self.filled < self.buffer.len() {
            match self.reader.read(&mut self.buffer[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
        if self.filled == 0 {
            return None;
        }
        let (_, end) = cutter(&self.buffer[..self.filled], self.seed).cut(0, self.filled);
        let chunk = self.buffer[..end].to_vec();
        self.buffer.copy_within(end..self.filled, 0);
        self.filled -= end;
        Some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_cut_the_same_and_an_edit_moves_only_nearby_boundaries() {
        let bytes = arca_daemon::cluster::sample(7, 9 << 20);
        let in_memory: Vec<&[u8]> = cut(&bytes, 42).collect();
        let streamed: Vec<Vec<u8>> = stream(&bytes[..], 42).map(Result::unwrap).collect();
        assert_eq!(in_memory, streamed);
        assert!(in_memory.iter().all(|c| c.len() <= CHUNK_MAX));
        assert_eq!(in_memory.concat(), bytes);
        let mut edited = bytes.clone();
        edited[4 << 20] ^= 0xff;
        let after: Vec<&[u8]> = cut(&edited, 42).collect();
        let same = in_memory.iter().filter(|c| after.contains(c)).count();
        assert!(same + 2 >= in_memory.len(), "{same} of {}", in_memory.len());
        assert_eq!(cut(b"", 42).count(), 0);
        assert_eq!(cut(b"tiny", 42).collect::<Vec<_>>(), [b"tiny"]);
        // Another namespace's seed cuts the same bytes elsewhere.
        let sizes = |seed| cut(&bytes, seed).map(<[u8]>::len).collect::<Vec<_>>();
        assert_ne!(sizes(42), sizes(43));
    }
}
