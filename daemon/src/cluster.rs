//! A whole cluster in one process: a manager and N servers on loopback port 0
//! with data under one folder. The demo, the benchmark and the tests use it,
//! and the few helpers they share: free ports and sample bytes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use arca_shared::choice::Weights;
use arca_shared::handshake;
use arca_shared::keys::ClusterKey;
use arca_shared::link::Credential;
use arca_shared::protocol::ClusterStatus;
use arca_shared::{FrameError, Message};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::credentials::CredentialError;
use crate::{ManagerConfig, ServerConfig, run_manager, run_server};

/// How the cluster's daemons are tuned; the defaults react fast, for tests.
#[derive(Clone)]
pub struct ClusterOptions {
    pub servers: usize,
    pub replicas: u32,
    pub dead_after: Duration,
    /// Capacity of each server, by index; missing entries mean "the disk".
    pub capacities: Vec<Option<u64>>,
    /// The failure zone of each server, by index; missing entries mean none.
    pub zones: Vec<Option<String>>,
    pub weights: Weights,
    pub heal_after: Duration,
    pub scrub_every: Duration,
    /// How old an unreferenced blob must be before it is removed.
    pub orphan_grace: Duration,
    /// How often a changed catalog is snapshotted to the servers.
    pub snapshot_every: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            servers: 4,
            replicas: 2,
            dead_after: Duration::from_millis(1500),
            capacities: Vec::new(),
            zones: Vec::new(),
            weights: Weights::default(),
            heal_after: Duration::from_secs(3),
            scrub_every: Duration::from_secs(3600),
            orphan_grace: Duration::from_secs(600),
            snapshot_every: Duration::from_secs(30),
        }
    }
}

struct Daemon {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Daemon {
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

pub struct LocalCluster {
    pub key: ClusterKey,
    /// The secret behind `key`, for writing a secret file.
    pub secret: [u8; 32],
    pub manager_addr: String,
    root: PathBuf,
    options: ClusterOptions,
    manager: Option<Daemon>,
    servers: Vec<(String, ServerConfig, Option<Daemon>)>,
}

impl LocalCluster {
    /// Starts a manager and `options.servers` servers with data under `root`,
    /// and waits until every server is registered and measured.
    pub async fn start(root: &Path, options: ClusterOptions) -> std::io::Result<Self> {
        let (key, secret) = ClusterKey::random().map_err(std::io::Error::other)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let manager_addr = listener.local_addr()?.to_string();
        let mut cluster = Self {
            key,
            secret,
            manager_addr,
            root: root.to_owned(),
            options,
            manager: None,
            servers: Vec::new(),
        };
        cluster.start_manager(listener);
        for _ in 0..cluster.options.servers {
            cluster.spawn_new_server().await?;
        }
        cluster.wait_for_servers().await?;
        Ok(cluster)
    }

    /// Starts one more server, empty, with the next index's options, and
    /// waits until the manager counts it; returns its index.
    pub async fn add_server(&mut self) -> std::io::Result<usize> {
        self.spawn_new_server().await?;
        self.wait_for_servers().await?;
        Ok(self.servers.len() - 1)
    }

    async fn spawn_new_server(&mut self) -> std::io::Result<()> {
        let i = self.servers.len();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let mut config = ServerConfig::new(
            self.root.join(format!("server-{}", i + 1)),
            self.manager_addr.clone(),
            addr.clone(),
            self.key.clone(),
        );
        config.capacity = self.options.capacities.get(i).copied().flatten();
        config.zone = self.options.zones.get(i).cloned().flatten();
        config.heartbeat_every = self.options.dead_after / 5;
        config.scrub_every = self.options.scrub_every;
        let daemon = spawn_server(listener, config.clone());
        self.servers.push((addr, config, Some(daemon)));
        Ok(())
    }

    /// Waits until every server started is registered and measured.
    async fn wait_for_servers(&self) -> std::io::Result<()> {
        let all = self.servers.len();
        self.wait_until(Duration::from_secs(20), |s| {
            s.servers
                .iter()
                .filter(|s| s.alive && s.latency_ms > 0.0)
                .count()
                == all
        })
        .await
        .map(drop)
        .map_err(std::io::Error::other)
    }

    /// The manager's data folder.
    pub fn manager_data(&self) -> PathBuf {
        self.root.join("manager")
    }

    fn start_manager(&mut self, listener: TcpListener) {
        let mut config = ManagerConfig::new(self.manager_data(), self.key.clone());
        config.replicas = self.options.replicas;
        config.dead_after = self.options.dead_after;
        config.weights = self.options.weights;
        config.heal_after = self.options.heal_after;
        config.orphan_grace = self.options.orphan_grace;
        config.snapshot_every = self.options.snapshot_every;
        config.ping_every = Duration::from_millis(100);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = run_manager(listener, config, token).await {
                tracing::error!("manager failed: {e}");
            }
        });
        self.manager = Some(Daemon { stop, task });
    }

    /// The data folder of server `i` (0-based).
    pub fn server_data(&self, i: usize) -> &Path {
        &self.servers[i].1.data
    }

    pub fn server_addr(&self, i: usize) -> &str {
        &self.servers[i].0
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Stops server `i` abruptly: its connections drop mid-stream.
    pub async fn kill_server(&mut self, i: usize) {
        if let Some(daemon) = self.servers[i].2.take() {
            daemon.stop().await;
        }
    }

    /// Starts server `i` again on its old address and data.
    pub async fn restart_server(&mut self, i: usize) -> std::io::Result<()> {
        let (addr, config, daemon) = &mut self.servers[i];
        if daemon.is_none() {
            let listener = TcpListener::bind(addr.as_str()).await?;
            *daemon = Some(spawn_server(listener, config.clone()));
        }
        Ok(())
    }

    /// Stops and restarts the manager on its old address and catalog.
    pub async fn restart_manager(&mut self) -> std::io::Result<()> {
        self.stop_manager().await;
        self.resume_manager().await
    }

    pub async fn stop_manager(&mut self) {
        if let Some(daemon) = self.manager.take() {
            daemon.stop().await;
        }
    }

    /// Starts a stopped manager again on its old address and catalog.
    pub async fn resume_manager(&mut self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.manager_addr.as_str()).await?;
        self.start_manager(listener);
        Ok(())
    }

    /// Issues and records a credential for the client `name`, good for a day.
    pub fn credential(&self, name: &str) -> Result<Credential, CredentialError> {
        crate::credentials::add(
            &self.manager_data(),
            &self.key,
            name,
            Duration::from_secs(86_400),
        )
    }

    pub async fn status(&self) -> Result<ClusterStatus, FrameError> {
        handshake::connect(&self.manager_addr, &self.key.links().connector)
            .await?
            .request(&Message::Status)
            .await
    }

    /// Polls the manager's status until `ready` holds or `timeout` passes.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        ready: impl Fn(&ClusterStatus) -> bool,
    ) -> Result<ClusterStatus, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match self.status().await {
                Ok(status) if ready(&status) => return Ok(status),
                Ok(status) => last = format!("{status:?}"),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("cluster not ready after {timeout:?}: {last}"))
    }

    /// Stops every daemon and waits for them.
    pub async fn shutdown(mut self) {
        for (_, _, daemon) in &mut self.servers {
            if let Some(daemon) = daemon.take() {
                daemon.stop().await;
            }
        }
        if let Some(daemon) = self.manager.take() {
            daemon.stop().await;
        }
    }
}

fn spawn_server(listener: TcpListener, config: ServerConfig) -> Daemon {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = run_server(listener, config, token).await {
            tracing::error!("server failed: {e}");
        }
    });
    Daemon { stop, task }
}

/// A loopback port free right now, for a daemon started as a process.
///
/// Ports come from below Linux's ephemeral range (32768 and up), so an
/// outgoing connection, which takes its port from that range, cannot take
/// this one before the daemon meant for it binds; each call in a process
/// returns a different port, and processes start at different places.
pub fn free_port() -> std::io::Result<u16> {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(COUNT)) as u16;
    for _ in 0..COUNT {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT;
        let port = FIRST + offset;
        // Any address: a daemon given only --port listens on all of them.
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free loopback port between 20000 and 32000",
    ))
}

/// Bytes that look random and are the same for one seed: sample files for
/// the demo, the benchmark and the tests (random data does not compress,
/// so no layer can make a test pass by shrinking it).
pub fn sample_bytes(seed: &[u8]) -> blake3::OutputReader {
    blake3::Hasher::new().update(seed).finalize_xof()
}

/// `len` sample bytes for `seed`.
pub fn sample(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    sample_bytes(&seed.to_le_bytes()).fill(&mut bytes);
    bytes
}

/// Writes `len` sample bytes for `seed` to a new file at `path`, a block
/// at a time.
pub fn write_sample(path: &Path, len: u64, seed: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut stream = sample_bytes(seed);
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = block.len().min(left as usize);
        stream.fill(&mut block[..n]);
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()
}
