//! Tickets: the manager's signed permission for one operation on one server.
//!
//! A server checks a ticket on its own (signature, kind, server, expiry) and
//! never accepts bytes or serves a blob without one.

use serde::{Deserialize, Serialize};

use crate::hash::BlobHash;
use crate::keys::{ClusterKey, Mac};
use crate::limits::TICKET_TTL;
use crate::types::{ServerId, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketKind {
    /// A client streams a new file to its primary.
    Upload,
    /// A primary (or a healing server) stores a copy on a replica.
    Store,
    /// A client reads a blob from a holder.
    Fetch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub kind: TicketKind,
    /// The operation this ticket belongs to.
    pub op: u64,
    pub server: ServerId,
    pub hash: BlobHash,
    pub size: u64,
    pub expires_ms: u64,
    pub mac: Mac,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket is forged or damaged")]
    Forged,
    #[error("ticket is for another operation")]
    WrongKind,
    #[error("ticket is for another server")]
    WrongServer,
    #[error("ticket expired; ask the manager again")]
    Expired,
}

impl Ticket {
    pub fn issue(
        key: &ClusterKey,
        kind: TicketKind,
        op: u64,
        server: ServerId,
        hash: BlobHash,
        size: u64,
    ) -> Self {
        let expires_ms = now_ms() + TICKET_TTL.as_millis() as u64;
        let mut ticket = Self {
            kind,
            op,
            server,
            hash,
            size,
            expires_ms,
            mac: Mac([0; 32]),
        };
        ticket.mac = ticket.expected_mac(key);
        ticket
    }

    pub fn verify(
        &self,
        key: &ClusterKey,
        kind: TicketKind,
        server: ServerId,
    ) -> Result<(), TicketError> {
        if self.mac != self.expected_mac(key) {
            return Err(TicketError::Forged);
        }
        if self.kind != kind {
            return Err(TicketError::WrongKind);
        }
        if self.server != server {
            return Err(TicketError::WrongServer);
        }
        if now_ms() > self.expires_ms {
            return Err(TicketError::Expired);
        }
        Ok(())
    }

    /// Whether this cluster issued the ticket, expired or not.
    pub fn authentic(&self, key: &ClusterKey) -> bool {
        self.mac == self.expected_mac(key)
    }

    fn expected_mac(&self, key: &ClusterKey) -> Mac {
        let kind = [self.kind as u8];
        key.ticket_mac(&[
            &kind,
            &self.op.to_le_bytes(),
            &self.server.to_le_bytes(),
            &self.hash.0,
            &self.size.to_le_bytes(),
            &self.expires_ms.to_le_bytes(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_verify_only_as_issued() {
        let (key, _) = ClusterKey::random().unwrap();
        let hash = BlobHash::of(b"x");
        let ticket = Ticket::issue(&key, TicketKind::Upload, 9, 2, hash, 1);
        assert_eq!(ticket.verify(&key, TicketKind::Upload, 2), Ok(()));
        assert_eq!(
            ticket.verify(&key, TicketKind::Fetch, 2),
            Err(TicketError::WrongKind)
        );
        assert_eq!(
            ticket.verify(&key, TicketKind::Upload, 3),
            Err(TicketError::WrongServer)
        );
        let mut bigger = ticket.clone();
        bigger.size = 1 << 40;
        assert_eq!(
            bigger.verify(&key, TicketKind::Upload, 2),
            Err(TicketError::Forged)
        );
        let (other, _) = ClusterKey::random().unwrap();
        assert_eq!(
            ticket.verify(&other, TicketKind::Upload, 2),
            Err(TicketError::Forged)
        );
        let mut old = ticket.clone();
        old.expires_ms = 1;
        old.mac = old.expected_mac(&key);
        assert_eq!(
            old.verify(&key, TicketKind::Upload, 2),
            Err(TicketError::Expired)
        );
    }
}
