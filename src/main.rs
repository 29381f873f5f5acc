//! The `accord` binary: parses flags, starts tracing, and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use accord::config::{Cli, Commands, LogFormat};
use accord::store::PgStore;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_format);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            eprintln!("accord: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Commands) -> Result<(), String> {
    match command {
        Commands::Serve { listen, store } => {
            let pg = PgStore::connect(&store.database_url, store.max_connections)
                .await
                .map_err(|e| format!("cannot open the event store at {}: {e}", redact(&store.database_url)))?;
            info!(store = "postgres", url = %redact(&store.database_url), "event store ready");
            let listener =
                tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            accord::server::serve(listener, pg, accord::server::shutdown_signal()).await.map_err(|e| e.to_string())
        }
        Commands::Migrate { store } => {
            PgStore::connect(&store.database_url, 2).await.map_err(|e| e.to_string())?;
            info!(url = %redact(&store.database_url), "migrations applied");
            Ok(())
        }
        Commands::RebuildProjections { store } => {
            let pg = PgStore::connect(&store.database_url, 4).await.map_err(|e| e.to_string())?;
            let rebuilt = pg.rebuild_projections().await.map_err(|e| e.to_string())?;
            info!(initiatives = rebuilt, "projections rebuilt");
            println!("rebuilt the projections of {rebuilt} initiatives");
            Ok(())
        }
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
