//! Whole files sealed for storage on machines that must not read them:
//! XChaCha20-Poly1305 in the STREAM construction (RustCrypto's `aead-stream`),
//! one 1 MiB segment at a time, so a file of any size is sealed and opened
//! in bounded memory, and a truncated, reordered or altered file fails to
//! open. The caller's context (what the file is) is bound to every segment.
//!
//! Layout: `MAGIC`, the stream's random nonce, then the sealed segments,
//! each `SEGMENT` bytes plus a tag, the last one shorter (or empty).

use std::io::{self, Read, Write};

use aead_stream::{DecryptorBE32, EncryptorBE32, Nonce, StreamBE32};
use chacha20poly1305::aead::Payload;
use chacha20poly1305::{Key, XChaCha20Poly1305};

use crate::hash::read_full;

const MAGIC: &[u8; 8] = b"ARCASEAL";
const SEGMENT: usize = 1 << 20;
const TAG: usize = 16;
const NONCE: usize = 19;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("not a sealed Arca file")]
    NotSealed,
    #[error(
        "the sealed file does not open: it was damaged or cut short, or sealed \
         with another cluster secret or for something else"
    )]
    Rejected,
}

/// Seals everything `from` reads into `to`, under `key`, bound to `context`.
pub fn seal(
    key: &[u8; 32],
    context: &[u8],
    from: &mut impl Read,
    to: &mut impl Write,
) -> Result<(), SealError> {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    to.write_all(MAGIC)?;
    to.write_all(&nonce)?;
    let mut stream = EncryptorBE32::<XChaCha20Poly1305>::new(
        &Key::from(*key),
        &Nonce::<XChaCha20Poly1305, StreamBE32<XChaCha20Poly1305>>::from(nonce),
    );
    let mut segments = Segments::new(from, SEGMENT);
    loop {
        let (msg, last) = segments.next()?;
        let payload = Payload { msg, aad: context };
        if last {
            let sealed = stream.encrypt_last(payload);
            to.write_all(&sealed.map_err(|_| SealError::Rejected)?)?;
            return Ok(());
        }
        let sealed = stream.encrypt_next(payload);
        to.write_all(&sealed.map_err(|_| SealError::Rejected)?)?;
    }
}

/// Opens what [`seal`] wrote, writing the plaintext to `to`. Nothing it
/// wrote may be trusted unless this returns `Ok`.
pub fn open(
    key: &[u8; 32],
    context: &[u8],
    from: &mut impl Read,
    to: &mut impl Write,
) -> Result<(), SealError> {
    let mut head = [0u8; MAGIC.len() + NONCE];
    from.read_exact(&mut head)
        .map_err(|_| SealError::NotSealed)?;
    if &head[..MAGIC.len()] != MAGIC {
        return Err(SealError::NotSealed);
    }
    let mut nonce = [0u8; NONCE];
    nonce.copy_from_slice(&head[MAGIC.len()..]);
    let mut stream = DecryptorBE32::<XChaCha20Poly1305>::new(
        &Key::from(*key),
        &Nonce::<XChaCha20Poly1305, StreamBE32<XChaCha20Poly1305>>::from(nonce),
    );
    let mut segments = Segments::new(from, SEGMENT + TAG);
    loop {
        let (msg, last) = segments.next()?;
        let payload = Payload { msg, aad: context };
        if last {
            let opened = stream.decrypt_last(payload);
            to.write_all(&opened.map_err(|_| SealError::Rejected)?)?;
            return Ok(());
        }
        let opened = stream.decrypt_next(payload);
        to.write_all(&opened.map_err(|_| SealError::Rejected)?)?;
    }
}

/// An input cut into segments of one size, reading one ahead to tell which
/// is the last (shorter, or empty when the input is a multiple).
struct Segments<'a, R> {
    from: &'a mut R,
    current: Vec<u8>,
    next: Vec<u8>,
    ahead: Option<usize>,
}

impl<'a, R: Read> Segments<'a, R> {
    fn new(from: &'a mut R, size: usize) -> Self {
        Self {
            from,
            current: vec![0; size],
            next: vec![0; size],
            ahead: None,
        }
    }

    /// The next segment, and whether it is the last.
    fn next(&mut self) -> io::Result<(&[u8], bool)> {
        let filled = match self.ahead.take() {
            Some(filled) => {
                std::mem::swap(&mut self.current, &mut self.next);
                filled
            }
            None => read_full(self.from, &mut self.current)?,
        };
        if filled < self.current.len() {
            return Ok((&self.current[..filled], true));
        }
        let ahead = read_full(self.from, &mut self.next)?;
        self.ahead = (ahead > 0).then_some(ahead);
        Ok((&self.current, ahead == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(plain: &[u8], key: &[u8; 32], context: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(key, context, &mut &plain[..], &mut out).unwrap();
        out
    }

    fn opened(sealed: &[u8], key: &[u8; 32], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::new();
        open(key, context, &mut &sealed[..], &mut out).map(|()| out)
    }

    #[test]
    fn round_trips_at_every_segment_edge() {
        let key = [7u8; 32];
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            2 * SEGMENT,
            2 * SEGMENT + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = sealed(&plain, &key, b"ctx");
            assert!(!sealed.windows(64).any(|w| len >= 64 && w == &plain[..64]));
            assert_eq!(opened(&sealed, &key, b"ctx").unwrap(), plain, "{len}");
        }
    }

    #[test]
    fn damage_truncation_another_key_or_context_are_rejected() {
        let key = [7u8; 32];
        let plain = vec![3u8; SEGMENT + 100];
        let good = sealed(&plain, &key, b"ctx");
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        assert!(matches!(
            opened(&flipped, &key, b"ctx"),
            Err(SealError::Rejected)
        ));
        // Cut at a segment boundary: the first segment was not sealed as last.
        let cut = &good[..MAGIC.len() + NONCE + SEGMENT + TAG];
        assert!(matches!(
            opened(cut, &key, b"ctx"),
            Err(SealError::Rejected)
        ));
        assert!(matches!(
            opened(&good, &[8u8; 32], b"ctx"),
            Err(SealError::Rejected)
        ));
        assert!(matches!(
            opened(&good, &key, b"other"),
            Err(SealError::Rejected)
        ));
        assert!(matches!(
            opened(b"plain text", &key, b"ctx"),
            Err(SealError::NotSealed)
        ));
    }
}
