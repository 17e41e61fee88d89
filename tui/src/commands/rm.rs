//! `arca rm NAME [--version N | --all]`.

use std::process::ExitCode;

use crate::client::{ClientError, Session, Settings};

pub async fn run(
    settings: Settings,
    name: &str,
    version: Option<u32>,
    all: bool,
) -> Result<ExitCode, ClientError> {
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
    let list: Vec<String> = removed.iter().map(|v| format!("v{v}")).collect();
    println!("removed {name} {}", list.join(", "));
    Ok(ExitCode::SUCCESS)
}
