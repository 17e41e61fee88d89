//! Client credentials: one acts only as its client, never as a daemon,
//! and a revoked or unknown one is refused and told why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use arca_shared::protocol::ServerStats;
use arca_shared::{BlobHash, FrameError, Message, handshake};
use arca_tui::client::{ClientError, Session};
use common::{TestCluster, content, put};

fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> String {
    match result {
        Err(ClientError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_acts_only_as_its_own_client() {
    let t = TestCluster::with_servers(2).await;
    let mut laptop = t.session("laptop").await;
    put(&mut laptop, &t.write("diary", &content(1, 5_000)), "diary").await;

    // The phone's credential, claiming to be the laptop.
    let mut settings = t.settings("phone");
    settings.client = "laptop".into();
    let mut posing = Session::connect(settings).await.unwrap();
    let why = refusal(posing.list(None).await);
    assert!(why.contains("cannot act as \"laptop\""), "{why}");
    refusal(posing.parts("diary", None).await);
    refusal(posing.remove("diary", None).await);

    // As itself it sees only its own namespace.
    let mut phone = t.session("phone").await;
    assert!(phone.list(None).await.unwrap().is_empty());
    assert_eq!(laptop.list(None).await.unwrap().len(), 1);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_credential_cannot_do_what_only_daemons_do() {
    let t = TestCluster::with_servers(1).await;
    let link = t.credential("laptop").connector().unwrap();
    let mut manager = handshake::connect(&t.cluster.manager_addr, &link)
        .await
        .unwrap();
    let register = Message::Register {
        uuid: "fake".into(),
        addr: "127.0.0.1:1".into(),
        zone: None,
        stats: ServerStats::default(),
        snapshot: None,
    };
    match manager.call(&register).await {
        Err(FrameError::Refused(why)) => assert!(why.contains("only the cluster's daemons")),
        other => panic!("a client registered as a server: {other:?}"),
    }
    let hash = BlobHash::of(b"anything");
    for request in [
        Message::Inventory,
        Message::DeleteBlob { hash },
        Message::ListSnapshots,
    ] {
        let mut server = handshake::connect(t.cluster.server_addr(0), &link)
            .await
            .unwrap();
        match server.call(&request).await {
            Err(FrameError::Refused(why)) => assert!(why.contains("only the cluster's daemons")),
            other => panic!("a client sent {request:?} to a server: {other:?}"),
        }
    }
    let mut server = handshake::connect(t.cluster.server_addr(0), &link)
        .await
        .unwrap();
    assert_eq!(server.call(&Message::Ping).await.unwrap(), Message::Pong);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_unknown_credential_is_refused_and_told_why() {
    let t = TestCluster::with_servers(1).await;
    let mut open = t.session("laptop").await;
    let revoked = arca_daemon::credentials::revoke(&t.cluster.manager_data(), "laptop").unwrap();
    assert_eq!(revoked, 1);
    match Session::connect(t.settings("laptop")).await {
        Err(e @ ClientError::NotAdmitted { .. }) => {
            assert!(e.to_string().contains("revoked"), "{e}")
        }
        other => panic!("a revoked credential got {:?}", other.err()),
    }
    // From its next connection: the one open goes on.
    open.list(None).await.unwrap();

    // Signed by the cluster's authority, but never recorded by its manager.
    let far = SystemTime::now() + Duration::from_secs(3600);
    let unknown = t
        .cluster
        .key
        .authority()
        .unwrap()
        .issue("tablet", far)
        .unwrap();
    let mut settings = t.settings("other");
    settings.link = unknown.connector().unwrap();
    match Session::connect(settings).await {
        Err(e @ ClientError::NotAdmitted { .. }) => {
            assert!(e.to_string().contains("not issued"), "{e}")
        }
        other => panic!("an unknown credential got {:?}", other.err()),
    }
    t.cluster.shutdown().await;
}
