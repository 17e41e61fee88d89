//! What every link is encrypted and authenticated with: TLS 1.3 (rustls on
//! aws-lc-rs, the post-quantum hybrid key exchange first), both sides
//! presenting a certificate from the cluster's authority.
//!
//! The daemons derive the authority and one node certificate from the
//! cluster secret, so every daemon holding the secret presents the same
//! node identity and no certificate has to be copied between them. A
//! client holds a credential instead (`daemon client add NAME`): a
//! certificate for that one name, signed by the authority, that the manager
//! knows by its fingerprint and can revoke. A client certificate is only
//! good for the client side of a link, so it can never pass for a daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The name every daemon's certificate is for, and every link checks.
pub const NODE_NAME: &str = "arca-node";

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot make the cluster's certificates: {0}")]
    Certificates(String),
    #[error(
        "no client credential at {path}: ask the cluster's operator for one \
         (`daemon client add NAME` where the manager's data is) and copy it there, \
         or pass --credential"
    )]
    Missing { path: PathBuf },
    #[error("the client credential at {path} is damaged ({why}): ask for a new one")]
    Malformed { path: PathBuf, why: String },
    #[error("cannot use the client credential at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn certificates(e: impl std::fmt::Display) -> LinkError {
    LinkError::Certificates(e.to_string())
}

/// How this side opens links: whom it trusts and what it presents.
#[derive(Clone)]
pub struct Connector {
    pub(crate) config: Arc<ClientConfig>,
}

/// How a daemon accepts links, and tells a daemon from a client.
#[derive(Clone)]
pub struct Acceptor {
    pub(crate) config: Arc<ServerConfig>,
    node: CertificateDer<'static>,
}

/// Who is at the other end of an accepted link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A daemon: it holds the cluster secret.
    Node,
    /// A client, known by its credential's fingerprint (the manager keeps
    /// which name each belongs to, and whether it was revoked).
    Client(CredentialId),
}

/// The BLAKE3 hash of a client certificate, in hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CredentialId(pub String);

impl CredentialId {
    fn of(cert: &[u8]) -> Self {
        Self(blake3::hash(cert).to_hex().to_string())
    }
}

impl Acceptor {
    /// Who presented `certs` (already verified as the authority's).
    pub(crate) fn peer(&self, certs: Option<&[CertificateDer<'_>]>) -> Option<Peer> {
        let leaf = certs?.first()?;
        Some(if leaf.as_ref() == self.node.as_ref() {
            Peer::Node
        } else {
            Peer::Client(CredentialId::of(leaf))
        })
    }
}

/// The cluster's certificate authority, derived from the cluster secret.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    node_key: KeyPair,
}

/// A daemon's two ends of every link.
#[derive(Clone)]
pub struct NodeLinks {
    pub connector: Connector,
    pub acceptor: Acceptor,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// An Ed25519 key from a 32-byte seed: the seed in the PKCS #8 wrapping of
/// RFC 8410, which is fixed bytes before it.
fn key_from_seed(seed: &[u8; 32]) -> Result<KeyPair, LinkError> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let der = [&PREFIX[..], seed].concat();
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &PKCS_ED25519)
        .map_err(certificates)
}

/// Fixed fields, so every daemon derives byte-identical certificates.
fn fixed_params(common_name: &str, serial: u8) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.serial_number = Some(SerialNumber::from_slice(&[serial]));
    params
}

impl Authority {
    /// The authority and node key the secret-derived `seeds` make.
    pub(crate) fn derive(ca_seed: &[u8; 32], node_seed: &[u8; 32]) -> Result<Self, LinkError> {
        let mut params = fixed_params("Arca cluster authority", 1);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = key_from_seed(ca_seed)?;
        let cert = params.self_signed(&key).map_err(certificates)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert: cert.der().clone(),
            node_key: key_from_seed(node_seed)?,
        })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, LinkError> {
        roots(&self.cert)
    }

    /// The links of a daemon: the node certificate, trusted by the authority.
    pub fn node_links(&self) -> Result<NodeLinks, LinkError> {
        let mut params = fixed_params("Arca node", 2);
        params.subject_alt_names = vec![rcgen::SanType::DnsName(
            NODE_NAME.try_into().map_err(certificates)?,
        )];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&self.node_key, &self.issuer)
            .map_err(certificates)?;
        let node = cert.der().clone();
        let chain = vec![node.clone(), self.cert.clone()];
        let key = PrivateKeyDer::Pkcs8(self.node_key.serialize_der().into());
        let roots = self.roots()?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(certificates)?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(certificates)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(certificates)?;
        Ok(NodeLinks {
            connector: connector(roots, chain, key)?,
            acceptor: Acceptor {
                config: Arc::new(server),
                node,
            },
        })
    }

    /// A new credential for the client `name`, good until `not_after`.
    pub fn issue(&self, name: &str, not_after: SystemTime) -> Result<Credential, LinkError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        // A day's slack for clocks that disagree.
        params.not_before = (SystemTime::now() - Duration::from_secs(86_400)).into();
        params.not_after = not_after.into();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(certificates)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(certificates)?;
        Ok(Credential {
            name: name.to_owned(),
            cert: cert.der().clone(),
            authority: self.cert.clone(),
            key: key.serialize_der(),
        })
    }
}

fn roots(authority: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, LinkError> {
    let mut roots = RootCertStore::empty();
    roots.add(authority.clone()).map_err(certificates)?;
    Ok(Arc::new(roots))
}

fn connector(
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Connector, LinkError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(certificates)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(certificates)?;
    Ok(Connector {
        config: Arc::new(config),
    })
}

/// A client's credential: its name, its certificate and key, and the
/// authority it trusts daemons by. Kept as one PEM file.
#[derive(Clone)]
pub struct Credential {
    pub name: String,
    cert: CertificateDer<'static>,
    authority: CertificateDer<'static>,
    key: Vec<u8>,
}

/// The line a credential file names its client on.
const NAME_LINE: &str = "# arca client: ";

impl Credential {
    /// What the manager knows this credential by.
    pub fn id(&self) -> CredentialId {
        CredentialId::of(&self.cert)
    }

    /// How this client opens links.
    pub fn connector(&self) -> Result<Connector, LinkError> {
        let key = PrivateKeyDer::Pkcs8(self.key.clone().into());
        connector(
            roots(&self.authority)?,
            vec![self.cert.clone(), self.authority.clone()],
            key,
        )
    }

    /// The credential as the text of its file.
    pub fn to_pem(&self) -> String {
        let block = |label: &str, der: &[u8]| pem::encode(&pem::Pem::new(label, der));
        format!(
            "{NAME_LINE}{}\n# Keep it private: it reads, writes and deletes this client's backups.\n{}{}{}",
            self.name,
            block("CERTIFICATE", &self.cert),
            block("CERTIFICATE", &self.authority),
            block("PRIVATE KEY", &self.key),
        )
    }

    pub fn from_pem(text: &str) -> Result<Self, String> {
        let name = text
            .lines()
            .find_map(|line| line.strip_prefix(NAME_LINE))
            .ok_or("it names no client")?
            .trim()
            .to_owned();
        let mut certs = CertificateDer::pem_slice_iter(text.as_bytes());
        let mut next = || match certs.next() {
            Some(Ok(cert)) => Ok(cert),
            Some(Err(e)) => Err(format!("a certificate does not read: {e}")),
            None => Err("a certificate is missing".to_owned()),
        };
        let cert = next()?;
        let authority = next()?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes())
            .map_err(|e| format!("its key does not read: {e}"))?;
        Ok(Self {
            name,
            cert,
            authority,
            key: key.secret_pkcs8_der().to_vec(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, LinkError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LinkError::Missing {
                    path: path.to_owned(),
                }
            } else {
                LinkError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Self::from_pem(&text).map_err(|why| LinkError::Malformed {
            path: path.to_owned(),
            why,
        })
    }

    /// Writes the credential to `path` (mode 0600), refusing to overwrite a file.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        write_private(path, self.to_pem().as_bytes())
    }
}

/// Writes a new file only its owner can read (mode 0600), durably,
/// refusing to overwrite one.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Where the credential lives when no flag or variable names it:
/// `$XDG_CONFIG_HOME/arca/credential`, else `~/.config/arca/credential`.
pub fn default_credential_path() -> PathBuf {
    let config = dirs::config_dir().unwrap_or_else(|| PathBuf::from("."));
    config.join("arca").join("credential")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(seed: u8) -> Authority {
        Authority::derive(&[seed; 32], &[seed + 1; 32]).unwrap()
    }

    #[test]
    fn every_daemon_derives_the_same_node_certificate() {
        let a = authority(1).node_links().unwrap();
        let b = authority(1).node_links().unwrap();
        assert_eq!(a.acceptor.node, b.acceptor.node);
        assert_ne!(
            a.acceptor.node,
            authority(7).node_links().unwrap().acceptor.node
        );
    }

    #[test]
    fn a_credential_round_trips_through_its_file() {
        let credential = authority(3)
            .issue("laptop", SystemTime::now() + Duration::from_secs(3600))
            .unwrap();
        let text = credential.to_pem();
        let back = Credential::from_pem(&text).unwrap();
        assert_eq!(back.name, "laptop");
        assert_eq!(back.id(), credential.id());
        assert!(back.connector().is_ok());
        assert!(Credential::from_pem("# arca client: x\n").is_err());
    }
}
