//! Client credentials, issued and revoked where the manager's data is
//! (`daemon client add|list|revoke`): the credential file goes to the
//! client; the catalog keeps its fingerprint, whose it is and whether it
//! was revoked, which the manager checks on every new link.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arca_shared::keys::ClusterKey;
use arca_shared::link::{Credential, LinkError};
use arca_shared::name::NameError;
use arca_shared::types::now_ms;

use crate::manager::catalog::{self, Catalog, CredentialRow};

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "no manager catalog at {0}: run this where the manager's data is, with its --data \
         (start the manager once to create it)"
    )]
    NoCatalog(PathBuf),
    #[error("cannot use the catalog at {path}: {source}")]
    Catalog {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("bad client name {0:?}: {1}")]
    BadName(String, NameError),
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// How long these commands keep trying a catalog a busy manager holds:
/// SQLite's own wait can be outrun by a manager committing back to back.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `op` on the catalog, again while the manager keeps it busy.
fn on_catalog<T>(
    data: &Path,
    mut op: impl FnMut(&mut Catalog) -> rusqlite::Result<T>,
) -> Result<T, CredentialError> {
    let path = data.join(catalog::FILE);
    if !path.exists() {
        return Err(CredentialError::NoCatalog(path));
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match Catalog::open(&path).and_then(|mut catalog| op(&mut catalog)) {
            Err(e) if busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            done => return done.map_err(|source| CredentialError::Catalog { path, source }),
        }
    }
}

fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Issues a credential for `client`, good for `valid_for`, and records it.
pub fn add(
    data: &Path,
    key: &ClusterKey,
    client: &str,
    valid_for: Duration,
) -> Result<Credential, CredentialError> {
    arca_shared::name::validate(client)
        .map_err(|e| CredentialError::BadName(client.to_owned(), e))?;
    let not_after = SystemTime::now() + valid_for;
    let credential = key.authority()?.issue(client, not_after)?;
    let created_ms = now_ms();
    let row = CredentialRow {
        id: credential.id().0,
        client: client.to_owned(),
        created_ms,
        expires_ms: created_ms.saturating_add(valid_for.as_millis() as u64),
        revoked_ms: None,
    };
    on_catalog(data, |catalog| catalog.add_credential(&row))?;
    Ok(credential)
}

/// Every credential issued, oldest first.
pub fn list(data: &Path) -> Result<Vec<CredentialRow>, CredentialError> {
    on_catalog(data, |catalog| catalog.credentials())
}

/// Revokes every live credential of `client`; returns how many.
pub fn revoke(data: &Path, client: &str) -> Result<usize, CredentialError> {
    on_catalog(data, |catalog| catalog.revoke_credentials(client, now_ms()))
}
