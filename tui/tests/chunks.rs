//! The chunked, sealed format end to end: what is stored (deduplicated,
//! compressed, encrypted, no plaintext anywhere but the client), what a
//! restore gives back (bytes, type, mode, time, holes), and what the keys
//! refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use arca_tui::client::{ClientError, Passphrase, Restored, Session, TransferProgress, Vault};
use common::{TestCluster, content, put, stored};
use tokio::sync::watch;

async fn restore(session: &mut Session, name: &str, version: Option<u32>, dest: &Path) -> Restored {
    let (progress, _rx) = watch::channel(TransferProgress::default());
    session
        .get(name, version, dest, true, &progress)
        .await
        .unwrap()
}

/// Bytes stored for a version: the sealed size of its distinct chunks.
async fn stored_bytes(session: &mut Session, name: &str) -> u64 {
    let (_, mut parts) = session.parts(name, None).await.unwrap();
    parts.sort_by_key(|p| p.hash);
    parts.dedup_by_key(|p| p.hash);
    parts.iter().map(|p| p.size).sum()
}

/// Every file under `dir`, read whole.
fn every_file(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(every_file(&path));
        } else if path.is_file() {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_and_no_catalog_holds_plaintext() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let marker = b"ARCA-PLAINTEXT-MARKER-7f3a9c";
    // Compressible text, and the marker inside incompressible data.
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("line {i}: {} ok\n", String::from_utf8_lossy(marker)).into_bytes())
        .collect();
    let mut noise = content(1, 3 << 20);
    noise[1 << 20..(1 << 20) + marker.len()].copy_from_slice(marker);
    put(
        &mut session,
        &t.write("logs/app.log", &text),
        "logs/app.log",
    )
    .await;
    put(&mut session, &t.write("data.bin", &noise), "data.bin").await;
    // Text is stored smaller than it is.
    let stored = stored_bytes(&mut session, "logs/app.log").await;
    assert!(stored * 4 < text.len() as u64, "{stored} of {}", text.len());

    let mut places = vec![t.cluster.manager_data()];
    places.extend((0..3).map(|i| t.cluster.server_data(i).to_owned()));
    for place in places {
        for (path, bytes) in every_file(&place) {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "plaintext in {}",
                path.display()
            );
        }
    }
    let back = t.dir.path().join("back.log");
    restore(&mut session, "logs/app.log", None, &back).await;
    assert!(std::fs::read(&back).unwrap() == text);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_and_edits_store_only_what_is_new() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let big = content(2, 24 << 20);
    put(&mut session, &t.write("big.bin", &big), "big.bin").await;
    let first = t.visible_blobs();
    // A copy under another name costs no chunk.
    put(&mut session, &t.write("copy.bin", &big), "copy.bin").await;
    assert_eq!(t.visible_blobs(), first);
    // A changed byte in the middle costs the chunks around it.
    let mut edited = big.clone();
    edited[12 << 20] ^= 1;
    put(&mut session, &t.write("big.bin", &edited), "big.bin").await;
    let grown = t.visible_blobs() - first;
    assert!((2..=2 * 3).contains(&grown), "{grown} new copies");
    // Bytes put in front shift everything, yet most chunks are found again.
    let mut shifted = b"a new first line\n".to_vec();
    shifted.extend_from_slice(&big);
    let before = t.visible_blobs();
    put(&mut session, &t.write("big.bin", &shifted), "big.bin").await;
    assert!(
        t.visible_blobs() - before <= 2 * 3,
        "a shift re-stores everything"
    );

    // Removing the versions that shared chunks keeps version 1 whole.
    session.remove("big.bin", Some(2)).await.unwrap();
    session.remove("big.bin", Some(3)).await.unwrap();
    session.remove("copy.bin", None).await.unwrap();
    let out = t.dir.path().join("v1");
    restore(&mut session, "big.bin", Some(1), &out).await;
    assert!(std::fs::read(&out).unwrap() == big);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_at_chunk_boundaries_round_trip() {
    let t = TestCluster::with_servers(2).await;
    let mut session = t.session("laptop").await;
    // The smallest and largest chunk, one byte past each, and zeros (whose
    // chunks are all the largest size, and all the same).
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("min", content(3, 256 * 1024)),
        ("min+1", content(4, 256 * 1024 + 1)),
        ("max", content(5, 4 << 20)),
        ("max+1", content(6, (4 << 20) + 1)),
        ("zeros", vec![0; 9 << 20]),
    ];
    for (name, data) in &cases {
        put(&mut session, &t.write(name, data), name).await;
    }
    for (name, data) in &cases {
        let out = t.dir.path().join("out").join(name);
        restore(&mut session, name, None, &out).await;
        assert!(std::fs::read(&out).unwrap() == *data, "{name} differs");
    }
    // Zeros cut into largest chunks (one stored once) and the rest.
    let zeros = stored(&mut session, "zeros").await;
    assert!(zeros.len() == 3 && zeros[0] == zeros[1], "{zeros:?}");
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_time_links_and_holes_come_back() {
    let t = TestCluster::with_servers(2).await;
    let mut session = t.session("laptop").await;
    let script = t.write("bin/run.sh", b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(&script)
        .unwrap()
        .set_modified(when)
        .unwrap();
    std::os::unix::fs::symlink("run.sh", t.files().join("bin/run")).unwrap();
    // 64 MiB with 1 MiB of data in the middle.
    let sparse = t.files().join("disk.img");
    let file = std::fs::File::create(&sparse).unwrap();
    file.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &content(7, 1 << 20), 32 << 20).unwrap();
    drop(file);
    for (path, name) in [
        (&script, "bin/run.sh"),
        (&t.files().join("bin/run"), "bin/run"),
        (&sparse, "disk.img"),
    ] {
        put(&mut session, path, name).await;
    }

    let out = t.dir.path().join("out");
    restore(&mut session, "bin/run.sh", None, &out.join("run.sh")).await;
    let meta = std::fs::metadata(out.join("run.sh")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o750);
    assert_eq!(meta.modified().unwrap(), when);

    restore(&mut session, "bin/run", None, &out.join("run")).await;
    let link = out.join("run");
    assert!(link.symlink_metadata().unwrap().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("run.sh"));
    // Restoring the same link again finds it there.
    assert!(matches!(
        restore(&mut session, "bin/run", None, &link).await,
        Restored::AlreadyThere { .. } | Restored::Written { .. }
    ));

    restore(&mut session, "disk.img", None, &out.join("disk.img")).await;
    let back = std::fs::metadata(out.join("disk.img")).unwrap();
    assert_eq!(back.len(), 64 << 20);
    assert!(
        back.blocks() * 512 < 8 << 20,
        "{} bytes allocated",
        back.blocks() * 512
    );
    assert!(std::fs::read(out.join("disk.img")).unwrap() == std::fs::read(&sparse).unwrap());
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_is_refused_and_another_client_sees_nothing() {
    let t = TestCluster::with_servers(2).await;
    let mut session = t.session("laptop").await;
    let data = content(8, 100_000);
    put(&mut session, &t.write("secret.bin", &data), "secret.bin").await;

    let mut wrong = t.settings("laptop");
    wrong.vault = Vault::new(Passphrase::given("not it").unwrap());
    let mut intruder = Session::connect(wrong).await.unwrap();
    let (progress, _rx) = watch::channel(TransferProgress::default());
    let out = t.dir.path().join("out.bin");
    let refused = intruder
        .get("secret.bin", None, &out, false, &progress)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("wrong passphrase"),
        "{refused}"
    );
    assert!(!out.exists());

    // Another client announcing the same content gets none of it: its
    // chunk ids differ, and it cannot fetch the laptop's blobs by hash.
    let mut other = t.session("desktop").await;
    put(&mut other, &t.write("mine.bin", &data), "mine.bin").await;
    let theirs = stored(&mut session, "secret.bin").await;
    assert!(
        stored(&mut other, "mine.bin")
            .await
            .iter()
            .all(|h| !theirs.contains(h))
    );
    let refused = other.parts("secret.bin", None).await.unwrap_err();
    assert!(matches!(refused, ClientError::Refused(_)), "{refused}");
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_put_in_another_chunks_place_is_rejected() {
    let mut t = TestCluster::with_servers(2).await;
    let mut session = t.session("laptop").await;
    put(&mut session, &t.write("a", &content(9, 50_000)), "a").await;
    put(&mut session, &t.write("b", &content(10, 50_000)), "b").await;
    // Whoever controls the catalog points a's chunk at b's intact blob.
    t.cluster.stop_manager().await;
    let db = rusqlite::Connection::open(t.cluster.manager_data().join("catalog.db")).unwrap();
    db.execute(
        "UPDATE chunks SET blob = (SELECT c.blob FROM parts p JOIN chunks c ON c.id = p.chunk
                                   WHERE p.name = 'b')
         WHERE id = (SELECT chunk FROM parts WHERE name = 'a')",
        [],
    )
    .unwrap();
    drop(db);
    t.cluster.resume_manager().await.unwrap();
    let mut session = t.session("laptop").await;
    let (progress, _rx) = watch::channel(TransferProgress::default());
    let out = t.dir.path().join("a");
    let refused = session
        .get("a", None, &out, false, &progress)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("does not open"), "{refused}");
    assert!(!out.exists());
    t.cluster.shutdown().await;
}
