//! This client's master key: opened with its passphrase from the wrappings
//! the manager keeps (made on the first backup), and managed by `arca key`.
//! Argon2 runs off the async threads, once per run however many sessions
//! share the settings.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use arca_shared::Message;
use arca_shared::reply::Done;
use arca_shared::sync::LockAnyway;
use arca_shared::vault::{ChunkKeys, MasterKey, VaultError, WrappedKey};

use super::{ClientError, Session, refusal};

/// Where the passphrase that opens this client's master key comes from.
#[derive(Clone)]
pub enum Passphrase {
    /// From a file, the environment, or the demo.
    Given(Arc<str>),
    /// Asked on the terminal when first needed.
    Prompt,
    /// None given and no terminal to ask on.
    Missing,
    /// Typed into the dashboard, which cannot prompt on its terminal
    /// (see [`Vault::supply`]).
    Typed,
}

impl Passphrase {
    /// From `file` (`--password-file` / `ARCA_PASSWORD_FILE`), else
    /// `ARCA_PASSWORD`, else a prompt if there is a terminal.
    pub fn find(file: Option<&Path>) -> Result<Self, ClientError> {
        if let Some(file) = file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                ClientError::local(
                    format!("cannot read the passphrase file {}", file.display()),
                    e,
                )
            })?;
            return Self::given(text.trim_end_matches(['\n', '\r']));
        }
        if let Ok(text) = std::env::var("ARCA_PASSWORD") {
            return Self::given(&text);
        }
        Ok(if std::io::stdin().is_terminal() {
            Passphrase::Prompt
        } else {
            Passphrase::Missing
        })
    }

    pub fn given(text: &str) -> Result<Self, ClientError> {
        if text.is_empty() {
            return Err(ClientError::Local("the passphrase is empty".into()));
        }
        Ok(Passphrase::Given(text.into()))
    }

    /// The passphrase, asking for it on the terminal if need be.
    async fn get(&self, client: &str, first: bool) -> Result<Arc<str>, ClientError> {
        match self {
            Passphrase::Given(text) => Ok(text.clone()),
            Passphrase::Typed => Err(ClientError::Local(
                "no passphrase yet: press p and type this client's passphrase".into(),
            )),
            Passphrase::Missing => Err(ClientError::Local(
                "no passphrase: backups are encrypted with a key only your passphrase opens; \
                 give it with --password-file FILE, ARCA_PASSWORD_FILE or ARCA_PASSWORD"
                    .into(),
            )),
            Passphrase::Prompt => {
                let prompt = if first {
                    format!(
                        "new passphrase for client {client} (keep it: nothing restores without it): "
                    )
                } else {
                    format!("passphrase for client {client}: ")
                };
                let asked = tokio::task::spawn_blocking(move || {
                    let asked = rpassword::prompt_password(prompt)?;
                    // A new passphrase mistyped once would lose everything.
                    if first && rpassword::prompt_password("repeat it: ")? != asked {
                        return Ok(None);
                    }
                    Ok::<_, std::io::Error>(Some(asked))
                })
                .await
                .map_err(|e| ClientError::local("the prompt failed", e))?
                .map_err(|e| ClientError::local("cannot read the passphrase", e))?;
                match asked {
                    Some(text) if !text.is_empty() => Ok(text.into()),
                    Some(_) => Err(ClientError::Local("the passphrase is empty".into())),
                    None => Err(ClientError::Local("the two passphrases differ".into())),
                }
            }
        }
    }
}

/// How this client's master key is opened, and once opened, its keys.
pub struct Vault {
    pub passphrase: Passphrase,
    /// The passphrase typed into the dashboard, the latest try.
    typed: std::sync::Mutex<Option<Arc<str>>>,
    keys: tokio::sync::OnceCell<ChunkKeys>,
}

impl Vault {
    pub fn new(passphrase: Passphrase) -> Arc<Self> {
        Arc::new(Self {
            passphrase,
            typed: std::sync::Mutex::new(None),
            keys: tokio::sync::OnceCell::new(),
        })
    }

    /// Takes the passphrase typed into the dashboard (until it opens the key).
    pub fn supply(&self, text: &str) {
        *self.typed.lock_anyway() = Some(text.into());
    }

    /// The passphrase: as given, as typed, or asked on the terminal.
    async fn passphrase(&self, client: &str, first: bool) -> Result<Arc<str>, ClientError> {
        let typed = self.typed.lock_anyway().clone();
        match (&self.passphrase, typed) {
            (Passphrase::Typed, Some(typed)) => Ok(typed),
            (passphrase, _) => passphrase.get(client, first).await,
        }
    }

    /// The keys, if a session opened them already.
    pub fn unlocked(&self) -> Option<ChunkKeys> {
        self.keys.get().cloned()
    }
}

/// Runs Argon2 (and the seal around it) off the async threads.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| ClientError::local("the key task failed", e))?
        .map_err(|e| ClientError::Local(e.to_string()))
}

impl Session {
    /// The keys this client's chunks are named and sealed with. With
    /// `create`, a client with no key yet gets one (its first backup).
    pub async fn chunk_keys(&mut self, create: bool) -> Result<ChunkKeys, ClientError> {
        // One unlock for all sessions sharing these settings.
        let vault = self.settings.vault.clone();
        let keys = vault
            .keys
            .get_or_try_init(|| async {
                self.master_key(create)
                    .await?
                    .chunk_keys()
                    .map_err(|e| ClientError::Local(e.to_string()))
            })
            .await?;
        Ok(keys.clone())
    }

    async fn master_key(&mut self, create: bool) -> Result<MasterKey, ClientError> {
        let client = self.settings.client.clone();
        let wrapped = self.keys().await?;
        if wrapped.is_empty() {
            if !create {
                return Err(ClientError::Refused(format!(
                    "client {client} has no backups (and no key) yet"
                )));
            }
            let passphrase = self.settings.vault.passphrase(&client, true).await?;
            let master = MasterKey::fresh().map_err(|e| ClientError::Local(e.to_string()))?;
            let (m, c) = (master.clone(), client.clone());
            let key = blocking(move || m.wrap(&c, passphrase.as_bytes())).await?;
            match self.add_key(key, true).await {
                Ok(()) => return Ok(master),
                // Another backup of this client made the first key meanwhile.
                Err(ClientError::Refused(_)) => return Box::pin(self.master_key(false)).await,
                Err(e) => return Err(e),
            }
        }
        let passphrase = self.settings.vault.passphrase(&client, false).await?;
        Ok(open(&client, passphrase, wrapped).await?.0)
    }

    /// The id of the key this client's passphrase opens.
    pub async fn opened_by(&mut self) -> Result<String, ClientError> {
        let client = self.settings.client.clone();
        let wrapped = self.keys().await?;
        let passphrase = self.settings.vault.passphrase(&client, false).await?;
        Ok(open(&client, passphrase, wrapped).await?.1)
    }

    /// This client's wrapped master keys.
    pub async fn keys(&mut self) -> Result<Vec<WrappedKey>, ClientError> {
        let client = self.settings.client.clone();
        self.conn
            .request(&Message::Keys { client })
            .await
            .map_err(refusal)
    }

    pub async fn add_key(&mut self, key: WrappedKey, first: bool) -> Result<(), ClientError> {
        let client = self.settings.client.clone();
        let Done = self
            .conn
            .request(&Message::AddKey { client, key, first })
            .await
            .map_err(refusal)?;
        Ok(())
    }

    pub async fn remove_key(&mut self, id: &str) -> Result<(), ClientError> {
        let client = self.settings.client.clone();
        let id = id.to_owned();
        let Done = self
            .conn
            .request(&Message::RemoveKey { client, id })
            .await
            .map_err(refusal)?;
        Ok(())
    }

    /// Wraps this client's master key under one more passphrase; returns
    /// the new key's id.
    pub async fn add_passphrase(&mut self, new: Passphrase) -> Result<String, ClientError> {
        let client = self.settings.client.clone();
        let wrapped = self.keys().await?;
        if wrapped.is_empty() {
            return Err(ClientError::Refused(format!(
                "client {client} has no key yet: its first backup makes one"
            )));
        }
        let passphrase = self.settings.vault.passphrase(&client, false).await?;
        let (master, _) = open(&client, passphrase, wrapped).await?;
        let new = new.get(&client, true).await?;
        let c = client.clone();
        let key = blocking(move || master.wrap(&c, new.as_bytes())).await?;
        let id = key.id();
        self.add_key(key, false).await?;
        Ok(id)
    }
}

/// The master key from the first wrapping `passphrase` opens, and its id.
async fn open(
    client: &str,
    passphrase: Arc<str>,
    wrapped: Vec<WrappedKey>,
) -> Result<(MasterKey, String), ClientError> {
    let client = client.to_owned();
    blocking(move || {
        wrapped
            .iter()
            .find_map(|key| {
                let master = key.unwrap(&client, passphrase.as_bytes()).ok()?;
                Some((master, key.id()))
            })
            .ok_or(VaultError::WrongPassphrase)
    })
    .await
}
