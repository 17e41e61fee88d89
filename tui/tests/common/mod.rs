//! A real cluster on loopback for the client's tests, and ways to look at
//! what the servers hold on disk.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod real;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arca_daemon::cluster::{ClusterOptions, LocalCluster};
use arca_daemon::storage::{OnDisk, on_disk};
use arca_shared::choice::Weights;
use arca_shared::link::Credential;
use arca_shared::protocol::Grant;
use arca_shared::{BlobHash, Connection, Message, handshake};
use arca_tui::client::{Passphrase, Session, Settings, TransferProgress, Uploaded, Vault};
use tempfile::TempDir;
use tokio::sync::watch;

pub struct TestCluster {
    pub dir: TempDir,
    pub cluster: LocalCluster,
    /// Each client's credential, issued when first asked for.
    credentials: Mutex<HashMap<String, Credential>>,
}

impl TestCluster {
    pub async fn start(options: ClusterOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::start(&dir.path().join("cluster"), options)
            .await
            .unwrap();
        std::fs::create_dir_all(dir.path().join("files")).unwrap();
        Self {
            dir,
            cluster,
            credentials: Mutex::default(),
        }
    }

    pub async fn with_servers(servers: usize) -> Self {
        Self::start(ClusterOptions {
            servers,
            ..ClusterOptions::default()
        })
        .await
    }

    pub fn files(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    /// The credential of `client`, issued the first time it is asked for.
    pub fn credential(&self, client: &str) -> Credential {
        let mut credentials = self.credentials.lock().unwrap();
        credentials
            .entry(client.to_owned())
            .or_insert_with(|| self.cluster.credential(client).unwrap())
            .clone()
    }

    /// Writes `client`'s credential to a file for the real binaries.
    pub fn credential_file(&self, client: &str) -> PathBuf {
        let path = self.dir.path().join("credentials").join(client);
        if !path.exists() {
            self.credential(client).save(&path).unwrap();
        }
        path
    }

    pub fn settings(&self, client: &str) -> Settings {
        Settings {
            manager: self.cluster.manager_addr.clone(),
            client: client.to_owned(),
            link: self.credential(client).connector().unwrap(),
            files: self.files(),
            vault: Vault::new(Passphrase::given("test passphrase").unwrap()),
        }
    }

    pub async fn session(&self, client: &str) -> Session {
        Session::connect(self.settings(client)).await.unwrap()
    }

    /// Writes a file under the files folder and returns its path.
    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.files().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Indexes of the servers whose data folder holds this content.
    pub fn holders(&self, hash: &BlobHash) -> Vec<usize> {
        (0..self.cluster.server_count())
            .filter(|i| self.on_disk(*i).contains_key(hash))
            .collect()
    }

    /// Every blob a server's data folder holds, where each lies.
    pub fn on_disk(&self, server: usize) -> HashMap<BlobHash, OnDisk> {
        on_disk(self.cluster.server_data(server)).unwrap_or_default()
    }

    /// Where a server keeps a blob; the test fails if it keeps none.
    pub fn blob(&self, server: usize, hash: &BlobHash) -> OnDisk {
        self.on_disk(server)
            .remove(hash)
            .unwrap_or_else(|| panic!("server {server} holds no {}", hash.short()))
    }

    /// A server's copy of a blob, if it keeps one that reads.
    pub fn blob_bytes(&self, server: usize, hash: &BlobHash) -> Option<Vec<u8>> {
        self.on_disk(server).get(hash)?.read().ok()
    }

    /// Whether a server keeps an intact copy of a blob.
    pub fn intact(&self, server: usize, hash: &BlobHash) -> bool {
        self.blob_bytes(server, hash)
            .is_some_and(|b| BlobHash::of(&b) == *hash)
    }

    /// Flips a bit of a server's copy of a blob, where it lies on disk.
    pub fn flip(&self, server: usize, hash: &BlobHash, at: u64) {
        let blob = self.blob(server, hash);
        let mut byte = [0u8];
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&blob.path)
            .unwrap();
        file.read_exact_at(&mut byte, blob.offset + at).unwrap();
        byte[0] ^= 0x40;
        file.write_all_at(&byte, blob.offset + at).unwrap();
    }

    /// Every blob in every server's data folder.
    pub fn visible_blobs(&self) -> usize {
        (0..self.cluster.server_count())
            .map(|i| self.on_disk(i).len())
            .sum()
    }

    /// Every file in every server's `tmp/`.
    pub fn temp_files(&self, server: usize) -> usize {
        files_under(&self.cluster.server_data(server).join("tmp"))
    }
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

/// The stored blobs of `name`'s newest version, in chunk order.
pub async fn stored(session: &mut Session, name: &str) -> Vec<BlobHash> {
    let (_, parts) = session.parts(name, None).await.unwrap();
    parts.iter().map(|p| p.hash).collect()
}

/// Backs up one file and returns how it ended.
pub async fn put(session: &mut Session, path: &Path, name: &str) -> Uploaded {
    let (progress, _rx) = watch::channel(TransferProgress::default());
    session.put(path, name, &progress).await.unwrap()
}

/// Backs up each of `files` as `f0`, `f1`, ...
pub async fn put_numbered(t: &TestCluster, session: &mut Session, files: &[Vec<u8>]) {
    for (i, data) in files.iter().enumerate() {
        let name = format!("f{i}");
        put(session, &t.write(&name, data), &name).await;
    }
}

/// Bytes that look random and are the same for one seed.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    arca_daemon::cluster::sample(seed, len)
}

/// Polls `attempt` until it gives a value, failing the test after `timeout`.
pub async fn poll<T>(
    timeout: Duration,
    what: &str,
    mut attempt: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it holds, failing the test after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `arca` binary as this test's client of `manager`: its credential,
/// passphrase, files folder and a cache of its own.
pub fn arca_command(t: &TestCluster, manager: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_arca"));
    command
        .args(args)
        .env("ARCA_MANAGER", manager)
        .env("ARCA_CREDENTIAL", t.credential_file("laptop"))
        .env("ARCA_PASSWORD", "test passphrase")
        .env("ARCA_FILES", t.files())
        .env("XDG_CACHE_HOME", t.dir.path().join("cache"))
        .env("RUST_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Three servers that tie on load, latency not counting: the manager's
/// grants depend only on what the holders hold and their ids, so a test can
/// ask for them first (see [`granted`]) and know which copy a restore reads.
pub async fn tied_cluster() -> TestCluster {
    TestCluster::start(ClusterOptions {
        servers: 3,
        capacities: vec![Some(1 << 30); 3],
        weights: Weights {
            latency: 0.0,
            load: 1.0,
        },
        ..ClusterOptions::default()
    })
    .await
}

/// A connection to the manager as a daemon, past the handshake.
pub async fn manager(t: &TestCluster) -> Connection {
    handshake::connect(&t.cluster.manager_addr, &t.cluster.key.links().connector)
        .await
        .unwrap()
}

/// The grants the manager answers for `hashes`, as client "laptop".
pub async fn fetch_grants(manager: &mut Connection, hashes: &[BlobHash]) -> Vec<Grant> {
    match manager
        .call(&Message::FetchGrants {
            client: "laptop".into(),
            hashes: hashes.to_vec(),
            exclude: vec![],
        })
        .await
        .unwrap()
    {
        Message::Grants { grants } => grants,
        other => panic!("expected grants, got {other:?}"),
    }
}

/// The holder (by server index) the manager grants for each of `hashes`,
/// asked as a restore asks: every distinct hash, sorted, at once.
pub async fn granted(t: &TestCluster, hashes: &[BlobHash]) -> BTreeMap<BlobHash, usize> {
    let grants = fetch_grants(&mut manager(t).await, hashes).await;
    assert_eq!(grants.len(), hashes.len());
    hashes
        .iter()
        .zip(grants)
        .map(|(hash, grant)| {
            let server = (0..t.cluster.server_count())
                .find(|i| t.cluster.server_addr(*i) == grant.holder)
                .unwrap();
            (*hash, server)
        })
        .collect()
}
