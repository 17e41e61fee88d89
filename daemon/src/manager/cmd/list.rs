//! `List`: the newest version of every name (under a prefix ending in '/'),
//! or every version of one name. `Browse`: a window of the newest versions,
//! as a viewer scrolls. `Lookup`: the newest version of a few names. Sent
//! in pages, then `End`.

use arca_shared::connection::PageWriter;
use arca_shared::limits::{BROWSE_MAX, LOOKUP_MAX};
use arca_shared::{Connection, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::{FileRow, Manager, refuse};

/// Entries per page: a page of the longest names stays under the control cap.
const PAGE: usize = 32;

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: Option<String>,
) -> Result<(), Error> {
    let rows = rows(manager, client.clone(), name).await?;
    send(manager, conn, &client, rows).await
}

pub(crate) async fn browse(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    offset: u64,
    limit: u32,
) -> Result<(), Error> {
    check_client(&client)?;
    let c = client.clone();
    let (total, rows) = manager
        .db(move |cat| {
            let window = cat.latest_window(&c, "", offset, limit.min(BROWSE_MAX))?;
            Ok((cat.name_count(&c)?, window))
        })
        .await?;
    conn.send(&Message::Browsed { total }).await?;
    send(manager, conn, &client, rows).await
}

pub(crate) async fn lookup(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    names: Vec<String>,
) -> Result<(), Error> {
    check_client(&client)?;
    if names.len() > LOOKUP_MAX {
        return refuse(format!(
            "a lookup asks about at most {LOOKUP_MAX} names, not {}",
            names.len()
        ));
    }
    for name in &names {
        check_name(name)?;
    }
    let c = client.clone();
    let rows = manager.db(move |cat| cat.newest_of(&c, &names)).await?;
    send(manager, conn, &client, rows).await
}

/// Sends rows as entries with their live copies, in pages, then `End`.
async fn send(
    manager: &Manager,
    conn: &mut Connection,
    client: &str,
    rows: Vec<FileRow>,
) -> Result<(), Error> {
    let mut pages = PageWriter::new(conn, PAGE, |files| Message::Listing { files });
    for entry in manager.entries(client, rows).await? {
        pages.push(entry).await?;
    }
    Ok(pages.finish().await?)
}

/// The catalog rows a name selects: every version of a name; the newest
/// version of every name under a prefix ending in '/'; or, with no name, the
/// newest version of everything.
pub(crate) async fn rows(
    manager: &Manager,
    client: String,
    name: Option<String>,
) -> Result<Vec<FileRow>, Error> {
    check_client(&client)?;
    match name {
        Some(name) if !name.ends_with('/') => {
            check_name(&name)?;
            manager.db(move |c| c.versions(&client, &name)).await
        }
        prefix => {
            if let Some(prefix) = &prefix {
                check_name(prefix.trim_end_matches('/'))?;
            }
            let prefix = prefix.unwrap_or_default();
            manager.db(move |c| c.latest(&client, &prefix)).await
        }
    }
}
