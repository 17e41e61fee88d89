//! `PutFiles`: records versions made of chunks the namespace already keeps
//! (each stored by `PutChunks` beforehand, or kept from earlier backups).
//! A file whose chunk ids do not fit one frame continues in `MoreChunks`
//! frames. A name whose newest version has the same content gets no new
//! version.

use arca_shared::limits::LIST_MAX;
use arca_shared::meta::FileKind;
use arca_shared::protocol::{PutFile, PutResult};
use arca_shared::vault::CHUNK_MAX;
use arca_shared::{Connection, FrameError, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::{Manager, NewVersion, Recorded, refuse};

/// Most `MoreChunks` frames one file may take: a file of many terabytes.
const CONTINUED_MAX: u32 = 1 << 16;

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    files: Vec<PutFile>,
) -> Result<(), Error> {
    check_client(&client)?;
    manager.refuse_if_stale()?;
    if files.is_empty() || files.len() > LIST_MAX {
        return refuse(format!(
            "a backup carries 1 to {LIST_MAX} files, not {}",
            files.len()
        ));
    }
    let mut versions = Vec::with_capacity(files.len());
    for file in files {
        check_name(&file.name)?;
        if file.continued > CONTINUED_MAX {
            return refuse(format!("{} has too many chunks", file.name));
        }
        let mut chunks = file.chunks;
        for _ in 0..file.continued {
            match conn.recv().await? {
                Message::MoreChunks { ids } => chunks.extend(ids),
                other => return Err(FrameError::unexpected(&other, "MoreChunks").into()),
            }
        }
        // Every chunk but none holds at least a byte, and at most the largest.
        let count = chunks.len() as u64;
        if file.size > count.saturating_mul(CHUNK_MAX as u64) || (file.size > 0) != (count > 0) {
            return refuse(format!(
                "{} cannot be {} bytes in {count} chunks",
                file.name, file.size
            ));
        }
        if matches!(file.meta.kind, FileKind::Symlink { .. }) && (file.size, count) != (0, 0) {
            return refuse(format!("{} is a link: it has no bytes", file.name));
        }
        versions.push(NewVersion {
            name: file.name,
            size: file.size,
            meta: file.meta,
            chunks,
        });
    }
    let c = client.clone();
    let recorded = manager.record(move |cat| cat.commit(&c, &versions)).await?;
    let recorded = match recorded {
        Ok(recorded) => recorded,
        Err(name) => {
            return refuse(format!(
                "{name} uses a chunk this client's backups no longer keep (it was \
                 removed meanwhile); back it up again"
            ));
        }
    };
    let results = recorded
        .into_iter()
        .map(|r| match r {
            Recorded::Unchanged(version) => PutResult::Unchanged { version },
            Recorded::New(version) => PutResult::Committed {
                version,
                replicas: manager.config.replicas,
            },
        })
        .collect();
    Ok(conn.send(&Message::Committed { results }).await?)
}
