//! `arca get NAME [--version N] [-o PATH] [--force]`: restore one file, or
//! every file under a folder name ending in '/'.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
        let root = output.unwrap_or(files);
        return super::each_under(&mut session, name, async |session, entry| {
            let dest = names::restore_path(&root, &entry.name).map_err(ClientError::Local)?;
            restore(session, &entry.name, None, &dest, force).await
        })
        .await;
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
