//! Replies tied to what they answer: a request names the reply it expects
//! as a type, [`crate::Connection::request`] returns it unpacked, and any
//! other message is one error, [`crate::FrameError::Unexpected`].

use crate::protocol::{
    BlobInfo, Child, ClusterStatus, FileEntry, Grant, Message, Part, SnapshotInfo, UploadGrant,
    VersionCheck, VersionHealth,
};
use crate::types::ServerId;
use crate::vault::WrappedKey;

/// The one message that answers a request, unpacked.
pub trait Reply: Sized {
    /// The message's name, for the error when another one comes.
    const WANTED: &'static str;

    /// The reply, or the name of the other message that came instead.
    fn unpack(message: Message) -> Result<Self, &'static str>;
}

/// `Ok`: the request was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done;

/// `Accepted`: send the bytes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted;

/// `Stored`: every copy is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored;

/// `Pong`: the server is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong;

/// `Checked`: whether a copy hashed intact where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intact(pub bool);

/// `Registered`: the id the manager gave a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered(pub ServerId);

/// `Removed`: the versions a removal took away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed(pub Vec<u32>);

/// `Have`: which of the chunks asked about are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Have(pub Vec<bool>);

/// `ChunkPlan`: where to stream new chunks, if any must move.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPlan(pub Option<UploadGrant>);

/// `Restoring`: the version a restore is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Restoring(pub FileEntry);

/// `Browsed`: how many children of a folder match, in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Browsed(pub u64);

/// Implements [`Reply`] for a type from the message variant it unpacks.
macro_rules! replies {
    ($($reply:ty, $wanted:literal: $pattern:pat => $value:expr;)*) => {$(
        impl Reply for $reply {
            const WANTED: &'static str = $wanted;

            fn unpack(message: Message) -> Result<Self, &'static str> {
                match message {
                    $pattern => Ok($value),
                    other => Err(other.kind()),
                }
            }
        }
    )*};
}

replies! {
    Done, "Ok": Message::Ok => Done;
    Accepted, "Accepted": Message::Accepted => Accepted;
    Stored, "Stored": Message::Stored => Stored;
    Pong, "Pong": Message::Pong => Pong;
    Intact, "Checked": Message::Checked { ok } => Intact(ok);
    Registered, "Registered": Message::Registered { id } => Registered(id);
    Removed, "Removed": Message::Removed { versions } => Removed(versions);
    Have, "Have": Message::Have { have } => Have(have);
    ChunkPlan, "ChunkPlan": Message::ChunkPlan { upload } => ChunkPlan(upload);
    Restoring, "Restoring": Message::Restoring { entry } => Restoring(entry);
    Browsed, "Browsed": Message::Browsed { total } => Browsed(total);
    Vec<Grant>, "Grants": Message::Grants { grants } => grants;
    Vec<WrappedKey>, "KeyList": Message::KeyList { keys } => keys;
    ClusterStatus, "Cluster": Message::Cluster { status } => status;
    Vec<SnapshotInfo>, "Snapshots": Message::Snapshots { snapshots } => snapshots;
    // Pages of a long answer (`Connection::request_pages`).
    Vec<FileEntry>, "Listing": Message::Listing { files } => files;
    Vec<Child>, "Children": Message::Children { children } => children;
    Vec<VersionCheck>, "Verified": Message::Verified { versions } => versions;
    Vec<VersionHealth>, "Risks": Message::Risks { versions } => versions;
    Vec<BlobInfo>, "Blobs": Message::Blobs { blobs } => blobs;
    Vec<Part>, "PartList": Message::PartList { parts } => parts;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_unpacks_and_any_other_message_comes_back() {
        assert_eq!(
            Intact::unpack(Message::Checked { ok: true }),
            Ok(Intact(true))
        );
        assert_eq!(Done::unpack(Message::Accepted), Err("Accepted"));
    }
}
