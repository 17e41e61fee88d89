//! Checks one file's bytes against what was announced for it, as they
//! arrive: never more than its size, and at its end exactly its size and hash.

use crate::error::Error;
use arca_shared::BlobHash;
use arca_shared::protocol::Item;

pub(crate) struct ItemCheck {
    item: Item,
    received: u64,
    hasher: blake3::Hasher,
}

impl ItemCheck {
    pub(crate) fn new(item: Item) -> Self {
        Self {
            item,
            received: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    pub(crate) fn chunk(&mut self, data: &[u8]) -> Result<(), Error> {
        self.received += data.len() as u64;
        if self.received > self.item.size {
            return Err(Error::Refused(format!(
                "more than the {} bytes announced",
                self.item.size
            )));
        }
        self.hasher.update(data);
        Ok(())
    }

    pub(crate) fn end(&self) -> Result<(), Error> {
        if self.received != self.item.size {
            return Err(Error::Refused(format!(
                "{} bytes received, {} announced",
                self.received, self.item.size
            )));
        }
        if BlobHash::from(self.hasher.finalize()) != self.item.hash {
            return Err(Error::Refused(
                "the bytes received do not match the announced hash".into(),
            ));
        }
        Ok(())
    }
}
