//! `arca`: the dashboard, or a headless command.

use std::process::ExitCode;

use arca_tui::cli::{Cli, Command};
use arca_tui::commands;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The dashboard owns the terminal; a daemon sets up its own logging.
    let quiet = matches!(
        cli.command,
        None | Some(Command::Demo | Command::Daemon { .. })
    );
    if !quiet {
        use std::io::IsTerminal;
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "error".into()),
            )
            .init();
    }
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            arca_tui::out::error(format_args!("arca: {e}"));
            ExitCode::FAILURE
        }
    }
}
