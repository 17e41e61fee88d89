//! `List`: the newest version of every name (under a prefix ending in '/'),
//! or every version of one name. `Browse`: a window of one folder's
//! subfolders and newest versions, as a viewer scrolls. `Lookup`: the
//! newest version of a few names. Sent in pages, then `End`.

use std::collections::HashMap;

use arca_shared::connection::PageWriter;
use arca_shared::limits::{BROWSE_MAX, LOOKUP_MAX, NAME_MAX};
use arca_shared::name;
use arca_shared::protocol::{Child, FileEntry, FolderEntry};
use arca_shared::sync::LockAnyway;
use arca_shared::{Connection, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::{ChildRow, FileRow, Manager, refuse};

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
    folder: String,
    filter: String,
    offset: u64,
    limit: u32,
) -> Result<(), Error> {
    check_client(&client)?;
    if !folder.is_empty() {
        name::validate_prefix(&folder)
            .or_else(|e| refuse(format!("bad folder {folder:?}: {e}")))?;
        if !folder.ends_with('/') {
            return refuse(format!(
                "a folder name ends in '/', and {folder:?} does not"
            ));
        }
    }
    if filter.len() > NAME_MAX {
        return refuse(format!("a filter is at most {NAME_MAX} bytes"));
    }
    let c = client.clone();
    let (total, kids, rows) = manager
        .db(move |cat| {
            let (total, kids) =
                cat.children(&c, &folder, &filter, offset, limit.min(BROWSE_MAX))?;
            let files: Vec<String> = kids
                .iter()
                .filter_map(|kid| match kid {
                    ChildRow::File(name) => Some(name.clone()),
                    ChildRow::Folder { .. } => None,
                })
                .collect();
            let rows = cat.newest_of(&c, &files)?;
            Ok((total, kids, rows))
        })
        .await?;
    let mut entries: HashMap<String, FileEntry> = manager
        .entries(&client, rows)
        .await?
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect();
    let short = short_of_copies(manager, &client, &kids).await?;
    conn.send(&Message::Browsed { total }).await?;
    let mut pages = PageWriter::new(conn, PAGE, |children| Message::Children { children });
    for kid in kids {
        let child = match kid {
            ChildRow::Folder {
                name,
                files,
                size,
                newest_ms,
            } => Child::Folder(FolderEntry {
                short: short.iter().filter(|n| n.starts_with(&name)).count() as u64,
                name,
                files,
                size,
                newest_ms,
            }),
            // Read under the one catalog lock with the window: always there.
            ChildRow::File(name) => match entries.remove(&name) {
                Some(entry) => Child::File(entry),
                None => continue,
            },
        };
        pages.push(child).await?;
    }
    Ok(pages.finish().await?)
}

/// The names of this client's versions short of copies, as the last
/// healing pass counted them, when some of these children are folders.
async fn short_of_copies(
    manager: &Manager,
    client: &str,
    kids: &[ChildRow],
) -> Result<Vec<String>, Error> {
    let hashes = manager.at_risk.lock_anyway().clone();
    let folders = kids.iter().any(|k| matches!(k, ChildRow::Folder { .. }));
    if hashes.is_empty() || !folders {
        return Ok(Vec::new());
    }
    let c = client.to_owned();
    let rows = manager.db(move |cat| cat.versions_of(&c, &hashes)).await?;
    Ok(rows.into_iter().map(|r| r.name).collect())
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
