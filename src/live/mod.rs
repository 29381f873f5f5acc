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

mod feed;
mod index;
mod reads;
mod ring;
mod watcher;

pub use feed::{Feed, FeedBuffers};
pub use reads::{ReadError, Reads, Wanted};
pub use watcher::Watch;

/// Whether a view passes the `ListAlignments` filters other than `text` (which needs
/// the case-folded key and title: see `index`): the same conditions as the store's
/// list query.
pub(crate) fn list_matches(list: &ListFilter, view: &AlignmentView) -> bool {
    (list.include_archived || !view.archived)
        && list.status.as_deref().is_none_or(|status| status == view.status.as_str())
        && list.stage.as_deref().is_none_or(|stage| stage == view.stage.as_str())
        && list.owner.as_deref().is_none_or(|owner| owner == view.owner.as_str())
        && list.pending_function.as_deref().is_none_or(|function| view.pending_functions.iter().any(|f| f == function))
}

impl WatchFilter {
    /// Whether an initiative's alignment belongs to this watcher.
    pub fn matches(&self, view: &AlignmentView) -> bool {
        let named = self.initiatives.is_empty()
            || self.initiatives.iter().any(|target| match target {
                InitiativeRef::Id(id) => *id == view.initiative_id,
                InitiativeRef::Key(key) => *key == view.key,
            });
        named && list_matches(&self.list, view)
    }
}

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
