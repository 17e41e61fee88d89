//! `HaveChunks`: which of these chunks the asking client's namespace keeps
//! on enough live servers, so a backup sends only the rest. Another
//! namespace's chunks are never counted: dedup does not reach across
//! clients. A chunk short of live copies is reported missing, so the client
//! that has it sends it again and heals it.

use arca_shared::limits::LIST_MAX;
use arca_shared::vault::ChunkId;
use arca_shared::{Connection, Message};

use super::check_client;
use crate::error::Error;
use crate::manager::{Manager, refuse};

/// How often a wait for returning servers looks again.
const REJOIN_POLL: std::time::Duration = std::time::Duration::from_millis(50);

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    ids: Vec<ChunkId>,
) -> Result<(), Error> {
    check_client(&client)?;
    if ids.len() > LIST_MAX {
        return refuse(format!("ask about at most {LIST_MAX} chunks at once"));
    }
    let kept = manager.db(move |c| c.chunks_of(&client, &ids)).await?;
    // Right after a restart the servers have not registered again yet:
    // wait for the holders (`awaited` ends with the manager's grace for
    // returning servers), or every client sends again what they keep.
    while kept
        .iter()
        .flatten()
        .flat_map(|(_, holders)| holders)
        .any(|id| manager.members().awaited(*id))
    {
        tokio::time::sleep(REJOIN_POLL).await;
    }
    let have = {
        let members = manager.members();
        let wanted = manager.config.replicas as usize;
        kept.into_iter()
            .map(|kept| kept.is_some_and(|(_, holders)| members.live(&holders) >= wanted))
            .collect()
    };
    Ok(conn.send(&Message::Have { have }).await?)
}
