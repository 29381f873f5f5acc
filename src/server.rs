//! Start-up and shutdown: wires the store into the gRPC services, registers health
//! (driven by the readiness probe of `crate::health`) and reflection (v1 and v1alpha),
//! serves the board over HTTP beside it (`serve_all`), and serves until the shutdown
//! future completes. `main` and the tests use the same `serve_all`, so tests
//! exercise exactly what production runs.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tonic::{
    server::NamedService,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tonic_web::GrpcWebLayer;
use tracing::{info, warn};

use crate::app::{App, AppLimits};
use crate::grpc::{Audit, Commands, Queries, WebhookApi, status::domain_status};
use crate::health::Readiness;
use crate::http::{HttpState, serve_http};
use crate::live::Feed;
use crate::proto::{
    FILE_DESCRIPTOR_SET, alignment_service_server::AlignmentServiceServer, audit_service_server::AuditServiceServer,
    command_service_server::CommandServiceServer, webhook_service_server::WebhookServiceServer,
};
use crate::security::{Authenticator, GuardLayer, Limits, cors::cors_layer, tls::TlsMaterial};
use crate::store::{CheckpointSigner, Checkpointed, Store};
use crate::webhook::Webhooks;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Insecure(String),
    #[error("{0}")]
    Cors(String),
    #[error("webhooks: {0}")]
    Webhooks(String),
    #[error("board (HTTP): {0}")]
    Http(std::io::Error),
}

/// Concurrent HTTP/2 streams one connection may open.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// Largest header block of a request, in bytes.
const MAX_HEADER_LIST_BYTES: u32 = 32 * 1024;

/// How the server authenticates callers, what it bounds, and what it does periodically.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub authenticator: Authenticator,
    pub tls: Option<TlsMaterial>,
    pub limits: Limits,
    /// A checkpoint of the log tree this often, when the log has grown.
    pub checkpoint_every: Option<Duration>,
    /// The key that signs every checkpoint's note (`--checkpoint-key`); unsigned without.
    pub checkpoint_key: Option<CheckpointSigner>,
    /// Snapshots of past states every this many versions (`--snapshot-every`), written
    /// in the background; none without.
    pub snapshot_every: Option<i64>,
    /// Origins whose pages may call the API from a browser (gRPC-Web); `*` for any (then
    /// without credentials); empty: none (same-origin gRPC-Web still works).
    pub cors_origins: Vec<String>,
    /// How this process delivers webhooks; `None` (or `deliver: false`): it does not
    /// (the API to manage subscriptions is served either way; another replica delivers).
    pub webhooks: Option<crate::webhook::WebhookOptions>,
    /// Board sign-in with an OpenID provider (the `[oidc]` section); none without.
    pub sign_in: Option<crate::security::oidc::SignIn>,
}

impl ServerOptions {
    /// Local development mode (loopback only), default limits, no periodic checkpoints,
    /// snapshots of past states at the default spacing.
    pub fn local_development() -> ServerOptions {
        ServerOptions {
            authenticator: Authenticator::LocalDevelopment,
            tls: None,
            limits: Limits::default(),
            checkpoint_every: None,
            checkpoint_key: None,
            snapshot_every: Some(crate::store::snapshots::SNAPSHOT_EVERY),
            cors_origins: Vec::new(),
            webhooks: Some(crate::webhook::WebhookOptions::default()),
            sign_in: None,
        }
    }
}

/// Serves the Accord API on `listener` in local development mode until `shutdown`
/// resolves; in-flight calls are allowed to finish.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(listener, store, ServerOptions::local_development(), shutdown).await
}

/// Serves the Accord API with `options` until `shutdown` resolves. Refuses to start in
/// local development mode on anything but a loopback address.
pub async fn serve_with(
    listener: TcpListener,
    store: Store,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_all(listener, None, store, options, shutdown).await
}

/// Serves the Accord API on `grpc` and, when `http` is given, the board and its HTTP API
/// on it (see [`crate::http`]), both until `shutdown` resolves (or either server fails,
/// which stops the other). Refuses to start in local development mode when either
/// address is not a loopback address.
pub async fn serve_all(
    grpc: TcpListener,
    http: Option<TcpListener>,
    store: Store,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let address = grpc.local_addr().map_err(|e| ServeError::Insecure(format!("cannot read the address: {e}")))?;
    let http_address = match &http {
        Some(listener) => Some(
            listener.local_addr().map_err(|e| ServeError::Insecure(format!("cannot read the board's address: {e}")))?,
        ),
        None => None,
    };
    options
        .authenticator
        .may_listen_on(std::iter::once(address).chain(http_address))
        .map_err(|refused| ServeError::Insecure(refused.to_string()))?;
    if options.authenticator.is_local_development() {
        warn!(
            %address,
            "LOCAL DEVELOPMENT MODE: no authentication is configured. Callers name themselves in the \
             x-accord-actor metadata entry and act as administrators; this is only allowed on a loopback \
             address. Configure --auth-config before exposing the service."
        );
    }
    let feed = Feed::start(store.clone());
    let webhooks = match &options.webhooks {
        Some(webhook_options) if webhook_options.deliver => {
            Some(Webhooks::start(store.clone(), feed.clone(), webhook_options.clone()).map_err(ServeError::Webhooks)?)
        }
        Some(_) | None => None,
    };
    let (readiness, probe) = Readiness::probe(store.clone());
    if let Some(key) = &options.checkpoint_key {
        info!(verifier_key = key.verifier().key(), "checkpoints are signed; verify kept notes with this key");
    }
    let checkpoints = options
        .checkpoint_every
        .map(|every| tokio::spawn(checkpoint_periodically(store.clone(), options.checkpoint_key.clone(), every)));
    let snapshots = options.snapshot_every.map(|every| tokio::spawn(snapshot_periodically(store.clone(), every)));
    // One stop signal for both servers: the caller's shutdown, or either server ending.
    let (stop, stopping) = watch::channel(false);
    let stopped = |mut stopping: watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let state = HttpState {
        store: store.clone(),
        feed: feed.clone(),
        authenticator: options.authenticator.clone(),
        readiness: readiness.clone(),
        sign_in: options.sign_in.clone(),
    };
    let grpc_server = async {
        let served =
            serve_api(grpc, store, feed.clone(), webhooks.clone(), readiness, options, stopped(stopping.clone())).await;
        let _ = stop.send(true);
        served
    };
    let http_server = async {
        let (Some(listener), Some(address)) = (http, http_address) else {
            return Ok(());
        };
        info!(%address, url = %format!("http://{address}/"), "accord board listening");
        let served = serve_http(listener, state, stopping.clone()).await;
        let _ = stop.send(true);
        served
    };
    let servers = async { tokio::join!(grpc_server, http_server) };
    tokio::pin!(servers, shutdown);
    let (served, http_served) = tokio::select! {
        results = &mut servers => results,
        () = &mut shutdown => {
            let _ = stop.send(true);
            servers.await
        }
    };
    feed.stop();
    if let Some(webhooks) = &webhooks {
        webhooks.stop();
    }
    probe.abort();
    for task in [checkpoints, snapshots].into_iter().flatten() {
        task.abort();
    }
    served?;
    http_served.map_err(ServeError::Http)
}

async fn checkpoint_periodically(store: Store, key: Option<CheckpointSigner>, every: Duration) {
    // The first checkpoint one period after start, not at once: a restart does not take
    // one on every deploy, and a server started to import a log does not race the import.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each tick folds in only what followed the latest checkpoint (the store resumes from
    // it), and records nothing when the log has not grown: an idle log costs one read.
    loop {
        ticker.tick().await;
        // An empty log has nothing worth a checkpoint.
        match store.head_position().await {
            Ok(0) => continue,
            Ok(_) => {}
            Err(error) => {
                warn!(%error, "periodic checkpoint: cannot read the log's head");
                continue;
            }
        }
        match store.checkpoint(key.as_ref()).await {
            Ok(Checkpointed { recorded: false, .. }) => {}
            Ok(Checkpointed { record, .. }) => {
                info!(id = record.id, root = %record.root_hex(), events = record.events, "checkpoint recorded")
            }
            Err(error) => warn!(%error, "periodic checkpoint failed"),
        }
    }
}

/// How often the background looks for initiatives that are due a past snapshot.
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(30);

async fn snapshot_periodically(store: Store, every: i64) {
    // Derived data, so no hurry at start: a deploy first serves, then catches up.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + SNAPSHOT_REFRESH, SNAPSHOT_REFRESH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match store.refresh_snapshots(every).await {
            Ok(done) if done.snapshots == 0 && done.pruned == 0 => {}
            Ok(done) => info!(
                initiatives = done.streams,
                snapshots = done.snapshots,
                pruned = done.pruned,
                "past snapshots written"
            ),
            Err(error) => warn!(%error, "past snapshots: refresh failed"),
        }
    }
}

/// The services gRPC health reports on: the server as a whole (`""`) and each Accord
/// service. All of them need the store, so they share its readiness.
const HEALTH_SERVICES: [&str; 5] = [
    "",
    <CommandServiceServer<Commands> as NamedService>::NAME,
    <AlignmentServiceServer<Queries> as NamedService>::NAME,
    <AuditServiceServer<Audit> as NamedService>::NAME,
    <WebhookServiceServer<WebhookApi> as NamedService>::NAME,
];

/// Mirrors readiness into gRPC health until shutdown begins, then reports NOT_SERVING
/// so that balancers stop sending calls while the server drains.
async fn report_health(health: HealthReporter, readiness: Readiness, mut stopping: watch::Receiver<bool>) {
    let mut ready = readiness.subscribe();
    loop {
        let status = if *ready.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
        for service in HEALTH_SERVICES {
            health.set_service_status(service, status).await;
        }
        tokio::select! {
            changed = ready.changed() => if changed.is_err() { break },
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    for service in HEALTH_SERVICES {
        health.set_service_status(service, ServingStatus::NotServing).await;
    }
}

async fn serve_api(
    listener: TcpListener,
    store: Store,
    feed: Feed,
    webhooks: Option<Webhooks>,
    readiness: Readiness,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for service in HEALTH_SERVICES {
        let status = if readiness.is_ready() { ServingStatus::Serving } else { ServingStatus::NotServing };
        health.set_service_status(service, status).await;
    }
    // Both reflection protocols: several tools (GUI clients among them) still speak
    // only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let reflection = reflection().build_v1()?;
    crate::metrics::init();
    let cors = cors_layer(&options.cors_origins).map_err(ServeError::Cors)?;
    let limits = &options.limits;
    let streams = Arc::new(Semaphore::new(limits.max_streams));
    // HTTP/2 bounds per connection: streams, header size (a bearer token is at most 8 KiB),
    // and keepalive pings so a vanished peer does not hold its streams forever.
    // HTTP/1.1 too, for gRPC-Web from browsers.
    let mut builder = Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true);
    if let Some(tls) = &options.tls {
        builder = builder.tls_config(tls.server_config())?;
    }
    if let Ok(address) = listener.local_addr() {
        let mode = match (&options.authenticator, &options.tls) {
            (Authenticator::LocalDevelopment, _) => "local development (no authentication)",
            (_, Some(tls)) if tls.client_ca.is_some() => "bearer tokens over TLS with client certificates",
            (_, Some(_)) => "bearer tokens over TLS",
            (_, None) => "bearer tokens (no TLS)",
        };
        info!(%address, security = mode, "accord listening");
    }
    let size = limits.max_message_bytes;
    // Streams that would never end by themselves (history readers that follow) end when
    // shutdown begins; the server then waits only for calls that are finishing.
    let (stop_streams, stopping) = watch::channel(false);
    let health_reports = tokio::spawn(report_health(health, readiness, stopping.clone()));
    let stop_feed = feed.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = stop_streams.send(true);
        stop_feed.stop();
    };
    // Outermost first: CORS answers browser preflights (no credentials), gRPC-Web is
    // translated to gRPC, and the guard then sees every call alike.
    let app = App::start(store.clone(), AppLimits::default());
    // The feed applies this process's writes as they commit, without reading them back.
    app.on_commit(feed.commit_sink());
    builder
        .layer(cors)
        .layer(GrpcWebLayer::new())
        .layer(GuardLayer::new(options.authenticator.clone(), limits, domain_status))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(CommandServiceServer::new(Commands::new(app, feed.clone())).max_decoding_message_size(size))
        .add_service(
            AlignmentServiceServer::new(Queries::new(store.clone(), feed.clone(), streams.clone()))
                .max_decoding_message_size(size),
        )
        .add_service(
            WebhookServiceServer::new(WebhookApi::new(
                store.clone(),
                options.webhooks.clone().unwrap_or_default(),
                webhooks,
            ))
            .max_decoding_message_size(size),
        )
        .add_service(
            AuditServiceServer::new(
                Audit::new(store, feed.clone(), streams, stopping).signing_checkpoints(options.checkpoint_key.clone()),
            )
            .max_decoding_message_size(size),
        )
        // `Server::tcp_nodelay` only applies to listeners tonic binds itself: without it
        // here, Nagle's algorithm holds each response's last frames for a delayed ACK
        // (about 40 ms a call on Linux loopback).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await?;
    health_reports.abort();
    info!("accord stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    info!("shutdown requested; finishing in-flight calls");
}
