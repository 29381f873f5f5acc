//! What the committer tells the rest of the process after each append: the events it
//! wrote, with the positions the store gave them and the event they follow in commit
//! order. The live feed applies them as they are, without reading them back, when it has
//! applied the log up to that event; otherwise (another process appended in between, or
//! it has fallen behind) it reads the log as before. The log stays the source of truth.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::store::{GlobalCursor, StoredEvent};

/// One appended batch's events.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The position of the event the batch follows directly in commit order (0: the log
    /// was empty).
    pub after: i64,
    /// The batch's events in commit order, each with its cursor.
    pub events: Vec<(GlobalCursor, StoredEvent)>,
    /// When the append was sent: the log held nothing past `after` then.
    pub sent: Instant,
    /// Roughly what the events cost to keep (their payloads' size).
    pub bytes: usize,
}

/// Where the committer hands each `Committed` (set once, by whoever follows the log).
pub type CommitSink = Arc<dyn Fn(Committed) + Send + Sync>;

/// The committer's end of the hand-off: empty until a follower is set.
#[derive(Clone, Default)]
pub(super) struct SinkSlot(Arc<OnceLock<CommitSink>>);

impl std::fmt::Debug for SinkSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "SinkSlot(set)" } else { "SinkSlot(empty)" })
    }
}

impl SinkSlot {
    /// Sets the follower; a second one is refused (`false`).
    pub(super) fn set(&self, sink: CommitSink) -> bool {
        self.0.set(sink).is_ok()
    }

    pub(super) fn get(&self) -> Option<&CommitSink> {
        self.0.get()
    }
}
