//! A flood of peers that connect and never speak: memory stays bounded and
//! comes back, and everyone else is served. In its own test binary, so the
//! process's memory is this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use arca_daemon::cluster::{ClusterOptions, LocalCluster};
use arca_daemon::listener::MAX_HANDSHAKES;
use arca_shared::keys::ClusterKey;
use arca_shared::{Connection, Message, handshake};
use tokio::net::TcpStream;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn authenticated(addr: &str, key: &ClusterKey) -> Connection {
    handshake::connect(addr, key).await.unwrap()
}

/// The manager still answers, and promptly.
async fn still_serving(cluster: &LocalCluster) {
    let started = Instant::now();
    let status = cluster.status().await.unwrap();
    assert!(!status.servers.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}

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
