//! The `accord` binary: parses flags, starts tracing, and hands over to the library —
//! the server commands to `server`/`store`, every other command to the client (`cli`).

/// The allocator the server runs with (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use accord::cli::output::{ExitClass, Failure};
use accord::cli::{self, Globals};
use accord::config::{Cli, Commands, LogFormat, TokenCommand};
use std::io::Read;

use accord::domain::values::{Principal, quote};
use accord::security::{Authenticator, Role, SecurityConfig, service_tokens};
use accord::server::ServerOptions;
use accord::store::{CheckpointSigner, Store, StoreError};

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(error) => return ExitCode::from(cli::report_usage_error(&error, &argv)),
    };
    let default_filter = if matches!(cli.command, Commands::Client(_)) { "warn" } else { "info" };
    init_tracing(cli.log.as_deref().unwrap_or(default_filter), cli.log_format);
    match cli.command {
        Commands::Client(command) => {
            let token = match (cli.token, &cli.token_file) {
                (Some(token), _) => Some(token),
                (None, Some(file)) => match std::fs::read_to_string(file) {
                    Ok(token) => Some(token.trim().to_owned()),
                    Err(e) => {
                        eprintln!("accord: --token-file {}: {e}", file.display());
                        return ExitCode::from(2);
                    }
                },
                (None, None) => None,
            };
            let credentials = cli::client::Credentials {
                token,
                tls_ca: cli.tls_ca,
                client_cert: cli.client_cert,
                client_key: cli.client_key,
            };
            let globals = Globals {
                server: cli.server,
                actor: cli.actor,
                json: cli.json,
                correlation_id: cli.correlation_id,
                credentials,
            };
            ExitCode::from(cli::run(globals, command).await)
        }
        server_command => match run_server_command(server_command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure { class, message }) => {
                error!("{message}");
                eprintln!("accord: {message}");
                ExitCode::from(class.code())
            }
        },
    }
}

/// Opens the event store the flags name. A database that cannot be reached, or does not
/// answer within --db-connect-timeout, exits 6 (unavailable).
async fn open(store: &accord::config::StoreArgs, max_connections: u32) -> Result<Store, Failure> {
    if store.database_url.is_none() {
        std::fs::create_dir_all(&store.data_dir)
            .map_err(|e| format!("cannot create the data folder {}: {e}", store.data_dir.display()))?;
    }
    let url = store.url();
    // Checked before the primary is opened: a mistake in the flags stops the start with
    // one message.
    let standby = store.standby()?;
    let opened = Store::open_routed(&url, &store.route(), max_connections, store.timeouts()).await.map_err(|e| {
        let class = if matches!(e, StoreError::Unavailable(_)) { ExitClass::Unavailable } else { ExitClass::Internal };
        let hint = match &e {
            StoreError::Unavailable(_) if store.database_url.is_some() => {
                " (is the database running and reachable? --db-connect-timeout sets how long to wait)"
            }
            _ => "",
        };
        Failure::new(class, format!("cannot open the event store at {}: {e}{hint}", redact(&url)))
    })?;
    info!(store = opened.kind(), url = %redact(&url), "event store ready");
    Ok(match standby {
        Some(standby) => opened.with_standby(standby),
        None => opened,
    })
}

async fn run_server_command(command: Commands) -> Result<(), Failure> {
    match command {
        Commands::Serve {
            listen,
            http_listen,
            security,
            checkpoint_interval,
            checkpoint_key,
            snapshot_every,
            webhooks,
            store,
        } => {
            // Everything the security settings name is read before the store opens or a
            // port is bound: a mistake there stops the start with one message.
            let (authenticator, sign_in) = match &security.auth_config {
                Some(path) => {
                    let loaded = SecurityConfig::load_all(path).map_err(|e| e.to_string())?;
                    let sign_in = loaded.sign_in.map(accord::security::oidc::SignIn::new).transpose()?;
                    (loaded.authenticator, sign_in)
                }
                None => (Authenticator::LocalDevelopment, None),
            };
            authenticator
                .may_listen_on(std::iter::once(listen).chain(http_listen.0))
                .map_err(|refused| Failure::from(refused.to_string()))?;
            let tls = security.tls().map(|files| files.read()).transpose()?;
            accord::security::cors::check_origins(&security.cors_origins)?;
            let checkpoint_key = checkpoint_key
                .map(|path| CheckpointSigner::load(&path).map_err(|e| format!("--checkpoint-key {e}")))
                .transpose()?;
            let webhook_options = webhooks.options()?;
            let store = open(&store, store.max_connections).await?;
            let listener =
                tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let http = match http_listen.0 {
                Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(|e| {
                    format!("cannot listen on {address} (--http-listen; `off` disables the board): {e}")
                })?),
                None => None,
            };
            let options = ServerOptions {
                authenticator,
                tls,
                limits: security.limits(),
                checkpoint_every: (checkpoint_interval > 0)
                    .then(|| std::time::Duration::from_secs(checkpoint_interval)),
                checkpoint_key,
                snapshot_every: (snapshot_every > 0).then_some(i64::from(snapshot_every)),
                cors_origins: security.cors_origins.clone(),
                webhooks: Some(webhook_options),
                sign_in,
            };
            accord::server::serve_all(listener, http, store, options, accord::server::shutdown_signal())
                .await
                .map_err(|e| Failure::from(e.to_string()))
        }
        Commands::Token(command) => token(command).map_err(Failure::from),
        Commands::Migrate { store } => {
            open(&store, 2).await?;
            info!("migrations applied");
            Ok(())
        }
        Commands::RebuildProjections { store, online: true } => {
            let store = open(&store, 4).await?;
            let done = store.rebuild_projections_online().await.map_err(|e| Failure::from(e.to_string()))?;
            info!(
                initiatives = done.initiatives,
                refolded = done.refolded,
                caught_up_in_swap = done.caught_up_in_swap,
                "projection rebuilt beside the served one and swapped in"
            );
            println!(
                "rebuilt the alignment projection of {} initiatives beside the served one and swapped it in \
                 ({} folded again as they moved, {} caught up in the swap)",
                done.initiatives, done.refolded, done.caught_up_in_swap
            );
            Ok(())
        }
        Commands::RebuildProjections { store, online: false } => {
            let store = open(&store, 4).await?;
            let rebuilt = store.rebuild_projections().await.map_err(|e| Failure::from(e.to_string()))?;
            info!(initiatives = rebuilt, "projections rebuilt");
            println!("rebuilt the projections of {rebuilt} initiatives");
            Ok(())
        }
        Commands::Client(_) => Err(Failure::from("a client command reached the server dispatch".to_owned())),
    }
}

fn token(command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::Generate { principal, roles } => {
            Principal::parse("--principal", &principal).map_err(|e| e.to_string())?;
            if let Some(unknown) = roles.iter().find(|r| Role::parse(r).is_none()) {
                return Err(format!("--role {} is not a role (admin, member, auditor, reader)", quote(unknown)));
            }
            let (token, digest) =
                service_tokens::generate().map_err(|e| format!("no randomness from the system: {e}"))?;
            let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
            println!("{token}");
            println!();
            println!("[[service_tokens]]");
            println!("principal = {principal:?}");
            println!("roles = [{}]", roles.join(", "));
            println!("sha256 = \"{digest}\"");
            Ok(())
        }
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin()
                .read_to_string(&mut token)
                .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
            let token = token.trim();
            if token.is_empty() {
                return Err("no token on stdin".to_owned());
            }
            println!("{}", hex::encode(service_tokens::digest(token)));
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
