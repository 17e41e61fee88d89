//! The client against what its own machine and its manager may throw at
//! it: FIFOs, links swapped in mid-backup, names that cannot be catalog
//! names, files that keep changing, a reader that leaves early, and names
//! that would restore outside the target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arca_shared::meta::FileKind;
use arca_shared::protocol::FileEntry;
use arca_shared::{BlobHash, Message};
use arca_tui::client::{LocalFile, Skip, TransferProgress, Uploaded};
use common::real::text;
use common::{TestCluster, arca_command};
use tokio::sync::watch;

/// Longest any one command may take here.
const PATIENCE: Duration = Duration::from_secs(60);

async fn run(t: &TestCluster, args: &[&str]) -> Output {
    let manager = t.cluster.manager_addr.clone();
    run_on(t, &manager, args).await
}

async fn run_on(t: &TestCluster, manager: &str, args: &[&str]) -> Output {
    tokio::time::timeout(PATIENCE, arca_command(t, manager, args).output())
        .await
        .unwrap_or_else(|_| panic!("arca {args:?} hung"))
        .unwrap()
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
}

fn names_listed(out: &Output) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn put_one(t: &TestCluster, file: LocalFile) -> Uploaded {
    let mut session = t.session("laptop").await;
    let (progress, _) = watch::channel(TransferProgress::default());
    let batch = [file];
    let put = session.put_batch(&batch, &progress);
    tokio::time::timeout(PATIENCE, put)
        .await
        .expect("the backup hung")
        .unwrap()
        .swap_remove(0)
}

/// Reads a file for backup, lets `swap` put something else at its path,
/// then backs it up.
async fn put_swapped(t: &TestCluster, name: &str, swap: impl FnOnce(&Path)) -> Uploaded {
    let path = t.write(name, &common::content(5, 2 << 20));
    let keys = t.session("laptop").await.chunk_keys(true).await.unwrap();
    let file = LocalFile::read(&path, name, 0, &keys).unwrap();
    std::fs::remove_file(&path).unwrap();
    swap(&path);
    put_one(t, file).await
}

async fn nothing_listed(t: &TestCluster) -> bool {
    t.session("laptop")
        .await
        .list(None)
        .await
        .unwrap()
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_is_skipped_with_a_warning_and_the_rest_backed_up() {
    let t = TestCluster::with_servers(3).await;
    t.write("docs/a.txt", b"alpha");
    mkfifo(&t.files().join("docs/pipe"));
    let out = run(&t, &["put", t.files().to_str().unwrap()]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("committed  docs/a.txt  v1"), "{stdout}");
    assert!(
        stdout.contains("skipped    docs/pipe: it is a FIFO, not a regular file"),
        "{stdout}"
    );
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_by_a_fifo_after_the_walk_is_skipped_without_blocking() {
    let t = TestCluster::with_servers(3).await;
    let outcome = put_swapped(&t, "big.bin", mkfifo).await;
    assert_eq!(
        outcome,
        Uploaded::Skipped(Skip("it is a FIFO, not a regular file".into()))
    );
    assert!(nothing_listed(&t).await);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_swapped_in_mid_backup_is_not_followed() {
    let t = TestCluster::with_servers(3).await;
    let secret = common::content(4, 2 << 20);
    let secret_path = t.dir.path().join("secret.bin");
    std::fs::write(&secret_path, &secret).unwrap();
    let outcome = put_swapped(&t, "notes.bin", |path| {
        std::os::unix::fs::symlink(&secret_path, path).unwrap()
    })
    .await;
    // Read again, it is a link now, and backed up as one: its target's
    // bytes are never read.
    assert!(
        matches!(outcome, Uploaded::Committed { version: 1, .. }),
        "{outcome:?}"
    );
    let mut session = t.session("laptop").await;
    let (entry, parts) = session.parts("notes.bin", None).await.unwrap();
    assert!(parts.is_empty());
    let target = secret_path.as_os_str().as_encoded_bytes().to_vec();
    assert_eq!(entry.meta.unwrap().kind, FileKind::Symlink { target });

    // A folder swapped for a link is not walked into either.
    std::fs::remove_file(t.files().join("notes.bin")).unwrap();
    let outside = t.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("private.txt"), "private").unwrap();
    std::os::unix::fs::symlink(&outside, t.files().join("docs")).unwrap();
    t.write("kept.txt", b"kept");
    let out = run(&t, &["put", t.files().to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = names_listed(&run(&t, &["ls", "--json"]).await);
    assert_eq!(listed, ["docs", "kept.txt", "notes.bin"]);
    let (entry, parts) = session.parts("docs", None).await.unwrap();
    assert!(parts.is_empty() && matches!(entry.meta.unwrap().kind, FileKind::Symlink { .. }));
    t.cluster.shutdown().await;
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
        let mut child = arca_command(&t, &manager, &args)
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
async fn unacceptable_names_are_skipped_and_the_put_says_partial() {
    let t = TestCluster::with_servers(3).await;
    let files = t.files();
    t.write("ok.txt", b"fine");
    let long: PathBuf = (0..4).map(|i| format!("{i}{}", "d".repeat(240))).collect();
    let bad: Vec<PathBuf> = vec![
        files.join("back\\slash.txt"),
        files.join("new\nline.txt"),
        files.join("tab\there.txt"),
        files.join(OsStr::from_bytes(b"latin-\xe9.txt")),
        files.join(long).join(format!("deep{}.txt", "f".repeat(80))),
    ];
    for path in &bad {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "bad").unwrap();
    }
    let out = run(&t, &["put", files.to_str().unwrap()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("committed  ok.txt  v1"), "{stdout}");
    for (what, why) in [
        ("back\\\\slash.txt", "backslash"),
        ("new\\nline.txt", "control character"),
        ("tab\\there.txt", "control character"),
        ("latin-\\xE9.txt", "not valid UTF-8"),
        ("deepfff", "longer than"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("skipped") && l.contains(what) && l.contains(why)),
            "no line for {what}: {stdout}"
        );
    }
    assert!(
        text(&out.stderr).contains("5 of 6 files skipped"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(names_listed(&run(&t, &["ls", "--json"]).await), ["ok.txt"]);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_keeps_growing_is_skipped_once_and_the_rest_backed_up() {
    let t = TestCluster::with_servers(3).await;
    t.write("steady.txt", b"steady");
    let growing = t.write("growing.log", b"");
    // Sparse: big enough that reading it takes a while, and no disk used
    // however long it grows.
    let log = std::fs::OpenOptions::new()
        .write(true)
        .open(&growing)
        .unwrap();
    log.set_len(64 << 20).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut len = 64 << 20;
            while !stop.load(Ordering::Relaxed) {
                len += 4096;
                log.set_len(len).unwrap();
            }
        })
    };
    let out = run(&t, &["put", t.files().to_str().unwrap()]).await;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("committed  steady.txt  v1"), "{stdout}");
    assert!(
        stdout.contains("skipped    growing.log: changed while being read"),
        "{stdout}"
    );
    let mut lines: Vec<&str> = stdout.lines().collect();
    let all = lines.len();
    lines.dedup();
    assert_eq!(lines.len(), all, "a line was printed twice: {stdout}");
    assert_eq!(
        names_listed(&run(&t, &["ls", "--json"]).await),
        ["steady.txt"]
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
    key: arca_shared::keys::ClusterKey,
    files: Vec<FileEntry>,
) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut conn, _) = arca_shared::handshake::accept(stream, &key.links().acceptor)
            .await
            .unwrap();
        arca_shared::handshake::admit(&mut conn, Ok(()))
            .await
            .unwrap();
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
        plain: false,
        meta: None,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrases_change_without_reencrypting_and_a_missing_one_is_explained() {
    let t = TestCluster::with_servers(2).await;
    t.write("a.txt", b"alpha");
    let manager = t.cluster.manager_addr.clone();
    let files = t.files();
    let with = |passphrase: Option<&str>, args: &[&str]| {
        let mut command = arca_command(&t, &manager, args);
        match passphrase {
            Some(p) => command.env("ARCA_PASSWORD", p),
            None => command.env_remove("ARCA_PASSWORD"),
        };
        async move {
            tokio::time::timeout(PATIENCE, command.output())
                .await
                .unwrap()
                .unwrap()
        }
    };
    // No passphrase, no terminal: said plainly, and nothing stored.
    let out = with(None, &["put", files.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no passphrase"),
        "{}",
        text(&out.stderr)
    );
    assert!(nothing_listed(&t).await);

    let out = with(Some("one"), &["put", files.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new = t.dir.path().join("new-passphrase");
    std::fs::write(&new, "two\n").unwrap();
    let new = new.to_str().unwrap();
    let out = with(Some("one"), &["key", "add", "--new-password-file", new]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let restored = t.dir.path().join("restored.txt");
    let restored = restored.to_str().unwrap();
    let out = with(Some("two"), &["get", "a.txt", "-o", restored]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(restored).unwrap(), b"alpha");

    // "one" changes to "two" again: its own key goes, the other stays.
    let out = with(Some("one"), &["key", "passwd", "--new-password-file", new]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = with(Some("one"), &["get", "a.txt", "-o", restored, "--force"]).await;
    assert!(
        text(&out.stderr).contains("wrong passphrase"),
        "{}",
        text(&out.stderr)
    );
    let listed = with(None, &["key", "list"]).await;
    let ids: Vec<String> = text(&listed.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{}", text(&listed.stdout));
    // Taking a way in away needs a way in.
    let out = with(Some("one"), &["key", "remove", &ids[0]]).await;
    assert!(
        text(&out.stderr).contains("wrong passphrase"),
        "{}",
        text(&out.stderr)
    );
    let out = with(Some("two"), &["key", "remove", &ids[0]]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = with(Some("two"), &["key", "remove", &ids[1]]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("last one"),
        "{}",
        text(&out.stderr)
    );
    t.cluster.shutdown().await;
}
