//! Restore, versions and delete on a real cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use arca_shared::{BlobHash, Message};
use arca_tui::client::{ClientError, Restored, Session, TransferProgress, Uploaded};
use common::{TestCluster, content, eventually, granted, put, stored, tied_cluster};
use tokio::sync::watch;

async fn get(
    session: &mut Session,
    name: &str,
    version: Option<u32>,
    dest: &Path,
) -> Result<Restored, ClientError> {
    let (progress, _rx) = watch::channel(TransferProgress::default());
    session.get(name, version, dest, false, &progress).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_are_byte_identical_for_every_kind_of_file_and_name() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one byte", b"x".to_vec()),
        ("with spaces/and more spaces.txt", b"spaced".to_vec()),
        (
            "ünïcødé/日本語/ファイル.txt",
            "こんにちは".as_bytes().to_vec(),
        ),
        (
            "deeply/nested/folders/of/files/leaf.bin",
            content(4, 70_000),
        ),
        ("big/hundred.bin", content(5, 100 << 20)),
    ];
    for (name, data) in &cases {
        let path = t.write(name, data);
        assert_eq!(
            put(&mut session, &path, name).await,
            Uploaded::Committed {
                version: 1,
                replicas: 2
            }
        );
    }
    let out = t.dir.path().join("out");
    for (name, data) in &cases {
        let dest = out.join(name);
        let restored = get(&mut session, name, None, &dest).await.unwrap();
        assert_eq!(
            restored,
            Restored::Written {
                version: 1,
                size: data.len() as u64
            }
        );
        assert!(std::fs::read(&dest).unwrap() == *data, "{name} differs");
    }
    // Restoring onto an identical file is a no-op.
    let dest = out.join("one byte");
    assert_eq!(
        get(&mut session, "one byte", None, &dest).await.unwrap(),
        Restored::AlreadyThere { version: 1 }
    );
    t.cluster.shutdown().await;
}

/// The index of the server a restore of `name` reads `hash` from: the
/// manager's grant, asked as the restore asks (for all its chunks at once;
/// grants spread over the holders, so it is not always the lowest id).
async fn reader_of(t: &TestCluster, session: &mut Session, name: &str, hash: &BlobHash) -> usize {
    let mut hashes = stored(session, name).await;
    hashes.sort_unstable();
    hashes.dedup();
    granted(t, &hashes).await[hash]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_copy_is_detected_reported_and_the_other_copy_used() {
    let t = tied_cluster().await;
    let mut session = t.session("laptop").await;
    let data = content(11, 2 << 20);
    put(
        &mut session,
        &t.write("precious.bin", &data),
        "precious.bin",
    )
    .await;
    let hash = stored(&mut session, "precious.bin").await[0];
    let bad = reader_of(&t, &mut session, "precious.bin", &hash).await;
    t.flip(bad, &hash, 12345);

    let dest = t.dir.path().join("restored.bin");
    get(&mut session, "precious.bin", None, &dest)
        .await
        .unwrap();
    assert!(std::fs::read(&dest).unwrap() == data);
    // The manager dropped the bad copy and healing made a good one (maybe on
    // the same server: it has room now).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let corrupt_left = t
            .blob_bytes(bad, &hash)
            .is_some_and(|b| BlobHash::of(&b) != hash);
        let replicas = session.list(Some("precious.bin")).await.unwrap()[0].replicas;
        if !corrupt_left && replicas == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "corrupt copy left: {corrupt_left}, replicas: {replicas}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.cluster.shutdown().await;
}

/// A resumed restore can blame the wrong holder, and a client can be wrong
/// or lying: a report alone must not cost a good copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_against_a_good_copy_costs_nothing() {
    let t = tied_cluster().await;
    let mut session = t.session("laptop").await;
    let data = content(13, 1 << 20);
    put(&mut session, &t.write("fine.bin", &data), "fine.bin").await;
    let hash = stored(&mut session, "fine.bin").await[0];
    let accused = reader_of(&t, &mut session, "fine.bin", &hash).await;
    let good = t.blob(accused, &hash).read().unwrap();

    let mut manager = common::manager(&t).await;
    let ticket = common::fetch_grants(&mut manager, &[hash])
        .await
        .remove(0)
        .ticket;
    let answer = manager.call(&Message::ReportCorrupt { ticket }).await;
    assert!(matches!(answer, Ok(Message::Ok)), "{answer:?}");

    // The holder's check of a 1 MiB copy takes milliseconds; a wrongful
    // drop would show well within this.
    let watch_until = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < watch_until {
        assert_eq!(t.blob(accused, &hash).read().unwrap(), good);
        let replicas = session.list(Some("fine.bin")).await.unwrap()[0].replicas;
        assert_eq!(replicas, 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let checks = session.verify(Some("fine.bin")).await.unwrap();
    assert_eq!(checks[0].copies, [true, true], "{checks:?}");
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_restore_is_replaced_by_the_other() {
    restore_cut_off_midway(false).await;
}

/// The resumed file fails its hash with no way to tell whose bytes were bad:
/// the client starts over from the live holder instead of blaming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_holder_killed_mid_restore_costs_the_good_copy_nothing() {
    restore_cut_off_midway(true).await;
}

/// Restores a file, killing the holder serving it once 8 MiB have come;
/// with `corrupt`, that holder's copy is bad in its first megabyte.
async fn restore_cut_off_midway(corrupt: bool) {
    let mut t = tied_cluster().await;
    let mut session = t.session("laptop").await;
    let data = content(12, 100 << 20);
    put(&mut session, &t.write("movie.mkv", &data), "movie.mkv").await;
    let hash = stored(&mut session, "movie.mkv").await[0];
    let serving = reader_of(&t, &mut session, "movie.mkv", &hash).await;
    let other = t
        .holders(&hash)
        .into_iter()
        .find(|h| *h != serving)
        .unwrap();
    if corrupt {
        t.flip(serving, &hash, 12345);
    }

    let dest = t.dir.path().join("movie.mkv");
    let (progress, mut rx) = watch::channel(TransferProgress::default());
    let restore = {
        let dest = dest.clone();
        tokio::spawn(async move {
            let result = session
                .get("movie.mkv", None, &dest, false, &progress)
                .await;
            (result, session)
        })
    };
    while rx.borrow_and_update().sent < 8 << 20 {
        tokio::time::timeout(Duration::from_secs(30), rx.changed())
            .await
            .unwrap()
            .unwrap();
    }
    t.cluster.kill_server(serving).await;
    let (result, _) = restore.await.unwrap();
    assert_eq!(
        result.unwrap(),
        Restored::Written {
            version: 1,
            size: data.len() as u64
        }
    );
    assert!(std::fs::read(&dest).unwrap() == data);
    let kept = t.blob(other, &hash).read().unwrap();
    assert_eq!(BlobHash::of(&kept), hash, "the good copy is untouched");
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_with_one_holder_down_uses_the_other() {
    let mut t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let data = content(13, 300_000);
    put(&mut session, &t.write("a.txt", &data), "a.txt").await;
    let holder = t.holders(&stored(&mut session, "a.txt").await[0])[0];
    t.cluster.kill_server(holder).await;
    let dest = t.dir.path().join("a.txt");
    get(&mut session, "a.txt", None, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == data);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_kept_restorable_and_removable() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let versions: Vec<Vec<u8>> = (0..3).map(|v| content(20 + v, 50_000)).collect();
    for (i, data) in versions.iter().enumerate() {
        let path = t.write("doc.txt", data);
        let outcome = put(&mut session, &path, "doc.txt").await;
        assert_eq!(
            outcome,
            Uploaded::Committed {
                version: i as u32 + 1,
                replicas: 2
            }
        );
    }
    // Unchanged content makes no new version.
    let path = t.files().join("doc.txt");
    assert_eq!(
        put(&mut session, &path, "doc.txt").await,
        Uploaded::Unchanged { version: 3 }
    );

    let listed = session.list(Some("doc.txt")).await.unwrap();
    assert_eq!(
        listed.iter().map(|f| f.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for (i, data) in versions.iter().enumerate() {
        let dest = t.dir.path().join(format!("v{}", i + 1));
        get(&mut session, "doc.txt", Some(i as u32 + 1), &dest)
            .await
            .unwrap();
        assert!(std::fs::read(&dest).unwrap() == *data);
    }
    let newest = t.dir.path().join("newest");
    assert_eq!(
        get(&mut session, "doc.txt", None, &newest).await.unwrap(),
        Restored::Written {
            version: 3,
            size: 50_000
        }
    );

    let (_, v2) = session.parts("doc.txt", Some(2)).await.unwrap();
    assert_eq!(session.remove("doc.txt", Some(2)).await.unwrap(), [2]);
    let listed = session.list(Some("doc.txt")).await.unwrap();
    assert_eq!(listed.iter().map(|f| f.version).collect::<Vec<_>>(), [1, 3]);
    let err = get(&mut session, "doc.txt", Some(2), &t.dir.path().join("gone"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no version 2"), "{err}");
    // Version 2's chunks had no other user: the servers drop them.
    eventually(
        Duration::from_secs(10),
        "version 2's copies to be deleted",
        || v2.iter().all(|p| t.holders(&p.hash).is_empty()),
    )
    .await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_everything_frees_bytes_unless_another_name_shares_them() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let shared = content(30, 400_000);
    let alone = content(31, 300_000);
    put(&mut session, &t.write("one", &shared), "one").await;
    // Same content under another name: stored once, no bytes moved.
    assert_eq!(
        put(&mut session, &t.write("two", &shared), "two").await,
        Uploaded::Committed {
            version: 1,
            replicas: 2
        }
    );
    put(&mut session, &t.write("three", &alone), "three").await;
    let (_, shared_parts) = session.parts("two", None).await.unwrap();
    let (_, alone_parts) = session.parts("three", None).await.unwrap();
    assert_eq!(
        session.parts("one", None).await.unwrap().1,
        shared_parts,
        "the same chunks"
    );
    assert_eq!(
        t.visible_blobs(),
        2 * (shared_parts.len() + alone_parts.len())
    );

    assert_eq!(session.remove("one", None).await.unwrap(), [1]);
    assert_eq!(session.remove("three", None).await.unwrap(), [1]);
    eventually(
        Duration::from_secs(10),
        "the unshared blobs to be deleted",
        || alone_parts.iter().all(|p| t.holders(&p.hash).is_empty()),
    )
    .await;
    assert!(
        shared_parts.iter().all(|p| t.holders(&p.hash).len() == 2),
        "shared content was deleted"
    );
    let shared_bytes: u64 = 2 * shared_parts.iter().map(|p| p.size).sum::<u64>();
    let status = t
        .cluster
        .wait_until(Duration::from_secs(10), |s| {
            s.servers.iter().map(|s| s.stored_bytes).sum::<u64>() == shared_bytes
        })
        .await;
    assert!(status.is_ok(), "{status:?}");
    let dest = t.dir.path().join("two");
    get(&mut session, "two", None, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == shared);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_errors_are_clear_and_leave_nothing_behind() {
    let mut t = TestCluster::with_servers(2).await;
    let mut session = t.session("laptop").await;
    let data = content(40, 10_000);
    put(&mut session, &t.write("x", &data), "x").await;
    let out = t.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    let err = get(&mut session, "nope", None, &out.join("nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no backup named nope"), "{err}");
    let err = get(&mut session, "x", Some(9), &out.join("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no version 9"), "{err}");

    // A different local file is not overwritten without force.
    std::fs::write(out.join("x"), "mine").unwrap();
    let err = get(&mut session, "x", None, &out.join("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read(out.join("x")).unwrap(), b"mine");
    let (progress, _rx) = watch::channel(TransferProgress::default());
    session
        .get("x", None, &out.join("x"), true, &progress)
        .await
        .unwrap();
    assert!(std::fs::read(out.join("x")).unwrap() == data);

    // A destination that cannot be written.
    std::fs::write(out.join("file"), "a file, not a folder").unwrap();
    let err = get(&mut session, "x", None, &out.join("file/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Local(_)), "{err:?}");

    // No live holder.
    t.cluster.kill_server(0).await;
    t.cluster.kill_server(1).await;
    t.cluster
        .wait_until(Duration::from_secs(10), |s| {
            s.servers.iter().all(|s| !s.alive)
        })
        .await
        .unwrap();
    let err = get(&mut session, "x", None, &out.join("y"))
        .await
        .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("x v1") && err.contains("no live server holds"),
        "{err}"
    );
    // Only the files this test wrote are there: no partial restore.
    let mut left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["file", "x"]);
    t.cluster.shutdown().await;
}
