//! Command-line flags and subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Arca: replicated backups for your own machines")]
pub struct Cli {
    /// The manager's address.
    #[arg(
        long,
        global = true,
        env = "ARCA_MANAGER",
        default_value = "127.0.0.1:9000"
    )]
    pub manager: String,
    /// The local folder whose files you back up; names are relative to it.
    #[arg(long, global = true, env = "ARCA_FILES", default_value = "files")]
    pub files: PathBuf,
    /// This client's name in the catalog [default: the name its credential
    /// was issued to, which is the only one it may act as].
    #[arg(long, global = true, env = "ARCA_CLIENT")]
    pub client: Option<String>,
    /// This client's credential, from `daemon client add NAME` on the
    /// manager's machine [default: ~/.config/arca/credential].
    #[arg(long, global = true, env = "ARCA_CREDENTIAL")]
    pub credential: Option<PathBuf>,
    /// A file holding the passphrase that opens this client's key (else
    /// `ARCA_PASSWORD`, else a prompt on a terminal).
    #[arg(long, global = true, env = "ARCA_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Back up files and whole folders.
    Put {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Restore a file, or every file under a folder name ending in '/'.
    Get {
        name: String,
        /// Restore this version instead of the newest.
        #[arg(long)]
        version: Option<u32>,
        /// Where to write [default: the files folder].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Overwrite a local file that differs.
        #[arg(long)]
        force: bool,
    },
    /// List backed-up files, or every version of one.
    Ls {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a version, or every version, of a file; with --all, every file
    /// under a folder name ending in '/'.
    Rm {
        name: String,
        #[arg(long, conflicts_with = "all")]
        version: Option<u32>,
        #[arg(long)]
        all: bool,
    },
    /// The passphrases that open this client's key (no data is re-encrypted).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Have the servers hash every copy in place (no download) and report.
    Verify { name: Option<String> },
    /// Show the cluster as the manager sees it.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Start a local cluster and open the dashboard on it.
    Demo,
    /// Measure backup and restore speed on a local cluster of real processes.
    Bench {
        /// Runs per case; medians are reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Size of the big file, in MiB.
        #[arg(long, default_value_t = 1024)]
        big_mib: u64,
        /// Number of 4 KiB files.
        #[arg(long, default_value_t = 10_000)]
        small_files: usize,
        /// Number of 1 MiB files.
        #[arg(long, default_value_t = 300)]
        medium_files: usize,
        /// Measure a catalog of this many entries instead (many clients):
        /// listings, status, the manager's memory and the dashboard.
        #[arg(long, value_name = "ENTRIES", num_args = 0..=1, default_missing_value = "1000000")]
        scale: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Run a daemon, exactly as the `daemon` binary does (see `arca daemon --help`).
    #[command(disable_help_flag = true)]
    Daemon {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// List the keys: each is the master key wrapped by one passphrase.
    List,
    /// Add a passphrase (the current one opens the key).
    Add {
        /// A file holding the new passphrase [default: asked on the terminal].
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key by its id (never the last one).
    Remove { id: String },
    /// Change the current passphrase: add the new one, remove the old.
    Passwd {
        /// A file holding the new passphrase [default: asked on the terminal].
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
}
