//! `Keys`, `AddKey`, `RemoveKey`: a namespace's master key, kept only
//! wrapped under passphrases the manager never sees.

use arca_shared::Connection;
use arca_shared::Message;
use arca_shared::vault::WrappedKey;

use super::check_client;
use crate::error::Error;
use crate::manager::{Manager, refuse};

/// Most wrappings one namespace keeps: each costs a derivation to try.
const KEYS_MAX: usize = 16;

pub(crate) async fn list(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
) -> Result<(), Error> {
    check_client(&client)?;
    let keys = manager.db(move |c| c.keys(&client)).await?;
    Ok(conn.send(&Message::KeyList { keys }).await?)
}

pub(crate) async fn add(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    key: WrappedKey,
    first: bool,
) -> Result<(), Error> {
    check_client(&client)?;
    manager.refuse_if_stale()?;
    let c = client.clone();
    if manager.db(move |cat| cat.keys(&c)).await?.len() >= KEYS_MAX {
        return refuse(format!(
            "{client} already has {KEYS_MAX} keys; remove one first (`arca key remove`)"
        ));
    }
    if !manager.db(move |c| c.add_key(&client, &key, first)).await? {
        return refuse("this client got its first key meanwhile; use that one");
    }
    Ok(conn.send(&Message::Ok).await?)
}

pub(crate) async fn remove(
    manager: &Manager,
    conn: &mut Connection,
    client: String,
    id: String,
) -> Result<(), Error> {
    check_client(&client)?;
    manager.refuse_if_stale()?;
    manager
        .db(move |c| c.remove_key(&client, &id))
        .await?
        .or_else(refuse)?;
    Ok(conn.send(&Message::Ok).await?)
}
