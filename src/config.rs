//! Command-line flags and environment variables of the `accord` binary. Every flag has
//! an `ACCORD_*` variable; flags win over the environment. The server commands
//! (`serve`, `migrate`, `rebuild-projections`) are declared here; the client commands
//! and `demo` live beside their handlers in `crate::cli` and are flattened in.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

use crate::cli::ClientCommand;
use crate::domain::values::quote;
use crate::security::Limits;
use crate::security::tls::{ClientAuth, TlsFiles};
use crate::store::DatabaseTimeouts;

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
  6  unavailable (no server at --server, or its database is down; for the server
     commands: the database did not answer within --db-connect-timeout)
  7  verification failed (`accord audit verify` found a broken hash chain or checkpoint)";

/// The heading the options every command takes are listed under, after the command's own.
const GLOBAL: &str = "Global options";

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
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_LOG")]
    pub log: Option<String>,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The Accord server the client commands talk to [default: http://127.0.0.1:50051].
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Who you are: the principal sent to the server in the `x-accord-actor` metadata entry
    /// [default: $USER@localhost].
    #[arg(long = "as", help_heading = GLOBAL, global = true, env = "ACCORD_AS", value_name = "PRINCIPAL")]
    pub actor: Option<String>,

    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, help_heading = GLOBAL, global = true)]
    pub json: bool,

    /// Bearer token (a JWT or a service token) sent with every call. Prefer ACCORD_TOKEN or
    /// --token-file: a flag shows in the process list.
    #[arg(
        long,
        help_heading = GLOBAL,
        global = true,
        env = "ACCORD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,

    /// File holding the bearer token (surrounding whitespace is ignored).
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,

    /// CA bundle (PEM) that signed the server's certificate, for https:// servers
    /// [default: the system's roots].
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM) for servers that verify clients (mTLS); with --client-key.
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<std::path::PathBuf>,

    /// Private key (PEM) of --client-cert.
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<std::path::PathBuf>,

    /// Correlation id stored with the events the command appends (`x-correlation-id`).
    #[arg(long, help_heading = GLOBAL, global = true, env = "ACCORD_CORRELATION_ID", value_name = "ID")]
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

    /// The --database-url goes through PgBouncer in transaction pooling mode: every
    /// statement is sent unnamed and inside a transaction, and no session setting is
    /// made on its connections. Needs --database-direct-url.
    #[arg(long, env = "ACCORD_DATABASE_POOLED")]
    pub database_pooled: bool,

    /// A direct PostgreSQL connection (not through a transaction-pooling PgBouncer) for
    /// what needs a session: LISTEN for the live feed, creating the database, migrations.
    #[arg(long, env = "ACCORD_DATABASE_DIRECT_URL")]
    pub database_direct_url: Option<String>,

    /// A read-only hot standby of the --database-url (PostgreSQL only): queries (alignment,
    /// list, inbox, decision, feedback, as-of, explain, history, export) and the live
    /// feed's tail read from it; commands, verification and checkpoints stay on the
    /// primary. A read naming a position (`x-accord-min-position`) waits for the standby
    /// to replay it at most --read-your-writes-wait-ms, then asks the primary; a standby
    /// that is down leaves every read on the primary.
    #[arg(long, env = "ACCORD_DATABASE_READ_URL")]
    pub database_read_url: Option<String>,

    /// Milliseconds a read that names a position waits for the --database-read-url
    /// standby to replay it before the primary answers instead.
    #[arg(
        long,
        env = "ACCORD_READ_YOUR_WRITES_WAIT_MS",
        value_name = "MS",
        default_value_t = crate::store::standby::DEFAULT_WAIT.as_millis() as u64,
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub read_your_writes_wait_ms: u64,

    /// Folder of the embedded store (created if missing), used when no database URL is given.
    #[arg(long, env = "ACCORD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: std::path::PathBuf,

    /// Most connections the service opens to the database.
    #[arg(long, env = "ACCORD_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub max_connections: u32,

    /// Seconds to wait for PostgreSQL to answer a connection: at start (past it, the
    /// command fails and exits 6) and, while serving, for each connection a call needs
    /// (past it, the call fails with UNAVAILABLE).
    #[arg(
        long,
        env = "ACCORD_DB_CONNECT_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = DatabaseTimeouts::default().connect.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub db_connect_timeout: u64,

    /// Seconds one read or command may wait for PostgreSQL, connection included; past it
    /// the call fails with UNAVAILABLE (retry a command with the same command id).
    #[arg(
        long,
        env = "ACCORD_DB_QUERY_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = DatabaseTimeouts::default().query.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub db_query_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    #[command(flatten)]
    Client(ClientCommand),

    /// Run the gRPC service (migrations are applied at start).
    #[command(
        after_help = "Examples:\n  accord serve                                   # embedded store in ./accord-data, local development mode\n  accord serve --database-url postgres://postgres@127.0.0.1:5432/accord\n  accord serve --http-listen off                 # no web board (default: http://127.0.0.1:50052/)\n  accord serve --listen 0.0.0.0:50051 --auth-config accord-auth.toml --tls-cert server.pem --tls-key server.key"
    )]
    Serve {
        /// Address to listen on for gRPC. Without --auth-config only a loopback address is
        /// allowed (local development mode).
        #[arg(long, env = "ACCORD_LISTEN", default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Address of the web board and its HTTP API (`off`: no board). Without
        /// --auth-config only a loopback address is allowed.
        #[arg(long, env = "ACCORD_HTTP_LISTEN", value_name = "ADDR|off", default_value = "127.0.0.1:50052")]
        http_listen: HttpListen,
        #[command(flatten)]
        security: SecurityArgs,
        /// Seconds between automatic checkpoints of every stream head (taken only when the
        /// log has grown); 0 turns them off.
        #[arg(long, env = "ACCORD_CHECKPOINT_INTERVAL", default_value_t = 600)]
        checkpoint_interval: u64,
        /// Ed25519 key (Go `note` private key, as `accord audit keygen` writes it) that
        /// signs every checkpoint as a C2SP checkpoint note; its name is the log's origin.
        /// Without it, checkpoints are not signed.
        #[arg(long, env = "ACCORD_CHECKPOINT_KEY", value_name = "FILE")]
        checkpoint_key: Option<std::path::PathBuf>,
        /// Versions between two snapshots of an initiative's past state, which as-of and
        /// explain start from (written in the background); 0 turns them off.
        #[arg(long, env = "ACCORD_SNAPSHOT_EVERY", default_value_t = 500)]
        snapshot_every: u32,
        #[command(flatten)]
        webhooks: Box<WebhookArgs>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make and hash static service tokens for the security configuration.
    #[command(
        subcommand,
        after_help = "Examples:\n  accord token generate --principal release-bot@svc --role member\n  accord token hash < release-bot.token"
    )]
    Token(TokenCommand),
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
        /// Blue/green: build the alignment projection beside the served one and swap it
        /// in at once (reads never see a half-built projection); the stream heads'
        /// snapshots are left as they are. For a change of the projection's version.
        #[arg(long)]
        online: bool,
    },
}

/// Where the board listens: an address, or nowhere (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpListen(pub Option<SocketAddr>);

impl std::str::FromStr for HttpListen {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.trim().eq_ignore_ascii_case("off") {
            return Ok(HttpListen(None));
        }
        value
            .trim()
            .parse()
            .map(|address| HttpListen(Some(address)))
            .map_err(|_| format!("{} is neither an address such as 127.0.0.1:50052 nor `off`", quote(value)))
    }
}

/// How `accord serve` delivers webhooks (see README "Webhooks").
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Do not deliver webhooks from this process (subscriptions can still be managed;
    /// another replica delivers).
    #[arg(long, env = "ACCORD_NO_WEBHOOK_DELIVERY")]
    pub no_webhook_delivery: bool,
    /// Address ranges a webhook target may resolve to although loopback or private
    /// (`10.1.2.0/24,127.0.0.1/32`); none by default (SSRF protection).
    #[arg(long, env = "ACCORD_WEBHOOK_ALLOW_PRIVATE", value_name = "CIDR", value_delimiter = ',')]
    pub webhook_allow_private: Vec<String>,
    /// Attempts of one message before it is dead-lettered.
    #[arg(long, env = "ACCORD_WEBHOOK_ATTEMPTS", default_value_t = 8)]
    pub webhook_attempts: u32,
    /// Milliseconds before the first retry; each next one doubles (with jitter).
    #[arg(long, env = "ACCORD_WEBHOOK_BACKOFF_MS", default_value_t = 30_000)]
    pub webhook_backoff_ms: u64,
    /// The longest wait between two retries, in milliseconds.
    #[arg(long, env = "ACCORD_WEBHOOK_BACKOFF_MAX_MS", default_value_t = 3_600_000)]
    pub webhook_backoff_max_ms: u64,
    /// Dead-lettered messages in a row that disable a subscription.
    #[arg(long, env = "ACCORD_WEBHOOK_DISABLE_AFTER", default_value_t = 3)]
    pub webhook_disable_after: u32,
    /// Milliseconds one attempt may take in all (connect, send, answer).
    #[arg(long, env = "ACCORD_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Milliseconds the delivering replica's lease lasts without renewal: how soon
    /// another replica takes over after it dies.
    #[arg(long, env = "ACCORD_WEBHOOK_LEASE_MS", default_value_t = 15_000)]
    pub webhook_lease_ms: u64,
    /// Days delivered messages stay in the delivery log.
    #[arg(long, env = "ACCORD_WEBHOOK_KEEP_DAYS", default_value_t = 7)]
    pub webhook_keep_days: u64,
    /// The board's public address (`https://accord.example.com`), for links in
    /// messages; none without.
    #[arg(long, env = "ACCORD_BOARD_URL", value_name = "URL")]
    pub board_url: Option<String>,
}

impl WebhookArgs {
    /// The webhook options of `accord serve`.
    pub fn options(&self) -> Result<crate::webhook::WebhookOptions, String> {
        let allowed = crate::webhook::target::PrivateAllowed::parse(&self.webhook_allow_private)
            .map_err(|e| format!("--webhook-allow-private: {e}"))?;
        let ms = std::time::Duration::from_millis;
        let options = crate::webhook::WebhookOptions {
            deliver: !self.no_webhook_delivery,
            allowed_private: allowed,
            attempts: self.webhook_attempts.max(1),
            backoff_base: ms(self.webhook_backoff_ms.max(1)),
            backoff_max: ms(self.webhook_backoff_max_ms.max(self.webhook_backoff_ms).max(1)),
            disable_after: self.webhook_disable_after.max(1),
            timeout: ms(self.webhook_timeout_ms.max(1)),
            connect_timeout: ms(self.webhook_timeout_ms.clamp(1, 5_000)),
            lease_ttl: ms(self.webhook_lease_ms.max(300)),
            keep_deliveries: std::time::Duration::from_secs(self.webhook_keep_days.max(1) * 86_400),
            board_url: self.board_url.as_ref().map(|url| url.trim_end_matches('/').to_owned()),
            ..crate::webhook::WebhookOptions::default()
        };
        Ok(options)
    }
}

#[derive(Debug, clap::Args)]
pub struct SecurityArgs {
    /// Security configuration (TOML): accepted JWT issuers and keys, service tokens. Without
    /// it the server runs in local development mode, on loopback only.
    #[arg(long, env = "ACCORD_AUTH_CONFIG", value_name = "FILE")]
    pub auth_config: Option<std::path::PathBuf>,

    /// TLS certificate chain (PEM) of the gRPC listener; with --tls-key.
    #[arg(long, env = "ACCORD_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "ACCORD_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// CA bundle (PEM) for client certificates: turns on mTLS.
    #[arg(long, env = "ACCORD_TLS_CLIENT_CA", value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,

    /// With --tls-client-ca: whether every client must present a certificate.
    #[arg(long, env = "ACCORD_TLS_CLIENT_AUTH", value_enum, default_value_t = ClientAuth::Required)]
    pub tls_client_auth: ClientAuth,

    /// Most calls handled at once; past it, RESOURCE_EXHAUSTED.
    #[arg(long, env = "ACCORD_MAX_CONCURRENT_CALLS", default_value_t = Limits::default().max_concurrent_calls)]
    pub max_concurrent_calls: usize,

    /// Most open server streams (history reads, live views); past it, RESOURCE_EXHAUSTED.
    #[arg(long, env = "ACCORD_MAX_STREAMS", default_value_t = Limits::default().max_streams)]
    pub max_streams: usize,

    /// Seconds a call may take before it fails with DEADLINE_EXCEEDED.
    #[arg(long, env = "ACCORD_CALL_DEADLINE", default_value_t = Limits::default().deadline.as_secs())]
    pub call_deadline: u64,

    /// An origin whose pages may call the API from a browser over gRPC-Web
    /// (`https://board.example.com`, repeatable; `*`: any origin, without credentials).
    /// None: no cross-origin calls (same-origin gRPC-Web still works).
    #[arg(long = "cors-origin", env = "ACCORD_CORS_ORIGINS", value_name = "ORIGIN", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

impl SecurityArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_concurrent_calls: self.max_concurrent_calls.max(1),
            max_streams: self.max_streams.max(1),
            deadline: std::time::Duration::from_secs(self.call_deadline.max(1)),
            ..Limits::default()
        }
    }

    pub fn tls(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(certificate), Some(key)) => Some(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
                client_auth: self.tls_client_auth,
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random service token, and the `[[service_tokens]]` entry (with only its
    /// SHA-256) to add to the security configuration. Hand the token to the tool; keep
    /// only the entry.
    #[command(
        after_help = "Example:\n  accord token generate --principal release-bot@svc --role member\n\nThe token goes to stdout's first line; the configuration entry follows."
    )]
    Generate {
        /// The principal the token acts as (e.g. release-bot@svc).
        #[arg(long)]
        principal: String,
        /// A service role of the token: admin, member, auditor or reader (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Print the SHA-256 digest of a token read from stdin, as the configuration wants it.
    #[command(after_help = "Example:\n  accord token hash < release-bot.token")]
    Hash,
}

impl StoreArgs {
    /// How long the store waits for PostgreSQL.
    pub fn timeouts(&self) -> DatabaseTimeouts {
        DatabaseTimeouts {
            connect: std::time::Duration::from_secs(self.db_connect_timeout),
            query: std::time::Duration::from_secs(self.db_query_timeout),
        }
    }

    /// Whether the main URL is pooled and where the direct connection goes.
    pub fn route(&self) -> crate::store::DatabaseRoute {
        crate::store::DatabaseRoute { pooled: self.database_pooled, direct_url: self.database_direct_url.clone() }
    }

    /// The read-only standby the flags name, if any, checked against the main URL: a
    /// standby needs a PostgreSQL primary, and a PostgreSQL URL itself.
    pub fn standby(&self) -> Result<Option<crate::store::Standby>, String> {
        let Some(url) = &self.database_read_url else { return Ok(None) };
        let postgres = |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !self.database_url.as_deref().is_some_and(postgres) {
            return Err("--database-read-url needs a PostgreSQL --database-url (the primary it replicates)".into());
        }
        if !postgres(url) {
            return Err("--database-read-url must be a postgres:// URL of a hot standby".into());
        }
        let replica = crate::store::PgStore::connect_standby(url, self.max_connections, self.timeouts())
            .map_err(|e| e.to_string())?;
        let wait = std::time::Duration::from_millis(self.read_your_writes_wait_ms);
        Ok(Some(crate::store::Standby::new(replica, wait)))
    }

    /// The database URL to open: the one given, or the embedded store's file.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("accord.db").display()),
        }
    }
}
