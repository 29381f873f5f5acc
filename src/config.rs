//! Command-line flags and environment variables of the `accord` binary. Every flag has
//! an `ACCORD_*` variable; flags win over the environment.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

/// The default PostgreSQL URL: the local server, database `accord` (created if missing).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/accord";

#[derive(Debug, Parser)]
#[command(name = "accord", version, about = "Event-sourced stakeholder alignment service")]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `accord=debug,sqlx=warn`.
    #[arg(long, global = true, env = "ACCORD_LOG", default_value = "info")]
    pub log: String,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, env = "ACCORD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// PostgreSQL URL of the event store; the database is created if it does not exist.
    #[arg(long, env = "ACCORD_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Most connections the service opens to the database.
    #[arg(long, env = "ACCORD_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub max_connections: u32,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run the gRPC service (migrations are applied at start).
    #[command(
        after_help = "Example:\n  accord serve --listen 127.0.0.1:50051 --database-url postgres://postgres@127.0.0.1:5432/accord"
    )]
    Serve {
        /// Address to listen on for gRPC.
        #[arg(long, env = "ACCORD_LISTEN", default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rebuild every projection from the event log, while the service keeps running.
    RebuildProjections {
        #[command(flatten)]
        store: StoreArgs,
    },
}
