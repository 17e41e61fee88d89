//! Mutexes whose data stays usable after a panic elsewhere.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locking that takes the data even if a thread panicked while holding it:
/// every mutex in Arca guards data that is whole between statements, so a
/// panic in one task is no reason to fail every other one.
pub trait LockAnyway<T> {
    fn lock_anyway(&self) -> MutexGuard<'_, T>;
}

impl<T> LockAnyway<T> for Mutex<T> {
    fn lock_anyway(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
