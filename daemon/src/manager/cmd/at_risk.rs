//! `AtRisk`: this client's versions short of intact copies on live servers,
//! as the last healing pass counted them, each with its live and damaged
//! copies. Sent in pages, then `End`.

use arca_shared::connection::PageWriter;
use arca_shared::protocol::VersionHealth;
use arca_shared::sync::LockAnyway;
use arca_shared::{Connection, Message};

use super::check_client;
use crate::error::Error;
use crate::manager::Manager;

/// Versions per page: a page of the longest names stays under the control cap.
const PAGE: usize = 32;

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
) -> Result<(), Error> {
    check_client(&client)?;
    let hashes = manager.at_risk.lock_anyway().clone();
    let mut pages = PageWriter::new(conn, PAGE, |versions| Message::Risks { versions });
    if !hashes.is_empty() {
        let c = client.clone();
        let rows = manager.db(move |cat| cat.versions_of(&c, &hashes)).await?;
        let c = client.clone();
        let wanted: Vec<(String, u32)> = rows.iter().map(|r| (r.name.clone(), r.version)).collect();
        // Copies set aside, over all of each version's blobs.
        let damaged = manager
            .db(move |cat| {
                wanted
                    .iter()
                    .map(|(name, version)| {
                        let blobs: Vec<_> = cat
                            .blobs_of(&c, name, *version)?
                            .into_iter()
                            .map(|(hash, _)| hash)
                            .collect();
                        Ok(cat.damaged_of(&blobs)?.iter().map(Vec::len).sum::<usize>())
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let entries = manager.entries(&client, rows).await?;
        for (entry, damaged) in entries.into_iter().zip(damaged) {
            pages
                .push(VersionHealth {
                    name: entry.name,
                    version: entry.version,
                    live: entry.replicas,
                    damaged: damaged as u32,
                })
                .await?;
        }
    }
    Ok(pages.finish().await?)
}
