//! PostgreSQL's word on appends: every statement that appends events notifies channel
//! `accord_events` at commit with the highest position it wrote (migration
//! 20261201000003), whichever process wrote it. Here a listener turns that into a stream
//! of `AppendSignal`s, reconnecting after a lost connection; the live feed treats each
//! one only as "the log may have grown" — the log stays the source of truth.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::PgStore;
use crate::store::backend::{AppendSignal, AppendSignals};

/// The channel the append trigger notifies on.
const CHANNEL: &str = "accord_events";
/// How long a listener that cannot connect waits before trying again.
const RECONNECT: Duration = Duration::from_secs(1);
/// Signals not yet taken by the follower; the listener waits beyond (the database keeps
/// the notifications meanwhile).
const BUFFERED: usize = 64;

impl PgStore {
    /// The append signals of this database, for as long as the stream is held.
    pub(super) fn listen_for_appends(&self) -> AppendSignals {
        let (signals, received) = mpsc::channel(BUFFERED);
        tokio::spawn(listen(self.session_pool().clone(), signals));
        Box::pin(ReceiverStream::new(received))
    }
}

async fn listen(pool: PgPool, signals: mpsc::Sender<AppendSignal>) {
    let mut failures = 0u32;
    loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match connected.await {
            Ok(listener) => listener,
            Err(error) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_multiple_of(60) {
                    warn!(%error, "cannot listen for appends; the live feed polls meanwhile");
                }
                tokio::select! {
                    _ = tokio::time::sleep(RECONNECT) => continue,
                    _ = signals.closed() => return,
                }
            }
        };
        failures = 0;
        if signals.send(AppendSignal::Listening).await.is_err() {
            return;
        }
        loop {
            let signal = tokio::select! {
                received = listener.try_recv() => match received {
                    // The payload is the highest position the statement appended.
                    Ok(Some(notification)) => AppendSignal::Appended(notification.payload().parse::<u64>().ok()),
                    // The connection was lost: reconnect here rather than inside
                    // `try_recv`, so that the follower knows when it listens again.
                    Ok(None) => break,
                    Err(error) => {
                        debug!(%error, "append listener failed; reconnecting");
                        break;
                    }
                },
                _ = signals.closed() => return,
            };
            if signals.send(signal).await.is_err() {
                return;
            }
        }
        if signals.send(AppendSignal::Lost).await.is_err() {
            return;
        }
    }
}
