//! Healing, scrubbing, verification and reconciliation on a real cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use arca_daemon::cluster::ClusterOptions;
use arca_shared::BlobHash;
use arca_tui::client::{Phase, Progress, Session, TransferProgress, Uploaded};
use common::{TestCluster, content, eventually, poll, put, put_numbered, stored};
use tokio::sync::watch;

fn fast() -> ClusterOptions {
    ClusterOptions {
        servers: 4,
        dead_after: Duration::from_millis(800),
        heal_after: Duration::from_millis(500),
        ..ClusterOptions::default()
    }
}

/// Waits until every stored blob has exactly two intact copies on disk.
async fn all_at_two_copies(t: &TestCluster, hashes: &[BlobHash]) {
    eventually(
        Duration::from_secs(30),
        "every blob back at two copies",
        || {
            hashes.iter().all(|hash| {
                let holders = t.holders(hash);
                holders.len() == 2 && holders.iter().all(|i| t.intact(*i, hash))
            })
        },
    )
    .await;
}

/// The one stored blob of a file of one chunk.
async fn blob_of(session: &mut Session, name: &str) -> BlobHash {
    let hashes = stored(session, name).await;
    assert_eq!(hashes.len(), 1, "{name} is one chunk");
    hashes[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_healed_and_trimmed_when_it_returns() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..8)
        .map(|i| content(50 + i, 100_000 + i as usize * 7_000))
        .collect();
    let mut hashes = Vec::new();
    for (i, data) in files.iter().enumerate() {
        put(
            &mut session,
            &t.write(&format!("f{i}"), data),
            &format!("f{i}"),
        )
        .await;
        hashes.push(blob_of(&mut session, &format!("f{i}")).await);
    }
    // Kill the server holding the most copies.
    let victim = (0..4)
        .max_by_key(|s| hashes.iter().filter(|h| t.holders(h).contains(s)).count())
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
            hashes
                .iter()
                .all(|h| t.holders(h).iter().filter(|h| **h != victim).count() == 2)
        },
    )
    .await;
    // The catalog counts a healed copy just after it is on disk.
    poll(
        Duration::from_secs(10),
        "every file listed at two copies",
        async || {
            let listed = session.list(None).await.unwrap();
            listed.iter().all(|f| f.replicas == 2).then_some(())
        },
    )
    .await;

    // It comes back with its old copies: the extra ones are dropped.
    t.cluster.restart_server(victim).await.unwrap();
    all_at_two_copies(&t, &hashes).await;
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
    let data = content(60, 200_000);
    put(&mut session, &t.write("precious", &data), "precious").await;
    let hash = blob_of(&mut session, "precious").await;
    let bad = t.holders(&hash)[0];
    t.flip(bad, &hash, 1000);
    all_at_two_copies(&t, &[hash]).await;
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
    let hash = blob_of(&mut session, "damaged").await;
    let good = blob_of(&mut session, "good").await;
    let bad = t.holders(&hash)[1];
    t.flip(bad, &hash, 0);

    let mut versions = session.verify(None).await.unwrap();
    versions.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<(&str, Vec<bool>)> = versions
        .iter()
        .map(|v| (v.name.as_str(), v.copies.clone()))
        .collect();
    assert_eq!(summary[1], ("good", vec![true, true]));
    assert_eq!(summary[0].0, "damaged");
    let mut damaged_copies = summary[0].1.clone();
    damaged_copies.sort();
    assert_eq!(damaged_copies, [false, true]);
    all_at_two_copies(&t, &[good, hash]).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_blobs_are_removed_after_the_grace_period() {
    let mut t = TestCluster::start(ClusterOptions {
        orphan_grace: Duration::from_secs(1),
        ..fast()
    })
    .await;
    let mut session = t.session("laptop").await;
    let kept = content(70, 10_000);
    put(&mut session, &t.write("kept", &kept), "kept").await;
    // A blob no catalog entry uses, as a crashed upload would leave, in the
    // layout from before packs (which a server still reads when it starts).
    let orphan = content(71, 5_000);
    let path = loose(&t, 0, &BlobHash::of(&orphan));
    t.cluster.kill_server(0).await;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &orphan).unwrap();
    t.cluster.restart_server(0).await.unwrap();
    eventually(Duration::from_secs(20), "the orphan to be removed", || {
        !path.exists()
    })
    .await;
    assert_eq!(t.holders(&blob_of(&mut session, "kept").await).len(), 2);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_survives_a_manager_restart_and_servers_rejoin() {
    // Nothing here is about healing: a server slow to beat on a loaded
    // machine must not be taken for dead and healed around.
    let mut t = TestCluster::start(ClusterOptions {
        dead_after: Duration::from_secs(10),
        heal_after: Duration::from_secs(60),
        ..ClusterOptions::default()
    })
    .await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..5).map(|i| content(80 + i, 20_000)).collect();
    put_numbered(&t, &mut session, &files).await;
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
    assert!(
        listed.iter().all(|f| f.replicas == 2),
        "copies after the restart: {:?}",
        listed.iter().map(|f| f.replicas).collect::<Vec<_>>()
    );
    let more = content(90, 1234);
    put(&mut session, &t.write("after", &more), "after").await;
    assert_eq!(t.holders(&blob_of(&mut session, "after").await).len(), 2);
    t.cluster.shutdown().await;
}

/// Restores `name` into the files folder under `as_name`.
async fn restore(
    t: &TestCluster,
    session: &mut Session,
    name: &str,
    as_name: &str,
) -> Result<Vec<u8>, String> {
    let (progress, _rx): (Progress, _) = watch::channel(TransferProgress::default());
    let dest = t.files().join(as_name);
    session
        .get(name, None, &dest, true, &progress)
        .await
        .map_err(|e| e.to_string())?;
    Ok(std::fs::read(dest).unwrap())
}

/// Where a blob from before packs lies: one file of its own.
fn loose(t: &TestCluster, server: usize, hash: &BlobHash) -> std::path::PathBuf {
    let hex = hash.to_hex();
    t.cluster
        .server_data(server)
        .join("blobs")
        .join(&hex[..2])
        .join(hex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_last_copies_are_kept_and_an_upload_heals_them() {
    let t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let data = content(63, 70_000);
    let path = t.write("thesis", &data);
    put(&mut session, &path, "thesis").await;
    let hash = blob_of(&mut session, "thesis").await;
    let holders = t.holders(&hash);
    for server in &holders {
        t.flip(*server, &hash, 100);
    }

    let versions = session.verify(Some("thesis")).await.unwrap();
    assert_eq!(versions[0].copies, [false, false]);
    // Both damaged copies are kept, set aside, not deleted.
    let quarantined = |server: usize| {
        t.cluster
            .server_data(server)
            .join("quarantine")
            .join(hash.to_hex())
    };
    for server in &holders {
        assert!(quarantined(*server).is_file());
    }
    let refused = restore(&t, &mut session, "thesis", "out")
        .await
        .unwrap_err();
    assert!(refused.contains("damaged"), "{refused}");
    // Named at risk once the manager's healing pass has counted it.
    let named = poll(
        Duration::from_secs(10),
        "the version named at risk",
        async || {
            let named = session.at_risk().await.unwrap();
            (!named.is_empty()).then_some(named)
        },
    )
    .await;
    let named: Vec<_> = named
        .iter()
        .map(|v| (v.name.as_str(), v.version, v.live, v.damaged))
        .collect();
    assert_eq!(named, [("thesis", 1, 0, 2)]);

    // The client still has the file: backing it up again heals version 1.
    let healed = put(&mut session, &path, "thesis").await;
    assert_eq!(
        healed,
        Uploaded::Committed {
            version: 1,
            replicas: 2
        }
    );
    assert_eq!(
        restore(&t, &mut session, "thesis", "out").await.unwrap(),
        data
    );
    // Sealed afresh, the chunk is a new blob; the damaged one goes.
    all_at_two_copies(&t, &[blob_of(&mut session, "thesis").await]).await;
    eventually(Duration::from_secs(20), "damaged copies deleted", || {
        holders.iter().all(|s| !quarantined(*s).exists())
    })
    .await;
    let versions = session.verify(Some("thesis")).await.unwrap();
    assert_eq!(versions[0].copies, [true, true]);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_whose_copies_are_all_gone_is_named_and_taken_again() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let data = content(64, 40_000);
    let path = t.write("notes", &data);
    put(&mut session, &path, "notes").await;
    let hash = blob_of(&mut session, "notes").await;
    // Both copies vanish while their servers are down; they come back without.
    let holders = t.holders(&hash);
    for server in &holders {
        t.cluster.kill_server(*server).await;
        // The file's one chunk is its pack's only blob.
        std::fs::remove_file(t.blob(*server, &hash).path).unwrap();
        t.cluster.restart_server(*server).await.unwrap();
    }
    let mut lost = None;
    for _ in 0..400 {
        let versions = session.verify(Some("notes")).await.unwrap();
        if versions[0].copies.is_empty() && versions[0].unreachable == 0 {
            lost = Some(versions);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lost.is_some(),
        "verify never saw the version without copies"
    );
    let folder = session.verify(None).await.unwrap();
    assert_eq!(folder.len(), 1, "a folder verify names it too");

    let again = put(&mut session, &path, "notes").await;
    assert_eq!(
        again,
        Uploaded::Committed {
            version: 1,
            replicas: 2
        }
    );
    assert_eq!(t.holders(&blob_of(&mut session, "notes").await).len(), 2);
    assert_eq!(
        restore(&t, &mut session, "notes", "back").await.unwrap(),
        data
    );
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_blob_is_never_taken_for_a_copy() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let data = content(65, 90_000);
    put(&mut session, &t.write("plant", &data), "plant").await;
    let hash = blob_of(&mut session, "plant").await;
    // Garbage under the blob's name where healing will copy it, found by
    // those servers as they start.
    let holders = t.holders(&hash);
    for server in (0..t.cluster.server_count()).filter(|s| !holders.contains(s)) {
        t.cluster.kill_server(server).await;
        let path = loose(&t, server, &hash);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"planted, not the blob").unwrap();
        t.cluster.restart_server(server).await.unwrap();
    }
    t.cluster.kill_server(holders[0]).await;
    let intact = || {
        (0..t.cluster.server_count())
            .filter(|s| *s != holders[0])
            .filter(|s| t.intact(*s, &hash))
            .count()
    };
    eventually(Duration::from_secs(30), "a good second copy", || {
        intact() == 2
    })
    .await;
    assert_eq!(
        restore(&t, &mut session, "plant", "out").await.unwrap(),
        data
    );
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_copy_that_returns_is_dropped_before_good_ones() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let data = content(66, 120_000);
    put(&mut session, &t.write("photo", &data), "photo").await;
    let hash = blob_of(&mut session, "photo").await;
    // Its best-ranked holder dies, is healed around, and is damaged while away.
    let victim = t.holders(&hash)[0];
    t.cluster.kill_server(victim).await;
    eventually(Duration::from_secs(30), "a third copy", || {
        t.holders(&hash).len() == 3
    })
    .await;
    t.flip(victim, &hash, 100);
    t.cluster.restart_server(victim).await.unwrap();
    all_at_two_copies(&t, &[hash]).await;
    assert!(!t.holders(&hash).contains(&victim));
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_or_backup_right_after_a_manager_restart_waits_for_the_servers() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let data = content(67, 30_000);
    put(&mut session, &t.write("early", &data), "early").await;
    t.cluster.restart_manager().await.unwrap();
    let mut session = t.session("laptop").await;
    assert_eq!(
        restore(&t, &mut session, "early", "out").await.unwrap(),
        data
    );
    // And a backup just as soon after another restart.
    t.cluster.restart_manager().await.unwrap();
    let mut session = t.session("laptop").await;
    let more = content(69, 10_000);
    let backed = put(&mut session, &t.write("soon", &more), "soon").await;
    assert_eq!(
        backed,
        Uploaded::Committed {
            version: 1,
            replicas: 2
        }
    );
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_planted_in_place_of_a_blob_hangs_nothing() {
    let t = TestCluster::start(ClusterOptions {
        scrub_every: Duration::from_millis(200),
        ..fast()
    })
    .await;
    let mut session = t.session("laptop").await;
    let data = content(68, 60_000);
    put(&mut session, &t.write("piped", &data), "piped").await;
    let hash = blob_of(&mut session, "piped").await;
    let bad = t.holders(&hash)[0];
    let path = t.blob(bad, &hash).path;
    std::fs::remove_file(&path).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    let checked = tokio::time::timeout(Duration::from_secs(10), session.verify(Some("piped")))
        .await
        .expect("verify hung on a FIFO")
        .unwrap();
    let mut copies = checked[0].copies.clone();
    copies.sort();
    assert_eq!(copies, [false, true]);
    all_at_two_copies(&t, &[hash]).await;
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_first_versions_short_of_copies_and_counts_the_rest() {
    let options = ClusterOptions {
        heal_after: Duration::from_secs(3600),
        ..fast()
    };
    let mut t = TestCluster::start(options).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..40).map(|i| content(300 + i, 2_000)).collect();
    put_numbered(&t, &mut session, &files).await;
    let mut hashes = Vec::new();
    for i in 0..files.len() {
        hashes.push(blob_of(&mut session, &format!("f{i}")).await);
    }
    let victim = (0..4)
        .max_by_key(|s| hashes.iter().filter(|h| t.holders(h).contains(s)).count())
        .unwrap();
    let short = hashes
        .iter()
        .filter(|h| t.holders(h).contains(&victim))
        .count();
    assert!(short > 20, "only {short} files on the busiest server");
    t.cluster.kill_server(victim).await;
    t.cluster
        .wait_until(Duration::from_secs(30), |s| {
            s.under_replicated as usize >= short
        })
        .await
        .expect("the dead server's copies counted short");
    let out = common::arca_command(&t, &t.cluster.manager_addr, &["status"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let named = text
        .lines()
        .filter(|l| l.contains("under-replicated: "))
        .count();
    assert_eq!(named, 20, "{text}");
    assert!(
        text.contains(&format!("… and {} more under-replicated", short - 20)),
        "{text}"
    );
    t.cluster.shutdown().await;
}

/// Right after a manager restart its servers have not yet registered again:
/// a backup of content they keep must not send it again (the manager waits
/// for them a little instead of calling the chunks missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_kept_is_not_sent_again_right_after_a_manager_restart() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let data = content(500, 3 << 20);
    put(&mut session, &t.write("big", &data), "big").await;
    t.cluster.restart_manager().await.unwrap();
    let mut session = t.session("laptop").await;
    let (progress, seen) = watch::channel(TransferProgress::default());
    let copy = t.write("big-again", &data);
    let done = session.put(&copy, "big-again", &progress).await.unwrap();
    assert!(
        matches!(done, Uploaded::Committed { version: 1, .. }),
        "{done:?}"
    );
    assert_eq!(seen.borrow().sent, 0, "the kept chunks were sent again");
    t.cluster.shutdown().await;
}

/// The manager goes away while a big upload streams and comes back before
/// the client gives up: the upload goes on where it was, and what every
/// copy had confirmed is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_outage_during_an_upload_resends_only_what_was_not_confirmed() {
    let mut t = TestCluster::start(fast()).await;
    let mut session = t.session("laptop").await;
    let data = content(502, 64 << 20);
    let size = data.len() as u64;
    let path = t.write("big", &data);
    let (progress, mut seen) = watch::channel(TransferProgress::default());
    let upload = tokio::spawn(async move { session.put(&path, "big", &progress).await });
    let confirmed = |p: &TransferProgress| p.replicas.iter().copied().min().unwrap_or(0);
    seen.wait_for(|p| p.replicas.len() == 2 && confirmed(p) >= size / 2)
        .await
        .unwrap();
    t.cluster.stop_manager().await;
    let mut before = 0;
    let retrying = seen
        .wait_for(|p| {
            before = before.max(confirmed(p));
            matches!(p.phase, Phase::Retrying { .. })
        })
        .await
        .is_ok();
    assert!(retrying, "no retry: {:?}", upload.await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.cluster.resume_manager().await.unwrap();
    // Where the copies started taking bytes again: progress counts from
    // the start of the file, through the chunks the cluster already has.
    let mut resumed_at = u64::MAX;
    seen.wait_for(|p| {
        let copied = confirmed(p);
        if !matches!(p.phase, Phase::Retrying { .. }) && copied > 0 {
            resumed_at = resumed_at.min(copied);
        }
        p.phase.is_done()
    })
    .await
    .unwrap();
    let done = upload.await.unwrap().unwrap();
    assert!(
        matches!(done, Uploaded::Committed { version: 1, .. }),
        "{done:?}"
    );
    // Besides what was never sent, at most the groups in flight (two) and
    // the one being filled, of 6 MiB each, went unconfirmed.
    let in_flight = 3 * (6 << 20) + (1 << 20);
    assert!(
        resumed_at + in_flight >= before,
        "sending began again at byte {resumed_at}; {before} of {size} were confirmed"
    );
    let mut session = t.session("laptop").await;
    let restored = t.dir.path().join("back");
    let (progress, _) = watch::channel(TransferProgress::default());
    session
        .get("big", None, &restored, false, &progress)
        .await
        .unwrap();
    assert!(std::fs::read(&restored).unwrap() == data, "restored wrong");
    t.cluster.shutdown().await;
}
