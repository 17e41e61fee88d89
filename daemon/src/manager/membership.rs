//! Who is in the cluster: registered servers, their heartbeats, and the
//! round trip the manager measures to each one itself.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_shared::Message;
use arca_shared::choice::{self, Candidate, Weights};
use arca_shared::protocol::{ServerStats, ServerStatus};
use arca_shared::reply::Pong;
use arca_shared::types::ServerId;
use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::error::Error;

/// How many latency samples each server keeps for the dashboard's sparkline.
const HISTORY: usize = 40;
/// Weight of a new round-trip sample in the smoothed latency.
const SMOOTHING: f64 = 0.3;
/// How long after this manager starts a known server that has not yet
/// registered again is waited for, rather than counted as down.
const RETURN_GRACE: Duration = Duration::from_secs(10);

pub struct Member {
    pub addr: String,
    pub zone: Option<String>,
    pub stats: ServerStats,
    /// Bytes of uploads and copies under way to it: placed, not yet
    /// recorded or failed.
    promised: u64,
    /// Bytes recorded as stored on it (or dropped from it, below zero)
    /// since its last heartbeat, which does not count them yet.
    recorded: i64,
    /// The last heartbeat since this manager started, if any.
    pub last_seen: Option<Instant>,
    pub latency_ms: Option<f64>,
    pub history: VecDeque<f64>,
    /// Not chosen for uploads until then: a primary saw it fail.
    suspect_until: Option<Instant>,
    pinging: bool,
}

/// Each server's id, whether it is alive, and whether it has been dead for
/// longer than healing waits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health(pub Vec<(ServerId, bool, bool)>);

pub struct Members {
    servers: BTreeMap<ServerId, Member>,
    dead_after: Duration,
    /// When this manager started: servers not seen since count as dead from then.
    started: Instant,
}

impl Members {
    pub fn new(dead_after: Duration) -> Self {
        Self {
            servers: BTreeMap::new(),
            dead_after,
            started: Instant::now(),
        }
    }

    /// Adds a server known from the catalog, dead until it heartbeats.
    pub fn remember(&mut self, id: ServerId, addr: String) {
        self.servers.entry(id).or_insert(Member {
            addr,
            zone: None,
            stats: ServerStats::default(),
            promised: 0,
            recorded: 0,
            last_seen: None,
            latency_ms: None,
            history: VecDeque::new(),
            suspect_until: None,
            pinging: false,
        });
    }

    /// Records a heartbeat; true if the caller should start pinging it.
    pub fn heartbeat(
        &mut self,
        id: ServerId,
        addr: &str,
        zone: Option<&str>,
        stats: ServerStats,
    ) -> bool {
        self.remember(id, addr.to_owned());
        let Some(member) = self.servers.get_mut(&id) else {
            return false;
        };
        member.addr = addr.to_owned();
        member.zone = zone.map(str::to_owned);
        member.stats = stats;
        member.recorded = 0;
        member.last_seen = Some(Instant::now());
        !std::mem::replace(&mut member.pinging, true)
    }

    pub fn record_latency(&mut self, id: ServerId, sample_ms: f64) {
        if let Some(member) = self.servers.get_mut(&id) {
            let smoothed = match member.latency_ms {
                Some(old) => old + SMOOTHING * (sample_ms - old),
                None => sample_ms,
            };
            member.latency_ms = Some(smoothed);
            if member.history.len() == HISTORY {
                member.history.pop_front();
            }
            member.history.push_back(sample_ms);
        }
    }

    pub fn get(&self, id: ServerId) -> Option<&Member> {
        self.servers.get(&id)
    }

    pub fn is_alive(&self, id: ServerId) -> bool {
        self.servers.get(&id).is_some_and(|m| self.alive(m))
    }

    fn alive(&self, member: &Member) -> bool {
        member
            .last_seen
            .is_some_and(|seen| seen.elapsed() < self.dead_after)
    }

    /// Whether a server known from the catalog has not registered since this
    /// manager started, early enough that it is likely on its way back.
    pub fn awaited(&self, id: ServerId) -> bool {
        self.servers
            .get(&id)
            .is_some_and(|m| m.last_seen.is_none() && self.started.elapsed() < RETURN_GRACE)
    }

    /// Whether any server known from the catalog is still awaited.
    pub fn any_awaited(&self) -> bool {
        self.servers.keys().any(|id| self.awaited(*id))
    }

    /// How long a server has been dead; `None` while it is alive.
    pub fn dead_for(&self, id: ServerId) -> Option<Duration> {
        let member = self.servers.get(&id)?;
        if self.alive(member) {
            return None;
        }
        let since = member
            .last_seen
            .map_or(self.started, |seen| seen + self.dead_after);
        Some(since.elapsed())
    }

    pub fn health(&self, heal_after: Duration) -> Health {
        Health(
            self.servers
                .keys()
                .map(|&id| {
                    let dead_for = self.dead_for(id);
                    (
                        id,
                        dead_for.is_none(),
                        dead_for.is_some_and(|d| d >= heal_after),
                    )
                })
                .collect(),
        )
    }

    /// Counts `bytes` on their way to each of `servers` in their load, so
    /// the choices made before they arrive spread instead of piling up.
    pub fn promise(&mut self, servers: &[ServerId], bytes: u64) {
        for id in servers {
            if let Some(member) = self.servers.get_mut(id) {
                member.promised = member.promised.saturating_add(bytes);
            }
        }
    }

    /// Ends a promise: the bytes are recorded as stored there (until the
    /// next heartbeat counts them), or not coming.
    pub fn settle(&mut self, servers: &[ServerId], bytes: u64, stored: bool) {
        for id in servers {
            if let Some(member) = self.servers.get_mut(id) {
                member.promised = member.promised.saturating_sub(bytes);
                if stored {
                    member.recorded = member.recorded.saturating_add_unsigned(bytes);
                }
            }
        }
    }

    /// A copy of `bytes` was dropped from a server (until its next
    /// heartbeat counts that).
    pub fn dropped(&mut self, id: ServerId, bytes: u64) {
        if let Some(member) = self.servers.get_mut(&id) {
            member.recorded = member.recorded.saturating_sub_unsigned(bytes);
        }
    }

    /// Keeps a server out of upload choices for a while.
    pub fn suspect(&mut self, id: ServerId) {
        let until = Instant::now() + self.dead_after;
        if let Some(member) = self.servers.get_mut(&id) {
            member.suspect_until = Some(until);
        }
    }

    /// Live servers fit to take a new upload: not suspected, not excluded.
    pub fn upload_candidates(&self, exclude: &[ServerId]) -> Vec<Candidate> {
        let now = Instant::now();
        self.candidates(exclude)
            .into_iter()
            .filter(|c| {
                self.servers
                    .get(&c.id)
                    .and_then(|m| m.suspect_until)
                    .is_none_or(|until| until < now)
            })
            .collect()
    }

    /// How many of `holders` are alive.
    pub fn live(&self, holders: &[ServerId]) -> usize {
        holders.iter().filter(|id| self.is_alive(**id)).count()
    }

    pub fn alive_count(&self) -> usize {
        self.servers.values().filter(|m| self.alive(m)).count()
    }

    /// Live servers whose disks refuse writes.
    pub fn read_only_count(&self) -> usize {
        self.servers
            .values()
            .filter(|m| self.alive(m) && m.stats.read_only)
            .count()
    }

    /// Live servers as the choice function sees them, minus `exclude`.
    pub fn candidates(&self, exclude: &[ServerId]) -> Vec<Candidate> {
        let live: Vec<(&ServerId, &Member)> = self
            .servers
            .iter()
            .filter(|(id, m)| self.alive(m) && !exclude.contains(id))
            .collect();
        // A server not yet measured counts as the slowest measured one.
        let slowest = live
            .iter()
            .filter_map(|(_, m)| m.latency_ms)
            .fold(0.0, f64::max);
        live.into_iter()
            .map(|(id, m)| Candidate {
                id: *id,
                latency_ms: m.latency_ms.unwrap_or(slowest),
                latency_noise_ms: scatter(&m.history),
                load: m.load(),
                free_bytes: m
                    .stats
                    .free_bytes
                    .saturating_sub(m.promised.saturating_add(m.recorded.max(0).unsigned_abs())),
            })
            .collect()
    }

    /// Live servers by id.
    pub fn alive_members(&self) -> impl Iterator<Item = (ServerId, &Member)> {
        self.servers
            .iter()
            .filter(|(_, m)| self.alive(m))
            .map(|(id, m)| (*id, m))
    }

    pub fn status(&self, weights: Weights) -> Vec<ServerStatus> {
        let scores = choice::score_all(&self.candidates(&[]), weights);
        self.servers
            .iter()
            .map(|(id, m)| ServerStatus {
                id: *id,
                addr: m.addr.clone(),
                zone: m.zone.clone(),
                alive: self.alive(m),
                silent_ms: m
                    .last_seen
                    .map_or(u64::MAX, |seen| seen.elapsed().as_millis() as u64),
                latency_ms: m.latency_ms.unwrap_or(0.0),
                latency_history_ms: m.history.iter().copied().collect(),
                stored_bytes: m.stats.stored_bytes,
                capacity_bytes: m.stats.capacity_bytes,
                free_bytes: m.stats.free_bytes,
                blobs: m.stats.blobs,
                read_only: m.stats.read_only,
                score: scores.iter().find(|s| s.id == *id).map(|s| s.score),
            })
            .collect()
    }
}

impl Member {
    /// Bytes stored as far as the manager knows: the last heartbeat, what
    /// was recorded since, and what is on its way.
    pub fn expected_bytes(&self) -> u64 {
        self.stats
            .stored_bytes
            .saturating_add_signed(self.recorded)
            .saturating_add(self.promised)
    }

    fn load(&self) -> f64 {
        let bytes = self.expected_bytes() as f64;
        if self.stats.capacity_bytes > 0 {
            bytes / self.stats.capacity_bytes as f64
        } else {
            bytes
        }
    }
}

/// The standard deviation of round-trip samples.
fn scatter(samples: &VecDeque<f64>) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    (samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// Measures the round trip to one server for as long as the manager runs,
/// over a connection of the manager's own.
pub async fn ping(manager: Arc<Manager>, id: ServerId, shutdown: CancellationToken) {
    loop {
        let addr = match manager.members().get(id) {
            Some(member) => member.addr.clone(),
            None => return,
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = ping_session(&manager, id, &addr) => {
                tracing::debug!(id, %addr, "ping session ended: {result:?}");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(manager.config.ping_every) => {}
        }
    }
}

async fn ping_session(manager: &Manager, id: ServerId, addr: &str) -> Result<(), Error> {
    let mut conn = manager.connect(addr).await?;
    loop {
        let start = Instant::now();
        let Pong = conn.request(&Message::Ping).await?;
        let rtt = start.elapsed().as_secs_f64() * 1000.0;
        manager.members().record_latency(id, rtt);
        tokio::time::sleep(manager.config.ping_every).await;
    }
}
