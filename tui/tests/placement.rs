//! Where data goes on a real cluster: spread under a burst of clients,
//! failure zones, and rebalancing onto a server that joins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arca_daemon::cluster::ClusterOptions;
use arca_shared::BlobHash;
use arca_tui::client::{LocalFile, Progress, Session, TransferProgress, Uploaded};
use common::{TestCluster, content, poll, put, put_numbered, stored};
use tokio::sync::watch;

/// Bytes each server's data folder holds.
fn stored_per_server(t: &TestCluster) -> Vec<u64> {
    (0..t.cluster.server_count())
        .map(|i| t.on_disk(i).values().map(|b| b.size).sum())
        .collect()
}

/// Backs up 200 small files and one of 4 MiB as client `client`, in one batch.
async fn back_up_a_folder(t: &TestCluster, client: String) {
    let client = client.as_str();
    let mut session = t.session(client).await;
    let keys = session.chunk_keys(true).await.unwrap();
    let mut files = Vec::new();
    for i in 0..=200u64 {
        let (name, len) = match i {
            200 => (format!("{client}/big"), 4 << 20),
            i => (format!("{client}/small-{i}"), 4096),
        };
        let path = t.write(&name, &content(i * 1000 + client.len() as u64, len));
        files.push(LocalFile::read(&path, &name, 1 << 20, &keys).unwrap());
    }
    let (progress, _rx): (Progress, _) = watch::channel(TransferProgress::default());
    let outcomes = session.put_batch(&files, &progress).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Uploaded::Committed { replicas: 2, .. })),
        "{client}: {outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_clients_spreads_over_a_cluster_of_64() {
    let t = TestCluster::with_servers(64).await;
    let burst: Vec<_> = (0..32)
        .map(|i| back_up_a_folder(&t, format!("client-{i}")))
        .collect();
    futures::future::join_all(burst).await;
    for i in 0..20 {
        let mut session = t.session("later").await;
        let name = format!("single-{i}");
        let path = t.write(&name, &content(7_000 + i, 4 << 20));
        assert!(matches!(
            put(&mut session, &path, &name).await,
            Uploaded::Committed { replicas: 2, .. }
        ));
    }
    let stored = stored_per_server(&t);
    let holding = stored.iter().filter(|b| **b > 0).count();
    let mean = stored.iter().sum::<u64>() as f64 / stored.len() as f64;
    let most = *stored.iter().max().unwrap() as f64;
    assert!(
        holding >= 48,
        "{holding} of 64 servers hold data: {stored:?}"
    );
    assert!(
        most <= 2.0 * mean,
        "the most loaded holds {most}, the mean is {mean}: {stored:?}"
    );
}

fn zoned(zones: &[&str]) -> ClusterOptions {
    ClusterOptions {
        servers: zones.len(),
        zones: zones.iter().map(|z| Some((*z).to_owned())).collect(),
        ..ClusterOptions::default()
    }
}

/// Restores `name` into the files folder under `as_name`.
async fn restore(t: &TestCluster, session: &mut Session, name: &str, as_name: &str) -> Vec<u8> {
    let (progress, _rx): (Progress, _) = watch::channel(TransferProgress::default());
    let dest = t.files().join(as_name);
    session
        .get(name, None, &dest, true, &progress)
        .await
        .unwrap();
    std::fs::read(dest).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_go_one_to_each_zone_and_survive_the_loss_of_a_zone() {
    let mut t = TestCluster::start(zoned(&["a", "a", "b", "b"])).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..6).map(|i| content(300 + i, 3 << 20)).collect();
    let mut blobs: Vec<BlobHash> = Vec::new();
    for (i, data) in files.iter().enumerate() {
        let name = format!("f{i}");
        put(&mut session, &t.write(&name, data), &name).await;
        blobs.extend(stored(&mut session, &name).await);
    }
    let zone = |server: usize| if server < 2 { "a" } else { "b" };
    for hash in &blobs {
        let zones: HashSet<&str> = t.holders(hash).into_iter().map(zone).collect();
        assert_eq!(zones.len(), 2, "{} is in one zone only", hash.short());
    }
    t.cluster.kill_server(0).await;
    t.cluster.kill_server(1).await;
    let mut session = t.session("laptop").await;
    for (i, data) in files.iter().enumerate() {
        let restored = restore(&t, &mut session, &format!("f{i}"), &format!("back-{i}")).await;
        assert!(restored == *data, "f{i} restored from zone b alone");
    }
}

/// The new server's share against the mean of all, once moves settle.
fn share_of_last(t: &TestCluster) -> (u64, f64) {
    let stored = stored_per_server(t);
    let mean = stored.iter().sum::<u64>() as f64 / stored.len() as f64;
    (*stored.last().unwrap(), mean)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_joins_takes_its_share_and_no_content_drops_a_copy() {
    let mut t = TestCluster::with_servers(4).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..12).map(|i| content(500 + i, 3 << 20)).collect();
    put_numbered(&t, &mut session, &files).await;
    t.cluster.add_server().await.unwrap();
    // While it moves, no content is ever below its count, and a restart of
    // the manager in the middle of a move loses nothing.
    let started = Instant::now();
    let mut restarted = false;
    loop {
        let (last, mean) = share_of_last(&t);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the new server holds {last} against a mean of {mean}"
        );
        let Ok(status) = t.cluster.status().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        assert_eq!(status.under_replicated, 0, "{status:?}");
        if status.moving > 0 && !restarted {
            t.cluster.restart_manager().await.unwrap();
            restarted = true;
            continue;
        }
        if last as f64 * 1.5 >= mean && status.moving == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(restarted, "a move was seen under way");
    let mut session = t.session("laptop").await;
    for (i, data) in files.iter().enumerate() {
        let restored = restore(&t, &mut session, &format!("f{i}"), &format!("back-{i}")).await;
        assert!(restored == *data, "f{i} whole after the moves");
    }
    // Every content ends at its count: an interrupted move's extra copy is trimmed.
    let mut session = t.session("laptop").await;
    for i in 0..files.len() {
        for hash in stored(&mut session, &format!("f{i}")).await {
            let t = &t;
            poll(
                Duration::from_secs(30),
                "two copies of each chunk",
                async || (t.holders(&hash).len() == 2).then_some(()),
            )
            .await;
        }
    }
}
