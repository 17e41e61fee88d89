//! Catalog snapshots: the catalog is the one thing only the manager holds,
//! so after it changes, a consistent copy (SQLite's online backup) is
//! sealed with a key derived from the cluster secret and kept by every live
//! server. `daemon recover` rebuilds a lost or damaged catalog from them.
//!
//! A server that registers with a snapshot newer than this catalog, or of
//! another history, shows that acknowledged backups may be missing here (a
//! lost write-ahead log, an old copy put back): the manager then deletes
//! nothing, since those copies may be the backups' only data, records
//! nothing new, and says how to recover.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arca_shared::protocol::SnapshotInfo;
use arca_shared::reply::{Accepted, Stored};
use arca_shared::sealed;
use arca_shared::stream::{Reading, send_file};
use arca_shared::types::{ServerId, now_ms};
use arca_shared::{BlobHash, Message};

use super::Manager;
use crate::error::Error;

/// The newest snapshot taken, and the servers that keep it.
struct Sent {
    snapshot: SnapshotInfo,
    kept_by: HashSet<ServerId>,
}

pub(crate) async fn run(manager: Arc<Manager>) {
    let mut sent: Option<Sent> = None;
    loop {
        tokio::select! {
            _ = manager.shutdown.cancelled() => return,
            _ = tokio::time::sleep(manager.config.snapshot_every) => {}
        }
        if manager.is_stale() {
            continue;
        }
        if let Err(e) = pass(&manager, &mut sent).await {
            tracing::warn!("catalog snapshot: {e}");
        }
    }
}

/// Takes a snapshot if the catalog changed since the last one, and hands
/// the newest to every live server that does not keep it yet.
async fn pass(manager: &Manager, sent: &mut Option<Sent>) -> Result<(), Error> {
    let generation = manager.db(|c| c.generation()).await?;
    if generation.number == 0 {
        return Ok(());
    }
    if sent
        .as_ref()
        .is_none_or(|s| s.snapshot.lineage != generation.token)
    {
        let snapshot = take(manager).await?;
        tracing::info!(
            generation = snapshot.generation,
            bytes = snapshot.size,
            "took a catalog snapshot"
        );
        *sent = Some(Sent {
            snapshot,
            kept_by: HashSet::new(),
        });
    }
    let Some(sent) = sent else {
        return Ok(());
    };
    let targets: Vec<(ServerId, String)> = {
        let members = manager.members();
        members
            .candidates(&sent.kept_by.iter().copied().collect::<Vec<_>>())
            .iter()
            // A server with no room (or a read-only disk) would only refuse.
            .filter(|c| c.free_bytes >= sent.snapshot.size)
            .filter_map(|c| members.get(c.id).map(|m| (c.id, m.addr.clone())))
            .collect()
    };
    for (id, addr) in targets {
        match hand_over(manager, &addr, &sent.snapshot).await {
            Ok(()) => {
                sent.kept_by.insert(id);
            }
            Err(e) => tracing::warn!(server = id, "cannot hand over the catalog snapshot: {e}"),
        }
    }
    Ok(())
}

/// Where the newest sealed snapshot waits in the manager's data folder.
fn sealed_path(manager: &Manager) -> PathBuf {
    manager.config.data.join("snapshot.sealed")
}

/// Copies the catalog and seals the copy.
async fn take(manager: &Manager) -> Result<SnapshotInfo, Error> {
    let plain = manager.config.data.join("snapshot.db");
    let copy = plain.clone();
    // Under the catalog's lock: the copy is exactly this generation.
    let generation = manager
        .db(move |c| {
            c.backup_to(&copy)?;
            c.generation()
        })
        .await?;
    let key = *manager.config.key.snapshot_key();
    let sealed = sealed_path(manager);
    let created_ms = now_ms();
    tokio::task::spawn_blocking(move || -> Result<SnapshotInfo, sealed::SealError> {
        let mut snapshot = SnapshotInfo {
            generation: generation.number,
            lineage: generation.token,
            created_ms,
            size: 0,
            hash: BlobHash([0; 32]),
        };
        let mut out = Hashing::new(BufWriter::new(File::create(&sealed)?));
        let mut from = BufReader::new(File::open(&plain)?);
        sealed::seal(&key, &snapshot.context(), &mut from, &mut out)?;
        let (size, hash) = out.finish()?;
        std::fs::remove_file(&plain)?;
        snapshot.size = size;
        snapshot.hash = hash;
        Ok(snapshot)
    })
    .await
    .map_err(|e| Error::local("the snapshot task failed", e))?
    .map_err(|e| Error::local("cannot seal the catalog snapshot", e))
}

/// Sends the sealed snapshot to the server at `addr` until it is durable there.
async fn hand_over(manager: &Manager, addr: &str, snapshot: &SnapshotInfo) -> Result<(), Error> {
    let file = File::open(sealed_path(manager))?;
    let mut conn = manager.connect(addr).await?;
    let Accepted = conn
        .request(&Message::StoreSnapshot {
            snapshot: *snapshot,
        })
        .await?;
    send_file(
        &mut conn.writer,
        file,
        snapshot.size,
        Reading::Cached,
        |_| {},
    )
    .await?;
    let Stored = conn.request(&Message::End).await?;
    Ok(())
}

/// Checks a registering server's newest snapshot against this catalog: a
/// catalog behind it, or one that went another way since, is stale.
pub(crate) async fn compare(manager: &Manager, addr: &str, snapshot: SnapshotInfo) {
    let number = snapshot.generation;
    let lineage = snapshot.lineage;
    let ours = manager
        .db(move |c| {
            Ok((
                c.generation()?,
                c.token_at(number)?,
                c.is_superseded(&lineage)?,
            ))
        })
        .await;
    let (ours, token, superseded) = match ours {
        Ok(ours) => ours,
        Err(e) => return tracing::error!("cannot read the catalog's generation: {e}"),
    };
    let why = if superseded {
        // A recovery chose this catalog over that snapshot's history.
        return;
    } else if number > ours.number {
        format!(
            "older than the snapshot server {addr} keeps (generation {number} > {})",
            ours.number
        )
    } else if token != Some(snapshot.lineage) {
        format!(
            "not the one server {addr}'s snapshot (generation {number}) was taken from: \
             it went another way since"
        )
    } else {
        return;
    };
    manager.behind.store(true, Ordering::Relaxed);
    tracing::error!(
        "the catalog is {why}. Acknowledged backups may be missing from it, so this manager \
         deletes nothing and records nothing new. Stop it and run \
         `daemon recover --force --data {} --server {addr}`",
        manager.config.data.display()
    );
}

/// A writer that counts and hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            size: 0,
        }
    }

    fn finish(mut self) -> io::Result<(u64, BlobHash)> {
        self.inner.flush()?;
        Ok((self.size, BlobHash::from(self.hasher.finalize())))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
