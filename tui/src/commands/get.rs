//! `arca get NAME [--version N] [-o PATH] [--force]`: restore one file, or
//! every file under a folder name ending in '/'.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arca_shared::name;
use tokio::sync::watch;

use crate::client::{ClientError, Restored, Session, Settings, TransferProgress};
use crate::{format, names, out};

pub async fn run(
    settings: Settings,
    name: &str,
    version: Option<u32>,
    output: Option<PathBuf>,
    force: bool,
) -> Result<ExitCode, ClientError> {
    let files = settings.files.clone();
    let mut session = Session::connect(settings).await?;
    if name.ends_with('/') {
        name::validate_prefix(name)
            .map_err(|e| ClientError::Local(format!("bad name {name:?}: {e}")))?;
        let root = output.unwrap_or(files);
        let entries = session.list(Some(name)).await?;
        if entries.is_empty() {
            return Err(ClientError::Refused(format!("no backups under {name}")));
        }
        let mut failed = 0;
        for entry in entries {
            // The manager's answer is checked, not trusted: it must stay
            // under the folder asked for, and inside `root`.
            let dest = match entry.name.strip_prefix(name) {
                Some(_) => names::restore_path(&root, &entry.name).map_err(ClientError::Local),
                None => Err(ClientError::Refused(format!(
                    "the manager listed {:?}, which is not under {name}",
                    entry.name
                ))),
            };
            let restored = match dest {
                Ok(dest) => restore(&mut session, &entry.name, None, &dest, force).await,
                Err(e) => Err(e),
            };
            if let Err(e) = restored {
                failed += 1;
                out::error(format_args!(
                    "failed     {}: {e}",
                    entry.name.escape_debug()
                ));
            }
        }
        return Ok(if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let dest = match output {
        Some(out) if out.is_dir() => out.join(name.rsplit('/').next().unwrap_or(name)),
        Some(out) => out,
        None => names::restore_path(&files, name).map_err(ClientError::Local)?,
    };
    restore(&mut session, name, version, &dest, force).await?;
    Ok(ExitCode::SUCCESS)
}

async fn restore(
    session: &mut Session,
    name: &str,
    version: Option<u32>,
    dest: &Path,
    force: bool,
) -> Result<(), ClientError> {
    let (progress, _updates) = watch::channel(TransferProgress::default());
    match session.get(name, version, dest, force, &progress).await? {
        Restored::Written { version, size } => out::line(format_args!(
            "restored   {name}  v{version}  {}  -> {}",
            format::bytes(size),
            dest.display()
        )),
        Restored::AlreadyThere { version } => {
            out::line(format_args!(
                "current    {name}  v{version}  {} already matches",
                dest.display()
            ));
        }
    }
    Ok(())
}
