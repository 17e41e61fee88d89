//! One async lock per blob hash, so an upload and the deletion of the same
//! content never interleave (content addressing shares the file on disk).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arca_shared::BlobHash;
use arca_shared::sync::LockAnyway;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct HashLocks {
    locks: Arc<Mutex<HashMap<BlobHash, Arc<AsyncMutex<()>>>>>,
}

/// Held while a hash is being uploaded or deleted.
pub struct HashGuard {
    hash: BlobHash,
    guard: Option<OwnedMutexGuard<()>>,
    locks: Arc<Mutex<HashMap<BlobHash, Arc<AsyncMutex<()>>>>>,
}

impl HashLocks {
    pub async fn lock(&self, hash: BlobHash) -> HashGuard {
        let lock = self.locks.lock_anyway().entry(hash).or_default().clone();
        HashGuard {
            hash,
            guard: Some(lock.lock_owned().await),
            locks: self.locks.clone(),
        }
    }
}

impl Drop for HashGuard {
    fn drop(&mut self) {
        self.guard = None;
        let mut locks = self.locks.lock_anyway();
        // Only the map holds it now: nobody waits, so forget it.
        if locks
            .get(&self.hash)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_exclude_and_are_forgotten() {
        let locks = HashLocks::default();
        let hash = BlobHash::of(b"x");
        let first = locks.lock(hash).await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(hash));
        assert!(waiting.await.is_err());
        drop(first);
        drop(locks.lock(hash).await);
        assert!(locks.locks.lock().unwrap().is_empty());
    }
}
