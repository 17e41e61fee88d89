//! `arca rm NAME [--version N | --all]`: remove versions of one file, or,
//! with `--all`, every file under a folder name ending in '/'.

use std::process::ExitCode;

use arca_shared::name;

use crate::client::{ClientError, Session, Settings};
use crate::out;

pub async fn run(
    settings: Settings,
    name: &str,
    version: Option<u32>,
    all: bool,
) -> Result<ExitCode, ClientError> {
    if name.ends_with('/') {
        name::validate_prefix(name)
            .map_err(|e| ClientError::Local(format!("bad name {name:?}: {e}")))?;
        if !all {
            // A version is one file's: for a folder, only all of it makes sense.
            return Err(ClientError::Local(format!(
                "{name} is a folder; say --all to remove every version of every file under it"
            )));
        }
        return remove_folder(Session::connect(settings).await?, name).await;
    }
    let mut session = Session::connect(settings).await?;
    if version.is_none() && !all {
        // Removing history is not undoable: with several versions, ask which.
        let versions = session.list(Some(name)).await?;
        if versions.len() > 1 {
            return Err(ClientError::Local(format!(
                "{name} has {} versions; say --version N or --all",
                versions.len()
            )));
        }
    }
    let removed = session.remove(name, version).await?;
    print_removed(name, &removed);
    Ok(ExitCode::SUCCESS)
}

/// Removes every version of every file under `prefix`, going on past a
/// file that fails.
async fn remove_folder(mut session: Session, prefix: &str) -> Result<ExitCode, ClientError> {
    let entries = session.list(Some(prefix)).await?;
    if entries.is_empty() {
        return Err(ClientError::Refused(format!("no backups under {prefix}")));
    }
    let mut failed = 0;
    for entry in entries {
        match session.remove(&entry.name, None).await {
            Ok(removed) => print_removed(&entry.name, &removed),
            Err(e) => {
                failed += 1;
                out::error(format_args!("failed     {}: {e}", entry.name));
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_removed(name: &str, versions: &[u32]) {
    let list: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
    out::line(format_args!("removed {name} {}", list.join(", ")));
}
