//! Why a daemon could not do what was asked, by whose fault. A refusal is
//! the asker's to act on and is logged quietly; a local fault (this
//! daemon's catalog or disk) is logged at error level and told to the asker
//! as this daemon's failure; a peer that cannot be reached or breaks the
//! protocol is the link's.

use arca_shared::stream::SendFileError;
use arca_shared::{FrameError, Message};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be done as asked; the reason says what to do.
    #[error("{0}")]
    Refused(String),
    /// This daemon failed at its own work.
    #[error("{what}: {cause}")]
    Local { what: String, cause: String },
    /// A peer was unreachable, broke the protocol, or answered with an error.
    #[error(transparent)]
    Peer(#[from] FrameError),
}

impl Error {
    pub fn local(what: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Self::Local {
            what: what.into(),
            cause: cause.to_string(),
        }
    }

    /// What the asker is told: a refusal as it is, a local fault as this
    /// daemon's failure, and a peer's answer with whose fault it was.
    pub fn to_message(&self) -> Message {
        match self {
            Error::Refused(reason) | Error::Peer(FrameError::Refused(reason)) => {
                Message::error(reason.clone())
            }
            Error::Local { .. } | Error::Peer(FrameError::PeerFailed(_)) => {
                Message::failure(self.to_string())
            }
            Error::Peer(e) => Message::error(e.to_string()),
        }
    }

    /// Logs the error where its kind belongs: refusals quietly, local faults
    /// loudly, peers in between.
    pub fn log(&self, peer: std::net::SocketAddr, request: &str) {
        match self {
            Error::Refused(reason) => tracing::debug!(%peer, "{request} refused: {reason}"),
            Error::Local { .. } => tracing::error!(%peer, "{request} failed here: {self}"),
            Error::Peer(e) => tracing::warn!(%peer, "{request} failed: {e}"),
        }
    }
}

/// A file that could not be read is this daemon's fault; a send that
/// failed is the link's.
impl From<SendFileError> for Error {
    fn from(e: SendFileError) -> Self {
        match e {
            SendFileError::Read(e) => Self::local("cannot read the file to send", e),
            SendFileError::Send(e) => Self::Peer(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::local("disk", e)
    }
}
