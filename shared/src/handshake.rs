//! The handshake that opens every connection: mutual challenge-response
//! over fresh nonces with BLAKE3 in keyed mode, so the secret never crosses
//! the wire and a peer without it is refused before anything is allocated
//! for it.

use crate::connection::{Connection, FrameError};
use crate::keys::{ClusterKey, Nonce};
use crate::limits::{HANDSHAKE_FRAME_MAX, HANDSHAKE_TIMEOUT, PROTOCOL_VERSION};
use crate::protocol::Message;

/// Connects to `addr` and proves this side knows the cluster secret.
pub async fn connect(addr: &str, key: &ClusterKey) -> Result<Connection, FrameError> {
    let mut conn = Connection::connect(addr).await?;
    initiate(&mut conn, key).await?;
    Ok(conn)
}

/// Opens a connection's handshake as the side that connected.
pub async fn initiate(conn: &mut Connection, key: &ClusterKey) -> Result<(), FrameError> {
    with_timeout(async {
        let mine = Nonce::fresh();
        conn.send(&Message::Hello {
            version: PROTOCOL_VERSION,
            nonce: mine,
        })
        .await?;
        let (theirs, proof) = match conn.reader.recv_capped(HANDSHAKE_FRAME_MAX).await? {
            Message::Challenge {
                version,
                nonce,
                proof,
            } if version == PROTOCOL_VERSION => (nonce, proof),
            Message::Challenge { version, .. } => return Err(version_mismatch(version)),
            other => return Err(FrameError::unexpected(&other, "Challenge")),
        };
        if proof != key.mac(&[b"acceptor", &mine.0, &theirs.0]) {
            let reason = "the peer does not know this cluster's secret";
            conn.send(&Message::error(reason)).await?;
            return Err(FrameError::Auth(reason.into()));
        }
        conn.send(&Message::Proof {
            proof: key.mac(&[b"initiator", &mine.0, &theirs.0]),
        })
        .await?;
        match conn.reader.recv_capped(HANDSHAKE_FRAME_MAX).await {
            Ok(Message::Welcome) => Ok(()),
            Ok(other) => Err(FrameError::unexpected(&other, "Welcome")),
            Err(FrameError::Refused(reason)) => Err(FrameError::Auth(reason)),
            Err(e) => Err(e),
        }
    })
    .await
}

/// Answers a connection's handshake as the side that accepted it.
pub async fn accept(conn: &mut Connection, key: &ClusterKey) -> Result<(), FrameError> {
    with_timeout(async {
        let theirs = match conn.reader.recv_capped(HANDSHAKE_FRAME_MAX).await? {
            Message::Hello { version, nonce } if version == PROTOCOL_VERSION => nonce,
            Message::Hello { version, .. } => {
                let err = version_mismatch(version);
                conn.send(&Message::error(err.to_string())).await?;
                return Err(err);
            }
            other => return Err(FrameError::unexpected(&other, "Hello")),
        };
        let mine = Nonce::fresh();
        conn.send(&Message::Challenge {
            version: PROTOCOL_VERSION,
            nonce: mine,
            proof: key.mac(&[b"acceptor", &theirs.0, &mine.0]),
        })
        .await?;
        let answer = match conn.reader.recv_capped(HANDSHAKE_FRAME_MAX).await {
            Err(FrameError::Refused(reason)) => return Err(FrameError::Auth(reason)),
            other => other?,
        };
        match answer {
            Message::Proof { proof } if proof == key.mac(&[b"initiator", &theirs.0, &mine.0]) => {
                conn.send(&Message::Welcome).await
            }
            Message::Proof { .. } => {
                let reason = "wrong cluster secret";
                conn.send(&Message::error(reason)).await?;
                Err(FrameError::Auth(reason.into()))
            }
            other => Err(FrameError::unexpected(&other, "Proof")),
        }
    })
    .await
}

fn version_mismatch(theirs: u32) -> FrameError {
    FrameError::Refused(format!(
        "protocol version mismatch: peer speaks {theirs}, this build speaks {PROTOCOL_VERSION}; run the same Arca version everywhere"
    ))
}

async fn with_timeout(
    handshake: impl Future<Output = Result<(), FrameError>>,
) -> Result<(), FrameError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| FrameError::Timeout(HANDSHAKE_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (Connection, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (
            Connection::new(client.unwrap()).unwrap(),
            Connection::new(server.unwrap().0).unwrap(),
        )
    }

    #[tokio::test]
    async fn same_secret_shakes_hands() {
        let (key, _) = ClusterKey::random();
        let (mut a, mut b) = pair().await;
        let (x, y) = tokio::join!(initiate(&mut a, &key), accept(&mut b, &key));
        x.unwrap();
        y.unwrap();
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_on_both_sides() {
        let (key, _) = ClusterKey::random();
        let (other, _) = ClusterKey::random();
        let (mut a, mut b) = pair().await;
        let (x, y) = tokio::join!(initiate(&mut a, &other), accept(&mut b, &key));
        assert!(matches!(x, Err(FrameError::Auth(_))), "{x:?}");
        assert!(y.is_err());
    }
}
