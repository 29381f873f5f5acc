//! One watcher: sends its snapshot or catch-up from the feed's cut, then the live
//! changes that match its filter, through a bounded channel. A watcher whose client reads
//! too slowly blocks only itself; once it falls further behind than the feed keeps, it is
//! told (`Resync`) and caught up again from its last position, so nothing is skipped.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use uuid::Uuid;

use super::feed::{Published, Shared, changed_since};
use super::{WatchFilter, WatchItem};
use crate::domain::AlignmentView;
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

struct Watcher {
    shared: Arc<Shared>,
    filter: WatchFilter,
    tx: mpsc::Sender<WatchItem>,
    /// Initiatives this watcher's client was sent and that still match its filter.
    visible: HashSet<Uuid>,
    mark: Mark,
}

/// Starts a watcher after `after` (the cursor and position the client resumes after;
/// `None`: a fresh snapshot).
pub(super) fn spawn(
    shared: Arc<Shared>,
    filter: WatchFilter,
    after: Option<(GlobalCursor, u64)>,
) -> mpsc::Receiver<WatchItem> {
    let (tx, rx) = mpsc::channel(shared.buffers.per_watcher.max(1));
    let mark = after.map(|(cursor, position)| Mark { cursor: Some(cursor), position }).unwrap_or_default();
    let watcher = Watcher { shared, filter, tx, visible: HashSet::new(), mark };
    let start = if after.is_some() { CatchUp::Resume } else { CatchUp::Fresh };
    tokio::spawn(watcher.run(start));
    rx
}

/// A send failed: the client has gone (or the server is stopping).
struct Gone;

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

impl Watcher {
    async fn run(mut self, start: CatchUp) {
        let mut stopping = self.shared.stopping.subscribe();
        let mut changes = match self.catch_up(start).await {
            Ok(changes) => changes,
            Err(Gone) => return,
        };
        loop {
            let received = tokio::select! {
                received = changes.recv() => received,
                _ = stopping.wait_for(|stopping| *stopping) => return,
                _ = self.tx.closed() => return,
            };
            let outcome = match received {
                Ok(change) => self.deliver(&change, Delivery::Live).await,
                Err(RecvError::Lagged(skipped)) => {
                    let reason = format!(
                        "this watcher fell {skipped} changes behind the live feed; catching up from position {}",
                        self.mark.position
                    );
                    match self.send(WatchItem::Resync { reason }).await {
                        Ok(()) => match self.catch_up(CatchUp::Lagged).await {
                            Ok(fresh_changes) => {
                                changes = fresh_changes;
                                Ok(())
                            }
                            Err(gone) => Err(gone),
                        },
                        Err(gone) => Err(gone),
                    }
                }
                Err(RecvError::Closed) => return,
            };
            if outcome.is_err() {
                return;
            }
        }
    }

    /// Subscribes to live changes and sends, from the same cut, what changed after the
    /// mark (everything for a fresh watcher), then `CaughtUp`.
    async fn catch_up(&mut self, reason: CatchUp) -> Result<tokio::sync::broadcast::Receiver<Arc<Published>>, Gone> {
        let (changes, backlog, cut_cursor, cut_position) = {
            let cut = self.shared.cut();
            (self.shared.changes.subscribe(), changed_since(&cut, self.mark.cursor), cut.cursor, cut.position)
        };
        for published in &backlog {
            if reason == CatchUp::Fresh && !self.filter.matches(&published.view) {
                // A fresh snapshot leaves out what does not match; the mark still moves.
                self.mark.advance(published.cursor, published.position);
                continue;
            }
            self.deliver(published, Delivery::CatchUp(reason)).await?;
        }
        if cut_position > 0 {
            self.mark.advance(cut_cursor, cut_position);
        }
        self.send(WatchItem::CaughtUp { position: self.mark.position }).await?;
        Ok(changes)
    }

    /// Sends one initiative's change if it concerns this watcher: its alignment while it
    /// matches, `Removed` once when it stops matching.
    async fn deliver(&mut self, published: &Published, how: Delivery) -> Result<(), Gone> {
        if self.mark.covers(published.cursor) {
            return Ok(());
        }
        self.mark.advance(published.cursor, published.position);
        let id = published.view.initiative_id.0;
        if self.filter.matches(&published.view) {
            self.visible.insert(id);
            self.send(WatchItem::Alignment { position: published.position, view: published.view.clone() }).await?;
            if how == Delivery::Live {
                record_delivery(&published.view);
            }
        } else if self.visible.remove(&id) || how == Delivery::CatchUp(CatchUp::Resume) {
            self.send(WatchItem::Removed {
                position: published.position,
                initiative_id: id,
                key: published.view.key.to_string(),
            })
            .await?;
        }
        Ok(())
    }

    async fn send(&self, item: WatchItem) -> Result<(), Gone> {
        self.tx.send(item).await.map_err(|_| Gone)
    }
}

/// The time from an event's commit to its delivery to a watcher's buffer.
fn record_delivery(view: &AlignmentView) {
    let delay = (Utc::now() - view.last_activity).to_std().unwrap_or_default();
    tracing::trace!(delay_us = delay.as_micros() as u64, "live feed: delivered");
}
