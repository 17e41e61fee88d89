//! A connection that reads and writes frames: a big-endian `u32` length, then
//! a MessagePack body, inside the link's TLS. Every length is checked against
//! a cap before anything is allocated for it, and every wait has a timeout.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Buf;
use rmp::Marker;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::limits::{CONTROL_FRAME_MAX, DATA_FRAME_MAX, IDLE_TIMEOUT};
use crate::protocol::{Fault, Message};
use crate::reply::Reply;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed by peer")]
    Closed,
    #[error("peer was silent for {0:?}")]
    Timeout(Duration),
    #[error("frame of {len} bytes is over the cap of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame does not decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("message does not encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("unexpected message {got} (wanted {wanted})")]
    Unexpected { got: String, wanted: &'static str },
    /// The peer refused the request and said why: the asker can act on it.
    #[error("{0}")]
    Refused(String),
    /// The peer failed at its own work (its disk, its catalog) and said so.
    #[error("{0}")]
    PeerFailed(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// An unexpected-message error naming the message received.
    pub fn unexpected(got: &Message, wanted: &'static str) -> Self {
        Self::Unexpected {
            got: got.kind().to_string(),
            wanted,
        }
    }
}

/// A link: TCP inside TLS (see [`crate::link`]).
pub type Stream = tokio_rustls::TlsStream<TcpStream>;

/// Reads frames from one half of a link.
pub struct FrameReader {
    inner: BufReader<ReadHalf<Stream>>,
    buf: Vec<u8>,
    timeout: Duration,
}

/// Writes frames to one half of a link.
pub struct FrameWriter {
    inner: BufWriter<WriteHalf<Stream>>,
    timeout: Duration,
}

/// Both halves of a framed link; split it to read and write at once.
pub struct Connection {
    pub reader: FrameReader,
    pub writer: FrameWriter,
    peer: SocketAddr,
}

/// Buffer sizes: streams of many small frames come in and go out with few
/// system calls.
const STREAM_BUFFER: usize = 256 * 1024;

impl Connection {
    /// Frames over a link whose TLS is up, with the peer at `peer`.
    pub fn new(stream: Stream, peer: SocketAddr) -> Self {
        let (read, write) = tokio::io::split(stream);
        Self {
            reader: FrameReader {
                inner: BufReader::with_capacity(STREAM_BUFFER, read),
                buf: Vec::new(),
                timeout: IDLE_TIMEOUT,
            },
            writer: FrameWriter {
                // Allocated, not touched, until something is written.
                inner: BufWriter::with_capacity(STREAM_BUFFER, write),
                timeout: IDLE_TIMEOUT,
            },
            peer,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The link underneath, for speaking raw bytes inside its TLS (tests
    /// of hostile input do). Bytes already buffered for reading are dropped.
    pub fn into_stream(self) -> Stream {
        self.reader
            .inner
            .into_inner()
            .unsplit(self.writer.inner.into_inner())
    }

    /// Sets how long reads and writes may wait before failing.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.reader.timeout = timeout;
        self.writer.timeout = timeout;
    }

    pub async fn send(&mut self, message: &Message) -> Result<(), FrameError> {
        self.writer.send(message).await
    }

    pub async fn recv(&mut self) -> Result<Message, FrameError> {
        self.reader.recv().await
    }

    pub async fn recv_data(&mut self) -> Result<DataFrame<'_>, FrameError> {
        self.reader.recv_data().await
    }

    /// The next chunk of a stream of them, or `None` at its `End`.
    pub async fn recv_chunk(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let frame = self.reader.recv_data().await?;
        match frame.chunk() {
            Some(data) => Ok(Some(data)),
            None => match frame.message()? {
                Message::End => Ok(None),
                other => Err(FrameError::unexpected(&other, "Chunk or End")),
            },
        }
    }

    /// Sends a request and reads its (control-sized) reply.
    pub async fn call(&mut self, message: &Message) -> Result<Message, FrameError> {
        self.send(message).await?;
        self.recv().await
    }

    /// Sends a request answered by pages of items (see [`PageWriter`])
    /// and reads them all, until `End`.
    pub async fn request_pages<T>(&mut self, message: &Message) -> Result<Vec<T>, FrameError>
    where
        Vec<T>: Reply,
    {
        self.send(message).await?;
        self.recv_pages().await
    }

    /// Reads pages of items (see [`PageWriter`]) until `End`.
    pub async fn recv_pages<T>(&mut self) -> Result<Vec<T>, FrameError>
    where
        Vec<T>: Reply,
    {
        let mut items = Vec::new();
        loop {
            match self.recv().await? {
                Message::End => return Ok(items),
                page => items.extend(unpacked::<Vec<T>>(page)?),
            }
        }
    }

    /// Sends a request and reads the one reply it expects.
    pub async fn request<R: Reply>(&mut self, message: &Message) -> Result<R, FrameError> {
        self.send(message).await?;
        self.reader.expect().await
    }
}

impl FrameReader {
    /// Reads the one reply expected next; any other message is an error.
    pub async fn expect<R: Reply>(&mut self) -> Result<R, FrameError> {
        unpacked(self.recv().await?)
    }

    /// Reads a control message.
    pub async fn recv(&mut self) -> Result<Message, FrameError> {
        self.recv_capped(CONTROL_FRAME_MAX).await
    }

    /// Reads a frame that may carry a data chunk, without decoding the chunk:
    /// its bytes are borrowed from the frame, and the frame can be forwarded
    /// as it came.
    pub async fn recv_data(&mut self) -> Result<DataFrame<'_>, FrameError> {
        let timeout = self.timeout;
        let body = tokio::time::timeout(timeout, self.read_frame(DATA_FRAME_MAX))
            .await
            .map_err(|_| FrameError::Timeout(timeout))??;
        Ok(DataFrame { body })
    }

    /// Reads one frame no larger than `max` and decodes it. A peer's `Error`
    /// message comes back as [`FrameError::Refused`].
    pub async fn recv_capped(&mut self, max: usize) -> Result<Message, FrameError> {
        let timeout = self.timeout;
        let frame = tokio::time::timeout(timeout, self.read_frame(max))
            .await
            .map_err(|_| FrameError::Timeout(timeout))??;
        decode(frame)
    }

    /// Reads a frame that may carry a data chunk, appending the chunk's
    /// bytes to `out` straight from the socket (no zeroing, no second copy)
    /// and answering `None`; any other frame is decoded and returned.
    pub async fn recv_chunk_into(
        &mut self,
        out: &mut Vec<u8>,
    ) -> Result<Option<Message>, FrameError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.read_chunk_into(out))
            .await
            .map_err(|_| FrameError::Timeout(timeout))?
    }

    async fn read_chunk_into(&mut self, out: &mut Vec<u8>) -> Result<Option<Message>, FrameError> {
        let len = self.read_len(DATA_FRAME_MAX).await?;
        let envelope = CHUNK_ENVELOPE.as_slice();
        self.buf.clear();
        self.append(len.min(envelope.len() + 1)).await?;
        // The bin marker says how many bytes its length takes.
        let width = match self.buf.strip_prefix(envelope) {
            Some(&[marker]) => match Marker::from_u8(marker) {
                Marker::Bin8 => 1,
                Marker::Bin16 => 2,
                Marker::Bin32 => 4,
                _ => 0,
            },
            _ => 0,
        };
        if width > 0 && len >= self.buf.len() + width {
            self.append(width).await?;
            let data_len =
                rmp::decode::read_bin_len(&mut &self.buf[envelope.len()..]).map_err(|e| {
                    FrameError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                })? as usize;
            if self.buf.len() + data_len != len {
                return Err(FrameError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a chunk's length disagrees with its frame's",
                )));
            }
            append_exact(&mut self.inner, out, data_len).await?;
            return Ok(None);
        }
        self.append(len - self.buf.len()).await?;
        decode(&self.buf).map(Some)
    }

    async fn read_frame(&mut self, max: usize) -> Result<&[u8], FrameError> {
        let len = self.read_len(max).await?;
        self.buf.clear();
        self.append(len).await?;
        Ok(&self.buf)
    }

    /// A frame's length, checked against `max`.
    async fn read_len(&mut self, max: usize) -> Result<usize, FrameError> {
        let len = match self.inner.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FrameError::Closed);
            }
            Err(e) => return Err(e.into()),
        };
        check_len(len, max)?;
        Ok(len)
    }

    /// Reads `n` more bytes of the frame into its buffer.
    async fn append(&mut self, n: usize) -> Result<(), FrameError> {
        append_exact(&mut self.inner, &mut self.buf, n).await
    }
}

/// Appends exactly `n` bytes from `reader` to `out`, read into its spare
/// room: a megabyte frame is not zeroed before it is overwritten.
async fn append_exact(
    reader: &mut BufReader<ReadHalf<Stream>>,
    out: &mut Vec<u8>,
    n: usize,
) -> Result<(), FrameError> {
    out.reserve(n);
    let end = out.len() + n;
    while out.len() < end {
        let left = (end - out.len()) as u64;
        if (&mut *reader).take(left).read_buf(out).await? == 0 {
            return Err(FrameError::Closed);
        }
    }
    Ok(())
}

impl FrameWriter {
    pub async fn send(&mut self, message: &Message) -> Result<(), FrameError> {
        let body = encode(message)?;
        self.send_encoded(&body).await
    }

    /// Sends a body made by [`encode`], so one message can go to several peers
    /// while being encoded once.
    pub async fn send_encoded(&mut self, body: &[u8]) -> Result<(), FrameError> {
        self.feed_encoded(body).await?;
        self.flush().await
    }

    /// Queues a message without flushing: for streams of many small frames,
    /// which then go out in few writes. Call [`FrameWriter::flush`] after.
    pub async fn feed(&mut self, message: &Message) -> Result<(), FrameError> {
        self.feed_encoded(&encode(message)?).await
    }

    /// Queues a `Chunk` of `data`, written straight from the slice.
    pub async fn feed_chunk(&mut self, data: &[u8]) -> Result<(), FrameError> {
        self.feed_parts(&chunk_prefix(data.len()), data).await
    }

    /// Queues an encoded body without flushing.
    pub async fn feed_encoded(&mut self, body: &[u8]) -> Result<(), FrameError> {
        self.feed_parts(body, &[]).await
    }

    /// Queues one frame whose body is `head` then `tail`: a big frame goes
    /// out in one vectored write, its length header included.
    async fn feed_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), FrameError> {
        let len = head.len() + tail.len();
        let header = u32::try_from(len)
            .map_err(|_| FrameError::TooLarge {
                len,
                max: u32::MAX as usize,
            })?
            .to_be_bytes();
        let mut frame = Buf::chain(Buf::chain(header.as_slice(), head), tail);
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.inner.write_all_buf(&mut frame))
            .await
            .map_err(|_| FrameError::Timeout(timeout))?
            .map_err(FrameError::from)
    }

    pub async fn flush(&mut self) -> Result<(), FrameError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.inner.flush())
            .await
            .map_err(|_| FrameError::Timeout(timeout))?
            .map_err(FrameError::from)
    }

    /// Closes the write side so the peer sees a clean end.
    pub async fn shutdown(&mut self) -> Result<(), FrameError> {
        Ok(self.inner.shutdown().await?)
    }
}

/// Sends a long answer as pages of a few items each, then `End`, so every
/// frame stays under the control cap.
pub struct PageWriter<'a, T> {
    conn: &'a mut Connection,
    per_page: usize,
    page: Vec<T>,
    wrap: fn(Vec<T>) -> Message,
}

impl<'a, T> PageWriter<'a, T> {
    pub fn new(conn: &'a mut Connection, per_page: usize, wrap: fn(Vec<T>) -> Message) -> Self {
        Self {
            conn,
            per_page,
            page: Vec::with_capacity(per_page),
            wrap,
        }
    }

    pub async fn push(&mut self, item: T) -> Result<(), FrameError> {
        self.page.push(item);
        if self.page.len() >= self.per_page {
            let page = std::mem::take(&mut self.page);
            self.conn.send(&(self.wrap)(page)).await?;
        }
        Ok(())
    }

    pub async fn finish(self) -> Result<(), FrameError> {
        if !self.page.is_empty() {
            self.conn.send(&(self.wrap)(self.page)).await?;
        }
        self.conn.send(&Message::End).await
    }
}

/// A frame read by [`FrameReader::recv_data`]: a `Chunk` (its bytes read in
/// place) or any other message (decoded on demand).
pub struct DataFrame<'a> {
    body: &'a [u8],
}

impl<'a> DataFrame<'a> {
    /// The frame body exactly as received, to forward with
    /// [`FrameWriter::feed_encoded`].
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The chunk's bytes, if this frame is a `Chunk` in the encoding
    /// [`chunk_prefix`] describes; any other frame is left to [`Self::message`].
    pub fn chunk(&self) -> Option<&'a [u8]> {
        let mut rest = self.body.strip_prefix(CHUNK_ENVELOPE.as_slice())?;
        let len = rmp::decode::read_bin_len(&mut rest).ok()?;
        (rest.len() == len as usize).then_some(rest)
    }

    pub fn message(&self) -> Result<Message, FrameError> {
        decode(self.body)
    }
}

/// What [`encode`] writes for `Message::Chunk` before the bytes' own
/// header: taken from the encoder itself, so the two cannot drift apart.
static CHUNK_ENVELOPE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let empty = Message::Chunk {
        data: serde_bytes::ByteBuf::new(),
    };
    let mut body = rmp_serde::to_vec_named(&empty).unwrap_or_default();
    // An empty chunk ends with its two-byte header (bin8, length 0).
    body.truncate(body.len().saturating_sub(2));
    body
});

/// Everything [`encode`] writes for a `Chunk` of `len` bytes before them, so
/// a chunk can be framed without copying it into a message.
pub fn chunk_prefix(len: usize) -> Vec<u8> {
    let mut prefix = CHUNK_ENVELOPE.clone();
    // Writing to a Vec cannot fail.
    let _ = rmp::encode::write_bin_len(&mut prefix, len as u32);
    prefix
}

/// The reply `R` out of `message`; any other message is an error.
fn unpacked<R: Reply>(message: Message) -> Result<R, FrameError> {
    R::unpack(message).map_err(|got| FrameError::Unexpected {
        got: got.to_owned(),
        wanted: R::WANTED,
    })
}

/// Checks a frame's announced length before anything is allocated for it.
pub fn check_len(len: usize, max: usize) -> Result<(), FrameError> {
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(())
}

/// Decodes a frame body; a peer's `Error` message becomes [`FrameError::Refused`].
pub fn decode(frame: &[u8]) -> Result<Message, FrameError> {
    match rmp_serde::from_slice(frame)? {
        Message::Error {
            message,
            fault: Fault::Refused,
        } => Err(FrameError::Refused(message)),
        Message::Error {
            message,
            fault: Fault::Failed,
        } => Err(FrameError::PeerFailed(message)),
        message => Ok(message),
    }
}

/// Encodes a message body (MessagePack with field names).
pub fn encode(message: &Message) -> Result<Vec<u8>, FrameError> {
    Ok(rmp_serde::to_vec_named(message)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{CHUNK_SIZE, CONTROL_FRAME_MAX, DATA_FRAME_MAX};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic_the_decoder(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = encode(&Message::List { client: "c".into(), name: Some("a/b".into()) }).unwrap();
            for (at, value) in flips {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            let _ = decode(&bytes);
        }

        #[test]
        fn every_length_over_the_cap_is_refused(len in (DATA_FRAME_MAX + 1)..=u32::MAX as usize) {
            prop_assert!(check_len(len, DATA_FRAME_MAX).is_err());
            prop_assert!(check_len(len, CONTROL_FRAME_MAX).is_err());
        }
    }

    proptest! {
        #[test]
        fn chunk_prefix_is_what_the_encoder_writes(len in prop_oneof![0usize..300, 65530usize..65540, Just(CHUNK_SIZE)]) {
            let data = vec![7u8; len];
            let encoded = encode(&Message::Chunk { data: serde_bytes::ByteBuf::from(data.clone()) }).unwrap();
            let mut framed = chunk_prefix(len);
            framed.extend_from_slice(&data);
            prop_assert_eq!(&framed, &encoded);
            prop_assert_eq!(DataFrame { body: &encoded }.chunk(), Some(data.as_slice()));
        }
    }

    #[test]
    fn other_frames_are_no_chunks() {
        for message in [Message::End, Message::Accepted, Message::error("Chunk")] {
            let body = encode(&message).unwrap();
            let frame = DataFrame { body: &body };
            assert_eq!(frame.chunk(), None);
            assert_eq!(frame.message().ok(), decode(&body).ok());
        }
        // A chunk whose header claims more bytes than the frame has.
        let mut body = chunk_prefix(10);
        body.extend_from_slice(&[1, 2, 3]);
        assert_eq!(DataFrame { body: &body }.chunk(), None);
    }

    #[test]
    fn messages_round_trip() {
        let message = Message::Chunk {
            data: serde_bytes::ByteBuf::from(vec![1, 2, 3]),
        };
        assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
        assert!(
            matches!(decode(&encode(&Message::error("no")).unwrap()), Err(FrameError::Refused(m)) if m == "no")
        );
    }
}
