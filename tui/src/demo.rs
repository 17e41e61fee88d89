//! `arca demo`: a manager and four servers on loopback, a files folder
//! seeded with samples, and the dashboard on top; quitting removes it all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arca_daemon::cluster::{self, ClusterOptions, LocalCluster};
use arca_shared::link::Credential;

use crate::client::{ClientError, Passphrase, Settings, Vault};
use crate::dashboard::{self, event::Effect};

/// The samples in `assets/sample-files`, built into the binary so the demo
/// works from any folder.
const SAMPLES: &[(&str, &[u8])] = &[
    (
        "notes.txt",
        include_bytes!("../../assets/sample-files/notes.txt"),
    ),
    (
        "docs/report.md",
        include_bytes!("../../assets/sample-files/docs/report.md"),
    ),
    (
        "data/measurements.csv",
        include_bytes!("../../assets/sample-files/data/measurements.csv"),
    ),
    (
        "data/archive.bin",
        include_bytes!("../../assets/sample-files/data/archive.bin"),
    ),
];

/// The demo's backups live as long as it does: any passphrase will do.
const PASSPHRASE: &str = "arca demo";

/// Writes the demo client's credential, and a file of the variables that
/// point the CLI at this demo, to source in another shell; returns that
/// file's path.
fn write_cli_env(
    dir: &Path,
    cluster: &LocalCluster,
    credential: &Credential,
    files: &Path,
) -> Result<PathBuf, ClientError> {
    let path = dir.join("credential");
    credential
        .save(&path)
        .map_err(|e| ClientError::local("cannot write the demo's credential", e))?;
    let quoted = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
    let env = dir.join("env");
    let text = format!(
        "export ARCA_MANAGER={}\nexport ARCA_CREDENTIAL={}\n\
         export ARCA_PASSWORD='{PASSPHRASE}'\nexport ARCA_FILES={}\n",
        cluster.manager_addr,
        quoted(&path),
        quoted(files),
    );
    std::fs::write(&env, text)
        .map_err(|e| ClientError::local("cannot write the demo's CLI settings", e))?;
    Ok(env)
}

/// A large generated file, so uploads take long enough to watch.
const MOVIE: (&str, u64) = ("media/holiday.mov", 48 << 20);

pub async fn run() -> Result<(), ClientError> {
    let local = |what: &str, e: std::io::Error| ClientError::local(what, e);
    let dir = tempfile::Builder::new()
        .prefix("arca-demo-")
        .tempdir()
        .map_err(|e| local("cannot create the demo folder", e))?;
    let options = ClusterOptions {
        servers: 4,
        dead_after: Duration::from_secs(3),
        capacities: [2u64, 1, 4, 2].iter().map(|gib| Some(gib << 30)).collect(),
        ..ClusterOptions::default()
    };
    let cluster = LocalCluster::start(&dir.path().join("cluster"), options)
        .await
        .map_err(|e| local("cannot start the demo cluster", e))?;
    let files = dir.path().join("files");
    seed(&files).map_err(|e| local("cannot write the sample files", e))?;
    let credential = cluster
        .credential("demo")
        .map_err(|e| ClientError::local("cannot issue the demo's credential", e))?;
    let cli = write_cli_env(dir.path(), &cluster, &credential, &files)?;
    let settings = Settings {
        manager: cluster.manager_addr.clone(),
        client: credential.name.clone(),
        link: credential
            .connector()
            .map_err(|e| ClientError::local("cannot use the demo's credential", e))?,
        files: files.clone(),
        vault: Vault::new(Passphrase::given(PASSPHRASE)?),
    };
    // Something to watch at once, a transfer each; the rest is left for
    // the user to back up.
    let first = ["notes.txt", "docs"].map(|name| Effect::Upload(vec![files.join(name)]));
    let note = format!("CLI: . {} && arca ls", cli.display());
    let result = dashboard::run(settings, first.to_vec(), Some(note)).await;
    cluster.shutdown().await;
    result.map_err(|e| local("terminal error", e))
}

fn seed(files: &Path) -> std::io::Result<()> {
    for (name, bytes) in SAMPLES {
        let path = files.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
    }
    let path = files.join(MOVIE.0);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    cluster::write_sample(&path, MOVIE.1, b"arca demo movie")
}
