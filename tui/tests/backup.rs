//! The backup flow end to end on a real cluster over loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use arca_daemon::cluster::ClusterOptions;
use arca_shared::BlobHash;
use arca_shared::protocol::content_digest;
use arca_tui::client::{ClientError, Phase, TransferProgress, Uploaded};
use common::{TestCluster, content, eventually, poll, put, stored};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_lands_on_exactly_two_servers_and_not_on_the_primary() {
    let t = TestCluster::with_servers(4).await;
    let data = content(1, 3 * 1024 * 1024 + 17);
    let path = t.write("docs/report.pdf", &data);
    let mut session = t.session("laptop").await;

    let outcome = put(&mut session, &path, "docs/report.pdf").await;
    assert_eq!(
        outcome,
        Uploaded::Committed {
            version: 1,
            replicas: 2
        }
    );

    let hashes = stored(&mut session, "docs/report.pdf").await;
    assert!(hashes.len() > 1, "3 MiB is cut in chunks: {hashes:?}");
    for hash in &hashes {
        let holders = t.holders(hash);
        assert_eq!(holders.len(), 2, "held by {holders:?}");
        for i in &holders {
            let bytes = t.blob(*i, hash).read().unwrap();
            // Stored sealed: named by the stored bytes' hash, no plaintext.
            assert_eq!(BlobHash::of(&bytes), *hash);
            assert!(!bytes.windows(32).any(|w| w == &data[1000..1032]));
        }
    }
    // Exactly two copies exist anywhere: the primary kept none, and no
    // temp file is left behind.
    assert_eq!(t.visible_blobs(), 2 * hashes.len());
    for i in 0..4 {
        assert_eq!(t.temp_files(i), 0, "server {i} left a temp file");
    }
    let listed = session.list(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].size, listed[0].replicas),
        ("docs/report.pdf", data.len() as u64, 2)
    );
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_counts_every_byte_to_the_primary_and_each_replica() {
    let t = TestCluster::with_servers(3).await;
    let data = content(2, 5 * 1024 * 1024);
    let path = t.write("big.bin", &data);
    let mut session = t.session("laptop").await;
    let (progress, rx) = watch::channel(TransferProgress::default());
    session.put(&path, "big.bin", &progress).await.unwrap();
    let last = rx.borrow().clone();
    assert_eq!(last.phase, Phase::Committed { version: 1 });
    assert_eq!(last.sent, data.len() as u64);
    assert_eq!(last.replicas, vec![data.len() as u64; 2]);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_is_never_chosen() {
    let t = TestCluster::start(ClusterOptions {
        servers: 4,
        capacities: vec![Some(1024)],
        ..ClusterOptions::default()
    })
    .await;
    let mut session = t.session("laptop").await;
    for i in 0..6 {
        let data = content(100 + i, 64 * 1024);
        let path = t.write(&format!("f{i}"), &data);
        put(&mut session, &path, &format!("f{i}")).await;
        let holders = t.holders(&stored(&mut session, &format!("f{i}")).await[0]);
        assert_eq!(holders.len(), 2);
        assert!(!holders.contains(&0), "the full server got a copy");
    }
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_server_is_avoided() {
    // Equal capacities: once some servers hold data, the empty ones win on load.
    let t = TestCluster::start(ClusterOptions {
        servers: 4,
        capacities: vec![Some(16 << 20); 4],
        ..ClusterOptions::default()
    })
    .await;
    let mut session = t.session("laptop").await;
    // Under one group: one placement.
    let first = content(7, 4 << 20);
    put(&mut session, &t.write("first", &first), "first").await;
    let loaded = t.holders(&stored(&mut session, "first").await[0]);
    // Wait until the manager has heard the new loads in heartbeats.
    t.cluster
        .wait_until(Duration::from_secs(10), |s| {
            s.servers.iter().filter(|s| s.stored_bytes > 0).count() == 2
        })
        .await
        .unwrap();
    let second = content(8, 1024);
    put(&mut session, &t.write("second", &second), "second").await;
    let holders = t.holders(&stored(&mut session, "second").await[0]);
    // Normalised, the loaded servers' load is 1 and the empty ones' 0: an
    // empty server scores at most the midpoint, a loaded one at least, and
    // ties go to the less loaded, so the two empty servers rank first
    // however latencies fall. The first is the primary, the second a holder.
    assert!(
        holders.iter().any(|h| !loaded.contains(h)),
        "both copies went to loaded servers {loaded:?}"
    );
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_live_servers_is_refused_with_both_counts() {
    let t = TestCluster::with_servers(1).await;
    let path = t.write("a", b"a");
    let mut session = t.session("laptop").await;
    let (progress, _rx) = watch::channel(TransferProgress::default());
    let err = session.put(&path, "a", &progress).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ClientError::Refused(_)), "{err:?}");
    assert!(
        message.contains("2 needed") && message.contains("of 1 alive"),
        "{message}"
    );
    assert!(session.list(None).await.unwrap().is_empty());
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_two_servers_the_primary_is_also_a_replica() {
    let t = TestCluster::with_servers(2).await;
    let data = content(3, 200_000);
    let mut session = t.session("laptop").await;
    put(&mut session, &t.write("x", &data), "x").await;
    assert_eq!(t.holders(&stored(&mut session, "x").await[0]), [0, 1]);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_backing_up_at_once_all_commit() {
    let t = TestCluster::with_servers(4).await;
    let mut clients = Vec::new();
    for c in 0..4u64 {
        let mut session = t.session(&format!("client-{c}")).await;
        let paths: Vec<_> = (0..5u64)
            .map(|f| t.write(&format!("c{c}/f{f}"), &content(c * 10 + f, 300_000)))
            .collect();
        clients.push(tokio::spawn(async move {
            for (f, path) in paths.iter().enumerate() {
                put(&mut session, path, &format!("f{f}")).await;
            }
            session.list(None).await.unwrap()
        }));
    }
    for client in clients {
        let listed = client.await.unwrap();
        assert_eq!(listed.len(), 5);
        assert!(listed.iter().all(|f| f.replicas == 2 && f.version == 1));
    }
    t.cluster.shutdown().await;
}

/// Starts a large upload on `servers` servers, waits until the replicas are
/// writing, then kills the servers `pick` chooses. Returns how the upload
/// ended, with the cluster and a session to inspect it.
async fn kill_mid_upload(
    servers: usize,
    pick: impl Fn(&TestCluster) -> Vec<usize>,
) -> (
    Result<Uploaded, ClientError>,
    TestCluster,
    arca_tui::client::Session,
    Vec<usize>,
) {
    let mut t = TestCluster::with_servers(servers).await;
    let data = content(9, 96 << 20);
    let path = t.write("huge.bin", &data);
    let mut session = t.session("laptop").await;
    let (progress, mut rx) = watch::channel(TransferProgress::default());
    let upload = tokio::spawn(async move {
        let result = session.put(&path, "huge.bin", &progress).await;
        (result, session)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let p = rx.borrow_and_update().clone();
        if p.replicas.iter().filter(|b| **b > 0).count() == 2 {
            break;
        }
        assert!(!p.phase.is_done(), "upload ended early: {p:?}");
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .unwrap()
            .unwrap();
    }
    // Between two groups a replica may hold no temp pack for a moment.
    let victims = poll(Duration::from_secs(30), "servers to kill", async || {
        Some(pick(&t)).filter(|v| !v.is_empty())
    })
    .await;
    for i in &victims {
        t.cluster.kill_server(*i).await;
    }
    let (result, session) = tokio::time::timeout(Duration::from_secs(90), upload)
        .await
        .unwrap()
        .unwrap();
    (result, t, session, victims)
}

/// Waits until every chunk of huge.bin has two copies off the `victims`.
async fn all_on_live_servers(
    t: &TestCluster,
    session: &mut arca_tui::client::Session,
    victims: &[usize],
) {
    let hashes = stored(session, "huge.bin").await;
    eventually(
        Duration::from_secs(30),
        "every chunk on two live servers",
        || {
            hashes.iter().all(|hash| {
                t.holders(hash)
                    .iter()
                    .filter(|h| !victims.contains(h))
                    .count()
                    >= 2
            })
        },
    )
    .await;
}

/// The servers writing a temp file: the replicas.
fn writing(t: &TestCluster) -> Vec<usize> {
    (0..t.cluster.server_count())
        .filter(|i| t.temp_files(*i) > 0)
        .collect()
}

async fn assert_no_partial_files(t: &TestCluster, victims: &[usize]) {
    eventually(Duration::from_secs(10), "temp files to be cleaned", || {
        (0..t.cluster.server_count())
            .filter(|i| !victims.contains(i))
            .all(|i| t.temp_files(i) == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_upload_is_replaced_and_the_upload_retried() {
    let (result, t, mut session, victims) =
        kill_mid_upload(4, |t| writing(t).into_iter().take(1).collect()).await;
    assert_eq!(
        result.unwrap(),
        Uploaded::Committed {
            version: 1,
            replicas: 2
        }
    );
    // Groups stored before the kill count the victim too; healing makes
    // every chunk whole again on the servers left.
    all_on_live_servers(&t, &mut session, &victims).await;
    assert_eq!(session.list(None).await.unwrap().len(), 1);
    assert_no_partial_files(&t, &victims).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_killed_mid_upload_is_replaced_and_the_upload_retried() {
    // The replicas are writing temp packs; the primary (and the idle server)
    // are not. Two servers with none at once are those two, not a replica
    // between groups.
    let (result, t, mut session, victims) = kill_mid_upload(4, |t| {
        let idle: Vec<usize> = (0..4).filter(|i| t.temp_files(*i) == 0).collect();
        if idle.len() <= 2 { idle } else { Vec::new() }
    })
    .await;
    assert_eq!(
        result.unwrap(),
        Uploaded::Committed {
            version: 1,
            replicas: 2
        }
    );
    all_on_live_servers(&t, &mut session, &victims).await;
    assert_no_partial_files(&t, &victims).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_cannot_recover_leaves_no_entry_and_no_partial_file() {
    // Three servers; both replicas die: too few remain for any retry.
    let (result, t, mut session, victims) = kill_mid_upload(3, writing).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("not enough live servers"), "{err}");
    assert!(
        session.list(None).await.unwrap().is_empty(),
        "something was committed"
    );
    // A replica that finished its group before its peer died keeps whole,
    // verified blobs that nothing counts (orphans, collected after the
    // grace period); nothing partial is visible anywhere.
    for server in 0..t.cluster.server_count() {
        for (hash, blob) in t.on_disk(server) {
            assert_eq!(BlobHash::of(&blob.read().unwrap()), hash);
        }
    }
    assert_no_partial_files(&t, &victims).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_shrinks_after_hashing_is_read_again_and_nothing_stale_is_kept() {
    let t = TestCluster::with_servers(3).await;
    let data = content(9, 3 * 1024 * 1024);
    let path = t.write("growing.log", &data);
    let mut session = t.session("laptop").await;
    let keys = session.chunk_keys(true).await.unwrap();
    let file = arca_tui::client::LocalFile::read(&path, "growing.log", 0, &keys).unwrap();
    // Someone truncates it between reading and sending.
    let now = &data[..1024 * 1024 + 5];
    std::fs::write(&path, now).unwrap();
    let read_now = arca_tui::client::LocalFile::read(&path, "growing.log", 0, &keys).unwrap();
    let (progress, _) = watch::channel(TransferProgress::default());
    let done = session.put_batch(&[file], &progress).await.unwrap();
    assert_eq!(
        done,
        [Uploaded::Committed {
            version: 1,
            replicas: 2
        }]
    );
    let listed = session.list(None).await.unwrap();
    assert_eq!(listed[0].hash, content_digest(&read_now.chunks));
    eventually(Duration::from_secs(5), "temp files to go", || {
        (0..3).all(|i| t.temp_files(i) == 0)
    })
    .await;
    assert_eq!(t.visible_blobs(), 2 * read_now.chunks.len());
    t.cluster.shutdown().await;
}
