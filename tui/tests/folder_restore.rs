//! Folder restores (`arca get FOLDER/` and `Session::restore`) on a real
//! cluster: byte-identical round trips of every kind of file and of ten
//! thousand small ones, a holder killed mid-way, a corrupt copy (and a chunk
//! with no good copy left), a destination that already holds some of the
//! files, and restores finished by running them again after they failed
//! part-way, lost every holder, or were killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use arca_shared::BlobHash;
use arca_tui::client::{RestoreEvent, Restored, Wanted};
use common::real::text;
use common::{TestCluster, content, granted, tied_cluster};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Longest any one command may take here.
const PATIENCE: Duration = Duration::from_secs(120);

/// The real `arca` as client "laptop", not yet started.
fn arca(t: &TestCluster, args: &[&str]) -> tokio::process::Command {
    common::arca_command(t, &t.cluster.manager_addr, args)
}

async fn run(t: &TestCluster, args: &[&str]) -> Output {
    tokio::time::timeout(PATIENCE, arca(t, args).output())
        .await
        .unwrap_or_else(|_| panic!("arca {args:?} hung"))
        .unwrap()
}

/// `arca put PATH`, which must succeed.
async fn put_cli(t: &TestCluster, path: &Path) {
    let out = run(t, &["put", path.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "arca put failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `arca get FOLDER -o TARGET [extra...]`.
async fn get_cli(t: &TestCluster, folder: &str, target: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["get", folder, "-o", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(t, &args).await
}

fn both(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// What a path in a tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every file and link under `root` (folders are walked, not listed), by
/// path relative to `root` with '/' between parts. Links are not followed.
fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if meta.is_dir() {
                walk(root, &path, out);
            } else if meta.file_type().is_symlink() {
                out.insert(rel, Node::Link(std::fs::read_link(&path).unwrap()));
            } else {
                out.insert(rel, Node::File(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// Fails unless `root` holds exactly `expected`: every file byte-identical,
/// every link the same, nothing missing and nothing more (no temp file).
fn assert_tree(root: &Path, expected: &BTreeMap<String, Node>) {
    assert_tree_but(root, expected, &[]);
}

/// [`assert_tree`], but paths in `ignored` are not looked at.
fn assert_tree_but(root: &Path, expected: &BTreeMap<String, Node>, ignored: &[String]) {
    let mut found = tree(root);
    found.retain(|k, _| !ignored.contains(k));
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !found.contains_key(*k))
        .collect();
    let extra: Vec<&String> = found
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let differ: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| found.get(*k).is_some_and(|f| f != *v))
        .map(|(k, _)| k)
        .collect();
    let show = |v: &[&String]| -> String {
        let mut s = format!("{} ", v.len());
        s.push_str(&format!("{:?}", &v[..v.len().min(10)]));
        s
    };
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{} does not hold what was backed up:\n missing {}\n extra {}\n different {}",
        root.display(),
        show(&missing),
        show(&extra),
        show(&differ),
    );
}

/// The `.arca-restore-*` temp files anywhere under `root`.
fn temp_files(root: &Path) -> Vec<String> {
    tree(root)
        .into_keys()
        .filter(|k| {
            k.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".arca-restore-"))
        })
        .collect()
}

/// Writes each file under the files folder; the expected tree under it.
fn write_all(t: &TestCluster, files: &[(String, Vec<u8>)]) -> BTreeMap<String, Node> {
    let mut expected = BTreeMap::new();
    for (name, data) in files {
        t.write(name, data);
        expected.insert(name.clone(), Node::File(data.clone()));
    }
    expected
}

/// What identifies a file on disk as the same one, unchanged: its inode
/// and its change time (a restore sets the modification time back, so that
/// alone would not show a rewrite).
fn stamp(path: &Path) -> (u64, i64, i64) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.ino(), meta.ctime(), meta.ctime_nsec())
}

/// The names on the CLI's lines that start with `tag` (`"restored"`,
/// `"current"` or `"failed"`).
fn said(output: &[u8], tag: &str) -> BTreeSet<String> {
    let output = text(output);
    output
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(tag)?.strip_prefix(' ')?.trim_start();
            let end = match tag {
                "failed" => rest.find(": ")?,
                _ => rest.find("  ")?,
            };
            Some(rest[..end].to_owned())
        })
        .collect()
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Only the entries of `tree` whose name starts with `prefix`.
fn under(tree: &BTreeMap<String, Node>, prefix: &str) -> BTreeMap<String, Node> {
    tree.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Waits until the manager sees `alive` of its servers alive.
async fn wait_alive(t: &TestCluster, alive: usize) {
    t.cluster
        .wait_until(Duration::from_secs(20), |s| {
            s.servers.iter().filter(|s| s.alive).count() == alive
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_every_kind_of_file_round_trips_byte_identical() {
    let t = TestCluster::with_servers(3).await;
    let video = content(1, 6 << 20);
    let copy = content(2, 1_500_000);
    let repeated = content(3, 1 << 20).repeat(3);
    let mut leading_zeros = vec![0u8; 5 << 20];
    leading_zeros.extend(content(4, 300_000));
    let mut trailing_zeros = content(5, 700_000);
    trailing_zeros.resize(trailing_zeros.len() + (3 << 20), 0);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "fotos/ñandú/日本語.txt".into(),
            "こんにちは、ñandú".as_bytes().to_vec(),
        ),
        ("fotos/ñandú/vacío".into(), Vec::new()),
        ("fotos/empty".into(), Vec::new()),
        ("fotos/a/b/c/d/e/deep empty".into(), Vec::new()),
        ("fotos/a/b/c/d/e/leaf.bin".into(), content(6, 70_000)),
        ("fotos/2024/enero/viaje/vídeo.bin".into(), video),
        ("fotos/copias/uno.bin".into(), copy.clone()),
        ("fotos/copias/más/dos.bin".into(), copy),
        ("fotos/repeated.bin".into(), repeated),
        ("fotos/zeros/leading.bin".into(), leading_zeros),
        ("fotos/zeros/trailing.bin".into(), trailing_zeros),
        ("fotos/zeros/only.bin".into(), vec![0; 100_000]),
        ("fotos/zeros/only big.bin".into(), vec![0; (2 << 20) + 5]),
        ("fotos/límite/exact.bin".into(), content(8, 1 << 20)),
        (
            "fotos/límite/one more.bin".into(),
            content(9, (1 << 20) + 1),
        ),
        (
            "fotos/límite/one less.bin".into(),
            content(10, (1 << 20) - 1),
        ),
        ("fotos/one byte".into(), b"x".to_vec()),
        ("fotos/with spaces/and more.txt".into(), b"spaced".to_vec()),
        ("fotos/Ünïcödé/ファイル.txt".into(), "ファイル".into()),
        ("fotos/emoji/🦀.txt".into(), "crab".into()),
    ];
    for i in 0..12 {
        files.push((
            format!("fotos/same/{i}.txt"),
            b"the same small text".to_vec(),
        ));
        files.push((
            format!("fotos/small/{i}.txt"),
            content(100 + i, 50 + 300 * i as usize),
        ));
    }
    // Beside the folder, and sharing the start of its name: not restored.
    files.push(("fotos-old/a.txt".into(), b"old".to_vec()));
    files.push(("otros/b.txt".into(), b"other".to_vec()));
    let mut expected = write_all(&t, &files);
    std::os::unix::fs::symlink("ñandú/日本語.txt", t.files().join("fotos/enlace")).unwrap();
    expected.insert(
        "fotos/enlace".into(),
        Node::Link(PathBuf::from("ñandú/日本語.txt")),
    );
    let exec = t.files().join("fotos/a/b/c/d/e/leaf.bin");
    std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o750)).unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(t.files().join("fotos/2024/enero/viaje/vídeo.bin"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    put_cli(&t, &t.files()).await;

    let target = t.dir.path().join("target");
    let out = get_cli(&t, "fotos/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let wanted = under(&expected, "fotos/");
    assert_tree(&target, &wanted);
    let restored = said(&out.stdout, "restored");
    assert_eq!(
        restored,
        wanted.keys().cloned().collect::<BTreeSet<_>>(),
        "{}",
        both(&out)
    );
    assert!(text(&out.stderr).is_empty(), "{}", both(&out));
    // What a file is besides its bytes comes back too.
    let leaf = target.join("fotos/a/b/c/d/e/leaf.bin");
    assert_eq!(leaf.metadata().unwrap().mode() & 0o7777, 0o750);
    let video = target.join("fotos/2024/enero/viaje/vídeo.bin");
    assert_eq!(video.metadata().unwrap().modified().unwrap(), old);
    // Runs of zeros stay holes: the 5 MiB of leading zeros take no disk.
    let sparse = target.join("fotos/zeros/leading.bin").metadata().unwrap();
    assert!(
        sparse.blocks() * 512 < 2 << 20,
        "{} bytes allocated for 5.3 MiB mostly zeros",
        sparse.blocks() * 512
    );

    // Again onto itself: every file already matches, and none is touched.
    let stamps: Vec<_> = wanted.keys().map(|k| stamp(&target.join(k))).collect();
    let out = get_cli(&t, "fotos/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(
        said(&out.stdout, "current"),
        wanted.keys().cloned().collect::<BTreeSet<_>>(),
        "{}",
        both(&out)
    );
    assert!(said(&out.stdout, "restored").is_empty(), "{}", both(&out));
    let again: Vec<_> = wanted.keys().map(|k| stamp(&target.join(k))).collect();
    assert_eq!(stamps, again, "a file that matched was rewritten");
    assert_tree(&target, &wanted);

    // Onto the files folder it came from (no -o): nothing to do either.
    let out = run(&t, &["get", "fotos/"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(
        said(&out.stdout, "current").len(),
        wanted.len(),
        "{}",
        both(&out)
    );
    assert_tree(&t.files(), &expected);

    // A newer version of one file: a fresh restore has the newest of each.
    let newer = content(7, 200_000);
    t.write("fotos/ñandú/日本語.txt", &newer);
    put_cli(&t, &t.files().join("fotos")).await;
    let fresh = t.dir.path().join("fresh");
    let out = get_cli(&t, "fotos/", &fresh, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let mut wanted = wanted;
    wanted.insert("fotos/ñandú/日本語.txt".into(), Node::File(newer));
    assert_tree(&fresh, &wanted);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_small_files_round_trip_byte_identical() {
    let t = TestCluster::with_servers(3).await;
    let files: Vec<(String, Vec<u8>)> = (0..10_000u64)
        .map(|i| {
            let len = 100 + (i as usize * 397) % 3997;
            (
                format!("muchos/d{:02}/f{i:05}.txt", i / 100),
                content(1000 + i, len),
            )
        })
        .collect();
    let expected = write_all(&t, &files);
    let started = Instant::now();
    put_cli(&t, &t.files().join("muchos")).await;
    let backed_up = started.elapsed();

    let target = t.dir.path().join("target");
    let started = Instant::now();
    let out = get_cli(&t, "muchos/", &target, &[]).await;
    let restored_in = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(
        said(&out.stdout, "restored").len(),
        10_000,
        "{}",
        both(&out)
    );
    assert_tree(&target, &expected);
    eprintln!("10,000 files: backed up in {backed_up:?}, restored in {restored_in:?}");
    assert!(
        restored_in < Duration::from_secs(30),
        "restoring 10,000 small files took {restored_in:?}"
    );
    t.cluster.shutdown().await;
}

/// Files for a restore that takes a while: 32 files of 2 MiB and 64 small.
fn a_big_folder(prefix: &str, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..32u64)
        .map(|i| {
            (
                format!("{prefix}/big/{i:02}.bin"),
                content(seed + i, 2 << 20),
            )
        })
        .collect();
    files.extend((0..64u64).map(|i| {
        (
            format!("{prefix}/small/{i:02}.txt"),
            content(seed + 100 + i, 5000),
        )
    }));
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_folder_restore_is_replaced_by_the_other() {
    let mut t = TestCluster::with_servers(3).await;
    let files = a_big_folder("pelis", 200);
    let expected = write_all(&t, &files);
    put_cli(&t, &t.files().join("pelis")).await;
    let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    let mut session = t.session("laptop").await;
    // A server that serves this folder: one the manager grants a chunk of
    // its last file from (all of it may sit on two of the three servers).
    let last = common::stored(&mut session, "pelis/small/63.txt").await[0];
    let victim = granted(&t, &[last]).await[&last];
    let target = t.dir.path().join("target");
    let wanted: Vec<Wanted> = session
        .list(Some("pelis/"))
        .await
        .unwrap()
        .into_iter()
        .map(|entry| Wanted {
            dest: target.join(&entry.name),
            entry,
        })
        .collect();
    assert_eq!(wanted.len(), files.len());
    let (events, mut heard) = mpsc::unbounded_channel();
    let restore = tokio::spawn(async move {
        let outcomes = session.restore(wanted, false, &events).await;
        (outcomes, session)
    });
    // Once a few windows are in, the holder goes down.
    let mut done = 0;
    let mut planned = None;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), heard.recv())
            .await
            .expect("no word from the restore")
            .expect("the restore ended before the kill");
        match event {
            RestoreEvent::Planned { files, bytes } => planned = Some((files, bytes)),
            RestoreEvent::Fetched(bytes) if bytes >= 8 << 20 => break,
            RestoreEvent::Fetched(_) => {}
            RestoreEvent::Done { outcome, name, .. } => {
                assert!(outcome.is_ok(), "{name}: {outcome:?}");
                done += 1;
            }
        }
    }
    t.cluster.kill_server(victim).await;
    assert!(
        !restore.is_finished() && done < files.len(),
        "the restore was over before the kill ({done} files done)"
    );
    assert_eq!(planned, Some((files.len(), total)));
    let (outcomes, _session) = tokio::time::timeout(PATIENCE, restore)
        .await
        .expect("the restore hung after the kill")
        .unwrap();
    let outcomes = outcomes.unwrap();
    assert_eq!(outcomes.len(), files.len());
    for (outcome, (name, data)) in outcomes.iter().zip(&files) {
        assert_eq!(
            outcome.as_ref().ok(),
            Some(&Restored::Written {
                version: 1,
                size: data.len() as u64
            }),
            "{name}: {outcome:?}"
        );
    }
    while let Ok(event) = heard.try_recv() {
        if let RestoreEvent::Done { name, outcome, .. } = event {
            assert!(outcome.is_ok(), "{name}: {outcome:?}");
            done += 1;
        }
    }
    assert_eq!(done, files.len(), "a Done event per file");
    assert_tree(&target, &expected);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_copy_in_a_folder_restore_is_reported_and_the_other_copy_used() {
    let t = tied_cluster().await;
    // Small enough for one window: the client asks for every chunk at once.
    let mut files: Vec<(String, Vec<u8>)> =
        vec![("docs/precious.bin".into(), content(300, 3 << 20))];
    files.extend((0..30u64).map(|i| (format!("docs/notes/{i:02}.txt"), content(310 + i, 2000))));
    files.push(("docs/empty".into(), Vec::new()));
    let expected = write_all(&t, &files);
    put_cli(&t, &t.files().join("docs")).await;

    let mut session = t.session("laptop").await;
    let mut hashes = Vec::new();
    for entry in session.list(Some("docs/")).await.unwrap() {
        hashes.extend(common::stored(&mut session, &entry.name).await);
    }
    hashes.sort_unstable();
    hashes.dedup();
    let victim = common::stored(&mut session, "docs/precious.bin").await[1];
    // Let the servers' loads settle after the backup, then ask twice: the
    // choice must be stable to be the restore's.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = granted(&t, &hashes).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        first,
        granted(&t, &hashes).await,
        "the grants keep changing"
    );
    let bad = first[&victim];
    let good = t.holders(&victim).into_iter().find(|h| *h != bad).unwrap();
    t.flip(bad, &victim, 4321);
    assert!(!t.intact(bad, &victim) && t.intact(good, &victim));

    let target = t.dir.path().join("target");
    let out = get_cli(&t, "docs/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_tree(&target, &expected);
    assert_eq!(
        said(&out.stdout, "restored").len(),
        files.len(),
        "{}",
        both(&out)
    );
    assert!(t.intact(good, &victim), "the good copy was harmed");

    // The report made the manager drop the bad copy, and healing made a
    // good one again (maybe on the same server).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let corrupt_left = t
            .blob_bytes(bad, &victim)
            .is_some_and(|b| BlobHash::of(&b) != victim);
        let replicas = session.list(Some("docs/precious.bin")).await.unwrap()[0].replicas;
        if !corrupt_left && replicas == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "corrupt copy left on server {bad}: {corrupt_left}, replicas: {replicas}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_with_every_copy_corrupt_fails_only_its_files() {
    let t = TestCluster::with_servers(3).await;
    let broken = content(350, 2 << 20);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("docs/broken.bin".into(), broken.clone()),
        ("docs/copy/of broken.bin".into(), broken),
        ("docs/fine.bin".into(), content(351, 3 << 20)),
        ("docs/empty".into(), Vec::new()),
    ];
    files.extend((0..20u64).map(|i| (format!("docs/notes/{i:02}.txt"), content(360 + i, 3000))));
    let expected = write_all(&t, &files);
    put_cli(&t, &t.files().join("docs")).await;
    let mut session = t.session("laptop").await;
    let hash = common::stored(&mut session, "docs/broken.bin").await[0];
    let holders = t.holders(&hash);
    assert_eq!(holders.len(), 2, "{holders:?}");
    for holder in holders {
        t.flip(holder, &hash, 777);
    }

    let target = t.dir.path().join("target");
    let out = get_cli(&t, "docs/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let lost = names(&["docs/broken.bin", "docs/copy/of broken.bin"]);
    assert_eq!(said(&out.stderr, "failed"), lost, "{}", both(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .filter(|l| l.starts_with("failed"))
            .all(|l| l.contains("it is damaged")),
        "{}",
        both(&out)
    );
    assert!(stderr.contains("arca: 2 files failed"), "{}", both(&out));
    let rest: BTreeMap<String, Node> = expected
        .iter()
        .filter(|(k, _)| !lost.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        said(&out.stdout, "restored"),
        rest.keys().cloned().collect::<BTreeSet<_>>(),
        "{}",
        both(&out)
    );
    // Nothing of the lost files, not even a temp file.
    assert_tree(&target, &rest);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_already_there_are_kept_and_different_ones_need_force() {
    let t = TestCluster::with_servers(3).await;
    let files: Vec<(String, Vec<u8>)> = vec![
        ("proj/same/a.txt".into(), content(400, 3000)),
        ("proj/same/b/c.bin".into(), content(401, 3 << 20)),
        ("proj/same/empty".into(), Vec::new()),
        ("proj/same/ñ.txt".into(), content(402, 10)),
        ("proj/differs/longer.txt".into(), content(403, 5000)),
        ("proj/differs/same size.bin".into(), content(404, 1 << 20)),
        ("proj/differs/was empty".into(), Vec::new()),
        ("proj/differs/linked.txt".into(), content(407, 4000)),
        ("proj/missing/x.txt".into(), content(405, 700)),
        ("proj/missing/deep/y.bin".into(), content(406, 2 << 20)),
    ];
    let expected = write_all(&t, &files);
    put_cli(&t, &t.files().join("proj")).await;

    let target = t.dir.path().join("target");
    let out = get_cli(&t, "proj/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_tree(&target, &expected);

    // The local copy drifts: some files stay, some change, some go.
    let at = |name: &str| target.join(name);
    let mut longer = content(403, 5000);
    longer.extend_from_slice(b" and a local edit");
    let mut same_size = content(404, 1 << 20);
    same_size[700_000] ^= 1;
    let local: Vec<(&str, Vec<u8>)> = vec![
        ("proj/differs/longer.txt", longer),
        ("proj/differs/same size.bin", same_size),
        ("proj/differs/was empty", b"not empty now".to_vec()),
    ];
    for (name, data) in &local {
        std::fs::write(at(name), data).unwrap();
    }
    // A link in a file's place, to a file outside: never written through.
    let outside = t.dir.path().join("outside.txt");
    std::fs::write(&outside, "outside").unwrap();
    std::fs::remove_file(at("proj/differs/linked.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, at("proj/differs/linked.txt")).unwrap();
    std::fs::remove_file(at("proj/missing/x.txt")).unwrap();
    std::fs::remove_dir_all(at("proj/missing/deep")).unwrap();
    let same = [
        "proj/same/a.txt",
        "proj/same/b/c.bin",
        "proj/same/empty",
        "proj/same/ñ.txt",
    ];
    // A file's modification time alone does not make it differ.
    std::fs::File::options()
        .write(true)
        .open(at("proj/same/a.txt"))
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    let stamps = |names: &[&str]| -> Vec<_> { names.iter().map(|n| stamp(&at(n))).collect() };
    let mut differs: Vec<&str> = local.iter().map(|(n, _)| *n).collect();
    differs.push("proj/differs/linked.txt");
    let same_before = stamps(&same);
    let differs_before = stamps(&differs);

    let out = get_cli(&t, "proj/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert_eq!(said(&out.stdout, "current"), names(&same), "{}", both(&out));
    assert_eq!(
        said(&out.stdout, "restored"),
        names(&["proj/missing/x.txt", "proj/missing/deep/y.bin"]),
        "{}",
        both(&out)
    );
    assert_eq!(
        said(&out.stderr, "failed"),
        names(&differs),
        "{}",
        both(&out)
    );
    let stderr = text(&out.stderr);
    for name in &differs {
        let line = stderr
            .lines()
            .find(|l| l.starts_with("failed") && l.contains(name))
            .unwrap();
        assert!(
            line.contains("--force") && line.contains(at(name).to_str().unwrap()),
            "{line}"
        );
    }
    assert!(stderr.contains("arca: 4 files failed"), "{}", both(&out));
    for name in same {
        let line = text(&out.stdout)
            .lines()
            .find(|l| l.starts_with("current") && l.contains(name))
            .map(str::to_owned)
            .unwrap();
        assert!(
            line.contains("v1")
                && line.contains(&format!("{} already matches", at(name).display())),
            "{line}"
        );
    }
    assert_eq!(
        stamps(&same),
        same_before,
        "a file that matched was touched"
    );
    assert_eq!(
        stamps(&differs),
        differs_before,
        "a differing file was touched"
    );
    for (name, data) in &local {
        assert!(
            std::fs::read(at(name)).unwrap() == *data,
            "{name} was overwritten"
        );
    }
    let mut now = expected.clone();
    for (name, data) in &local {
        now.insert((*name).to_owned(), Node::File(data.clone()));
    }
    now.insert(
        "proj/differs/linked.txt".into(),
        Node::Link(outside.clone()),
    );
    assert_tree(&target, &now);
    assert_eq!(std::fs::read(&outside).unwrap(), b"outside");

    // With --force the differing ones are overwritten; the rest still kept.
    let out = get_cli(&t, "proj/", &target, &["--force"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(
        said(&out.stdout, "restored"),
        names(&differs),
        "{}",
        both(&out)
    );
    let mut kept: Vec<&str> = same.to_vec();
    kept.extend(["proj/missing/x.txt", "proj/missing/deep/y.bin"]);
    assert_eq!(said(&out.stdout, "current"), names(&kept), "{}", both(&out));
    assert!(said(&out.stderr, "failed").is_empty(), "{}", both(&out));
    assert_eq!(
        stamps(&same),
        same_before,
        "--force touched a file that matched"
    );
    // The link itself was replaced, and what it led to left alone.
    assert_eq!(std::fs::read(&outside).unwrap(), b"outside");
    assert_tree(&target, &expected);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_blocked_part_way_is_finished_by_running_it_again() {
    let t = TestCluster::with_servers(3).await;
    let mut files: Vec<(String, Vec<u8>)> = (0..60u64)
        .map(|i| {
            (
                format!("album/{:02}/{i:02}.jpg", i % 7),
                content(500 + i, 1000 + 997 * i as usize),
            )
        })
        .collect();
    files.push(("album/03/deeper/big.bin".into(), content(600, 3 << 20)));
    files.push(("album/big.bin".into(), content(601, 3 << 20)));
    files.push(("album/empty".into(), Vec::new()));
    let expected = write_all(&t, &files);
    put_cli(&t, &t.files().join("album")).await;

    // A file where one of the folders must go: what goes there cannot be
    // restored, the rest can.
    let target = t.dir.path().join("target");
    let blocker = target.join("album/03");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, "in the way").unwrap();
    let blocked: BTreeSet<String> = expected
        .keys()
        .filter(|k| k.starts_with("album/03/"))
        .cloned()
        .collect();
    let rest: BTreeSet<String> = expected
        .keys()
        .filter(|k| !blocked.contains(*k))
        .cloned()
        .collect();
    let out = get_cli(&t, "album/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert_eq!(said(&out.stdout, "restored"), rest, "{}", both(&out));
    assert_eq!(said(&out.stderr, "failed"), blocked, "{}", both(&out));
    assert!(
        text(&out.stderr).contains(&format!("arca: {} files failed", blocked.len())),
        "{}",
        both(&out)
    );
    // What came is whole and in place; what failed left nothing behind.
    let mut partial: BTreeMap<String, Node> = expected
        .iter()
        .filter(|(k, _)| rest.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    partial.insert("album/03".into(), Node::File(b"in the way".to_vec()));
    assert_tree(&target, &partial);
    let stamps: Vec<_> = rest.iter().map(|n| stamp(&target.join(n))).collect();

    std::fs::remove_file(&blocker).unwrap();
    let out = get_cli(&t, "album/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(said(&out.stdout, "current"), rest, "{}", both(&out));
    assert_eq!(said(&out.stdout, "restored"), blocked, "{}", both(&out));
    let again: Vec<_> = rest.iter().map(|n| stamp(&target.join(n))).collect();
    assert_eq!(
        stamps, again,
        "a file restored the first time was rewritten"
    );
    assert_tree(&target, &expected);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_lost_every_holder_is_finished_once_they_are_back() {
    let mut t = TestCluster::with_servers(3).await;
    let files = a_big_folder("pelis", 800);
    let expected = write_all(&t, &files);
    put_cli(&t, &t.files().join("pelis")).await;

    let mut session = t.session("laptop").await;
    let target = t.dir.path().join("target");
    let wanted: Vec<Wanted> = session
        .list(Some("pelis/"))
        .await
        .unwrap()
        .into_iter()
        .map(|entry| Wanted {
            dest: target.join(&entry.name),
            entry,
        })
        .collect();
    let names: Vec<String> = wanted.iter().map(|w| w.entry.name.clone()).collect();
    let (events, mut heard) = mpsc::unbounded_channel();
    let restore = tokio::spawn(async move {
        let outcomes = session.restore(wanted, false, &events).await;
        (outcomes, session)
    });
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), heard.recv())
            .await
            .expect("no word from the restore")
            .expect("the restore ended before the kill");
        if let RestoreEvent::Fetched(bytes) = event
            && bytes >= 8 << 20
        {
            break;
        }
    }
    for i in 0..3 {
        t.cluster.kill_server(i).await;
    }
    assert!(
        !restore.is_finished(),
        "the restore was over before the kill"
    );
    let (outcomes, _session) = tokio::time::timeout(PATIENCE, restore)
        .await
        .expect("the restore hung once every holder was gone")
        .unwrap();
    let outcomes = outcomes.expect("the restore failed as a whole, not file by file");
    assert_eq!(outcomes.len(), names.len());
    let mut first = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for (name, outcome) in names.iter().zip(&outcomes) {
        match outcome {
            Ok(Restored::Written { .. }) => first.insert(name.clone()),
            Ok(other) => panic!("{name}: {other:?}"),
            Err(_) => failed.insert(name.clone()),
        };
    }
    assert!(
        !first.is_empty() && !failed.is_empty(),
        "the loss was meant to fall mid-folder: {} written, {} failed",
        first.len(),
        failed.len()
    );
    // What came is whole and in place; what failed left nothing behind.
    let partial: BTreeMap<String, Node> = expected
        .iter()
        .filter(|(k, _)| first.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_tree(&target, &partial);
    let stamps: Vec<_> = first.iter().map(|n| stamp(&target.join(n))).collect();

    for i in 0..3 {
        t.cluster.restart_server(i).await.unwrap();
    }
    wait_alive(&t, 3).await;
    let out = get_cli(&t, "pelis/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(said(&out.stdout, "current"), first, "{}", both(&out));
    assert_eq!(said(&out.stdout, "restored"), failed, "{}", both(&out));
    let again: Vec<_> = first.iter().map(|n| stamp(&target.join(n))).collect();
    assert_eq!(
        stamps, again,
        "a file restored the first time was rewritten"
    );
    assert_tree(&target, &expected);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_mid_way_is_finished_by_running_it_again() {
    let t = TestCluster::with_servers(3).await;
    // Files are renamed into place in batches of about a thousand: enough
    // files that some batches are in place before the kill.
    let files: Vec<(String, Vec<u8>)> = (0..5000u64)
        .map(|i| {
            (
                format!("cosas/{:02}/{i:04}.txt", i / 100),
                content(700 + i, 200 + (i as usize * 131) % 3000),
            )
        })
        .collect();
    let expected = write_all(&t, &files);
    put_cli(&t, &t.files().join("cosas")).await;

    let target = t.dir.path().join("target");
    let mut child = arca(&t, &["get", "cosas/", "-o", target.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut first = BTreeSet::new();
    while first.len() < 1000 {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the restore said nothing")
            .unwrap()
            .expect("the restore ended before the kill");
        first.extend(said(line.as_bytes(), "restored"));
    }
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "the restore was over before the kill");
    // A line may be said after its file is in place, never before.
    while let Ok(Some(line)) = lines.next_line().await {
        first.extend(said(line.as_bytes(), "restored"));
    }
    assert!(
        first.len() < files.len(),
        "the restore was over before the kill"
    );
    let leftovers = temp_files(&target);
    eprintln!(
        "killed after {} files; {} temp files left behind",
        first.len(),
        leftovers.len()
    );
    for name in &first {
        assert!(
            tree_file(&target.join(name)) == expected[name],
            "{name} is not whole"
        );
    }

    let out = get_cli(&t, "cosas/", &target, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let current = said(&out.stdout, "current");
    assert!(first.is_subset(&current), "{}", both(&out));
    assert_eq!(
        current.len() + said(&out.stdout, "restored").len(),
        files.len(),
        "{}",
        both(&out)
    );
    // What the killed run had not yet renamed is its own mess, not part of
    // this check; the files are.
    assert_tree_but(&target, &expected, &leftovers);
    assert_eq!(
        temp_files(&target).len(),
        leftovers.len(),
        "the second run left temp files of its own"
    );
    t.cluster.shutdown().await;
}

fn tree_file(path: &Path) -> Node {
    Node::File(std::fs::read(path).unwrap())
}
