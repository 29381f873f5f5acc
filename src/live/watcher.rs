//! One watcher: its snapshot or catch-up from the feed's cut, then the live changes that
//! match its filter, pulled from the feed's ring as its client reads. Nothing is queued
//! per watcher: a client that reads slowly (or never) holds only its place in the ring
//! and, while catching up, the ids of what it still has to be sent. Once its place has
//! left the ring it is told (`Resync`) and caught up again from its last position, so
//! nothing is skipped — and the server's memory does not depend on how clients read.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use super::feed::{Published, Shared, changed_since};
use super::ring::Lookup;
use super::{WatchFilter, WatchItem};
use crate::domain::AlignmentView;
use crate::metrics;
use crate::store::GlobalCursor;

/// Where a watcher stands: the last change it has dealt with, by cursor and position.
#[derive(Clone, Copy, Debug, Default)]
struct Mark {
    cursor: Option<GlobalCursor>,
    position: u64,
}

impl Mark {
    fn covers(&self, cursor: GlobalCursor) -> bool {
        self.cursor.is_some_and(|mark| cursor <= mark)
    }

    fn advance(&mut self, cursor: GlobalCursor, position: u64) {
        if !self.covers(cursor) {
            self.cursor = Some(cursor);
            self.position = position;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Live,
    CatchUp(CatchUp),
}

/// Why a watcher is catching up, which decides what it sends for initiatives that do not
/// match its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CatchUp {
    /// A new watcher: only what matches.
    Fresh,
    /// A client reconnecting with its last position: what it holds is unknown, so every
    /// changed initiative that does not match is sent as `Removed`.
    Resume,
    /// This watcher fell behind: `Removed` only for what it had sent.
    Lagged,
}

/// What the watcher is doing.
#[derive(Debug)]
enum Phase {
    /// Sending, from the cut, the initiatives that changed after the mark (by the cursor
    /// of that change), then `CaughtUp` at the cut's cursor.
    /// `live` is the ring's sequence number at that cut: where the live phase begins.
    CatchUp { reason: CatchUp, pending: VecDeque<(GlobalCursor, Uuid)>, cut: (GlobalCursor, u64), live: u64 },
    /// Following the ring from this sequence number.
    Live { next: u64 },
}

/// A watcher of the live feed, read with [`Watch::recv`]. Dropping it ends it.
#[derive(Debug)]
pub struct Watch {
    shared: Arc<Shared>,
    filter: WatchFilter,
    /// Initiatives this watcher's client was sent and that still match its filter.
    visible: HashSet<Uuid>,
    mark: Mark,
    phase: Phase,
    published: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    _counted: Counted,
}

impl Watch {
    /// A watcher after `after` (the cursor and position the client resumes after;
    /// `None`: a fresh snapshot).
    pub(super) fn new(shared: Arc<Shared>, filter: WatchFilter, after: Option<(GlobalCursor, u64)>) -> Watch {
        let mark = after.map(|(cursor, position)| Mark { cursor: Some(cursor), position }).unwrap_or_default();
        let start = if after.is_some() { CatchUp::Resume } else { CatchUp::Fresh };
        let (published, stopping) = (shared.published.subscribe(), shared.stopping.subscribe());
        let mut watch = Watch {
            shared,
            filter,
            visible: HashSet::new(),
            mark,
            phase: Phase::Live { next: 0 },
            published,
            stopping,
            _counted: Counted::new(),
        };
        watch.phase = watch.catch_up(start);
        watch
    }

    /// The next item, in feed order; `None` once the feed stops (the server is shutting
    /// down). Waits while there is nothing new.
    pub async fn recv(&mut self) -> Option<WatchItem> {
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            match &mut self.phase {
                Phase::CatchUp { reason, pending, cut, live } => {
                    let (reason, cut, live) = (*reason, *cut, *live);
                    let Some((cursor, id)) = pending.pop_front() else {
                        if cut.1 > 0 {
                            self.mark.advance(cut.0, cut.1);
                        }
                        self.phase = Phase::Live { next: live };
                        return Some(WatchItem::CaughtUp { position: self.mark.position });
                    };
                    // The initiative as published now; if it changed since the catch-up
                    // began, that change follows from the ring (it is after the cut).
                    let current = self.shared.cut().initiatives.get(&id).cloned();
                    let Some(published) = current.filter(|published| published.cursor == cursor) else {
                        continue;
                    };
                    if reason == CatchUp::Fresh && !self.filter.matches(&published.view) {
                        self.mark.advance(published.cursor, published.position);
                        continue;
                    }
                    if let Some(item) = self.deliver(&published, Delivery::CatchUp(reason)) {
                        return Some(item);
                    }
                }
                Phase::Live { next } => {
                    let seq = *next;
                    let lookup = self.shared.cut().recent.get(seq);
                    match lookup {
                        Lookup::Change(published) => {
                            *next = seq + 1;
                            if let Some(item) = self.deliver(&published, Delivery::Live) {
                                if matches!(item, WatchItem::Alignment { .. }) {
                                    record_delivery(&published.view);
                                }
                                return Some(item);
                            }
                        }
                        Lookup::Evicted { skipped } => {
                            metrics::watch_resynced();
                            let reason = format!(
                                "this watcher fell {skipped} changes behind the live feed; catching up from position {}",
                                self.mark.position
                            );
                            self.phase = self.catch_up(CatchUp::Lagged);
                            return Some(WatchItem::Resync { reason });
                        }
                        Lookup::Waiting => {
                            let (published, stopping) = (&mut self.published, &mut self.stopping);
                            tokio::select! {
                                changed = published.wait_for(|next| *next > seq) => {
                                    if changed.is_err() {
                                        return None;
                                    }
                                }
                                _ = stopping.wait_for(|stopping| *stopping) => return None,
                            }
                        }
                    }
                }
            }
        }
    }

    /// Notes, from one cut, what changed after the mark and where the live changes after
    /// that cut begin.
    fn catch_up(&self, reason: CatchUp) -> Phase {
        let cut = self.shared.cut();
        let filter = &self.filter;
        // A fresh snapshot leaves out what does not match (the mark still moves to the
        // cut at the end); the others must see what no longer matches, to remove it.
        let pending = changed_since(&cut, self.mark.cursor, |view| reason != CatchUp::Fresh || filter.matches(view));
        Phase::CatchUp { reason, pending: pending.into(), cut: (cut.cursor, cut.position), live: cut.recent.next_seq() }
    }

    /// The item one initiative's change gives this watcher, if any: its alignment while it
    /// matches, `Removed` once when it stops matching.
    fn deliver(&mut self, published: &Published, how: Delivery) -> Option<WatchItem> {
        if self.mark.covers(published.cursor) {
            return None;
        }
        self.mark.advance(published.cursor, published.position);
        let id = published.view.initiative_id.0;
        if self.filter.matches(&published.view) {
            self.visible.insert(id);
            Some(WatchItem::Alignment { position: published.position, view: published.view.clone() })
        } else if self.visible.remove(&id) || how == Delivery::CatchUp(CatchUp::Resume) {
            Some(WatchItem::Removed {
                position: published.position,
                initiative_id: id,
                key: published.view.key.to_string(),
            })
        } else {
            None
        }
    }
}

/// The time from an event's commit (its recorded time, taken in the committing
/// transaction) to its delivery to a watcher.
fn record_delivery(view: &AlignmentView) {
    let delay = (Utc::now() - view.last_activity).to_std().unwrap_or_default();
    metrics::watch_delivered(delay);
}

/// Counts a watcher in the `accord_watchers` gauge for as long as it lives.
#[derive(Debug)]
struct Counted;

impl Counted {
    fn new() -> Counted {
        metrics::watcher_opened();
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::watcher_closed();
    }
}
