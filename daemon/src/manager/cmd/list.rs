//! `List`: the newest version of every name (under a prefix ending in '/'),
//! or every version of one name. Sent in pages, then `End`.

use arca_shared::connection::PageWriter;
use arca_shared::{Connection, Message};

use super::{check_client, check_name};
use crate::error::Error;
use crate::manager::{FileRow, Manager};

/// Entries per page: a page of the longest names stays under the control cap.
const PAGE: usize = 32;

pub(crate) async fn run(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    name: Option<String>,
) -> Result<(), Error> {
    let mut pages = PageWriter::new(conn, PAGE, |files| Message::Listing { files });
    let rows = rows(manager, client.clone(), name).await?;
    for entry in manager.entries(&client, rows).await? {
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
