//! `arca bench`: a local cluster of real processes (a manager and four
//! servers, data on this disk) and the numbers that matter, each a median
//! over several runs and a ratio to a floor measured in the same run.
//! `arca bench --scale` measures a big catalog instead (see [`scale`]).

mod scale;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arca_daemon::cluster;
use arca_shared::BlobHash;
use arca_shared::keys::ClusterKey;
use arca_shared::link::Credential;
use serde_json::json;

use crate::client::{ChunkCache, ClientError, Passphrase, Phase, Session, Settings, Vault};
use crate::dashboard::event::{Effect, Msg};
use crate::dashboard::tasks::Tasks;
use crate::out;

pub struct Options {
    pub runs: usize,
    pub big_mib: u64,
    pub small_files: usize,
    pub medium_files: usize,
    /// Catalog entries for the scale case, which then runs alone.
    pub scale: Option<u64>,
    pub json: bool,
}

/// One measured case: seconds per run, and the floor's seconds per run.
#[derive(Clone)]
struct Case {
    name: &'static str,
    unit: &'static str,
    /// Work per run, in the unit's numerator (bytes or files).
    amount: f64,
    arca: Vec<f64>,
    floor_name: &'static str,
    floor: Vec<f64>,
}

impl Case {
    fn new(name: &'static str, unit: &'static str, amount: f64, floor_name: &'static str) -> Self {
        Self {
            name,
            unit,
            amount,
            arca: Vec::new(),
            floor_name,
            floor: Vec::new(),
        }
    }

    fn rate(&self, secs: f64) -> f64 {
        self.amount / secs
    }

    fn ratio(&self) -> Option<f64> {
        (!self.floor.is_empty()).then(|| median(&self.arca) / median(&self.floor))
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

struct Bench {
    dir: PathBuf,
    exe: PathBuf,
    secret: PathBuf,
    manager: String,
    daemons: Vec<(String, Child)>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for (_, child) in &mut self.daemons {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

type BenchResult<T> = Result<T, ClientError>;

fn io(what: &str) -> impl Fn(std::io::Error) -> ClientError + '_ {
    move |e| ClientError::local(what, e)
}

pub async fn run(options: Options) -> BenchResult<()> {
    let dir = tempfile::Builder::new()
        .prefix("arca-bench-")
        .tempdir_in(".")
        .map_err(io("cannot create the bench folder here"))?;
    let exe = std::env::current_exe().map_err(io("cannot find the arca binary"))?;
    let mut bench = Bench {
        dir: dir.path().to_owned(),
        exe,
        secret: dir.path().join("secret"),
        manager: format!("127.0.0.1:{}", free_port()?),
        daemons: Vec::new(),
    };
    arca_shared::keys::write_new_secret(&bench.secret)
        .map_err(|e| ClientError::Local(e.to_string()))?;
    bench.start_cluster().await?;
    out::error(format_args!(
        "cluster up: a manager and 4 servers; data under {}",
        bench.dir.display()
    ));
    match options.scale {
        Some(entries) => scale::run(&bench, entries, &options).await,
        None => throughput(&bench, &options).await,
    }
}

/// The big file's backup and restore, an edit in it, many small files,
/// medium files, and the dashboard's uploads.
async fn throughput(bench: &Bench, options: &Options) -> BenchResult<()> {
    let mut cases = Vec::new();
    let big = bench.dir.join("big.bin");
    let big_bytes = options.big_mib << 20;
    write_pseudo_random(&big, big_bytes, 0)?;
    let mut backup = Case::new(
        "backup, 2 replicas",
        "MB/s",
        big_bytes as f64,
        "cp to 2 folders + fsync",
    );
    let mut restore = Case::new("restore", "MB/s", big_bytes as f64, "cp + fsync");
    // A restore reads the blob from a server's disk; the floor above reads a
    // file the page cache holds. This one reads it from disk too.
    let mut disk_floor = Vec::new();
    let mut client_rss = 0u64;
    for run in 0..options.runs {
        out::error(format_args!("big file, run {}/{}", run + 1, options.runs));
        stamp(&big, run as u64)?;
        backup
            .floor
            .push(copy_floor(&big, &bench.dir, 2, Source::Cached)?);
        // A client of its own each run: a fresh key, nothing to dedup against.
        let client = format!("big-{run}");
        let (secs, rss) = bench.arca_as(&client, &["put", path_str(&big)?], &bench.dir)?;
        backup.arca.push(secs);
        client_rss = client_rss.max(rss);
        let restored = bench.dir.join("restored.bin");
        restore
            .floor
            .push(copy_floor(&big, &bench.dir, 1, Source::Cached)?);
        disk_floor.push(copy_floor(&big, &bench.dir, 1, Source::Disk)?);
        let (secs, rss) = bench.arca_as(
            &client,
            &["get", "big.bin", "-o", path_str(&restored)?, "--force"],
            &bench.dir,
        )?;
        restore.arca.push(secs);
        client_rss = client_rss.max(rss);
        // A fast restore counts only if it is the same file.
        let same = BlobHash::of_file(&big).map_err(io("hash"))?
            == BlobHash::of_file(&restored).map_err(io("hash"))?;
        if !same {
            return Err(ClientError::Local("the restored file differs".into()));
        }
        let _ = std::fs::remove_file(&restored);
        // Each run stores the whole file again: free the disk for the next.
        bench.arca_as(&client, &["rm", "big.bin", "--all"], &bench.dir)?;
    }
    let daemon_rss: Vec<(String, u64)> = bench
        .daemons
        .iter()
        .map(|(name, child)| (name.clone(), peak_rss_kib(child.id())))
        .collect();
    // The same restores, against the floor that reads from disk.
    let restore_from_disk = Case {
        floor_name: "cp + fsync, source on disk",
        floor: disk_floor,
        ..restore.clone()
    };
    cases.push(backup);
    cases.push(restore);
    cases.push(restore_from_disk);
    out::error(format_args!("1 MiB changed in the middle, backed up again"));
    let growth = changed_mib(bench, &big)?;
    let _ = std::fs::remove_file(&big);

    let mut small = Case::new(
        "small files backup",
        "files/s",
        options.small_files as f64,
        "restic backup",
    );
    let mut again = Case::new(
        "unchanged re-backup",
        "files/s",
        options.small_files as f64,
        "first backup",
    );
    let mut restored = Case::new(
        "small files restore",
        "files/s",
        options.small_files as f64,
        "restic restore",
    );
    let restic = restic_repo(&bench.dir);
    // Trees of their own, removed only at the end: just after thousands of
    // files are deleted, ext4 creates files slowly for a while (it skips
    // recently freed inodes), and whichever restore came next would pay.
    let mut made = Vec::new();
    for run in 0..options.runs {
        out::error(format_args!(
            "{} small files, run {}/{}",
            options.small_files,
            run + 1,
            options.runs
        ));
        let tree = bench.dir.join(format!("tree-{run}"));
        let (ours, theirs) = (
            bench.dir.join(format!("restored-{run}")),
            bench.dir.join(format!("restic-restored-{run}")),
        );
        made.extend([tree.clone(), ours.clone(), theirs.clone()]);
        write_tree(&tree, options.small_files, 4096, run as u64 + 1)?;
        let client = format!("small-{run}");
        let (first, rss) = bench.arca_as(&client, &["put", path_str(&tree)?], &bench.dir)?;
        small.arca.push(first);
        client_rss = client_rss.max(rss);
        let (second, _) = bench.arca_as(&client, &["put", path_str(&tree)?], &bench.dir)?;
        again.arca.push(second);
        again.floor.push(first);
        let name = format!("tree-{run}/");
        let (secs, rss) =
            bench.arca_as(&client, &["get", &name, "-o", path_str(&ours)?], &bench.dir)?;
        restored.arca.push(secs);
        client_rss = client_rss.max(rss);
        same_tree(&tree, &ours.join(format!("tree-{run}")))?;
        if let Some(repo) = &restic {
            small.floor.push(time_restic(repo, &tree)?);
            restored.floor.push(time_restic_restore(repo, &theirs)?);
        }
    }
    for dir in made {
        let _ = std::fs::remove_dir_all(dir);
    }
    cases.push(small);
    cases.push(again);
    cases.push(restored);
    cases.push(medium_files(bench, options, &mut client_rss)?);
    cases.push(dashboard_upload(bench, options).await?);
    report(options, &cases, &growth, client_rss, &daemon_rss);
    Ok(())
}

/// A folder of 1 MiB files backed up, against the faster of restic and
/// borg backing up the same folder into a fresh repository.
fn medium_files(bench: &Bench, options: &Options, client_rss: &mut u64) -> BenchResult<Case> {
    let tree = bench.dir.join("medium");
    let mut case = Case::new(
        "1 MiB files backup",
        "files/s",
        options.medium_files as f64,
        "faster of restic, borg",
    );
    for run in 0..options.runs {
        out::error(format_args!(
            "{} files of 1 MiB, run {}/{}",
            options.medium_files,
            run + 1,
            options.runs
        ));
        write_tree(&tree, options.medium_files, 1 << 20, run as u64 + 100)?;
        let client = format!("medium-{run}");
        let (secs, rss) = bench.arca_as(&client, &["put", path_str(&tree)?], &bench.dir)?;
        case.arca.push(secs);
        *client_rss = (*client_rss).max(rss);
        let floors = bench.dir.join(format!("medium-floors-{run}"));
        std::fs::create_dir_all(&floors).map_err(io("floors"))?;
        let restic = restic_repo(&floors)
            .map(|repo| time_restic(&repo, &tree))
            .transpose()?;
        let borg = borg_repo(&floors)
            .map(|repo| {
                settle();
                let start = Instant::now();
                borg_create(&repo, 0, &tree).map(|()| start.elapsed().as_secs_f64())
            })
            .transpose()?;
        if let Some(fastest) = restic.into_iter().chain(borg).min_by(f64::total_cmp) {
            case.floor.push(fastest);
        }
        let _ = std::fs::remove_dir_all(&floors);
        bench.arca_as(&client, &["rm", "medium/", "--all"], &bench.dir)?;
    }
    let _ = std::fs::remove_dir_all(&tree);
    Ok(case)
}

/// A folder of small files uploaded from the dashboard (its tasks, headless,
/// driven as the app drives them), against `arca put` of the same folder.
async fn dashboard_upload(bench: &Bench, options: &Options) -> BenchResult<Case> {
    let files = options.small_files.min(DASHBOARD_FILES);
    let tree = bench.dir.join("dash");
    let mut case = Case::new("dashboard upload", "files/s", files as f64, "arca put");
    for run in 0..options.runs {
        out::error(format_args!(
            "{files} files from the dashboard, run {}/{}",
            run + 1,
            options.runs
        ));
        write_tree(&tree, files, 4096, run as u64 + 200)?;
        let (secs, _) = bench.arca_as(
            &format!("put-{run}"),
            &["put", path_str(&tree)?],
            &bench.dir,
        )?;
        case.floor.push(secs);
        let client = format!("dashboard-{run}-{}", std::process::id());
        settle();
        case.arca
            .push(upload_from_dashboard(bench.settings(&client)?, &tree, files).await?);
        ChunkCache::forget(&client);
    }
    let _ = std::fs::remove_dir_all(&tree);
    Ok(case)
}

/// Seconds from the upload key to the last of `files` backed up.
async fn upload_from_dashboard(settings: Settings, tree: &Path, files: usize) -> BenchResult<f64> {
    let (msgs, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let start = Instant::now();
    let tasks = Tasks::start(settings, msgs, shutdown);
    tasks.run(Effect::Upload(vec![tree.to_owned()]));
    let mut backed_up = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while backed_up < files {
        let msg = tokio::time::timeout_at(deadline, inbox.recv()).await;
        let Ok(Some(msg)) = msg else {
            return Err(ClientError::Local(
                "the dashboard's upload did not end".into(),
            ));
        };
        if let Msg::Progress { progress, .. } = msg {
            backed_up += match progress.phase {
                Phase::BackedUp { files } => files,
                Phase::Committed { .. } | Phase::Unchanged { .. } => 1,
                Phase::Failed(why) => {
                    return Err(ClientError::Local(format!(
                        "a dashboard upload failed: {why}"
                    )));
                }
                _ => 0,
            };
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Fails unless every file under `a` is under `b` with the same bytes.
fn same_tree(a: &Path, b: &Path) -> BenchResult<()> {
    for folder in std::fs::read_dir(a).map_err(io("tree"))? {
        let folder = folder.map_err(io("tree"))?.path();
        for file in std::fs::read_dir(&folder).map_err(io("tree"))? {
            let file = file.map_err(io("tree"))?.path();
            let twin = folder
                .file_name()
                .zip(file.file_name())
                .map(|(d, f)| b.join(d).join(f));
            let same =
                twin.is_some_and(|twin| std::fs::read(&twin).ok() == std::fs::read(&file).ok());
            if !same {
                return Err(ClientError::Local(format!(
                    "the restored tree differs at {}",
                    file.display()
                )));
            }
        }
    }
    Ok(())
}

/// What one more backup stores after 1 MiB in the middle of the big file
/// changed: Arca's growth on all servers together (both replicas), and,
/// as floors, a restic and a borg repository's (one copy each).
struct Growth {
    arca_bytes: u64,
    arca_secs: f64,
    floors: Vec<(&'static str, u64)>,
}

fn changed_mib(bench: &Bench, big: &Path) -> BenchResult<Growth> {
    let files = bench.dir.join("edit");
    let floors = bench.dir.join("edit-floors");
    for dir in [&files, &floors] {
        std::fs::create_dir_all(dir).map_err(io("edit folders"))?;
    }
    let file = files.join("big.bin");
    std::fs::rename(big, &file).map_err(io("edit file"))?;
    let name = path_str(&file)?;
    let restic = restic_repo(&floors);
    let borg = borg_repo(&floors);
    let back_up = |round: u32| -> BenchResult<f64> {
        let (secs, _) = bench.arca_as("edit", &["put", name], &files)?;
        if let Some(repo) = &restic {
            time_restic(repo, &file)?;
        }
        if let Some(repo) = &borg {
            borg_create(repo, round, &file)?;
        }
        Ok(secs)
    };
    let sizes = || {
        (
            bench.stored(),
            restic.as_deref().map(dir_bytes),
            borg.as_deref().map(dir_bytes),
        )
    };
    back_up(1)?;
    let before = sizes();
    let mut edit = vec![0u8; 1 << 20];
    cluster::sample_bytes(b"the edit").fill(&mut edit);
    let len = std::fs::metadata(&file).map_err(io("edit"))?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &edit, len / 2))
        .map_err(io("edit"))?;
    let arca_secs = back_up(2)?;
    let after = sizes();
    std::fs::rename(&file, big).map_err(io("edit file"))?;
    let grown = |before: Option<u64>, after: Option<u64>| {
        before.zip(after).map(|(b, a)| a.saturating_sub(b))
    };
    let floors = [
        ("restic", grown(before.1, after.1)),
        ("borg", grown(before.2, after.2)),
    ]
    .into_iter()
    .filter_map(|(tool, bytes)| Some((tool, bytes?)))
    .collect();
    Ok(Growth {
        arca_bytes: after.0.saturating_sub(before.0),
        arca_secs,
        floors,
    })
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&e.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Bench {
    /// Bytes in every server's packs (and blobs from before packs), once
    /// no deletion is still shrinking them: a removal frees its packs a
    /// moment after it is answered.
    fn stored(&self) -> u64 {
        let now = || -> u64 {
            (1..=4)
                .flat_map(|i| ["packs", "blobs"].map(|d| (i, d)))
                .map(|(i, d)| dir_bytes(&self.dir.join(format!("server-{i}")).join(d)))
                .sum()
        };
        let mut last = now();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(500));
            let again = now();
            if again == last {
                break;
            }
            last = again;
        }
        last
    }

    async fn start_cluster(&mut self) -> BenchResult<()> {
        let manager_data = self.dir.join("manager");
        let manager = self.manager.clone();
        self.spawn_daemon(
            "manager",
            &[
                "--role",
                "manager",
                "--listen",
                &manager,
                "--data",
                path_str(&manager_data)?,
            ],
        )?;
        for i in 1..=4 {
            let port = free_port()?.to_string();
            let data = self.dir.join(format!("server-{i}"));
            self.spawn_daemon(
                &format!("server {i}"),
                &[
                    "--role",
                    "server",
                    "--port",
                    &port,
                    "--manager",
                    &manager,
                    "--data",
                    path_str(&data)?,
                ],
            )?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The first credential waits for the manager's catalog.
            if let Ok(settings) = self.settings("bench")
                && let Ok(mut session) = Session::connect(settings).await
                && let Ok(status) = session.status().await
                && status
                    .servers
                    .iter()
                    .filter(|s| s.alive && s.latency_ms > 0.0)
                    .count()
                    == 4
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClientError::Local(
                    "the bench cluster did not start within 30 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client's settings for sessions of the bench's own.
    fn settings(&self, client: &str) -> BenchResult<Settings> {
        let credential = Credential::load(&self.credential(client)?)
            .map_err(|e| ClientError::Local(e.to_string()))?;
        Ok(Settings {
            manager: self.manager.clone(),
            client: client.into(),
            link: credential
                .connector()
                .map_err(|e| ClientError::Local(e.to_string()))?,
            files: self.dir.clone(),
            vault: Vault::new(Passphrase::given(PASSPHRASE)?),
        })
    }

    /// The file of `client`'s credential, issued the first time it is asked for.
    fn credential(&self, client: &str) -> BenchResult<PathBuf> {
        let path = self.dir.join("credentials").join(client);
        if !path.exists() {
            let key =
                ClusterKey::load(&self.secret).map_err(|e| ClientError::Local(e.to_string()))?;
            let day = Duration::from_secs(86_400);
            arca_daemon::credentials::add(&self.dir.join("manager"), &key, client, day)
                .map_err(|e| ClientError::Local(e.to_string()))?
                .save(&path)
                .map_err(io("cannot write a bench credential"))?;
        }
        Ok(path)
    }

    fn spawn_daemon(&mut self, name: &str, args: &[&str]) -> BenchResult<()> {
        let child = Command::new(&self.exe)
            .arg("daemon")
            .args(args)
            .env("ARCA_SECRET_FILE", &self.secret)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("cannot start a daemon"))?;
        self.daemons.push((name.to_owned(), child));
        Ok(())
    }

    /// Runs `arca ARGS` as a client; returns its wall time and peak RSS (KiB).
    fn arca_as(&self, client: &str, args: &[&str], files: &Path) -> BenchResult<(f64, u64)> {
        settle();
        let start = Instant::now();
        let mut child = Command::new(&self.exe)
            .args(args)
            .env("ARCA_MANAGER", &self.manager)
            .env("ARCA_CREDENTIAL", self.credential(client)?)
            .env("ARCA_PASSWORD", PASSPHRASE)
            .env("ARCA_FILES", files)
            // The bench's own hash cache, so earlier runs do not weigh on this one.
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("cannot start arca"))?;
        let mut peak = 0;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io("arca"))? {
                break status;
            }
            peak = peak.max(peak_rss_kib(child.id()));
            std::thread::sleep(Duration::from_millis(10));
        };
        let secs = start.elapsed().as_secs_f64();
        if !status.success() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Err(ClientError::Local(format!(
                "arca {} failed: {stderr}",
                args.join(" ")
            )));
        }
        Ok((secs, peak))
    }
}

fn path_str(path: &Path) -> BenchResult<&str> {
    path.to_str()
        .ok_or_else(|| ClientError::Local(format!("{} is not UTF-8", path.display())))
}

fn free_port() -> BenchResult<u16> {
    cluster::free_port().map_err(io("no free port"))
}

/// Writes back everything dirty before a timed case, so no case pays for
/// the one before it (fsyncs and syncfs wait for all dirty data).
fn settle() {
    let _ = Command::new("sync").status();
}

/// The high-water mark of a process's resident memory, in KiB (0 if gone).
fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

/// A size in KiB from a process's `/proc/PID/status` (0 if gone).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn write_pseudo_random(path: &Path, len: u64, seed: u64) -> BenchResult<()> {
    cluster::write_sample(path, len, &seed.to_le_bytes()).map_err(io("cannot write test data"))
}

/// Makes each run's big file new content without rewriting it.
fn stamp(path: &Path, run: u64) -> BenchResult<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("stamp"))?;
    file.write_all_at(&run.to_le_bytes(), 0)
        .map_err(io("stamp"))
}

/// Where the floor's copy reads its source from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The page cache, as after the file was just written or read.
    Cached,
    /// The disk: the source is dropped from the page cache first.
    Disk,
}

/// The floor: copies to `copies` folders, each fsynced; returns seconds.
fn copy_floor(source: &Path, dir: &Path, copies: usize, from: Source) -> BenchResult<f64> {
    settle();
    if from == Source::Disk {
        let file = std::fs::File::open(source).map_err(io("floor"))?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(|e| ClientError::local("floor", std::io::Error::from(e)))?;
    }
    let start = Instant::now();
    let mut made = Vec::new();
    for i in 0..copies {
        let folder = dir.join(format!("floor-{i}"));
        std::fs::create_dir_all(&folder).map_err(io("floor"))?;
        let dest = folder.join("copy.bin");
        std::fs::copy(source, &dest).map_err(io("floor"))?;
        std::fs::File::open(&dest)
            .and_then(|f| f.sync_all())
            .map_err(io("floor"))?;
        made.push(dest);
    }
    let secs = start.elapsed().as_secs_f64();
    for path in made {
        let _ = std::fs::remove_file(path);
    }
    Ok(secs)
}

/// `count` files of `size` bytes in 20 folders, different content for each seed.
fn write_tree(root: &Path, count: usize, size: usize, seed: u64) -> BenchResult<()> {
    let _ = std::fs::remove_dir_all(root);
    let mut stream = cluster::sample_bytes(&seed.to_le_bytes());
    let mut block = vec![0u8; size];
    for i in 0..count {
        let folder = root.join(format!("folder-{:02}", i % 20));
        if i < 20 {
            std::fs::create_dir_all(&folder).map_err(io("tree"))?;
        }
        stream.fill(&mut block);
        std::fs::write(folder.join(format!("file-{i:05}")), &block).map_err(io("tree"))?;
    }
    Ok(())
}

/// Files the dashboard uploads, at most.
const DASHBOARD_FILES: usize = 2000;

/// The bench's throwaway restic repository needs some password.
const RESTIC_PASSWORD: &str = "arca-bench";
/// The bench's own clients' passphrase: Arca encrypts, as restic does.
const PASSPHRASE: &str = "arca-bench";

/// A borg repository for the baseline, if borg is installed.
fn borg_repo(dir: &Path) -> Option<PathBuf> {
    let repo = dir.join("borg-repo");
    let ok = borg(dir)
        .args(["init", "--encryption", "repokey-blake2"])
        .arg(&repo)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(repo)
}

fn borg_create(repo: &Path, round: u32, file: &Path) -> BenchResult<()> {
    let parent = repo.parent().unwrap_or(repo);
    let status = borg(parent)
        .arg("create")
        .arg(format!("{}::round-{round}", repo.display()))
        .arg(file)
        .status()
        .map_err(io("borg"))?;
    if !status.success() {
        return Err(ClientError::Local("borg create failed".into()));
    }
    Ok(())
}

/// `borg`, with its passphrase, and its cache and keys kept under `dir`.
fn borg(dir: &Path) -> Command {
    let mut command = Command::new("borg");
    command
        .env("BORG_PASSPHRASE", RESTIC_PASSWORD)
        .env("BORG_BASE_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A restic repository for the baseline, if restic is installed.
fn restic_repo(dir: &Path) -> Option<PathBuf> {
    let repo = dir.join("restic-repo");
    let ok = Command::new("restic")
        .args(["init", "--repo"])
        .arg(&repo)
        .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(repo)
}

/// `restic backup` of `tree`; returns seconds.
fn time_restic(repo: &Path, tree: &Path) -> BenchResult<f64> {
    time_restic_doing("backup", repo, &[tree.as_os_str()])
}

/// `restic restore` of the newest snapshot into `target`; returns seconds.
fn time_restic_restore(repo: &Path, target: &Path) -> BenchResult<f64> {
    let args = ["latest".as_ref(), "--target".as_ref(), target.as_os_str()];
    time_restic_doing("restore", repo, &args)
}

/// Times `restic WHAT --quiet --repo REPO ARGS`, settled first.
fn time_restic_doing(what: &str, repo: &Path, args: &[&std::ffi::OsStr]) -> BenchResult<f64> {
    settle();
    let start = Instant::now();
    let status = Command::new("restic")
        .args([what, "--quiet", "--repo"])
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(io("restic"))?;
    if !status.success() {
        return Err(ClientError::Local(format!("restic {what} failed")));
    }
    Ok(start.elapsed().as_secs_f64())
}

fn report(
    options: &Options,
    cases: &[Case],
    growth: &Growth,
    client_rss: u64,
    daemons: &[(String, u64)],
) {
    if options.json {
        let cases: Vec<_> = cases
            .iter()
            .map(|c| {
                json!({
                    "case": c.name,
                    "median_s": median(&c.arca),
                    "runs_s": c.arca,
                    "rate": c.rate(median(&c.arca)),
                    "unit": c.unit,
                    "floor": c.floor_name,
                    "floor_median_s": (!c.floor.is_empty()).then(|| median(&c.floor)),
                    "floor_runs_s": c.floor,
                    "ratio_to_floor": c.ratio(),
                })
            })
            .collect();
        let rss: serde_json::Map<String, serde_json::Value> =
            std::iter::once(("client".to_owned(), json!(client_rss)))
                .chain(daemons.iter().map(|(n, r)| (n.clone(), json!(r))))
                .collect();
        let floors: serde_json::Map<String, serde_json::Value> = growth
            .floors
            .iter()
            .map(|(tool, bytes)| ((*tool).to_owned(), json!(bytes)))
            .collect();
        let changed = json!({ "arca_bytes": growth.arca_bytes, "arca_s": growth.arca_secs,
                              "floors_bytes": floors });
        out::line(format_args!(
            "{}",
            json!({ "runs": options.runs, "big_mib": options.big_mib, "small_files": options.small_files,
                    "medium_files": options.medium_files,
                    "cases": cases, "changed_mib": changed, "peak_rss_kib": rss })
        ));
        return;
    }
    out::line(format_args!(
        "Arca bench: {} runs, medians; {} MiB file, {} small files, {} of 1 MiB; 4 servers, \
         2 replicas, loopback",
        options.runs, options.big_mib, options.small_files, options.medium_files
    ));
    out::line(format_args!(
        "{:<22} {:>10} {:>14}   {:<26} {:>9} {:>7}",
        "case", "time (s)", "rate", "floor", "floor (s)", "ratio"
    ));
    for c in cases {
        let secs = median(&c.arca);
        let rate = if c.unit == "MB/s" {
            format!("{:.0} MB/s", c.rate(secs) / 1e6)
        } else {
            format!("{:.0} files/s", c.rate(secs))
        };
        let floor = if c.floor.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.3}", median(&c.floor))
        };
        let ratio = c.ratio().map_or("-".to_owned(), |r| format!("{r:.2}x"));
        out::line(format_args!(
            "{:<22} {:>10.3} {:>14}   {:<26} {:>9} {:>7}",
            c.name, secs, rate, c.floor_name, floor, ratio
        ));
    }
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let floors: Vec<String> = growth
        .floors
        .iter()
        .map(|(tool, bytes)| format!("{tool} {:.1} MiB (one copy)", mib(*bytes)))
        .collect();
    out::line(format_args!(
        "1 MiB changed in the middle, backed up again: stored {:.1} MiB more (both copies) in \
         {:.3} s; {}",
        mib(growth.arca_bytes),
        growth.arca_secs,
        if floors.is_empty() {
            "(install restic and borg for floors)".to_owned()
        } else {
            floors.join(", ")
        }
    ));
    if !cases
        .iter()
        .any(|c| c.floor_name == "restic backup" && !c.floor.is_empty())
    {
        out::line(format_args!(
            "(restic is not installed: no small-files floor; apt-get install restic)"
        ));
    }
    let daemons: Vec<String> = daemons
        .iter()
        .map(|(n, r)| format!("{n} {:.1}", *r as f64 / 1024.0))
        .collect();
    out::line(format_args!(
        "peak RSS (MiB): client {:.1}; {}",
        client_rss as f64 / 1024.0,
        daemons.join("; ")
    ));
}
