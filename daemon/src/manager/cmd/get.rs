//! `GetBegin`: names the best live holder of a version for a restore, by the
//! same score as uploads, skipping servers the client already gave up on.

use arca_shared::choice;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::types::ServerId;
use arca_shared::{Connection, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::membership::Members;
use crate::manager::{FileRow, Manager, refuse};

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: String,
    version: Option<u32>,
    exclude: Vec<ServerId>,
) -> Result<(), Error> {
    check_client(&client)?;
    check_name(&name)?;
    let (c, n) = (client.clone(), name.clone());
    let Some(row) = manager.db(move |cat| cat.find(&c, &n, version)).await? else {
        return match version {
            Some(v) => refuse(format!(
                "{name} has no version {v}; `arca ls {name}` lists them"
            )),
            None => refuse(format!("no backup named {name}; `arca ls` lists them")),
        };
    };
    let hash = row.hash;
    let holders = manager.db(move |c| c.holders(&hash)).await?;
    let best = |members: &Members| {
        let candidates: Vec<_> = members
            .candidates(&exclude)
            .into_iter()
            .filter(|c| holders.contains(&c.id))
            .collect();
        choice::rank(&candidates, 0, manager.config.weights)
            .first()
            .and_then(|s| members.get(s.id).map(|m| (s.id, m.addr.clone())))
            .ok_or(())
    };
    let holder_awaited = |members: &Members| holders.iter().any(|id| members.awaited(*id));
    let Ok((server, addr)) = manager.once_back(best, holder_awaited).await else {
        return refuse(unavailable(manager, &row, holders.len()).await?);
    };
    let ticket = Ticket::issue(
        &manager.config.key,
        TicketKind::Fetch,
        manager.next_op(),
        server,
        row.hash,
        row.size,
    );
    Ok(conn
        .send(&Message::GetTicket {
            holder: addr,
            ticket,
            version: row.version,
        })
        .await?)
}

/// Why no copy of a version can be read: its copies are on servers that are
/// down, or every copy failed its hash (then they are kept, set aside).
async fn unavailable(manager: &Manager, row: &FileRow, holders: usize) -> Result<String, Error> {
    let hash = row.hash;
    let damaged = manager.db(move |c| c.damaged_of(&[hash])).await?;
    let damaged = damaged.first().map_or(0, Vec::len);
    let (name, version) = (&row.name, row.version);
    Ok(if holders == 0 && damaged > 0 {
        format!(
            "{name} version {version} is damaged: every copy failed its hash check, so it \
             cannot be restored intact; the {damaged} damaged copies are kept aside on their \
             servers. Back the file up again if you still have it."
        )
    } else if holders == 0 {
        format!(
            "{name} version {version} is lost: no server holds a copy. Back the file up again \
             if you still have it."
        )
    } else {
        format!(
            "no live server holds {name} version {version}: its {holders} copies are on \
             servers that are down or failed; start them again"
        )
    })
}
