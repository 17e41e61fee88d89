//! The headless subcommands, one file each.

mod get;
mod key;
mod ls;
mod put;
mod rm;
mod status;
mod verify;

use std::process::ExitCode;

use arca_shared::link::{self, Credential};
use arca_shared::protocol::FileEntry;

use crate::cli::{Cli, Command};
use crate::client::{ClientError, Passphrase, Session, Settings, Vault};
use crate::out;

/// Runs the command `cli` names; errors are one line for the user.
pub async fn run(cli: Cli) -> Result<ExitCode, ClientError> {
    let settings = || {
        settings(
            &cli.manager,
            cli.files.clone(),
            cli.client.clone(),
            cli.credential.clone(),
            cli.password_file.as_deref(),
        )
    };
    match cli.command {
        None => dashboard(settings()?).await,
        Some(Command::Demo) => crate::demo::run().await.map(|()| ExitCode::SUCCESS),
        Some(Command::Bench {
            runs,
            big_mib,
            small_files,
            medium_files,
            scale,
            json,
        }) => {
            let options = crate::bench::Options {
                runs,
                big_mib,
                small_files,
                medium_files,
                scale,
                json,
            };
            crate::bench::run(options).await.map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Daemon { args }) => {
            let args = std::iter::once("daemon".into()).chain(args);
            arca_daemon::cli::run(args)
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| ClientError::Local(format!("{e:#}")))
        }
        Some(Command::Put { paths }) => put::run(settings()?, &paths).await,
        Some(Command::Get {
            name,
            version,
            output,
            force,
        }) => get::run(settings()?, &name, version, output, force).await,
        Some(Command::Ls { name, json }) => ls::run(settings()?, name.as_deref(), json).await,
        Some(Command::Rm { name, version, all }) => rm::run(settings()?, &name, version, all).await,
        Some(Command::Status { json }) => status::run(settings()?, json).await,
        Some(Command::Verify { name }) => verify::run(settings()?, name.as_deref()).await,
        Some(Command::Key { command }) => key::run(settings()?, command).await,
    }
}

async fn dashboard(mut settings: Settings) -> Result<ExitCode, ClientError> {
    // Full screen, the passphrase is typed into a popup, not at a prompt.
    if matches!(settings.vault.passphrase, Passphrase::Prompt) {
        settings.vault = Vault::new(Passphrase::Typed);
    }
    crate::dashboard::run(settings, Vec::new(), None)
        .await
        .map_err(|e| ClientError::local("terminal error", e))?;
    Ok(ExitCode::SUCCESS)
}

/// Settings from flags, environment and the credential file.
pub fn settings(
    manager: &str,
    files: std::path::PathBuf,
    client: Option<String>,
    credential_file: Option<std::path::PathBuf>,
    password_file: Option<&std::path::Path>,
) -> Result<Settings, ClientError> {
    let path = credential_file.unwrap_or_else(link::default_credential_path);
    let credential = Credential::load(&path).map_err(|e| ClientError::Local(e.to_string()))?;
    let client = client.unwrap_or_else(|| credential.name.clone());
    arca_shared::name::validate(&client)
        .map_err(|e| ClientError::Local(format!("bad client name {client:?}: {e}")))?;
    let link = credential
        .connector()
        .map_err(|e| ClientError::Local(e.to_string()))?;
    Ok(Settings {
        manager: manager.to_owned(),
        client,
        link,
        files,
        vault: Vault::new(Passphrase::find(password_file)?),
    })
}

/// Runs `each` on the newest version of every file backed up under the
/// folder name `prefix` (ending in '/'), going on past a file that fails;
/// the exit code says whether any did.
async fn each_under(
    session: &mut Session,
    prefix: &str,
    mut each: impl AsyncFnMut(&mut Session, &FileEntry) -> Result<(), ClientError>,
) -> Result<ExitCode, ClientError> {
    let (entries, mut failed) = listed_under(session, prefix).await?;
    for entry in &entries {
        if let Err(e) = each(session, entry).await {
            failed += 1;
            out::error(format_args!(
                "failed     {}: {e}",
                entry.name.escape_debug()
            ));
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// [`Session::list_under`], with a `failed` line for each name the manager
/// listed outside the folder, and how many those were.
async fn listed_under(
    session: &mut Session,
    prefix: &str,
) -> Result<(Vec<FileEntry>, usize), ClientError> {
    let (under, outside) = session.list_under(prefix).await?;
    for entry in &outside {
        out::error(format_args!(
            "failed     {}: the manager listed {:?}, which is not under {prefix}",
            entry.name.escape_debug(),
            entry.name
        ));
    }
    Ok((under, outside.len()))
}
