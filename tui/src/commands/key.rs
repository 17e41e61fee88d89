//! `arca key list|add|remove|passwd`: the passphrases that open this
//! client's master key. Adding or changing one re-wraps the key only; no
//! backed-up byte is sealed again.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::KeyCommand;
use crate::client::{ClientError, Passphrase, Session, Settings};
use crate::{format, out};

pub async fn run(settings: Settings, command: KeyCommand) -> Result<ExitCode, ClientError> {
    let mut session = Session::connect(settings).await?;
    match command {
        KeyCommand::List => {
            let keys = session.keys().await?;
            if keys.is_empty() {
                out::line("no key yet: the first backup makes one");
            }
            for key in keys {
                out::line(format_args!(
                    "{}  added {}",
                    key.id(),
                    format::time(key.created_ms)
                ));
            }
        }
        KeyCommand::Add { new_password_file } => {
            let id = session
                .add_passphrase(new(new_password_file.as_deref())?)
                .await?;
            out::line(format_args!("added key {id}"));
        }
        KeyCommand::Remove { id } => {
            // Only someone who can open the key may take a way in away.
            session.opened_by().await?;
            session.remove_key(&id).await?;
            out::line(format_args!("removed key {id}"));
        }
        KeyCommand::Passwd { new_password_file } => {
            // The new one first: the key is never without a way in.
            let old = session.opened_by().await?;
            let id = session
                .add_passphrase(new(new_password_file.as_deref())?)
                .await?;
            session.remove_key(&old).await?;
            out::line(format_args!("key {old} replaced by key {id}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The new passphrase: from its file, else asked on the terminal.
fn new(file: Option<&Path>) -> Result<Passphrase, ClientError> {
    match file {
        Some(file) => Passphrase::find(Some(file)),
        None => match Passphrase::find(None)? {
            Passphrase::Given(_) => Err(ClientError::Local(
                "give the new passphrase with --new-password-file FILE (ARCA_PASSWORD is the \
                 current one)"
                    .into(),
            )),
            other => Ok(other),
        },
    }
}
