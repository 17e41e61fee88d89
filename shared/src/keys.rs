//! Key material: the cluster secret, the keys derived from it (the links'
//! certificate authority among them), and the keyed BLAKE3 MACs and nonces
//! tickets are made of.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::link::{Authority, Credential, LinkError, NodeLinks, write_private};

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nonce(#[serde(with = "serde_bytes")] pub [u8; 32]);

/// A keyed BLAKE3 hash; compared in constant time.
#[derive(Clone, Copy, Eq, Serialize, Deserialize)]
pub struct Mac(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl PartialEq for Mac {
    fn eq(&self, other: &Self) -> bool {
        blake3::Hash::from(self.0) == blake3::Hash::from(other.0)
    }
}

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonce(..)")
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mac(..)")
    }
}

impl Nonce {
    pub fn fresh() -> Self {
        Self(random_bytes())
    }
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // The OS random source failing is unrecoverable and vanishingly rare;
    // falling back to a time-based value would silently weaken every nonce.
    if let Err(e) = getrandom::fill(&mut bytes) {
        panic!("the operating system's random source failed: {e}");
    }
    bytes
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no cluster secret at {path}: copy the secret file from the manager's machine \
         (its default place is ~/.config/arca/secret) or pass --secret-file"
    )]
    Missing { path: PathBuf },
    #[error(
        "cluster secret at {path} is not 64 hex characters; make one with `daemon init-secret PATH`"
    )]
    Malformed { path: PathBuf },
    #[error("cannot use cluster secret at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a client credential, not the cluster secret: only the cluster's \
         daemons hold the secret, and a client cannot run as one"
    )]
    IsCredential { path: PathBuf },
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// The keys every cluster member derives from the shared secret file.
#[derive(Clone)]
pub struct ClusterKey {
    tickets: [u8; 32],
    snapshots: [u8; 32],
    authority: [u8; 32],
    node: [u8; 32],
    links: NodeLinks,
}

impl ClusterKey {
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, LinkError> {
        let authority = blake3::derive_key("arca 2026 link authority v1", secret);
        let node = blake3::derive_key("arca 2026 link node v1", secret);
        Ok(Self {
            tickets: blake3::derive_key("arca 2026 tickets v1", secret),
            snapshots: blake3::derive_key("arca 2026 catalog snapshots v1", secret),
            links: Authority::derive(&authority, &node)?.node_links()?,
            authority,
            node,
        })
    }

    /// How this daemon opens and accepts links.
    pub fn links(&self) -> &NodeLinks {
        &self.links
    }

    /// The authority that issues client credentials.
    pub fn authority(&self) -> Result<Authority, LinkError> {
        Authority::derive(&self.authority, &self.node)
    }

    /// A key from a fresh random secret (for demos and tests).
    pub fn random() -> Result<(Self, [u8; 32]), LinkError> {
        let secret = random_bytes();
        Ok((Self::from_secret(&secret)?, secret))
    }

    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SecretError::Missing {
                    path: path.to_owned(),
                }
            } else {
                SecretError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        if Credential::from_pem(&text).is_ok() {
            return Err(SecretError::IsCredential {
                path: path.to_owned(),
            });
        }
        let secret = blake3::Hash::from_hex(text.trim()).map_err(|_| SecretError::Malformed {
            path: path.to_owned(),
        })?;
        Ok(Self::from_secret(secret.as_bytes())?)
    }

    /// Loads the secret at `path`, creating a fresh one there first if none exists.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretError> {
        match Self::load(path) {
            Err(SecretError::Missing { .. }) => {
                write_new_secret(path)?;
                Ok((Self::load(path)?, true))
            }
            other => other.map(|key| (key, false)),
        }
    }

    pub(crate) fn ticket_mac(&self, parts: &[&[u8]]) -> Mac {
        mac_with(&self.tickets, parts)
    }

    /// The key catalog snapshots are sealed with (see [`crate::sealed`]).
    pub fn snapshot_key(&self) -> &[u8; 32] {
        &self.snapshots
    }
}

fn mac_with(key: &[u8; 32], parts: &[&[u8]]) -> Mac {
    let mut hasher = blake3::Hasher::new_keyed(key);
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    Mac(*hasher.finalize().as_bytes())
}

/// Writes a fresh random secret to `path` (mode 0600), refusing to overwrite one.
pub fn write_new_secret(path: &Path) -> Result<(), SecretError> {
    write_secret(path, &random_bytes())
}

/// Writes `secret` to `path` as `daemon init-secret` does (mode 0600),
/// refusing to overwrite a file there.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), SecretError> {
    let hex = blake3::Hash::from(*secret).to_hex();
    write_private(path, format!("{hex}\n").as_bytes()).map_err(|source| SecretError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Where the secret lives when no flag or variable names it:
/// `$XDG_CONFIG_HOME/arca/secret`, else `~/.config/arca/secret`.
pub fn default_secret_path() -> PathBuf {
    let config = dirs::config_dir().unwrap_or_else(|| PathBuf::from("."));
    config.join("arca").join("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_round_trip_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("arca-secret-{}", std::process::id()));
        let path = dir.join("secret");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            ClusterKey::load(&path),
            Err(SecretError::Missing { .. })
        ));
        let (_, created) = ClusterKey::load_or_create(&path).unwrap();
        assert!(created);
        let (_, created) = ClusterKey::load_or_create(&path).unwrap();
        assert!(!created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "junk").unwrap();
        assert!(matches!(
            ClusterKey::load(&path),
            Err(SecretError::Malformed { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
