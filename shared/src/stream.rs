//! File bytes through frames without a copy that is not needed: a file is
//! read ahead on a blocking thread straight into frame buffers, and received
//! chunks are written by a blocking thread, so network and disk overlap.
//! Buffers go back and forth instead of being allocated per chunk: fresh
//! memory is slow to touch, on a virtual machine most of all.

use std::fs::File;
use std::io;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connection::{FrameError, FrameWriter, chunk_prefix};
use crate::direct::{AlignedBuf, BLOCK, DirectReader, DirectWriter};
use crate::limits::CHUNK_SIZE;

/// Buffers in flight between a thread and the network, each way.
const AHEAD: usize = 4;
/// Buffers one transfer may use: once made they go round, and memory stays
/// warm.
const POOL: usize = AHEAD + 2;
/// Room before a block for a chunk's frame header.
const HEAD_ROOM: usize = 32;

/// Aligned buffers that go round between the network and a disk thread:
/// made on demand up to [`POOL`], then only reused.
struct Pool {
    free: mpsc::Receiver<AlignedBuf>,
    made: usize,
    head_room: usize,
}

impl Pool {
    /// The pool, and where its buffers are given back.
    fn new(head_room: usize) -> (Self, mpsc::Sender<AlignedBuf>) {
        let (recycle, free) = mpsc::channel(POOL);
        let pool = Self {
            free,
            made: 0,
            head_room,
        };
        (pool, recycle)
    }

    /// A buffer at once, if one is free or another may be made.
    fn ready(&mut self) -> Option<AlignedBuf> {
        if let Ok(buf) = self.free.try_recv() {
            return Some(buf);
        }
        (self.made < POOL).then(|| {
            self.made += 1;
            AlignedBuf::new(self.head_room)
        })
    }

    /// A buffer, waiting on this thread for one to come back; `None` once
    /// none ever can.
    fn take_blocking(&mut self) -> Option<AlignedBuf> {
        self.ready().or_else(|| self.free.blocking_recv())
    }

    /// A buffer, waiting for one to come back; `None` once none ever can.
    async fn take(&mut self) -> Option<AlignedBuf> {
        match self.ready() {
            Some(buf) => Some(buf),
            None => self.free.recv().await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendFileError {
    #[error("cannot read the file: {0}")]
    Read(#[source] io::Error),
    #[error(transparent)]
    Send(#[from] FrameError),
}

/// How a file is read for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Through the page cache: the file was just read (hashed) and is there.
    Cached,
    /// Around the page cache: a stored blob, read once.
    Direct,
}

/// Sends the next `len` bytes of `file` as `Chunk` frames, queued (the
/// caller sends `End` and flushes). `sent` hears the bytes sent so far.
pub async fn send_file(
    writer: &mut FrameWriter,
    file: File,
    len: u64,
    reading: Reading,
    mut sent: impl FnMut(u64),
) -> Result<(), SendFileError> {
    let (blocks, mut ready) = mpsc::channel::<io::Result<(AlignedBuf, usize)>>(AHEAD);
    let (mut pool, recycle) = Pool::new(HEAD_ROOM);
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = DirectReader::new(file, reading == Reading::Direct);
        let mut left = len;
        while left > 0 {
            let n = CHUNK_SIZE.min(left as usize);
            let Some(mut buf) = pool.take_blocking() else {
                return;
            };
            let read = file.read_exact(&mut buf, n).map(|()| (buf, n));
            let failed = read.is_err();
            if blocks.blocking_send(read).is_err() || failed {
                return;
            }
            left -= n as u64;
        }
    });
    let mut total = 0;
    while let Some(read) = ready.recv().await {
        let (mut buf, n) = read.map_err(SendFileError::Read)?;
        writer
            .feed_encoded(buf.with_head(&chunk_prefix(n), n))
            .await?;
        total += n as u64;
        sent(total);
        let _ = recycle.try_send(buf);
    }
    reader
        .await
        .map_err(|e| SendFileError::Read(io::Error::other(e)))?;
    Ok(())
}

/// A new file written on the calling thread, around the page cache, its
/// aligned blocks of zeros left holes: [`FileSink::sparse`] for a caller
/// that is a writing thread already.
pub struct SparseFile {
    writer: DirectWriter,
    block: AlignedBuf,
    filled: usize,
}

impl SparseFile {
    pub fn new(file: File) -> io::Result<Self> {
        Ok(Self {
            writer: DirectWriter::sparse(file)?,
            block: AlignedBuf::new(0),
            filled: 0,
        })
    }

    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = (BLOCK - self.filled).min(bytes.len());
            self.block.block_mut()[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == BLOCK {
                self.writer.write(&self.block, BLOCK)?;
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// Writes what is left and hands the file back (not yet synced).
    pub fn finish(mut self) -> io::Result<File> {
        if self.filled > 0 {
            self.writer.write(&self.block, self.filled)?;
        }
        self.writer.into_file()
    }
}

/// A blocking thread writing a file, from where it stands, around the page
/// cache while the caller receives the next chunks. Bytes are gathered into
/// aligned blocks here and written from them there: one copy.
pub struct FileSink {
    blocks: Option<mpsc::Sender<(AlignedBuf, usize)>>,
    pool: Pool,
    /// The block being filled, and how far.
    filling: Option<(AlignedBuf, usize)>,
    task: Option<JoinHandle<io::Result<File>>>,
}

impl FileSink {
    pub fn start(file: File) -> io::Result<Self> {
        Ok(Self::with(DirectWriter::new(file)?))
    }

    /// A sink that leaves aligned blocks of zeros holes, so a sparse file
    /// restores sparse; `file` must be new or empty from its cursor on.
    pub fn sparse(file: File) -> io::Result<Self> {
        Ok(Self::with(DirectWriter::sparse(file)?))
    }

    fn with(mut writer: DirectWriter) -> Self {
        let (blocks, mut incoming) = mpsc::channel::<(AlignedBuf, usize)>(AHEAD);
        let (pool, recycle) = Pool::new(0);
        let task = tokio::task::spawn_blocking(move || {
            while let Some((buf, len)) = incoming.blocking_recv() {
                writer.write(&buf, len)?;
                let _ = recycle.try_send(buf);
            }
            writer.into_file()
        });
        Self {
            blocks: Some(blocks),
            pool,
            filling: None,
            task: Some(task),
        }
    }

    pub async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let (buf, filled) = match &mut self.filling {
                Some(filling) => filling,
                None => {
                    let buf = self.free_buf().await?;
                    self.filling.insert((buf, 0))
                }
            };
            let n = (BLOCK - *filled).min(bytes.len());
            buf.block_mut()[*filled..*filled + n].copy_from_slice(&bytes[..n]);
            *filled += n;
            bytes = &bytes[n..];
            if *filled == BLOCK {
                self.send_filled().await?;
            }
        }
        Ok(())
    }

    /// Waits for every byte to be written and hands the file back (not yet
    /// synced).
    pub async fn finish(&mut self) -> io::Result<File> {
        self.send_filled().await?;
        self.join().await
    }

    async fn join(&mut self) -> io::Result<File> {
        self.blocks = None;
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Err(io::Error::other("the file writer already stopped")),
        }
    }

    async fn free_buf(&mut self) -> io::Result<AlignedBuf> {
        match self.pool.take().await {
            Some(buf) => Ok(buf),
            None => Err(self.stopped().await),
        }
    }

    async fn send_filled(&mut self) -> io::Result<()> {
        let Some(block) = self.filling.take().filter(|(_, filled)| *filled > 0) else {
            return Ok(());
        };
        let sent = match &self.blocks {
            Some(blocks) => blocks.send(block).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.stopped().await)
        }
    }

    /// Why the thread stopped early.
    async fn stopped(&mut self) -> io::Error {
        match self.join().await {
            Err(e) => e,
            Ok(_) => io::Error::other("the file writer stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use super::*;

    #[tokio::test]
    async fn a_sink_writes_every_piece_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut sink = FileSink::start(File::create(&path).unwrap()).unwrap();
        let mut expected = Vec::new();
        // More blocks than the pool holds, in pieces that straddle blocks.
        for (i, size) in [7, BLOCK, BLOCK - 7, 3 * BLOCK + 1, 10, 2 * BLOCK, 4096, 1]
            .into_iter()
            .enumerate()
        {
            let piece: Vec<u8> = (0..size).map(|j| (i * 13 + j) as u8).collect();
            sink.write(&piece).await.unwrap();
            expected.extend(piece);
        }
        sink.finish().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_sink_says_why_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let mut sink = FileSink::start(File::open(&path).unwrap()).unwrap();
        let mut failed = None;
        for _ in 0..2 * POOL {
            if let Err(e) = sink.write(&vec![1u8; BLOCK]).await {
                failed = Some(e);
                break;
            }
        }
        let failed = match failed {
            Some(e) => e,
            None => sink.finish().await.unwrap_err(),
        };
        assert_eq!(
            failed.raw_os_error(),
            Some(rustix::io::Errno::BADF.raw_os_error())
        );
    }

    async fn sparse_write(file: File, data: &[u8], mut piece: impl FnMut() -> usize) -> File {
        let mut sink = FileSink::sparse(file).unwrap();
        let mut rest = data;
        while !rest.is_empty() {
            let n = piece().clamp(1, rest.len());
            sink.write(&rest[..n]).await.unwrap();
            rest = &rest[n..];
        }
        sink.finish().await.unwrap()
    }

    fn contents(path: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        File::open(path).unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[tokio::test]
    async fn zeros_become_holes_and_the_bytes_are_those_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let mut data = vec![0u8; 64 << 20];
        for (i, b) in data[(31 << 20) + 7..(32 << 20) + 7].iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        // Pieces that straddle blocks.
        let file = sparse_write(File::create(&path).unwrap(), &data, || 100_003).await;
        assert_eq!(file.metadata().unwrap().len(), 64 << 20);
        let allocated = file.metadata().unwrap().blocks() * 512;
        assert!(allocated < 4 << 20, "{allocated} bytes allocated");
        assert!(contents(&path) == data);
    }

    /// A small deterministic generator (xorshift), for reproducible mixes.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    #[tokio::test]
    async fn any_mix_of_zeros_and_data_is_written_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..200 {
            // Runs of zeros and of data, long and short, on and off blocks.
            let mut data = Vec::new();
            for _ in 0..rng.below(12) {
                let zeros = [0, 1, 4095, 4096, 4097, 8192, rng.below(20_000)][rng.below(7)];
                data.resize(data.len() + zeros, 0);
                let ones = [0, 1, 4096, rng.below(10_000)][rng.below(4)];
                data.extend((0..ones).map(|_| rng.below(255) as u8 + 1));
            }
            // Some rounds start after bytes already written, off a block.
            let path = dir.path().join(format!("mix{round}"));
            let mut file = File::create(&path).unwrap();
            let prefix = vec![7u8; [0, 1, 4096, rng.below(6000)][rng.below(4)]];
            file.write_all(&prefix).unwrap();
            let largest = [1, 4096, 5000, 70_000][rng.below(4)];
            let mut file = sparse_write(file, &data, || rng.below(largest) + 1).await;
            file.write_all(b"end").unwrap();
            let expected = [&prefix[..], &data, b"end"].concat();
            assert!(contents(&path) == expected, "round {round} differs");
        }
    }

    #[tokio::test]
    async fn a_sparse_write_starts_at_the_end_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "existing").unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let e = FileSink::sparse(file).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
