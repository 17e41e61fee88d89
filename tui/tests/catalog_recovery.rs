//! The catalog is the one thing only the manager holds: its sealed
//! snapshots on the servers rebuild it when it is lost or damaged, and a
//! catalog older than those snapshots deletes nothing it does not know.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use arca_daemon::cluster::ClusterOptions;
use arca_daemon::manager::{Catalog, NewVersion, recover};
use arca_daemon::{ManagerConfig, run_manager};
use arca_tui::client::ClientError;
use common::{TestCluster, content, eventually, put, stored};
use tokio_util::sync::CancellationToken;

fn options() -> ClusterOptions {
    ClusterOptions {
        servers: 3,
        snapshot_every: Duration::from_millis(200),
        orphan_grace: Duration::from_secs(1),
        ..ClusterOptions::default()
    }
}

/// The newest snapshot generation every server keeps.
fn kept_generations(t: &TestCluster) -> Vec<u64> {
    (0..t.cluster.server_count())
        .map(|i| {
            std::fs::read_dir(t.cluster.server_data(i).join("snapshots"))
                .unwrap()
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .split('-')
                        .next()?
                        .parse()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .collect()
}

fn servers(t: &TestCluster) -> Vec<String> {
    (0..t.cluster.server_count())
        .map(|i| t.cluster.server_addr(i).to_owned())
        .collect()
}

/// Starts the manager again and waits until every server is back.
async fn resume(t: &mut TestCluster) {
    t.cluster.resume_manager().await.unwrap();
    let all = t.cluster.server_count();
    t.cluster
        .wait_until(Duration::from_secs(20), |s| {
            s.servers.iter().filter(|s| s.alive).count() == all
        })
        .await
        .unwrap();
}

fn remove_if_there(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_catalog_is_rebuilt_from_the_servers_snapshots() {
    let mut t = TestCluster::start(options()).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..3).map(|i| content(200 + i, 30_000)).collect();
    for (i, data) in files.iter().enumerate() {
        let name = format!("doc{i}");
        put(&mut session, &t.write(&name, data), &name).await;
    }
    eventually(
        Duration::from_secs(20),
        // The client's credential and the first backup's key count too.
        "every server to keep generation 5",
        || kept_generations(&t).iter().all(|g| *g == 5),
    )
    .await;
    // Sealed: no server's copy shows the catalog's names.
    let snapshots = t.cluster.server_data(0).join("snapshots");
    for entry in std::fs::read_dir(&snapshots).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(4).any(|w| w == b"doc0"));
    }

    t.cluster.stop_manager().await;
    let data = t.cluster.manager_data();
    let catalog = data.join("catalog.db");
    let len = std::fs::metadata(&catalog).unwrap().len();
    std::fs::write(&catalog, vec![0u8; len as usize / 2]).unwrap();
    remove_if_there(&data.join("catalog.db-wal"));
    remove_if_there(&data.join("catalog.db-shm"));

    // The manager will not start on it, and says how to recover.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ManagerConfig::new(data.clone(), t.cluster.key.clone());
    let refused = run_manager(listener, config, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("daemon recover"), "{refused}");

    let recovered = recover(&data, &servers(&t), &t.cluster.key, false)
        .await
        .unwrap();
    assert_eq!(recovered.snapshot.generation, 5);
    assert!(recovered.set_aside.is_some());
    // A catalog that opens is not replaced without --force.
    let again = recover(&data, &servers(&t), &t.cluster.key, false).await;
    assert!(again.is_err());

    resume(&mut t).await;
    let mut session = t.session("laptop").await;
    let listed = session.list(None).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    t.cluster.shutdown().await;
}

/// How a catalog gets stale in the tests below.
#[derive(Clone, Copy, PartialEq)]
enum Stale {
    /// Put back as it was before the newest backup, as a lost log leaves it.
    Behind,
    /// Put back, then changed on its own to the snapshots' generation.
    WentAnotherWay,
}

/// Backs up "first" and "second", puts a stale catalog in place (one that
/// does not know "second"), and checks that the manager then deletes and
/// records nothing, until `daemon recover` brings "second" back.
async fn a_stale_catalog_loses_nothing(stale: Stale) {
    let mut t = TestCluster::start(options()).await;
    let mut session = t.session("laptop").await;
    let first = content(210, 20_000);
    put(&mut session, &t.write("first", &first), "first").await;
    eventually(
        Duration::from_secs(20),
        "the first snapshot everywhere (the credential, the key, then the version)",
        || kept_generations(&t).iter().all(|g| *g == 3),
    )
    .await;
    t.cluster.stop_manager().await;
    let data = t.cluster.manager_data();
    let old = t.dir.path().join("old-catalog");
    std::fs::create_dir_all(&old).unwrap();
    for file in ["catalog.db", "catalog.db-wal"] {
        if data.join(file).exists() {
            std::fs::copy(data.join(file), old.join(file)).unwrap();
        }
    }
    resume(&mut t).await;
    let mut session = t.session("laptop").await;
    let second = content(211, 20_000);
    put(&mut session, &t.write("second", &second), "second").await;
    let hash = stored(&mut session, "second").await[0];
    eventually(
        Duration::from_secs(20),
        "the second snapshot everywhere",
        || kept_generations(&t).iter().all(|g| *g == 4),
    )
    .await;

    t.cluster.stop_manager().await;
    for file in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        remove_if_there(&data.join(file));
        if old.join(file).exists() {
            std::fs::copy(old.join(file), data.join(file)).unwrap();
        }
    }
    if stale == Stale::WentAnotherWay {
        let mut catalog = Catalog::open(&data.join("catalog.db")).unwrap();
        let elsewhere = NewVersion {
            name: "elsewhere".into(),
            size: 0,
            meta: arca_shared::meta::FileMeta {
                kind: arca_shared::meta::FileKind::File,
                mode: 0o600,
                mtime_ns: 0,
                owner: None,
            },
            chunks: vec![],
        };
        catalog.commit("laptop", &[elsewhere]).unwrap().unwrap();
        assert_eq!(catalog.generation().unwrap().number, 4);
    }
    resume(&mut t).await;
    t.cluster
        .wait_until(Duration::from_secs(10), |s| s.stale_catalog)
        .await
        .unwrap();
    let mut session = t.session("laptop").await;
    let refused = session.remove("first", None).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::ManagerFailed(_)),
        "{refused}"
    );
    // Well past the orphan grace, "second"'s copies are all still there.
    let until = std::time::Instant::now() + options().orphan_grace * 3;
    while std::time::Instant::now() < until {
        assert_eq!(t.holders(&hash).len(), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    t.cluster.stop_manager().await;
    recover(&data, &servers(&t), &t.cluster.key, true)
        .await
        .unwrap();
    resume(&mut t).await;
    let status = t.cluster.status().await.unwrap();
    assert!(!status.stale_catalog, "still stale after recovery");
    let mut session = t.session("laptop").await;
    let names: Vec<_> = session
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["first", "second"]);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_behind_the_snapshots_loses_nothing() {
    a_stale_catalog_loses_nothing(Stale::Behind).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_that_went_another_way_loses_nothing() {
    a_stale_catalog_loses_nothing(Stale::WentAnotherWay).await;
}
