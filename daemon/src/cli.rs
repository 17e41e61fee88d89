//! The daemon's command line: `daemon --role manager`,
//! `daemon --role server --port P`, `daemon init-secret PATH`,
//! `daemon client add|list|revoke`. The `daemon`
//! binary runs it, and so does `arca daemon` (the benchmark starts its
//! daemons that way, as separate processes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{ManagerConfig, ServerConfig, credentials, run_manager, run_server};
use arca_shared::choice::Weights;
use arca_shared::keys::{self, ClusterKey};
use clap::{Parser, Subcommand, ValueEnum};
use color_eyre::eyre::{Result, WrapErr, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "Arca's manager and storage server",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Which daemon to run.
    #[arg(long, value_enum, required = false)]
    role: Option<Role>,
    /// A server's port (it listens on 0.0.0.0:PORT).
    #[arg(long, required_if_eq("role", "server"))]
    port: Option<u16>,
    /// Address to listen on [manager: 0.0.0.0:9000, server: 0.0.0.0:PORT].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data folder [manager: ./arca-manager, server: ./arca-server-PORT].
    #[arg(long)]
    data: Option<PathBuf>,
    /// The cluster secret [default: ~/.config/arca/secret].
    #[arg(long, env = "ARCA_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// Server: the manager to join.
    #[arg(long, default_value = "127.0.0.1:9000")]
    manager: String,
    /// Server: the address others reach it at [default: 127.0.0.1:PORT].
    #[arg(long)]
    advertise: Option<String>,
    /// Server: bytes offered (e.g. 500MB, 20GiB) [default: the disk's free space].
    #[arg(long, value_parser = parse_bytes)]
    capacity: Option<u64>,
    /// Server: its failure zone (a rack, a room, a site); copies of the same
    /// data go to distinct zones while enough are alive [default: none].
    #[arg(long, value_parser = parse_zone)]
    zone: Option<String>,
    /// Manager: copies kept of every file.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    replicas: u32,
    /// Manager: silence after which a server counts as dead (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    dead_after: Duration,
    /// Manager: how long a server may be dead before its data is copied again.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    heal_after: Duration,
    /// Manager: how old a blob no catalog entry uses must be before it is removed.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    orphan_grace: Duration,
    /// Manager: how often a changed catalog is snapshotted to the servers.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    snapshot_every: Duration,
    /// How logs are written: `text` for people, `json` (one object a line)
    /// for log collectors. Text is coloured only on a terminal.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    /// Server: pause between two scrubs (re-hashing every stored blob).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    scrub_every: Duration,
    /// Manager: weight of latency in server choice.
    #[arg(long, default_value_t = 0.5)]
    latency_weight: f64,
    /// Manager: weight of stored load in server choice.
    #[arg(long, default_value_t = 0.5)]
    load_weight: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Write a fresh random cluster secret to PATH (mode 0600).
    InitSecret { path: PathBuf },
    /// Rebuild a lost or damaged manager catalog from the newest snapshot
    /// the servers keep (run it while the manager is stopped).
    Recover {
        /// The manager's data folder.
        #[arg(long, default_value = "arca-manager")]
        data: PathBuf,
        /// A server to ask, HOST:PORT; repeat it to ask several (the newest
        /// snapshot among them wins).
        #[arg(long = "server", required = true)]
        servers: Vec<String>,
        /// Replace a catalog that still opens and checks out.
        #[arg(long)]
        force: bool,
        /// The cluster secret [default: ~/.config/arca/secret].
        #[arg(long, env = "ARCA_SECRET_FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Issue, list and revoke client credentials.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
        /// The manager's data folder.
        #[arg(long, default_value = "arca-manager", global = true)]
        data: PathBuf,
        /// The cluster secret [default: ~/.config/arca/secret].
        #[arg(long, env = "ARCA_SECRET_FILE", global = true)]
        secret_file: Option<PathBuf>,
    },
}

/// Client credentials, run where the manager's data is.
#[derive(Subcommand)]
enum ClientCommand {
    /// Issue a credential for client NAME and write it to a file, to copy
    /// to that client as ~/.config/arca/credential.
    Add {
        name: String,
        /// Where to write it [default: ./NAME.credential].
        #[arg(long)]
        out: Option<PathBuf>,
        /// How long it is good for (e.g. 90d, 1y).
        #[arg(long, default_value = "10y", value_parser = parse_duration)]
        valid_for: Duration,
    },
    /// List the credentials issued, and which are revoked.
    List,
    /// Shut out every credential of client NAME, from its next connection.
    Revoke { name: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    Manager,
    Server,
}

/// Parses `args` (the program name first) and runs what they say until a
/// signal stops it.
pub async fn run<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_logs(cli.log_format);
    match &cli.command {
        Some(Command::InitSecret { path }) => {
            keys::write_new_secret(path)?;
            say(format_args!(
                "wrote a new cluster secret to {}",
                path.display()
            ));
            return Ok(());
        }
        Some(Command::Recover {
            data,
            servers,
            force,
            secret_file,
        }) => return recover(data, servers, *force, secret_file.as_deref()).await,
        Some(Command::Client {
            command,
            data,
            secret_file,
        }) => return client(command, data, secret_file.as_deref()),
        None => {}
    }
    let secret_path = cli
        .secret_file
        .clone()
        .unwrap_or_else(keys::default_secret_path);
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    match cli.role {
        Some(Role::Manager) => manager(&cli, &secret_path, shutdown).await,
        Some(Role::Server) => server(&cli, &secret_path, shutdown).await,
        None => bail!("say which daemon to run: --role manager or --role server --port PORT"),
    }
}

/// Logs go to standard error, at the level `RUST_LOG` sets (info by
/// default); colour codes only when that is a terminal.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Set once per process; a second call (tests run several daemons) keeps the first.
    let _ = match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => logs.json().try_init(),
    };
}

async fn recover(
    data: &Path,
    servers: &[String],
    force: bool,
    secret_file: Option<&Path>,
) -> Result<()> {
    let secret_path = secret_file.map_or_else(keys::default_secret_path, Path::to_owned);
    let key = ClusterKey::load(&secret_path)?;
    let recovered = crate::manager::recover(data, servers, &key, force).await?;
    let snapshot = recovered.snapshot;
    for passed in &recovered.passed_over {
        say(format_args!("passed over a newer snapshot: {passed}"));
    }
    for fork in &recovered.forks {
        say(format_args!(
            "WARNING: the catalog went two ways: a snapshot of generation {} taken {} s ago \
             belongs to another history, and the backups only it holds are not recovered; \
             back those files up again",
            fork.generation,
            arca_shared::types::now_ms().saturating_sub(fork.created_ms) / 1000,
        ));
    }
    say(format_args!(
        "recovered the catalog into {} from {}: generation {}, taken {} s ago",
        data.join("catalog.db").display(),
        recovered.server,
        snapshot.generation,
        arca_shared::types::now_ms().saturating_sub(snapshot.created_ms) / 1000,
    ));
    if let Some(aside) = recovered.set_aside {
        say(format_args!(
            "the catalog it replaces is kept at {}",
            aside.display()
        ));
    }
    say(format_args!(
        "backups made after the snapshot was taken are not in it: back those files up again. \
         Start the manager with --data {}",
        data.display()
    ));
    Ok(())
}

fn client(command: &ClientCommand, data: &Path, secret_file: Option<&Path>) -> Result<()> {
    match command {
        ClientCommand::Add {
            name,
            out,
            valid_for,
        } => {
            let secret_path = secret_file.map_or_else(keys::default_secret_path, Path::to_owned);
            let key = ClusterKey::load(&secret_path)?;
            let out = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.credential", name.replace('/', "-"))));
            if out.exists() {
                bail!(
                    "{} already exists: pass --out to write elsewhere",
                    out.display()
                );
            }
            let credential = credentials::add(data, &key, name, *valid_for)?;
            credential
                .save(&out)
                .wrap_err_with(|| format!("cannot write {}", out.display()))?;
            say(format_args!(
                "wrote a credential for client {name:?} to {} (good until {}); copy it to \
                 that client as ~/.config/arca/credential",
                out.display(),
                humantime::format_rfc3339_seconds(std::time::SystemTime::now() + *valid_for),
            ));
        }
        ClientCommand::List => {
            let rows = credentials::list(data)?;
            if rows.is_empty() {
                say(format_args!(
                    "no credentials issued yet (`daemon client add NAME`)"
                ));
            }
            let now = arca_shared::types::now_ms();
            for row in rows {
                let state = match row.revoked_ms {
                    Some(_) => "revoked",
                    None if row.expires_ms <= now => "expired",
                    None => "active",
                };
                say(format_args!(
                    "{:<8} {}  until {}  {}",
                    state,
                    &row.id[..16],
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + Duration::from_millis(row.expires_ms)
                    ),
                    row.client,
                ));
            }
        }
        ClientCommand::Revoke { name } => match credentials::revoke(data, name)? {
            0 => bail!("client {name:?} has no active credential (`daemon client list`)"),
            n => say(format_args!(
                "revoked {n} credential{} of client {name:?}: refused from its next connection",
                if n == 1 { "" } else { "s" }
            )),
        },
    }
    Ok(())
}

/// One line to standard output; a reader that went away (`| head -1`) is no
/// reason to fail a command whose work is done.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn manager(cli: &Cli, secret_path: &Path, shutdown: CancellationToken) -> Result<()> {
    let (key, created) = ClusterKey::load_or_create(secret_path)?;
    if created {
        tracing::info!(
            "created a new cluster secret at {}; copy it to every server and client machine",
            secret_path.display()
        );
    }
    let listen = cli
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 9000)));
    let listener = bind(listen).await?;
    let mut config = ManagerConfig::new(
        cli.data
            .clone()
            .unwrap_or_else(|| PathBuf::from("arca-manager")),
        key,
    );
    config.replicas = cli.replicas;
    config.dead_after = cli.dead_after;
    config.heal_after = cli.heal_after;
    config.orphan_grace = cli.orphan_grace;
    config.snapshot_every = cli.snapshot_every;
    config.weights = Weights {
        latency: cli.latency_weight,
        load: cli.load_weight,
    };
    run_manager(listener, config, shutdown).await?;
    tracing::info!("manager stopped");
    Ok(())
}

async fn server(cli: &Cli, secret_path: &Path, shutdown: CancellationToken) -> Result<()> {
    let key = ClusterKey::load(secret_path)?;
    let port = cli.port.unwrap_or(0);
    let listen = cli
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
    let listener = bind(listen).await?;
    let bound = listener.local_addr()?;
    let advertise = cli.advertise.clone().unwrap_or_else(|| {
        if bound.ip().is_unspecified() {
            format!("127.0.0.1:{}", bound.port())
        } else {
            bound.to_string()
        }
    });
    let data = cli
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("arca-server-{}", bound.port())));
    let mut config = ServerConfig::new(data, cli.manager.clone(), advertise, key);
    config.capacity = cli.capacity;
    config.zone = cli.zone.clone();
    config.heartbeat_every = (cli.dead_after / 4).max(Duration::from_millis(50));
    config.scrub_every = cli.scrub_every;
    tracing::info!(%listen, advertise = %config.advertise, zone = config.zone.as_deref().unwrap_or("none"), data = %config.data.display(), "server running");
    run_server(listener, config, shutdown)
        .await
        .wrap_err("cannot open the data folder")?;
    tracing::info!("server stopped");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .wrap_err_with(|| format!("cannot listen on {addr} (is another daemon using it?)"))
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return shutdown.cancel();
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Parses a size: `512`, `500MB` or `500M` (powers of 1000), `20GiB` or
/// `20Gi` (powers of 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("not a size: {text:?} ({e}); say e.g. 500MB or 20GiB"))
}

fn parse_zone(text: &str) -> Result<String, String> {
    if arca_shared::types::zone::valid(text) {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?}: {}", arca_shared::types::zone::RULE))
    }
}

/// Parses a duration: `3s`, `500ms`, `2m`, `1h 30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("not a duration: {text:?} ({e}); say e.g. 3s, 500ms or 10m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_bytes("20GiB"), Ok(20 << 30));
        assert!(parse_bytes("1X").is_err());
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
    }
}
