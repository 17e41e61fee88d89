//! `GetBegin`: names the best live holder of a version for a restore, by the
//! same score as uploads, skipping servers the client already gave up on.

use arca_shared::choice;
use arca_shared::protocol::ServerId;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::{Connection, FrameError, Message};

use super::{check_client, check_name};
use crate::manager::{Manager, refuse};

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: String,
    version: Option<u32>,
    exclude: Vec<ServerId>,
) -> Result<(), FrameError> {
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
    let best = {
        let members = manager.members();
        let candidates: Vec<_> = members
            .candidates(&exclude)
            .into_iter()
            .filter(|c| holders.contains(&c.id))
            .collect();
        choice::rank(&candidates, 0, manager.config.weights)
            .first()
            .and_then(|s| members.get(s.id).map(|m| (s.id, m.addr.clone())))
    };
    let Some((server, addr)) = best else {
        return refuse(format!(
            "no live server holds {name} version {}: its {} copies are on servers that are down or failed",
            row.version,
            holders.len()
        ));
    };
    let ticket = Ticket::issue(
        &manager.config.key,
        TicketKind::Fetch,
        manager.next_op(),
        server,
        row.hash,
        row.size,
    );
    conn.send(&Message::GetTicket {
        holder: addr,
        ticket,
        version: row.version,
    })
    .await
}
