//! Healing, scrubbing, verification and reconciliation on a real cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use arca_daemon::cluster::ClusterOptions;
use arca_shared::BlobHash;
use common::{TestCluster, content, eventually, put};

fn fast() -> ClusterOptions {
    ClusterOptions {
        servers: 4,
        dead_after: Duration::from_millis(800),
        heal_after: Duration::from_millis(500),
        ..ClusterOptions::default()
    }
}

/// Waits until every content has exactly two good copies on disk.
async fn all_at_two_copies(t: &TestCluster, files: &[Vec<u8>]) {
    eventually(
        Duration::from_secs(30),
        "every file back at two copies",
        || {
            files.iter().all(|data| {
                let hash = BlobHash::of(data);
                let holders = t.holders(&hash);
                holders.len() == 2
                    && holders
                        .iter()
                        .all(|i| std::fs::read(t.blob(*i, &hash)).is_ok_and(|b| b == *data))
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_healed_and_trimmed_when_it_returns() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..8)
        .map(|i| content(50 + i, 100_000 + i as usize * 7_000))
        .collect();
    for (i, data) in files.iter().enumerate() {
        put(
            &mut session,
            &t.write(&format!("f{i}"), data),
            &format!("f{i}"),
        )
        .await;
    }
    // Kill the server holding the most copies.
    let victim = (0..4)
        .max_by_key(|s| {
            files
                .iter()
                .filter(|d| t.holders(&BlobHash::of(d)).contains(s))
                .count()
        })
        .unwrap();
    t.cluster.kill_server(victim).await;
    let status = t
        .cluster
        .wait_until(Duration::from_secs(30), |s| {
            s.under_replicated == 0 && s.servers.iter().filter(|s| s.alive).count() == 3
        })
        .await;
    assert!(status.is_ok(), "{status:?}");
    eventually(
        Duration::from_secs(30),
        "every live file at two live copies",
        || {
            files.iter().all(|d| {
                t.holders(&BlobHash::of(d))
                    .iter()
                    .filter(|h| **h != victim)
                    .count()
                    == 2
            })
        },
    )
    .await;
    let listed = session.list(None).await.unwrap();
    assert!(listed.iter().all(|f| f.replicas == 2), "{listed:?}");

    // It comes back with its old copies: the extra ones are dropped.
    t.cluster.restart_server(victim).await.unwrap();
    all_at_two_copies(&t, &files).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_finds_a_corrupt_blob_and_the_cluster_heals_it() {
    let t = TestCluster::start(ClusterOptions {
        scrub_every: Duration::from_millis(200),
        ..fast()
    })
    .await;
    let mut session = t.session("laptop").await;
    let data = content(60, 300_000);
    put(&mut session, &t.write("precious", &data), "precious").await;
    let hash = BlobHash::of(&data);
    let bad = t.holders(&hash)[0];
    let mut bytes = std::fs::read(t.blob(bad, &hash)).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(t.blob(bad, &hash), bytes).unwrap();
    all_at_two_copies(&t, &[data]).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_each_copy_and_heals_a_corrupt_one() {
    let t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let good = content(61, 50_000);
    let damaged = content(62, 80_000);
    put(&mut session, &t.write("good", &good), "good").await;
    put(&mut session, &t.write("damaged", &damaged), "damaged").await;
    let hash = BlobHash::of(&damaged);
    let bad = t.holders(&hash)[1];
    std::fs::write(t.blob(bad, &hash), b"not the file").unwrap();

    let mut copies = session.verify(None).await.unwrap();
    copies.sort_by(|a, b| (&a.name, a.copy).cmp(&(&b.name, b.copy)));
    let summary: Vec<(&str, bool)> = copies.iter().map(|c| (c.name.as_str(), c.ok)).collect();
    assert_eq!(summary.iter().filter(|(n, _)| *n == "good").count(), 2);
    assert!(
        summary
            .iter()
            .filter(|(n, _)| *n == "good")
            .all(|(_, ok)| *ok)
    );
    assert_eq!(
        summary
            .iter()
            .filter(|(n, ok)| *n == "damaged" && !ok)
            .count(),
        1
    );
    assert_eq!(
        summary
            .iter()
            .filter(|(n, ok)| *n == "damaged" && *ok)
            .count(),
        1
    );
    all_at_two_copies(&t, &[good, damaged]).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_blobs_are_removed_after_the_grace_period() {
    let t = TestCluster::start(ClusterOptions {
        orphan_grace: Duration::from_secs(1),
        ..fast()
    })
    .await;
    let mut session = t.session("laptop").await;
    let kept = content(70, 10_000);
    put(&mut session, &t.write("kept", &kept), "kept").await;
    // A blob no catalog entry uses, as a crashed upload would leave.
    let orphan = content(71, 5_000);
    let path = t.blob(0, &BlobHash::of(&orphan));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &orphan).unwrap();
    eventually(Duration::from_secs(20), "the orphan to be removed", || {
        !path.exists()
    })
    .await;
    assert_eq!(t.holders(&BlobHash::of(&kept)).len(), 2);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_survives_a_manager_restart_and_servers_rejoin() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..5).map(|i| content(80 + i, 20_000)).collect();
    for (i, data) in files.iter().enumerate() {
        put(
            &mut session,
            &t.write(&format!("f{i}"), data),
            &format!("f{i}"),
        )
        .await;
    }
    t.cluster.restart_manager().await.unwrap();
    t.cluster
        .wait_until(Duration::from_secs(20), |s| {
            s.servers.iter().filter(|s| s.alive).count() == 4
        })
        .await
        .unwrap();
    let mut session = t.session("laptop").await;
    let listed = session.list(None).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|f| f.replicas == 2));
    let more = content(90, 1234);
    put(&mut session, &t.write("after", &more), "after").await;
    assert_eq!(t.holders(&BlobHash::of(&more)).len(), 2);
    t.cluster.shutdown().await;
}
