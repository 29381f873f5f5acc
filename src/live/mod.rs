//! The live read side: one shared tail of the event log per process (the feed), and the
//! watchers that follow it. The feed reads the log gap-free in commit order, folds each
//! touched initiative forward and publishes its new alignment view together with the
//! position of the last event it reflects, so every watcher — gRPC `WatchAlignments`, the
//! board's event stream — sees the same changes in the same order, and a watcher that
//! reconnects with its last position misses nothing and gets nothing twice.
//!
//! Wake-ups (PostgreSQL NOTIFY from any replica, a nudge from this process's own
//! commands, and a slow poll) only say "look again": the log stays the source of truth,
//! so a lost notification delays an update but never loses it.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::alignment::AlignmentView;
use crate::store::{InitiativeRef, ListFilter};

/// Which initiatives a watcher follows.
#[derive(Clone, Debug, Default)]
pub struct WatchFilter {
    /// Only these initiatives (by id or key); empty: all that match `list`.
    pub initiatives: Vec<InitiativeRef>,
    /// The `ListAlignments` filters (status, pending function, stage, owner, archived);
    /// `text` is ignored.
    pub list: ListFilter,
}

/// One message to a watcher, in feed order.
#[derive(Clone, Debug)]
pub enum WatchItem {
    /// An initiative's alignment now; `position` is the global position of the last
    /// event it reflects (resume after it).
    Alignment { position: u64, view: Arc<AlignmentView> },
    /// An initiative the watcher saw no longer matches its filter (or was archived).
    Removed { position: u64, initiative_id: Uuid, key: String },
    /// Everything up to `position` has been sent: the snapshot or catch-up is complete.
    CaughtUp { position: u64 },
    /// The watcher fell too far behind; what follows is a catch-up from its last
    /// position (nothing is skipped).
    Resync { reason: String },
}

use tokio::sync::mpsc;

use crate::store::{Store, StoreError};

/// The shared tail of the log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Feed {
    store: Store,
}

impl Feed {
    /// Starts the tail task on `store` (WORK IN PROGRESS: interface only).
    pub fn start(store: Store) -> Feed {
        Feed { store }
    }

    /// Says "events may have been appended": the feed reads the log again soon.
    pub fn nudge(&self) {}

    /// A new watcher: the snapshot (after_position 0) or catch-up, `CaughtUp`, then live
    /// changes until the server stops (the receiver then ends).
    pub async fn watch(
        &self,
        filter: WatchFilter,
        after_position: u64,
    ) -> Result<mpsc::Receiver<WatchItem>, StoreError> {
        let _ = (&self.store, filter, after_position);
        let (_tx, rx) = mpsc::channel(1);
        Ok(rx)
    }
}
