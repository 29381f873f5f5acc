//! Start-up and shutdown: wires the store into the gRPC services, registers health and
//! reflection, and serves until the shutdown future completes. `main` and the tests use
//! the same `serve`, so tests exercise exactly what production runs.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tracing::info;

use crate::grpc::{Commands, Queries, identity::identify};
use crate::proto::{
    FILE_DESCRIPTOR_SET, alignment_service_server::AlignmentServiceServer, command_service_server::CommandServiceServer,
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
/// allowed to finish.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CommandServiceServer<Commands>>().await;
    health.set_serving::<AlignmentServiceServer<Queries>>().await;
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
        .add_service(AlignmentServiceServer::new(Queries::new(store)))
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
