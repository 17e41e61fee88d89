//! `daemon recover`: rebuilds a lost or damaged catalog from the newest
//! sealed snapshot the named servers keep. The snapshot is fetched and
//! checked against its size and hash, opened with the cluster secret (which
//! also proves it is this cluster's, whole and unaltered), checked by
//! SQLite, and only then moved into place; a damaged catalog is kept aside.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use arca_shared::Message;
use arca_shared::handshake;
use arca_shared::keys::ClusterKey;
use arca_shared::protocol::{Item, SnapshotInfo};
use arca_shared::reply::Accepted;
use arca_shared::sealed::{self, SealError};
use arca_shared::types::now_ms;

use super::catalog::{self, Catalog, Generation};
use crate::error::Error;
use crate::storage::item_check::ItemCheck;

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(
        "the catalog at {0} opens and checks out; pass --force to replace it with the \
         newest snapshot anyway"
    )]
    CatalogIsFine(PathBuf),
    #[error("no server named keeps a usable catalog snapshot:\n{0}")]
    NoSnapshot(String),
    #[error("cannot write the catalog: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    DataFolder(#[from] super::StartError),
    #[error("cannot write the recovered catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
}

/// What was recovered, and from where.
#[derive(Debug)]
pub struct Recovered {
    pub server: String,
    pub snapshot: SnapshotInfo,
    /// Where the damaged or replaced catalog was kept, if there was one.
    pub set_aside: Option<PathBuf>,
    /// Newer snapshots that could not be used, and why.
    pub passed_over: Vec<String>,
    /// Snapshots of histories the recovered catalog is not part of (the
    /// catalog went two ways): what they hold beyond it is not recovered.
    pub forks: Vec<SnapshotInfo>,
}

pub async fn recover(
    data: &Path,
    servers: &[String],
    key: &ClusterKey,
    force: bool,
) -> Result<Recovered, RecoverError> {
    let _claim = super::claim(data)?;
    let path = data.join(catalog::FILE);
    if path.exists() && !force && Catalog::check_file(&path).is_ok() {
        return Err(RecoverError::CatalogIsFine(path));
    }
    // Every snapshot each server keeps, newest first across servers.
    let mut offers: Vec<(SnapshotInfo, &String)> = Vec::new();
    let mut problems = Vec::new();
    for server in servers {
        match list(server, key).await {
            Ok(snapshots) if snapshots.is_empty() => {
                problems.push(format!("  {server}: keeps no snapshot"));
            }
            Ok(snapshots) => offers.extend(snapshots.into_iter().map(|s| (s, server))),
            Err(e) => problems.push(format!("  {server}: {e}")),
        }
    }
    // Newest first; of two at one generation (a catalog that went two
    // ways), the one taken last.
    offers.sort_by_key(|(s, _)| std::cmp::Reverse((s.generation, s.created_ms)));
    let fresh = data.join("catalog.recovered");
    let mut passed_over = Vec::new();
    for (snapshot, server) in &offers {
        match fetch_and_open(server, key, snapshot, data, &fresh).await {
            Ok(()) => {
                let others: Vec<SnapshotInfo> = offers.iter().map(|(s, _)| *s).collect();
                let forks = supersede_others(&fresh, &others)?;
                let set_aside = set_aside(&path)?;
                std::fs::rename(&fresh, &path)?;
                File::open(data)?.sync_all()?;
                return Ok(Recovered {
                    server: (*server).clone(),
                    snapshot: *snapshot,
                    set_aside,
                    passed_over,
                    forks,
                });
            }
            Err(e) => passed_over.push(format!(
                "{server}: snapshot of generation {}: {e}",
                snapshot.generation
            )),
        }
    }
    let _ = std::fs::remove_file(&fresh);
    problems.extend(passed_over.iter().map(|p| format!("  {p}")));
    Err(RecoverError::NoSnapshot(problems.join("\n")))
}

async fn list(server: &str, key: &ClusterKey) -> Result<Vec<SnapshotInfo>, Error> {
    Ok(handshake::connect(server, &key.links().connector)
        .await?
        .request(&Message::ListSnapshots)
        .await?)
}

/// Fetches one snapshot, checks it, and writes the opened catalog to `to`.
async fn fetch_and_open(
    server: &str,
    key: &ClusterKey,
    snapshot: &SnapshotInfo,
    data: &Path,
    to: &Path,
) -> Result<(), String> {
    let sealed = data.join("snapshot.fetched");
    fetch(server, key, snapshot, &sealed)
        .await
        .map_err(|e| e.to_string())?;
    let (key, context, to_path) = (*key.snapshot_key(), snapshot.context(), to.to_owned());
    let opened = tokio::task::spawn_blocking(move || -> Result<Generation, String> {
        let open = || -> Result<(), SealError> {
            let mut from = BufReader::new(File::open(&sealed)?);
            let mut out = BufWriter::new(File::create(&to_path)?);
            sealed::open(&key, &context, &mut from, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok(())
        };
        let result = open().map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&sealed);
        result?;
        Catalog::check_file(&to_path).map_err(|e| format!("not a usable catalog: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?;
    match opened {
        Ok(found) if (found.number, found.token) == (snapshot.generation, snapshot.lineage) => {
            Ok(())
        }
        Ok(found) => Err(format!(
            "holds generation {}, not the {} it was named for",
            found.number, snapshot.generation
        )),
        Err(e) => Err(e),
    }
}

/// Fetches a snapshot's sealed bytes into `to`, checking size and hash.
async fn fetch(
    server: &str,
    key: &ClusterKey,
    snapshot: &SnapshotInfo,
    to: &Path,
) -> Result<(), Error> {
    let mut conn = handshake::connect(server, &key.links().connector).await?;
    let Accepted = conn
        .request(&Message::FetchSnapshot {
            snapshot: *snapshot,
        })
        .await?;
    let mut out = BufWriter::new(File::create(to)?);
    let mut check = ItemCheck::new(Item {
        hash: snapshot.hash,
        size: snapshot.size,
    });
    while let Some(data) = conn.recv_chunk().await? {
        check.chunk(data)?;
        out.write_all(data)?;
    }
    out.flush()?;
    check.end()
}

/// Records in the recovered catalog every offered snapshot it is not part
/// of, so that those do not make it look stale when their servers register;
/// returns them.
fn supersede_others(
    fresh: &Path,
    offers: &[SnapshotInfo],
) -> Result<Vec<SnapshotInfo>, RecoverError> {
    let mut catalog = Catalog::open(fresh)?;
    let mut others = Vec::new();
    for offer in offers {
        let ours = catalog.token_at(offer.generation)?;
        if ours != Some(offer.lineage)
            && !others
                .iter()
                .any(|o: &SnapshotInfo| o.lineage == offer.lineage)
        {
            others.push(*offer);
        }
    }
    catalog.supersede(&others.iter().map(|o| o.lineage).collect::<Vec<_>>())?;
    Ok(others)
}

/// Moves an existing catalog (and its write-ahead log) aside, not away.
fn set_aside(path: &Path) -> std::io::Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let aside = path.with_extension(format!("db.replaced-{}", now_ms()));
    std::fs::rename(path, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            let mut moved = aside.as_os_str().to_owned();
            moved.push(suffix);
            std::fs::rename(&side, PathBuf::from(moved))?;
        }
    }
    Ok(Some(aside))
}
