//! A server whose disk fills up: uploads to it fail with a clear error that
//! names its condition, nothing partial remains, and the manager stops
//! choosing it until it has room again. The disk is a real 4 MiB tmpfs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use arca_daemon::cluster::{ClusterOptions, LocalCluster};
use arca_shared::protocol::{NewChunk, UploadGrant};
use arca_shared::vault::ChunkId;
use arca_shared::{BlobHash, FrameError, Message, handshake};
use serde_bytes::ByteBuf;

/// A tmpfs mounted for the test's lifetime.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(path.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A manager and two servers under `dir`, the data folder `small` (a
/// server's or the manager's) on a 4 MiB tmpfs; `None` without root.
async fn cluster_with_small_disk(dir: &Path, small: &str) -> Option<(SmallDisk, LocalCluster)> {
    let disk = SmallDisk::mount(&dir.join(small))?;
    let options = ClusterOptions {
        servers: 2,
        ..ClusterOptions::default()
    };
    let cluster = LocalCluster::start(dir, options).await.unwrap();
    Some((disk, cluster))
}

/// Stores `content` as one chunk (its bytes standing for a sealed chunk).
fn put_chunks(content: &[u8]) -> Message {
    let hash = BlobHash::of(content);
    Message::PutChunks {
        client: "me".into(),
        chunks: vec![NewChunk {
            id: ChunkId(hash.0),
            hash,
            size: content.len() as u64,
            plain_size: content.len() as u64,
        }],
        exclude: vec![],
    }
}

async fn put(cluster: &LocalCluster, content: &[u8]) -> Result<Message, FrameError> {
    let link = &cluster.key.links().connector;
    let mut manager = handshake::connect(&cluster.manager_addr, link).await?;
    let Message::ChunkPlan {
        upload: Some(UploadGrant { primary, ticket }),
    } = manager.call(&put_chunks(content)).await?
    else {
        panic!("no ticket");
    };
    let mut upload = handshake::connect(&primary, link).await?;
    if upload.call(&Message::Upload { ticket }).await? == Message::Accepted {
        for part in content.chunks(256 * 1024) {
            let chunk = Message::Chunk {
                data: ByteBuf::from(part.to_vec()),
            };
            if upload.send(&chunk).await.is_err() {
                break;
            }
        }
        let _ = upload.send(&Message::End).await;
    }
    manager.recv().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_clearly_leaves_nothing_and_is_avoided_until_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some((disk, cluster)) = cluster_with_small_disk(dir.path(), "server-1").await else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();

    // Fill the disk behind the server's back; the manager still thinks it has room.
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![1u8; 3_500_000]).unwrap();
    let verdict = put(&cluster, &content).await;
    let Err(FrameError::Refused(reason)) = verdict else {
        panic!("the upload to a full disk succeeded: {verdict:?}");
    };
    assert!(
        reason.contains("is full") && reason.contains("bytes free"),
        "{reason}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(disk.0.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "partial files: {leftovers:?}");

    // Once its heartbeat says so, the manager does not choose it at all.
    cluster
        .wait_until(Duration::from_secs(10), |s| {
            s.servers
                .iter()
                .any(|s| s.free_bytes < content.len() as u64)
        })
        .await
        .unwrap();
    let refused = put_begin_refusal(&cluster, &content).await;
    assert!(refused.contains("not enough live servers"), "{refused}");

    // Room again: it is chosen again and the upload succeeds.
    std::fs::remove_file(&filler).unwrap();
    cluster
        .wait_until(Duration::from_secs(10), |s| {
            s.servers
                .iter()
                .all(|s| s.free_bytes > content.len() as u64)
        })
        .await
        .unwrap();
    // (A server that just failed an upload sits out a short suspicion first.)
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let verdict = loop {
        match put(&cluster, &content).await {
            Ok(verdict) => break verdict,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("never chosen again: {e}"),
        }
    };
    assert!(
        matches!(verdict, Message::ChunksStored { replicas: 2 }),
        "{verdict:?}"
    );
    cluster.shutdown().await;
    drop(disk);
}

async fn put_begin_refusal(cluster: &LocalCluster, content: &[u8]) -> String {
    let mut manager = handshake::connect(&cluster.manager_addr, &cluster.key.links().connector)
        .await
        .unwrap();
    match manager.call(&put_chunks(content)).await {
        Err(FrameError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_disk_is_reported_as_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let Some((disk, cluster)) = cluster_with_small_disk(dir.path(), "server-1").await else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&disk.0)
        .status()
        .unwrap();
    assert!(remounted.success());
    let status = cluster
        .wait_until(Duration::from_secs(10), |s| {
            s.servers.iter().any(|s| s.read_only)
        })
        .await
        .unwrap();
    assert!(
        status
            .servers
            .iter()
            .any(|s| s.read_only && s.free_bytes == 0)
    );
    let refused = put_begin_refusal(&cluster, b"some bytes").await;
    assert!(refused.contains("1 of them read-only"), "{refused}");
    cluster.shutdown().await;
    drop(disk);
}

/// Log lines written in this test process, for checking their level.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_that_cannot_be_written_is_the_managers_fault_and_says_so() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let dir = tempfile::tempdir().unwrap();
    let Some((disk, cluster)) = cluster_with_small_disk(dir.path(), "manager").await else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let before = put(&cluster, b"recorded fine").await.unwrap();
    assert!(matches!(before, Message::ChunksStored { .. }), "{before:?}");

    // The manager's disk fills up behind its back.
    let mut filler = std::fs::File::create(disk.0.join("filler")).unwrap();
    while std::io::Write::write_all(&mut filler, &[1u8; 64 * 1024]).is_ok() {}
    let failed = put(&cluster, b"cannot be recorded").await;
    let Err(FrameError::PeerFailed(reason)) = failed else {
        panic!("expected the manager's own failure, got {failed:?}");
    };
    assert!(reason.contains("could not record the backup"), "{reason}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let logged = logs
        .lines()
        .find(|l| l.contains("could not record the backup"))
        .unwrap_or_else(|| panic!("not logged: {logs}"));
    assert!(logged.contains("ERROR"), "{logged}");
    // The manager keeps serving: its status still answers.
    cluster.status().await.unwrap();
    cluster.shutdown().await;
    drop(disk);
}
