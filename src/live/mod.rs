//! The live read side: one shared tail of the event log per process (the feed), and the
//! watchers that follow it. The feed reads the log gap-free in commit order, folds each
//! touched initiative forward and publishes its new alignment view together with the
//! position of the last event it reflects, so every watcher — gRPC `WatchAlignments`, the
//! board's event stream — sees the same changes in the same order, and a watcher that
//! reconnects with its last position misses nothing and gets nothing twice.
//!
//! The same views answer queries (`reads`, over the read model in `index`): an
//! alignment, a list page, an inbox is a lookup in memory rather than a database round
//! trip, with this process's own writes always reflected and other processes' once the
//! caller names their position.
//!
//! Wake-ups (PostgreSQL NOTIFY from any replica, a nudge from this process's own
//! commands, and a slow poll) only say "look again": the log stays the source of truth,
//! so a lost notification delays an update but never loses it.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::alignment::AlignmentView;

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

mod feed;
mod filter;
mod index;
mod reads;
mod ring;
mod watcher;

pub use feed::{Feed, FeedBuffers};
pub use filter::{WatchFields, WatchFilter};
pub use reads::{ReadError, Reads, Wanted};
pub use watcher::Watch;

impl WatchItem {
    /// The position a client resumes after once it has this item.
    pub fn position(&self) -> Option<u64> {
        match self {
            WatchItem::Alignment { position, .. }
            | WatchItem::Removed { position, .. }
            | WatchItem::CaughtUp { position } => Some(*position),
            WatchItem::Resync { .. } => None,
        }
    }
}
