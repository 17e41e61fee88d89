//! What every Arca component agrees on: the wire protocol (frames, messages,
//! handshake, limits), names, hashes, tickets, file metadata and the
//! server-choice function.
//! No I/O policy lives here beyond reading and writing frames, and moving
//! file bytes through them.

pub mod choice;
pub mod connection;
mod direct;
pub mod handshake;
pub mod hash;
pub mod keys;
pub mod limits;
pub mod link;
pub mod meta;
pub mod name;
pub mod protocol;
pub mod reply;
pub mod sealed;
pub mod stream;
pub mod sync;
pub mod ticket;
pub mod types;
pub mod vault;

pub use connection::{Connection, FrameError};
pub use hash::BlobHash;
pub use protocol::Message;
