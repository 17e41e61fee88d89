//! Fetching a window of chunks: the manager grants each a holder (spread
//! over every live one), each holder streams its share on one request over
//! a connection kept for the next window, and each chunk's seal (a plain
//! one's stored hash) is checked before its plaintext is handed on. The
//! next window's grants are asked while one streams. A chunk whose holder
//! fails is fetched from another; a copy that fails its hash is reported.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arca_shared::limits::FETCH_MAX;
use arca_shared::link::Connector;
use arca_shared::protocol::{Grant, Part};
use arca_shared::reply::Accepted;
use arca_shared::sync::LockAnyway;
use arca_shared::types::ServerId;
use arca_shared::vault::{ChunkKeys, Opened};
use arca_shared::{BlobHash, Connection, FrameError, Message};

use crate::client::{ClientError, Session, open_server};

/// Most holders tried for one chunk before a restore gives up.
const MAX_ATTEMPTS: usize = 8;
/// Connections to one holder in use at once: its disk reads, the network
/// and the opening of seals overlap.
const PER_HOLDER: usize = 2;

/// Why fetching one chunk failed.
enum Failure {
    /// The holder failed (`link`: the connection itself), or its copy is
    /// damaged (`corrupt`): another may do.
    Holder {
        reason: String,
        corrupt: bool,
        link: bool,
    },
    /// Another holder will not help.
    Fatal(ClientError),
}

impl Failure {
    fn link(e: impl std::fmt::Display) -> Self {
        Self::Holder {
            reason: format!("holder failed: {e}"),
            corrupt: false,
            link: true,
        }
    }
}

/// A window's chunks, by stored hash: the plaintext, or why it cannot be had.
pub(super) type Fetched = HashMap<BlobHash, Result<Opened, ClientError>>;

/// A window's chunks by the holder granted each, and those refused.
pub(super) struct Granted {
    by_holder: HashMap<String, Vec<(Part, Grant)>>,
    refused: Fetched,
}

/// A window being fetched.
pub(super) struct Running {
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
    fetched: Fetched,
}

/// Fetches chunks for one restore, keeping a connection to each holder for
/// the next window (a handshake per chunk would cost more than its bytes)
/// and the servers found failing, which later windows avoid.
pub(super) struct Fetcher {
    link: Connector,
    keys: Option<ChunkKeys>,
    idle: Arc<Mutex<HashMap<String, Vec<Connection>>>>,
    down: Vec<ServerId>,
}

impl Fetcher {
    pub(super) fn new(link: Connector, keys: Option<ChunkKeys>) -> Self {
        Self {
            link,
            keys,
            idle: Arc::default(),
            down: Vec::new(),
        }
    }

    /// A holder for every distinct chunk of `parts` (at most
    /// [`FETCH_MAX`]), asked while the previous window is still fetched; the
    /// error is the link to the manager's, which ends the restore.
    pub(super) async fn grant(
        &self,
        session: &mut Session,
        parts: &[Part],
    ) -> Result<Granted, ClientError> {
        let mut distinct: Vec<Part> = Vec::with_capacity(parts.len());
        let mut seen = std::collections::HashSet::new();
        distinct.extend(parts.iter().filter(|p| seen.insert(p.hash)).copied());
        let mut refused = Fetched::new();
        let grants = match session.grants(&distinct, &self.down).await {
            Ok(grants) => grants,
            // One chunk that cannot be had must not fail the others: ask
            // for each alone, to know which.
            Err(ClientError::Refused(_)) => {
                let mut grants = HashMap::new();
                for part in &distinct {
                    match session.grants(std::slice::from_ref(part), &self.down).await {
                        Ok(one) => grants.extend(one),
                        Err(ClientError::Refused(why)) => {
                            refused.insert(part.hash, Err(ClientError::Refused(why)));
                        }
                        Err(e) => return Err(e),
                    }
                }
                grants
            }
            Err(e) => return Err(e),
        };
        let mut by_holder: HashMap<String, Vec<(Part, Grant)>> = HashMap::new();
        for part in &distinct {
            if refused.contains_key(&part.hash) {
                continue;
            }
            match grants.get(&part.hash) {
                Some(grant) => by_holder
                    .entry(grant.holder.clone())
                    .or_default()
                    .push((*part, grant.clone())),
                None => {
                    let none = "the manager granted no holder for a chunk";
                    refused.insert(part.hash, Err(ClientError::Refused(none.into())));
                }
            }
        }
        Ok(Granted { by_holder, refused })
    }

    /// Starts fetching a granted window, each holder's share in tasks of its
    /// own, so holders stream and seals open on every core.
    pub(super) fn start(&self, granted: Granted) -> Running {
        let mut tasks = Vec::new();
        for (holder, items) in granted.by_holder {
            let share = items.len().div_ceil(PER_HOLDER);
            for some in items.chunks(share.max(1)) {
                let this = self.share();
                let (holder, some) = (holder.clone(), some.to_vec());
                tasks.push(tokio::spawn(async move { this.batch(&holder, some).await }));
            }
        }
        Running {
            tasks,
            fetched: granted.refused,
        }
    }

    /// The window's chunks once its tasks end, those whose holder failed
    /// fetched from others; the error ends the restore.
    pub(super) async fn finish(
        &mut self,
        session: &mut Session,
        running: Running,
    ) -> Result<Fetched, ClientError> {
        let Running { tasks, mut fetched } = running;
        let mut retry = Vec::new();
        for task in tasks {
            let results = task
                .await
                .map_err(|e| ClientError::local("a fetch task", e))?;
            for (part, grant, result) in results {
                match result {
                    Ok(plain) => {
                        fetched.insert(part.hash, Ok(plain));
                    }
                    Err(failure) => retry.push((part, grant, failure)),
                }
            }
        }
        for (part, grant, failure) in retry {
            if let Failure::Holder { link: true, .. } = failure
                && !self.down.contains(&grant.ticket.server)
            {
                self.down.push(grant.ticket.server);
            }
            match self.elsewhere(session, &part, grant, failure).await {
                Err(e) if e.lost_link() => return Err(e),
                result => {
                    fetched.insert(part.hash, result);
                }
            }
        }
        Ok(fetched)
    }

    /// What a fetch task needs: the keys and the idle connections.
    fn share(&self) -> Share {
        Share {
            link: self.link.clone(),
            keys: self.keys.clone(),
            idle: self.idle.clone(),
        }
    }

    /// After `failure` at `grant`'s holder, fetches `part` from the others
    /// in turn, reporting copies that fail their hash.
    async fn elsewhere(
        &self,
        session: &mut Session,
        part: &Part,
        mut grant: Grant,
        mut failure: Failure,
    ) -> Result<Opened, ClientError> {
        let mut exclude = self.down.clone();
        for _ in 0..MAX_ATTEMPTS {
            let reason = match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Holder {
                    reason, corrupt, ..
                } => {
                    exclude.push(grant.ticket.server);
                    if corrupt {
                        tracing::warn!(holder = %grant.holder, "a chunk's copy is corrupt; reporting it");
                        let _ = session
                            .call(&Message::ReportCorrupt {
                                ticket: grant.ticket.clone(),
                            })
                            .await;
                    }
                    reason
                }
            };
            tracing::warn!("fetching a chunk failed ({reason}); trying another holder");
            let next = match session.grants(std::slice::from_ref(part), &exclude).await {
                Ok(mut grants) => grants.remove(&part.hash),
                Err(ClientError::Refused(why)) => {
                    return Err(ClientError::Refused(format!(
                        "{why} (last failure: {reason})"
                    )));
                }
                Err(e) => return Err(e),
            };
            let Some(next) = next else {
                return Err(ClientError::Refused(format!("no other holder ({reason})")));
            };
            let holder = next.holder.clone();
            let mut results = self.share().batch(&holder, vec![(*part, next)]).await;
            let Some((_, tried, result)) = results.pop() else {
                break;
            };
            match result {
                Ok(plain) => return Ok(plain),
                Err(again) => {
                    failure = again;
                    grant = tried;
                }
            }
        }
        Err(ClientError::Refused(format!(
            "gave up on a chunk after {MAX_ATTEMPTS} holders"
        )))
    }
}

/// A fetch task's part of the [`Fetcher`].
struct Share {
    link: Connector,
    keys: Option<ChunkKeys>,
    idle: Arc<Mutex<HashMap<String, Vec<Connection>>>>,
}

type Outcome = (Part, Grant, Result<Opened, Failure>);

impl Share {
    /// Fetches `items` from `holder` on one request and opens them.
    async fn batch(self, holder: &str, items: Vec<(Part, Grant)>) -> Vec<Outcome> {
        let idle = self.idle.lock_anyway().get_mut(holder).and_then(Vec::pop);
        let conn = match idle {
            Some(conn) => Ok(conn),
            None => open_server(holder, &self.link).await,
        };
        let (stored, conn) = match conn {
            Ok(mut conn) => {
                let stored = receive_all(&mut conn, &items).await;
                let broken = stored
                    .iter()
                    .any(|s| matches!(s, Err(Failure::Holder { link: true, .. })));
                (stored, (!broken).then_some(conn))
            }
            Err(e) => {
                let failed = items.iter().map(|_| Err(Failure::link(&e))).collect();
                (failed, None)
            }
        };
        if let Some(conn) = conn {
            self.idle
                .lock_anyway()
                .entry(holder.to_owned())
                .or_default()
                .push(conn);
        }
        let keys = self.keys;
        let opened = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .zip(stored)
                .map(|((part, grant), stored)| {
                    let plain = stored.and_then(|bytes| open(&part, bytes, keys.as_ref()));
                    (part, grant, plain)
                })
                .collect::<Vec<_>>()
        })
        .await;
        opened.unwrap_or_default()
    }
}

/// Each item's stored bytes, in order, from one `Fetch`; once the link
/// breaks, every item after it fails with it.
async fn receive_all(
    conn: &mut Connection,
    items: &[(Part, Grant)],
) -> Vec<Result<Vec<u8>, Failure>> {
    debug_assert!(items.len() <= FETCH_MAX);
    let request = Message::Fetch {
        tickets: items.iter().map(|(_, g)| g.ticket.clone()).collect(),
    };
    let mut out = Vec::with_capacity(items.len());
    if let Err(e) = conn.send(&request).await {
        out.extend(items.iter().map(|_| Err(Failure::link(&e))));
        return out;
    }
    for (part, _) in items {
        match receive(conn, part).await {
            Ok(stored) => out.push(Ok(stored)),
            // This holder cannot give this one; the next still come.
            Err(FrameError::Refused(why) | FrameError::PeerFailed(why)) => {
                out.push(Err(Failure::Holder {
                    reason: format!("holder refused: {why}"),
                    corrupt: false,
                    link: false,
                }))
            }
            Err(e) => {
                while out.len() < items.len() {
                    out.push(Err(Failure::link(&e)));
                }
                break;
            }
        }
    }
    out
}

/// One stored chunk's bytes from its holder, read straight into its buffer.
async fn receive(conn: &mut Connection, part: &Part) -> Result<Vec<u8>, FrameError> {
    let Accepted = conn.reader.expect().await?;
    let mut stored = Vec::with_capacity(part.size as usize);
    loop {
        let frame = conn.reader.recv_chunk_into(&mut stored).await?;
        if stored.len() as u64 > part.size {
            return Err(out_of_step("more bytes than the chunk has"));
        }
        match frame {
            None => {}
            Some(Message::End) if stored.len() as u64 == part.size => return Ok(stored),
            Some(Message::End) => return Err(out_of_step("the stream ended early")),
            Some(other) => return Err(FrameError::unexpected(&other, "Chunk")),
        }
    }
}

/// A stream that no longer matches what was asked: the link is out of
/// step, so nothing more on it can be trusted.
fn out_of_step(what: &str) -> FrameError {
    FrameError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}

/// A fetched chunk's plaintext, once it checks out: a sealed one by its
/// seal (which no damage survives, so its stored hash need not be taken
/// too), a plain one by its stored hash.
fn open(part: &Part, stored: Vec<u8>, keys: Option<&ChunkKeys>) -> Result<Opened, Failure> {
    let plain = match (part.sealed, keys) {
        (false, _) if BlobHash::of(&stored) == part.hash => Opened::from(stored),
        (false, _) => {
            return Err(Failure::Holder {
                reason: "a copy failed its hash check".into(),
                corrupt: true,
                link: false,
            });
        }
        // Damaged on disk or on the way; should every copy fail so, the
        // holders' own checks tell a damaged chunk from one that is not
        // this client's.
        (true, Some(keys)) => keys.open(&part.id, stored).map_err(|_| Failure::Holder {
            reason: "a copy does not open with this client's key: it is damaged, \
                     or not the chunk the catalog says"
                .into(),
            corrupt: true,
            link: false,
        })?,
        (true, None) => {
            return Err(Failure::Fatal(ClientError::Local(
                "a sealed chunk and no key to open it".into(),
            )));
        }
    };
    if plain.len() as u64 != part.plain_size {
        return Err(Failure::Fatal(ClientError::Refused(
            "a chunk opened to another size than the catalog says".into(),
        )));
    }
    Ok(plain)
}
