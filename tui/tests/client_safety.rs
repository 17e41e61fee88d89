//! The client against what its own machine and its manager may throw at
//! it: FIFOs, links swapped in mid-backup, names that cannot be catalog
//! names, files that keep changing, a reader that leaves early, and names
//! that would restore outside the target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use arca_shared::protocol::FileEntry;
use arca_shared::{BlobHash, Connection, Message};
use common::TestCluster;
use common::real::text;

/// Longest any one command may take here.
const PATIENCE: Duration = Duration::from_secs(60);

/// The real `arca` as client "laptop" of `manager`, not yet started.
fn arca(t: &TestCluster, manager: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_arca"));
    command
        .args(args)
        .env("ARCA_MANAGER", manager)
        .env("ARCA_SECRET_FILE", t.secret_file())
        .env("ARCA_CLIENT", "laptop")
        .env("ARCA_FILES", t.files())
        .env("XDG_CACHE_HOME", t.dir.path().join("cache"))
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run(t: &TestCluster, args: &[&str]) -> Output {
    let manager = t.cluster.manager_addr.clone();
    run_on(t, &manager, args).await
}

async fn run_on(t: &TestCluster, manager: &str, args: &[&str]) -> Output {
    tokio::time::timeout(PATIENCE, arca(t, manager, args).output())
        .await
        .unwrap_or_else(|_| panic!("arca {args:?} hung"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_ends_quietly_and_the_work_is_done() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    for i in 0..20 {
        let name = format!("photos/{i}.jpg");
        let path = t.write(&name, &common::content(i, 1000));
        common::put(&mut session, &path, &name).await;
    }
    let manager = t.cluster.manager_addr.clone();
    let restored = t.dir.path().join("restored");
    for args in [
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["get", "photos/", "-o", restored.to_str().unwrap()],
    ] {
        let mut child = arca(&t, &manager, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader leaves before the first line, as `head` would after it.
        drop(child.stdout.take());
        let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .expect("arca hung on a closed output")
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
    }
    // The restore went on to the end with nobody reading.
    assert_eq!(
        std::fs::read_dir(restored.join("photos")).unwrap().count(),
        20
    );
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_restore_never_writes_through_a_link_in_the_target() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let path = t.write("photos/beach.jpg", b"sand");
    common::put(&mut session, &path, "photos/beach.jpg").await;
    let target = t.dir.path().join("target");
    let outside = t.dir.path().join("outside");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("photos")).unwrap();

    let out = run(&t, &["get", "photos/", "-o", target.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    t.cluster.shutdown().await;
}

/// A manager that answers every listing with `files` and records which
/// names the client then asks to restore.
async fn hostile_manager(
    key: arca_shared::auth::ClusterKey,
    files: Vec<FileEntry>,
) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(stream).unwrap();
        arca_shared::auth::accept(&mut conn, &key).await.unwrap();
        let mut asked = Vec::new();
        while let Ok(message) = conn.recv().await {
            match message {
                Message::List { .. } => {
                    conn.send(&Message::Listing {
                        files: files.clone(),
                    })
                    .await
                    .unwrap();
                    conn.send(&Message::End).await.unwrap();
                }
                Message::GetBegin { name, .. } => {
                    asked.push(name);
                    conn.send(&Message::error("not here")).await.unwrap();
                }
                _ => break,
            }
        }
        asked
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_manager_cannot_make_a_folder_restore_escape() {
    let t = TestCluster::with_servers(1).await;
    let entry = |name: &str| FileEntry {
        name: name.into(),
        version: 1,
        size: 4,
        hash: BlobHash::of(b"evil"),
        replicas: 2,
        created_ms: 0,
    };
    let hostile = [
        "photos/../../escape.txt",
        "photos/../x",
        "/etc/passwd",
        "other/x",
        "photos/a\\..\\b",
    ];
    let (addr, manager) = hostile_manager(
        t.cluster.key.clone(),
        hostile.iter().map(|n| entry(n)).collect(),
    )
    .await;
    let target = t.dir.path().join("target");
    let out = run_on(
        &t,
        &addr,
        &["get", "photos/", "-o", target.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("failed")).count(),
        hostile.len(),
        "{stderr}"
    );
    let asked = manager.await.unwrap();
    assert!(asked.is_empty(), "the client asked to restore {asked:?}");
    assert!(!t.dir.path().join("escape.txt").exists());
    t.cluster.shutdown().await;
}
