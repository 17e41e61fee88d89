//! `Remove`: drops one version or all versions of a name from the catalog;
//! the garbage collector then deletes blobs nothing references any more.

use arca_shared::{Connection, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::{Manager, refuse};

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: String,
    version: Option<u32>,
) -> Result<(), Error> {
    check_client(&client)?;
    check_name(&name)?;
    manager.refuse_if_stale()?;
    let (c, n) = (client.clone(), name.clone());
    let versions = manager.db(move |cat| cat.remove(&c, &n, version)).await?;
    if versions.is_empty() {
        return match version {
            Some(v) => refuse(format!("{name} has no version {v}")),
            None => refuse(format!("no backup named {name}")),
        };
    }
    tracing::info!(%client, %name, ?versions, "removed");
    manager.collect.notify_one();
    Ok(conn.send(&Message::Removed { versions }).await?)
}
