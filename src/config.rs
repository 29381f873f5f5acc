//! Command-line flags and environment variables of the `accord` binary. Every flag has
//! an `ACCORD_*` variable; flags win over the environment. The server commands
//! (`serve`, `migrate`, `rebuild-projections`) are declared here; the client commands
//! and `demo` live beside their handlers in `crate::cli` and are flattened in.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

use crate::cli::ClientCommand;

/// Where the embedded store keeps its file when no database URL is given.
pub const DEFAULT_DATA_DIR: &str = "./accord-data";

/// The server the client commands talk to when neither --server nor ACCORD_SERVER is set.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

const TOP_LEVEL_HELP: &str = "\
Examples:
  accord serve                                      # run the service (embedded store in ./accord-data)
  accord demo                                       # play the acceptance scenario, narrated
  accord --as pm@example.com initiative create CHECKOUT-42 --title \"New checkout\"
  accord status                                     # the alignment board
  accord --json status CHECKOUT-42 | jq .status
  accord audit history CHECKOUT-42                  # who did what, when

Exit codes:
  0  ok
  1  internal or unexpected error
  2  invalid input or usage (bad flag, bad value, ambiguous id prefix)
  3  not found (initiative, decision, feedback)
  4  conflict (version mismatch, already exists, a rule of the domain refused it)
  5  permission denied or no caller identity
  6  unavailable (no server at --server, or its database is down)
  7  verification failed (`accord audit verify` found a broken hash chain or checkpoint)";

#[derive(Debug, Parser)]
#[command(
    name = "accord",
    version,
    about = "Event-sourced stakeholder alignment service, and its command-line client",
    after_help = TOP_LEVEL_HELP
)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `accord=debug,sqlx=warn`.
    /// Default: `info` for the server commands, `warn` for the client commands.
    #[arg(long, global = true, env = "ACCORD_LOG")]
    pub log: Option<String>,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, env = "ACCORD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The Accord server the client commands talk to [default: http://127.0.0.1:50051].
    #[arg(long, global = true, env = "ACCORD_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Who you are: the principal sent to the server in the `x-accord-actor` metadata entry
    /// [default: $USER@localhost].
    #[arg(long = "as", global = true, env = "ACCORD_AS", value_name = "PRINCIPAL")]
    pub actor: Option<String>,

    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Correlation id stored with the events the command appends (`x-correlation-id`).
    #[arg(long, global = true, env = "ACCORD_CORRELATION_ID", value_name = "ID")]
    pub correlation_id: Option<String>,

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
    /// The event store: `postgres://…` (production; the database is created if missing) or
    /// `sqlite://PATH`. Without it, the embedded SQLite store in --data-dir is used.
    #[arg(long, env = "ACCORD_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Folder of the embedded store (created if missing), used when no database URL is given.
    #[arg(long, env = "ACCORD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: std::path::PathBuf,

    /// Most connections the service opens to the database.
    #[arg(long, env = "ACCORD_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub max_connections: u32,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    #[command(flatten)]
    Client(ClientCommand),

    /// Run the gRPC service (migrations are applied at start).
    #[command(
        after_help = "Examples:\n  accord serve                                   # embedded store in ./accord-data\n  accord serve --database-url postgres://postgres@127.0.0.1:5432/accord"
    )]
    Serve {
        /// Address to listen on for gRPC.
        #[arg(long, env = "ACCORD_LISTEN", default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Seconds between automatic checkpoints of every stream head (taken only when the
        /// log has grown); 0 turns them off.
        #[arg(long, env = "ACCORD_CHECKPOINT_INTERVAL", default_value_t = 600)]
        checkpoint_interval: u64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Apply the database migrations and exit.
    #[command(after_help = "Example:\n  accord migrate --database-url postgres://postgres@127.0.0.1:5432/accord")]
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rebuild every projection from the event log, while the service keeps running.
    #[command(
        after_help = "Example:\n  accord rebuild-projections --database-url postgres://postgres@127.0.0.1:5432/accord"
    )]
    RebuildProjections {
        #[command(flatten)]
        store: StoreArgs,
    },
}

impl StoreArgs {
    /// The database URL to open: the one given, or the embedded store's file.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("accord.db").display()),
        }
    }
}
