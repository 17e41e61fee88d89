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
        let rows = manager.db(move |c| c.versions_of(&client, &hashes)).await?;
        let hashes: Vec<_> = rows.iter().map(|r| r.hash).collect();
        let damaged = manager.db(move |c| c.damaged_of(&hashes)).await?;
        let entries = manager.entries(rows).await?;
        for (entry, damaged) in entries.into_iter().zip(damaged) {
            pages
                .push(VersionHealth {
                    name: entry.name,
                    version: entry.version,
                    live: entry.replicas,
                    damaged: damaged.len() as u32,
                })
                .await?;
        }
    }
    Ok(pages.finish().await?)
}
