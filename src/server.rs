//! Start-up and shutdown: wires the store into the gRPC services, registers health and
//! reflection, and serves until the shutdown future completes. `main` and the tests use
//! the same `serve`, so tests exercise exactly what production runs.

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tracing::{info, warn};

use crate::grpc::{Audit, Commands, Queries, identity::identify};
use crate::proto::{
    FILE_DESCRIPTOR_SET, alignment_service_server::AlignmentServiceServer, audit_service_server::AuditServiceServer,
    command_service_server::CommandServiceServer,
};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the Accord API on `listener` until `shutdown` resolves; in-flight calls are
/// allowed to finish. No periodic checkpoints (see `serve_with_checkpoints`).
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_checkpoints(listener, store, None, shutdown).await
}

/// `serve`, plus a checkpoint of every stream head every `checkpoint_every` whenever the
/// log has grown since the last one, so tail or stream deletions are caught even if
/// nobody asks for a checkpoint.
pub async fn serve_with_checkpoints(
    listener: TcpListener,
    store: Store,
    checkpoint_every: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let checkpoints = checkpoint_every.map(|every| tokio::spawn(checkpoint_periodically(store.clone(), every)));
    let served = serve_api(listener, store, shutdown).await;
    if let Some(task) = checkpoints {
        task.abort();
    }
    served
}

async fn checkpoint_periodically(store: Store, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last global position read; a checkpoint is only taken when the log has grown.
    let mut covered = 0u64;
    loop {
        ticker.tick().await;
        let mut grew = false;
        loop {
            match store.read_all_after_position(covered, 1000).await {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
                    grew = true;
                    // Resume after the last event in read order (commit order on PostgreSQL).
                    covered = page.last().and_then(|(_, e)| u64::try_from(e.position).ok()).unwrap_or(covered);
                }
                Err(error) => {
                    warn!(%error, "periodic checkpoint: cannot read the log");
                    break;
                }
            }
        }
        if !grew {
            continue;
        }
        match store.create_checkpoint().await {
            Ok(checkpoint) => {
                info!(id = checkpoint.id, root = %checkpoint.root_hex(), events = checkpoint.events, "checkpoint recorded")
            }
            Err(error) => warn!(%error, "periodic checkpoint failed"),
        }
    }
}

async fn serve_api(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CommandServiceServer<Commands>>().await;
    health.set_serving::<AlignmentServiceServer<Queries>>().await;
    health.set_serving::<AuditServiceServer<Audit>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    if let Ok(address) = listener.local_addr() {
        info!(%address, "accord listening");
    }
    Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(CommandServiceServer::with_interceptor(Commands::new(store.clone()), identify))
        .add_service(AlignmentServiceServer::new(Queries::new(store.clone())))
        .add_service(AuditServiceServer::new(Audit::new(store)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
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
