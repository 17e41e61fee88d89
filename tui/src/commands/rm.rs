//! `arca rm NAME [--version N | --all]`: remove versions of one file, or,
//! with `--all`, every file under a folder name ending in '/'.

use std::process::ExitCode;

use crate::client::{ClientError, Session, Settings};
use crate::out;

pub async fn run(
    settings: Settings,
    name: &str,
    version: Option<u32>,
    all: bool,
) -> Result<ExitCode, ClientError> {
    if name.ends_with('/') && !all {
        // A version is one file's: for a folder, only all of it makes sense.
        return Err(ClientError::Local(format!(
            "{name} is a folder; say --all to remove every version of every file under it"
        )));
    }
    let mut session = Session::connect(settings).await?;
    if name.ends_with('/') {
        return super::each_under(&mut session, name, async |session, entry| {
            let removed = session.remove(&entry.name, None).await?;
            print_removed(&entry.name, &removed);
            Ok(())
        })
        .await;
    }
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

fn print_removed(name: &str, versions: &[u32]) {
    let list: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
    out::line(format_args!("removed {name} {}", list.join(", ")));
}
