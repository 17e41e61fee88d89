//! What the daemon's tests share: a cluster's liveness and this process's memory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use arca_daemon::cluster::LocalCluster;
use arca_shared::keys::ClusterKey;
use arca_shared::{Connection, handshake};

/// This process's resident memory.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A connection to a daemon as a daemon of `key`'s cluster.
pub async fn authenticated(addr: &str, key: &ClusterKey) -> Connection {
    handshake::connect(addr, &key.links().connector)
        .await
        .unwrap()
}

/// The manager still answers, and promptly.
pub async fn still_serving(cluster: &LocalCluster) {
    let started = Instant::now();
    let status = cluster.status().await.unwrap();
    assert!(!status.servers.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}
