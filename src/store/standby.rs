//! Reads from a hot standby (`--database-read-url`): a read-only PostgreSQL server that
//! replays the primary's WAL. Queries and the live feed's tail are served from it so that
//! the primary's reads are only what the writes themselves need; everything that needs
//! the primary's truth stays there (commands and the heads they load, idempotency,
//! verification, checkpoints, imports, rebuilds, LISTEN).
//!
//! Why the standby's answers are consistent: every append takes positions and commits
//! one after another under the commit-order lock, and a standby replays commits in the
//! order the primary made them, so a standby's snapshot is the primary's log up to some
//! commit. Its highest position P therefore means it holds every event at or below P
//! that will ever commit — the same gap-free prefix a read on the primary sees, only
//! older. That is what the read-your-writes check relies on: a caller who wrote at
//! position N (a command's `global_position`) names it, and the read is served by the
//! standby once the standby's highest position is at least N (polled cheaply, bounded
//! by `wait`), by the primary otherwise.
//!
//! This process's own writes are waited for the same way without being named: the
//! highest position it appended is the least every read routed here must reflect, so a
//! caller that wrote through this server and reads again (the CLI's next command, a
//! script) sees its write, as it did when every read went to the primary.
//!
//! A standby that fails a read, or cannot be reached, gets no more reads until the
//! readiness probe (`health`, every second) finds it answering again: its reads go to
//! the primary meanwhile, so a standby that is down costs latency, not answers — and
//! one that hangs rather than refuses costs one read's timeout per outage, not one per
//! retry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::backend::Backend;
use super::{PgStore, StoreError};
use crate::metrics::{self, ReadPool};

/// How often a read that waits for the standby to replay a position asks for its head:
/// one index-only lookup on the standby.
const POLL: Duration = Duration::from_millis(2);
/// The default bound of a read-your-writes wait before the primary answers instead.
pub const DEFAULT_WAIT: Duration = Duration::from_millis(300);

/// The standby and what this process knows of it. Shared by every `Store` clone.
#[derive(Debug)]
pub struct Standby {
    replica: Arc<dyn Backend>,
    /// The most a read-your-writes read waits for the standby.
    wait: Duration,
    state: Mutex<Health>,
    /// The highest position this process appended: every read waits for the standby to
    /// have it, as for a position the caller names, so that what this server
    /// acknowledged is in every answer it gives — as when the primary answered them.
    written: AtomicU64,
}

#[derive(Debug, Default)]
struct Health {
    /// When the standby last failed (`None`: it answers).
    failed_at: Option<Instant>,
    /// The highest position it was seen to hold: positions only grow on a standby, so a
    /// read naming one at or below this needs no lookup.
    replayed: u64,
}

/// Where one read goes, and why when it is not the standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Standby,
    Primary(&'static str),
}

/// What `/readyz` and the logs say of the standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyStatus {
    /// No standby is configured.
    None,
    Up,
    /// It failed lately: reads go to the primary.
    Down,
}

impl Standby {
    pub fn new(replica: PgStore, wait: Duration) -> Standby {
        Standby { replica: Arc::new(replica), wait, state: Mutex::default(), written: AtomicU64::new(0) }
    }

    /// This process appended up to `position`.
    pub(super) fn wrote(&self, position: u64) {
        self.written.fetch_max(position, Ordering::AcqRel);
    }

    pub(super) fn backend(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.replica)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // The guarded values are plain numbers: a panic elsewhere cannot leave them torn.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether reads may go to the standby now: it has not failed since it last answered.
    pub fn usable(&self) -> bool {
        self.health().failed_at.is_none()
    }

    pub fn status(&self) -> StandbyStatus {
        if self.health().failed_at.is_some() { StandbyStatus::Down } else { StandbyStatus::Up }
    }

    /// The standby failed a read: reads go to the primary until it answers the probe. Logged once
    /// per outage.
    pub fn failed(&self, error: &StoreError) {
        let first = self.health().failed_at.replace(Instant::now()).is_none();
        if first {
            warn!(%error, "the read-only standby failed a read: reads go to the primary until it answers again");
        }
    }

    /// The standby answered a read.
    pub fn answered(&self) {
        let failed_at = self.health().failed_at.take();
        if let Some(since) = failed_at {
            info!(down_for_s = since.elapsed().as_secs_f64(), "the read-only standby answers again: reads go to it");
        }
    }

    /// Where a read that must reflect `min_position` (0: nothing in particular) and
    /// every write this process appended goes: the standby once it has replayed them,
    /// waiting at most `wait`; the primary if it does not get there, or is not usable.
    /// Records the wait.
    pub async fn route(&self, min_position: u64) -> Route {
        let min_position = min_position.max(self.written.load(Ordering::Acquire));
        if !self.usable() {
            return Route::Primary("down");
        }
        if min_position == 0 || self.health().replayed >= min_position {
            return Route::Standby;
        }
        let began = Instant::now();
        let deadline = began + self.wait;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let head = match tokio::time::timeout(remaining.max(POLL), self.replica.head_position()).await {
                Ok(Ok(head)) => head,
                Ok(Err(error)) => {
                    self.failed(&error);
                    metrics::standby_wait(began.elapsed());
                    return Route::Primary("down");
                }
                Err(_) => {
                    metrics::standby_wait(began.elapsed());
                    return Route::Primary("lag");
                }
            };
            self.answered();
            let replayed = {
                let mut health = self.health();
                health.replayed = health.replayed.max(head);
                health.replayed
            };
            if replayed >= min_position {
                metrics::standby_wait(began.elapsed());
                return Route::Standby;
            }
            if Instant::now() + POLL >= deadline {
                metrics::standby_wait(began.elapsed());
                return Route::Primary("lag");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Counts a read answered by `pool`.
pub(super) fn served(pool: ReadPool) {
    metrics::db_read(pool);
}
