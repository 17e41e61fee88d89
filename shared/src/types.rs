//! Plain values every layer shares: who a server is, and the time.

use std::time::{SystemTime, UNIX_EPOCH};

/// The manager's number for a registered server; stable across restarts.
pub type ServerId = u64;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
