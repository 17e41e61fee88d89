//! How every link opens: TCP, then TLS 1.3 with both sides' certificates
//! checked against the cluster's authority (see [`crate::link`]), then
//! `Hello` with the protocol version, answered with `Welcome` once the
//! acceptor admits the peer, or with the reason it does not. Every step has
//! a timeout; a peer that never speaks costs a socket and a TLS state until
//! then.

use std::io;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::connection::{Connection, FrameError};
use crate::limits::{CONNECT_TIMEOUT, HANDSHAKE_FRAME_MAX, HANDSHAKE_TIMEOUT, PROTOCOL_VERSION};
use crate::link::{Acceptor, Connector, NODE_NAME, Peer};
use crate::protocol::Message;

/// Connects to `addr`, proves who this side is and checks that the peer
/// is a daemon of this cluster; done once the peer admitted this side.
pub async fn connect(addr: &str, connector: &Connector) -> Result<Connection, FrameError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| FrameError::Timeout(CONNECT_TIMEOUT))??;
    initiate(tcp, connector).await
}

/// The handshake of [`connect`] on a TCP stream already open.
pub async fn initiate(tcp: TcpStream, connector: &Connector) -> Result<Connection, FrameError> {
    tcp.set_nodelay(true)?;
    let peer = tcp.peer_addr()?;
    with_timeout(async {
        let name = ServerName::try_from(NODE_NAME).map_err(io::Error::other)?;
        let tls = TlsConnector::from(connector.config.clone())
            .connect(name, tcp)
            .await
            .map_err(link_error)?;
        let mut conn = Connection::new(TlsStream::Client(tls), peer);
        conn.send(&Message::Hello {
            version: PROTOCOL_VERSION,
        })
        .await?;
        // In TLS 1.3 the acceptor checks this side's certificate after this
        // side is done: a refusal of it arrives here, as an alert.
        match conn.reader.recv_capped(HANDSHAKE_FRAME_MAX).await {
            Ok(Message::Welcome) => Ok(conn),
            Ok(other) => Err(FrameError::unexpected(&other, "Welcome")),
            Err(FrameError::Refused(reason)) => Err(FrameError::Auth(reason)),
            Err(FrameError::Io(e)) => Err(link_error(e)),
            Err(e) => Err(e),
        }
    })
    .await
}

/// Takes a link's TLS and `Hello`; the caller then admits the peer it
/// names, or refuses it, with [`admit`].
pub async fn accept(tcp: TcpStream, acceptor: &Acceptor) -> Result<(Connection, Peer), FrameError> {
    tcp.set_nodelay(true)?;
    let addr = tcp.peer_addr()?;
    with_timeout(async {
        let tls = TlsAcceptor::from(acceptor.config.clone())
            .accept(tcp)
            .await
            .map_err(link_error)?;
        let peer = acceptor
            .peer(tls.get_ref().1.peer_certificates())
            .ok_or_else(|| FrameError::Auth("the peer presented no certificate".into()))?;
        let mut conn = Connection::new(TlsStream::Server(tls), addr);
        match conn.reader.recv_capped(HANDSHAKE_FRAME_MAX).await? {
            Message::Hello { version } if version == PROTOCOL_VERSION => Ok((conn, peer)),
            Message::Hello { version } => {
                let err = version_mismatch(version);
                conn.send(&Message::error(err.to_string())).await?;
                Err(err)
            }
            other => Err(FrameError::unexpected(&other, "Hello")),
        }
    })
    .await
}

/// Lets an accepted peer go on, or tells it why it may not.
pub async fn admit(conn: &mut Connection, verdict: Result<(), String>) -> Result<(), FrameError> {
    match verdict {
        Ok(()) => conn.send(&Message::Welcome).await,
        Err(reason) => {
            conn.send(&Message::error(reason.clone())).await?;
            Err(FrameError::Auth(reason))
        }
    }
}

fn version_mismatch(theirs: u32) -> FrameError {
    FrameError::Refused(format!(
        "protocol version mismatch: peer speaks {theirs}, this build speaks {PROTOCOL_VERSION}; run the same Arca version everywhere"
    ))
}

/// A TLS failure, said as what it means here and what to do about it.
fn link_error(e: io::Error) -> FrameError {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        };
    };
    use rustls::Error as E;
    let said = match tls {
        E::AlertReceived(AlertDescription::CertificateExpired) => {
            "the peer refused this side's certificate: it has expired (a client asks the \
             cluster's operator for a new credential)"
        }
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            "the peer wants a certificate and none was presented"
        }
        E::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::DecryptError
            | AlertDescription::AccessDenied,
        ) => {
            "the peer does not know this side's certificate: this credential or cluster \
             secret is another cluster's"
        }
        E::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the peer's certificate has expired",
        E::InvalidCertificate(
            CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. }
            | CertificateError::InvalidPurpose
            | CertificateError::InvalidPurposeContext { .. },
        ) => "the peer's certificate is a client's: only a daemon may take this link",
        E::InvalidCertificate(_) | E::NoCertificatesPresented => {
            "the peer's certificate is not from this cluster's authority: the two sides \
             hold different clusters' secrets or credentials"
        }
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => {
            return FrameError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer does not speak Arca's encrypted protocol (an older Arca, or not \
                 Arca at all); run the same Arca version everywhere",
            ));
        }
        _ => return FrameError::Io(e),
    };
    FrameError::Auth(said.to_owned())
}

async fn with_timeout<T>(
    handshake: impl Future<Output = Result<T, FrameError>>,
) -> Result<T, FrameError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| FrameError::Timeout(HANDSHAKE_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::keys::ClusterKey;
    use tokio::net::TcpListener;

    /// Accepts one link as a daemon of `key`'s cluster, admitting whoever
    /// passed TLS, and says who it was.
    async fn one_accept(
        key: &ClusterKey,
    ) -> (String, tokio::task::JoinHandle<Result<Peer, FrameError>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let acceptor = key.links().acceptor.clone();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let (mut conn, peer) = accept(tcp, &acceptor).await?;
            admit(&mut conn, Ok(())).await?;
            // Held open until the other side is done with it.
            let _ = conn.recv().await;
            Ok(peer)
        });
        (addr, task)
    }

    #[tokio::test]
    async fn daemons_and_clients_of_one_cluster_get_in_and_are_told_apart() {
        let (key, _) = ClusterKey::random().unwrap();
        let (addr, task) = one_accept(&key).await;
        drop(connect(&addr, &key.links().connector).await.unwrap());
        assert_eq!(task.await.unwrap().unwrap(), Peer::Node);

        let credential = key
            .authority()
            .unwrap()
            .issue("laptop", SystemTime::now() + Duration::from_secs(60))
            .unwrap();
        let (addr, task) = one_accept(&key).await;
        drop(
            connect(&addr, &credential.connector().unwrap())
                .await
                .unwrap(),
        );
        assert_eq!(task.await.unwrap().unwrap(), Peer::Client(credential.id()));
    }

    #[tokio::test]
    async fn another_clusters_daemon_or_client_is_refused_on_both_sides() {
        let (key, _) = ClusterKey::random().unwrap();
        let (other, _) = ClusterKey::random().unwrap();
        let (addr, task) = one_accept(&key).await;
        let refused = connect(&addr, &other.links().connector).await;
        assert!(
            matches!(refused, Err(FrameError::Auth(_))),
            "{:?}",
            refused.err()
        );
        assert!(task.await.unwrap().is_err());

        let stranger = other
            .authority()
            .unwrap()
            .issue("laptop", SystemTime::now() + Duration::from_secs(60))
            .unwrap();
        let (addr, task) = one_accept(&key).await;
        let refused = connect(&addr, &stranger.connector().unwrap()).await;
        assert!(
            matches!(refused, Err(FrameError::Auth(_))),
            "{:?}",
            refused.err()
        );
        assert!(task.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn an_expired_credential_is_refused_and_said_so() {
        let (key, _) = ClusterKey::random().unwrap();
        let expired = key
            .authority()
            .unwrap()
            .issue("laptop", SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let (addr, task) = one_accept(&key).await;
        match connect(&addr, &expired.connector().unwrap()).await {
            Err(FrameError::Auth(reason)) => assert!(reason.contains("expired"), "{reason}"),
            other => panic!("an expired credential got {:?}", other.err()),
        }
        assert!(task.await.unwrap().is_err());
    }
}
