//! The dashboard's transfers, headless: its tasks on a real cluster, the
//! effects the app would ask for, and the messages the app would get.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use arca_tui::client::Phase;
use arca_tui::dashboard::event::{Effect, Kind, Msg};
use arca_tui::dashboard::tasks::Tasks;
use common::TestCluster;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The transfers the app is told of, by id: kind, name and last phase.
type Transfers = HashMap<u64, (Kind, String, Phase)>;

/// Reads messages until every transfer seen (at least `least`) is done.
async fn until_done(inbox: &mut mpsc::UnboundedReceiver<Msg>, seen: &mut Transfers, least: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = seen.values().filter(|(_, _, p)| p.is_done()).count();
        if seen.len() >= least && done == seen.len() {
            return;
        }
        let msg = tokio::time::timeout_at(deadline, inbox.recv())
            .await
            .expect("the transfers did not end in time")
            .expect("the tasks stopped");
        match msg {
            Msg::Queued { id, name, kind, .. } => {
                seen.insert(id, (kind, name, Phase::Queued));
            }
            Msg::Progress { id, progress } => {
                if let Some(transfer) = seen.get_mut(&id) {
                    transfer.2 = progress.phase;
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_uploads_in_batches_and_restores_through_the_engine() {
    let t = TestCluster::with_servers(3).await;
    let mut contents = HashMap::new();
    for i in 0..120 {
        let name = format!("docs/note-{i:03}.txt");
        let content = format!("note {i} ").repeat(i + 1).into_bytes();
        t.write(&name, &content);
        contents.insert(name, content);
    }
    let big: Vec<u8> = (0..5 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    t.write("docs/big.bin", &big);
    contents.insert("docs/big.bin".into(), big);

    let (msgs, mut inbox) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let tasks = Tasks::start(t.settings("dash"), msgs, shutdown.clone());
    tasks.run(Effect::Upload(vec![t.files().join("docs")]));
    let mut uploads = Transfers::new();
    until_done(&mut inbox, &mut uploads, 1).await;
    // One transfer per batch (small files together, the big one alone),
    // not one per file.
    assert!(
        (2..=4).contains(&uploads.len()),
        "{} transfers for {} files: {uploads:?}",
        uploads.len(),
        contents.len()
    );
    for (kind, name, phase) in uploads.values() {
        assert_eq!(*kind, Kind::Upload);
        assert!(
            matches!(
                phase,
                Phase::BackedUp { .. } | Phase::Committed { version: 1 }
            ),
            "{name}: {phase:?}"
        );
    }
    assert!(uploads.values().any(|(_, name, _)| name.contains("more")));
    let mut session = t.session("dash").await;
    let listed = session.list(None).await.unwrap();
    assert_eq!(listed.len(), contents.len());

    // Restores go through the same engine as `arca get`: the file comes
    // back byte for byte, over a local copy that differs.
    std::fs::write(t.files().join("docs/big.bin"), b"changed here").unwrap();
    std::fs::remove_file(t.files().join("docs/note-007.txt")).unwrap();
    for name in ["docs/big.bin", "docs/note-007.txt"] {
        tasks.run(Effect::Restore {
            name: name.into(),
            version: None,
        });
    }
    let mut restores = Transfers::new();
    until_done(&mut inbox, &mut restores, 2).await;
    for (kind, name, phase) in restores.values() {
        assert_eq!(*kind, Kind::Restore);
        assert_eq!(*phase, Phase::Restored { version: 1 }, "{name}");
        assert_eq!(
            std::fs::read(t.files().join(name)).unwrap(),
            contents[name],
            "{name}"
        );
    }

    // Uploading again stores nothing new: every file is unchanged.
    tasks.run(Effect::Upload(vec![t.files().join("docs")]));
    let mut again = Transfers::new();
    until_done(&mut inbox, &mut again, 1).await;
    assert!(
        again
            .values()
            .all(|(_, _, p)| !matches!(p, Phase::Failed(_))),
        "{again:?}"
    );
    let versions = session.list(Some("docs/big.bin")).await.unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    shutdown.cancel();
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_restores_as_one_job_and_deletes_whole() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("dash").await;
    let files = [
        ("docs/a.txt", common::content(1, 3 << 20)),
        ("docs/sub/b.txt", b"bee".to_vec()),
        ("docs/c.txt", b"sea".to_vec()),
        ("other/d.txt", b"dee".to_vec()),
    ];
    for (name, content) in &files {
        common::put(&mut session, &t.write(name, content), name).await;
    }
    // One changed, one gone, one as it was.
    std::fs::write(t.files().join("docs/a.txt"), b"changed").unwrap();
    std::fs::remove_file(t.files().join("docs/sub/b.txt")).unwrap();

    let (msgs, mut inbox) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let tasks = Tasks::start(t.settings("dash"), msgs, shutdown.clone());
    let restore_docs = async |inbox: &mut mpsc::UnboundedReceiver<Msg>| {
        tasks.run(Effect::Restore {
            name: "docs/".into(),
            version: None,
        });
        let (mut job, mut failed, mut last) = (None, Vec::new(), None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let stopped = loop {
            let msg = tokio::time::timeout_at(deadline, inbox.recv())
                .await
                .expect("the restore did not end in time")
                .expect("the tasks stopped");
            match msg {
                Msg::Job { files, bytes, .. } => job = Some((files, bytes)),
                Msg::Queued { kind, job, .. } => {
                    assert_eq!((kind, job.is_some()), (Kind::Restore, true));
                }
                Msg::FileDone { failure, .. } => failed.extend(failure),
                Msg::Progress { progress, .. } => last = Some(progress),
                Msg::JobEnded { stopped, .. } => break stopped,
                _ => {}
            }
        };
        assert_eq!(stopped, None);
        assert_eq!(job, Some((3, (3 << 20) + 6)), "the files under docs/ only");
        (failed, last.unwrap())
    };
    let (failed, last) = restore_docs(&mut inbox).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(last.phase, Phase::RestoredFiles { files: 3 });
    assert_eq!(last.sent, last.total);
    for (name, content) in &files[..3] {
        assert_eq!(
            &std::fs::read(t.files().join(name)).unwrap(),
            content,
            "{name}"
        );
    }

    // A file where a folder must be: that one fails, and says why; the
    // file in the way is kept.
    std::fs::remove_dir_all(t.files().join("docs/sub")).unwrap();
    std::fs::write(t.files().join("docs/sub"), b"in the way").unwrap();
    let (failed, last) = restore_docs(&mut inbox).await;
    assert!(
        matches!(failed.as_slice(), [why] if why.starts_with("docs/sub/b.txt: ")),
        "{failed:?}"
    );
    assert_eq!(last.phase, Phase::RestoredFiles { files: 2 });
    assert_eq!(
        std::fs::read(t.files().join("docs/sub")).unwrap(),
        b"in the way"
    );

    tasks.run(Effect::Delete {
        name: "docs/".into(),
        version: None,
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, inbox.recv())
            .await
            .expect("the delete did not end in time")
            .expect("the tasks stopped");
        if let Msg::Flash(text) = msg {
            assert_eq!(text, "removed the 3 files under docs/");
            break;
        }
    }
    let left: Vec<String> = session
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(left, ["other/d.txt"]);
    shutdown.cancel();
    t.cluster.shutdown().await;
}
