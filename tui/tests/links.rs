//! The links themselves, seen from the path between two daemons or a
//! client and a daemon: a proxy that records every byte sees no name and no
//! content; one that flips a byte after the handshake ends that connection,
//! and nothing wrong is committed or stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_daemon::{ManagerConfig, ServerConfig, run_manager, run_server};
use arca_shared::keys::ClusterKey;
use arca_shared::protocol::ClusterStatus;
use arca_shared::{Message, handshake};
use arca_tui::client::{Passphrase, Session, Settings, Vault, backup};
use common::{TestCluster, content, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What a proxy does to the bytes the connecting side sends.
#[derive(Clone, Copy)]
enum Tamper {
    Nothing,
    /// Flips the byte at this offset of the first connection that gets
    /// that far, once.
    FlipOnceAt(usize),
}

/// A TCP forwarder to one address that keeps every byte it forwards.
struct Proxy {
    addr: String,
    seen: Arc<Mutex<Vec<u8>>>,
    flipped: Arc<AtomicBool>,
    /// The connection with the flipped byte has ended.
    ended: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: String, tamper: Tamper) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap().to_string(),
            seen: Arc::default(),
            flipped: Arc::default(),
            ended: Arc::default(),
        };
        let (seen, flipped, ended) = (
            proxy.seen.clone(),
            proxy.flipped.clone(),
            proxy.ended.clone(),
        );
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (seen, flipped, ended) = (seen.clone(), flipped.clone(), ended.clone());
                tokio::spawn(async move {
                    let (from_client, to_client) = inbound.into_split();
                    let (from_daemon, to_daemon) = outbound.into_split();
                    let this_one = AtomicBool::new(false);
                    let up = pipe(from_client, to_daemon, &seen, tamper, &flipped, &this_one);
                    let down = pipe(
                        from_daemon,
                        to_client,
                        &seen,
                        Tamper::Nothing,
                        &flipped,
                        &this_one,
                    );
                    tokio::join!(up, down);
                    if this_one.load(Ordering::SeqCst) {
                        ended.store(true, Ordering::SeqCst);
                    }
                });
            }
        });
        proxy
    }

    fn saw(&self, needle: &[u8]) -> bool {
        self.seen
            .lock()
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    }

    fn bytes(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Forwards one direction until it ends, then ends it on the other side.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: &Mutex<Vec<u8>>,
    tamper: Tamper,
    flipped: &AtomicBool,
    this_one: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Tamper::FlipOnceAt(at) = tamper
            && (offset..offset + n).contains(&at)
            && !flipped.swap(true, Ordering::SeqCst)
        {
            buf[at - offset] ^= 0x20;
            this_one.store(true, Ordering::SeqCst);
        }
        offset += n;
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A manager and three servers each behind a proxy that every link to it
/// goes through: clients', the manager's and the other servers'.
struct ProxiedCluster {
    _dir: tempfile::TempDir,
    key: ClusterKey,
    data: std::path::PathBuf,
    manager: Proxy,
    servers: Vec<Proxy>,
    stop: CancellationToken,
}

impl ProxiedCluster {
    async fn start(tamper: Tamper) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = ClusterKey::random().unwrap();
        let stop = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let real = listener.local_addr().unwrap().to_string();
        let manager = Proxy::start(real, Tamper::Nothing).await;
        let data = dir.path().join("manager");
        let mut config = ManagerConfig::new(data.clone(), key.clone());
        config.ping_every = Duration::from_millis(100);
        tokio::spawn(run_manager(listener, config, stop.clone()));
        let mut servers = Vec::new();
        for i in 0..3 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let real = listener.local_addr().unwrap().to_string();
            let proxy = Proxy::start(real, tamper).await;
            let mut config = ServerConfig::new(
                dir.path().join(format!("server-{i}")),
                manager.addr.clone(),
                proxy.addr.clone(),
                key.clone(),
            );
            config.heartbeat_every = Duration::from_millis(200);
            tokio::spawn(run_server(listener, config, stop.clone()));
            servers.push(proxy);
        }
        let cluster = Self {
            _dir: dir,
            key,
            data,
            manager,
            servers,
            stop,
        };
        common::poll(Duration::from_secs(20), "three servers alive", async || {
            let status = cluster.status().await?;
            (status
                .servers
                .iter()
                .filter(|s| s.alive && s.latency_ms > 0.0)
                .count()
                == 3)
                .then_some(())
        })
        .await;
        cluster
    }

    async fn status(&self) -> Option<ClusterStatus> {
        let mut conn = handshake::connect(&self.manager.addr, &self.key.links().connector)
            .await
            .ok()?;
        conn.request(&Message::Status).await.ok()
    }

    fn settings(&self, files: &Path) -> Settings {
        let day = Duration::from_secs(86_400);
        let credential =
            arca_daemon::credentials::add(&self.data, &self.key, "laptop", day).unwrap();
        Settings {
            manager: self.manager.addr.clone(),
            client: "laptop".into(),
            link: credential.connector().unwrap(),
            files: files.to_owned(),
            vault: Vault::new(Passphrase::given("test passphrase").unwrap()),
        }
    }

    fn proxies(&self) -> impl Iterator<Item = &Proxy> {
        std::iter::once(&self.manager).chain(&self.servers)
    }
}

impl Drop for ProxiedCluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

const MARKER: &[u8] = b"ARCA-PLAINTEXT-MARKER-0123456789";
const NAME: &str = "plans-for-the-heist.txt";

/// A file whose every 4 KiB starts with [`MARKER`], the rest random:
/// no compression hides the marker, only encryption does.
fn marked(len: usize) -> Vec<u8> {
    let mut bytes = content(9, len);
    for at in (0..len.saturating_sub(MARKER.len())).step_by(4096) {
        bytes[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    bytes
}

async fn back_up(settings: &Settings, path: &Path) -> arca_tui::client::BackupSummary {
    let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
    backup(settings, &[path.to_owned()], &events).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_proxy_on_every_link_sees_no_name_and_no_content() {
    let cluster = ProxiedCluster::start(Tamper::Nothing).await;
    let files = cluster._dir.path().join("files");
    let data = marked(3 << 20);
    std::fs::create_dir_all(files.join("secret")).unwrap();
    std::fs::write(files.join("secret").join(NAME), &data).unwrap();
    let settings = cluster.settings(&files);
    let summary = back_up(&settings, &files.join("secret")).await;
    assert_eq!((summary.files, summary.failed), (1, 0));

    let mut session = Session::connect(settings).await.unwrap();
    let listed = session.list(None).await.unwrap();
    assert_eq!(listed[0].name, format!("secret/{NAME}"));
    let out = cluster._dir.path().join("restored");
    let (progress, _rx) = tokio::sync::watch::channel(Default::default());
    session
        .get(&listed[0].name, None, &out, false, &progress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);

    // The bytes went through: two copies out, one back, and the names.
    let seen: usize = cluster.proxies().map(Proxy::bytes).sum();
    assert!(seen > 3 * data.len(), "the proxies saw only {seen} bytes");
    for proxy in cluster.proxies() {
        assert!(!proxy.saw(NAME.as_bytes()), "{} saw the name", proxy.addr);
        assert!(!proxy.saw(b"heist"), "{} saw part of the name", proxy.addr);
        assert!(!proxy.saw(MARKER), "{} saw the content", proxy.addr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_to_a_server_ends_that_link_and_stores_nothing_wrong() {
    // Far past any handshake: in the middle of the upload's bytes.
    let cluster = ProxiedCluster::start(Tamper::FlipOnceAt(256 << 10)).await;
    let files = cluster._dir.path().join("files");
    let data = marked(6 << 20);
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("big"), &data).unwrap();
    let settings = cluster.settings(&files);
    let summary = back_up(&settings, &files.join("big")).await;
    assert_eq!(
        (summary.files, summary.failed),
        (1, 0),
        "the retry did not take"
    );
    let flipped: Vec<&Proxy> = cluster
        .servers
        .iter()
        .filter(|p| p.flipped.load(Ordering::SeqCst))
        .collect();
    assert!(!flipped.is_empty(), "no byte was flipped");
    eventually(Duration::from_secs(10), "the flipped links to end", || {
        flipped.iter().all(|p| p.ended.load(Ordering::SeqCst))
    })
    .await;

    let mut session = Session::connect(settings).await.unwrap();
    for check in session.verify(None).await.unwrap() {
        assert!(
            check.copies.iter().all(|intact| *intact) && check.damaged == 0,
            "a damaged copy was kept: {check:?}"
        );
    }
    let out = cluster._dir.path().join("restored");
    let (progress, _rx) = tokio::sync::watch::channel(Default::default());
    session
        .get("big", None, &out, false, &progress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_to_the_manager_ends_that_link_and_commits_nothing_wrong() {
    let t = TestCluster::with_servers(3).await;
    let proxy = Proxy::start(t.cluster.manager_addr.clone(), Tamper::FlipOnceAt(12 << 10)).await;
    let mut settings = t.settings("laptop");
    settings.manager = proxy.addr.clone();
    let tree = t.files().join("tree");
    for i in 0..300 {
        t.write(
            &format!("tree/file-with-a-longish-name-{i:04}"),
            &content(i, 300),
        );
    }
    let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
    let outcome = backup(&settings, &[tree], &events).await;
    assert!(proxy.flipped.load(Ordering::SeqCst), "no byte was flipped");
    eventually(Duration::from_secs(10), "the flipped link to end", || {
        proxy.ended.load(Ordering::SeqCst)
    })
    .await;
    // The link broke under the backup: it failed, and said so, or its retry
    // carried it through. Either way what the catalog holds is right.
    if let Err(e) = &outcome {
        assert!(!e.to_string().is_empty());
    }
    let mut session = t.session("laptop").await;
    let listed = session.list(Some("tree/")).await.unwrap();
    if outcome.is_ok_and(|s| s.failed == 0) {
        assert_eq!(listed.len(), 300);
    }
    for entry in &listed {
        let i: u64 = entry.name.rsplit('-').next().unwrap().parse().unwrap();
        let out = t.dir.path().join("restored");
        let (progress, _rx) = tokio::sync::watch::channel(Default::default());
        session
            .get(&entry.name, None, &out, true, &progress)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            content(i, 300),
            "{}",
            entry.name
        );
    }
    t.cluster.shutdown().await;
}
