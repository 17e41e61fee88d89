//! Plain values every layer shares: who a server is, which servers fail
//! together, and the time.

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

/// Failure zones (`daemon --role server --zone NAME`): servers that can
/// fail together, such as one rack or one building.
pub mod zone {
    pub const RULE: &str = "a zone name is 1 to 64 letters, digits, '-', '_' or '.'";

    /// Whether `zone` is a name `--zone` takes: short, and plain in logs and tables.
    pub fn valid(zone: &str) -> bool {
        (1..=64).contains(&zone.len())
            && zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }
}
