//! `daemon --role manager` or `daemon --role server --port P`.

#[tokio::main]
async fn main() -> color_eyre::Result<()> {
    color_eyre::install()?;
    arca_daemon::cli::run(std::env::args_os()).await
}
