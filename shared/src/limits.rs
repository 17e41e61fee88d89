//! Every bound the protocol enforces, in one place.

use std::time::Duration;

/// Protocol version carried by the handshake; peers with another one are refused.
pub const PROTOCOL_VERSION: u32 = 7;

/// File bytes travel in chunks of at most this size.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// Largest frame before authentication: the handshake messages are tiny.
pub const HANDSHAKE_FRAME_MAX: usize = 512;

/// Largest control frame (every message but a data chunk).
pub const CONTROL_FRAME_MAX: usize = 256 * 1024;

/// Largest data frame: one chunk plus its envelope.
pub const DATA_FRAME_MAX: usize = CHUNK_SIZE + 1024;

/// Longest name in the catalog, in bytes.
pub const NAME_MAX: usize = 1024;

/// Most items in any list carried by one message.
pub const LIST_MAX: usize = 4096;

/// Most children one `Browse` returns, and most names one `Lookup` asks
/// about (names of the longest kind still fit a control frame).
pub const BROWSE_MAX: u32 = 1024;
pub const LOOKUP_MAX: usize = 128;

/// Most versions one `Parts` asks about (as `Lookup`), and most blobs one
/// `Fetch` or `FetchGrants` asks for.
pub const PARTS_MAX: usize = LOOKUP_MAX;
pub const FETCH_MAX: usize = 256;

/// How long a peer may take to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may stay silent while we wait for its next frame.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connect attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a ticket stays valid after the manager issues it.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
