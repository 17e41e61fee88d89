//! Cutting files into content-defined chunks (FastCDC), so an edit in the
//! middle of a big file changes only the chunks around it. About 1 MiB on
//! average; a file under the smallest size is one chunk.

use std::io::{self, Read};

use arca_shared::vault::CHUNK_MAX;
use fastcdc::v2020::FastCDC;

const MIN: u32 = 256 * 1024;
const AVG: u32 = 1024 * 1024;
const MAX: u32 = CHUNK_MAX as u32;

/// The chunks of bytes in memory. Empty input has none.
pub fn cut(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    FastCDC::new(bytes, MIN, AVG, MAX).map(move |c| &bytes[c.offset..c.offset + c.length])
}

/// The chunks of everything `reader` gives, read as they are cut (one
/// largest chunk's worth in memory), the same as [`cut`] would give.
pub fn stream<R: Read>(reader: R) -> Stream<R> {
    Stream {
        reader,
        buffer: vec![0; CHUNK_MAX],
        filled: 0,
        eof: false,
    }
}

/// Cuts as it reads. (The crate's own `StreamCDC` copies every chunk out
/// byte by byte, and is generic, so it runs unoptimised in debug builds.)
pub struct Stream<R> {
    reader: R,
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
        let (_, end) = FastCDC::new(&self.buffer[..self.filled], MIN, AVG, MAX).cut(0, self.filled);
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
        let in_memory: Vec<&[u8]> = cut(&bytes).collect();
        let streamed: Vec<Vec<u8>> = stream(&bytes[..]).map(Result::unwrap).collect();
        assert_eq!(in_memory, streamed);
        assert!(in_memory.iter().all(|c| c.len() <= CHUNK_MAX));
        assert_eq!(in_memory.concat(), bytes);
        let mut edited = bytes.clone();
        edited[4 << 20] ^= 0xff;
        let after: Vec<&[u8]> = cut(&edited).collect();
        let same = in_memory.iter().filter(|c| after.contains(c)).count();
        assert!(same + 2 >= in_memory.len(), "{same} of {}", in_memory.len());
        assert_eq!(cut(b"").count(), 0);
        assert_eq!(cut(b"tiny").collect::<Vec<_>>(), [b"tiny"]);
    }
}
