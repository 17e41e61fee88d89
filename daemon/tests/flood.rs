//! A flood of peers that connect and never speak: memory stays bounded and
//! comes back, and everyone else is served. In its own test binary, so the
//! process's memory is this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arca_daemon::cluster::{ClusterOptions, LocalCluster};
use arca_daemon::listener::MAX_HANDSHAKES;
use arca_shared::Message;
use common::{authenticated, rss_kib, still_serving};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_costs_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let options = ClusterOptions {
        servers: 1,
        ..ClusterOptions::default()
    };
    let cluster = LocalCluster::start(dir.path(), options).await.unwrap();
    let targets = [
        cluster.manager_addr.clone(),
        cluster.server_addr(0).to_owned(),
    ];
    still_serving(&cluster).await;
    let before = rss_kib();
    for _wave in 0..4 {
        let mut silent = Vec::new();
        for addr in &targets {
            // More than the handshakes a daemon keeps waiting at once.
            for _ in 0..(MAX_HANDSHAKES + 200) {
                silent.push(TcpStream::connect(addr).await.unwrap());
            }
        }
        // Answered only after each daemon accepted every connection before.
        still_serving(&cluster).await;
        let mut server = authenticated(&targets[1], &cluster.key).await;
        assert_eq!(server.call(&Message::Ping).await.unwrap(), Message::Pong);
        drop(silent);
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 48, "memory grew by {grown_mib} MiB");
    still_serving(&cluster).await;
    cluster.shutdown().await;
}
