//! What each event of the log gives the webhooks: the event, its decoded form and the
//! notifications it gives rise to (`notify::notifications`, a pure function of the
//! initiative's state before and after it). `Deriver` folds states forward as events
//! come in commit order and loads a state it does not hold from the store (an as-of
//! read), so deriving is the same whether it starts at the head or anywhere in the past:
//! a redelivery derives a message's body again and gets the same bytes.
//!
//! `Tail` is the one reader of the log's new events the subscriptions share: it derives
//! each event once and keeps the recent ones in a ring bounded in bytes; a subscription
//! behind the ring reads (and derives) the log itself until it catches up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;
use uuid::Uuid;

use crate::domain::notify::{self, Notification};
use crate::domain::{Initiative, Recorded, evolve};
use crate::live::Feed;
use crate::store::{GlobalCursor, Store, StoreError, StoredEvent};

/// One event with what the webhooks send of it.
#[derive(Debug)]
pub struct Derived {
    pub cursor: GlobalCursor,
    pub event: StoredEvent,
    pub recorded: Recorded,
    pub notifications: Vec<Notification>,
    /// Roughly what it holds in memory, for the ring's bound.
    size: usize,
}

impl Derived {
    fn bytes(&self) -> usize {
        self.size
    }

    fn measure(&self) -> usize {
        let payload = self.event.payload.to_string().len();
        let notes: usize =
            self.notifications.iter().map(|n| 256 + n.action.len() + n.reason.len() + n.who_must_act.len() * 48).sum();
        512 + payload * 2 + notes
    }
}

/// Most initiative states a deriver keeps (a state is a few KiB; beyond this it starts
/// over and loads what it needs again).
const STATES_KEPT: usize = 4096;

/// Folds initiative states forward to derive each event's notifications.
#[derive(Default)]
pub struct Deriver {
    states: HashMap<Uuid, (i64, Initiative)>,
}

impl Deriver {
    pub async fn derive(
        &mut self,
        store: &Store,
        cursor: GlobalCursor,
        event: StoredEvent,
    ) -> Result<Derived, StoreError> {
        let recorded = event.to_recorded()?;
        let version = event.stream_version;
        let before = match self.states.remove(&event.stream_id) {
            Some((held, state)) if held == version - 1 => Some(state),
            _ if version <= 1 => None,
            _ => store.state_at(event.stream_id, version - 1).await?,
        };
        let after = evolve(before.clone(), &recorded)
            .map_err(|e| StoreError::Corrupt(format!("event at position {}: {e}", event.position)))?;
        let notifications = notify::notifications(before.as_ref(), &recorded, &after);
        if self.states.len() >= STATES_KEPT {
            self.states.clear();
        }
        self.states.insert(event.stream_id, (version, after));
        let mut derived = Derived { cursor, event, recorded, notifications, size: 0 };
        derived.size = derived.measure();
        Ok(derived)
    }
}

/// Events read from the store per round.
const PAGE: i64 = 512;

struct Ring {
    /// The cursor the ring's first item follows: the ring holds every event after it.
    base: GlobalCursor,
    items: VecDeque<Arc<Derived>>,
    bytes: usize,
}

/// The shared tail of the log, derived.
#[derive(Clone)]
pub struct Tail {
    store: Store,
    ring: Arc<Mutex<Ring>>,
    last: watch::Receiver<GlobalCursor>,
    active: Arc<watch::Sender<bool>>,
}

impl Tail {
    /// Starts reading after `from` (the head when the dispatcher starts), keeping at most
    /// `max_bytes` of derived events; woken by the feed, and every second regardless.
    pub fn start(
        store: Store,
        feed: Feed,
        from: GlobalCursor,
        max_bytes: usize,
    ) -> (Tail, tokio::task::JoinHandle<()>) {
        let ring = Arc::new(Mutex::new(Ring { base: from, items: VecDeque::new(), bytes: 0 }));
        let (publish, last) = watch::channel(from);
        let (active, mut activity) = watch::channel(false);
        let tail = Tail { store: store.clone(), ring: Arc::clone(&ring), last, active: Arc::new(active) };
        let task = tokio::spawn(async move {
            let mut deriver = Deriver::default();
            let mut cursor = from;
            loop {
                if !*activity.borrow_and_update() {
                    // Nobody to send to: no reading, no deriving. Once someone is, the
                    // tail starts again at the head; senders behind it read the log.
                    if activity.wait_for(|active| *active).await.is_err() {
                        break;
                    }
                    match super::dispatch::head_cursor(&store).await {
                        Ok(head) if head > cursor => {
                            let mut ring = ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                            ring.items.clear();
                            ring.bytes = 0;
                            ring.base = head;
                            cursor = head;
                            deriver = Deriver::default();
                        }
                        Ok(_) => {}
                        Err(error) => warn!(%error, "webhooks: cannot read the log's head"),
                    }
                    publish.send_replace(cursor);
                }
                let mark = feed.events_applied();
                match read_into(&store, &mut deriver, &ring, &mut cursor, max_bytes).await {
                    Ok(true) => {
                        publish.send_replace(cursor);
                        continue;
                    }
                    Ok(false) => {}
                    Err(error) => warn!(%error, "webhooks: cannot read the log's tail"),
                }
                if feed.is_stopping() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), feed.applied_since(mark)).await;
            }
        });
        (tail, task)
    }

    /// Whether anyone follows the tail: it reads the log only while someone does.
    pub fn set_active(&self, active: bool) {
        self.active.send_if_modified(|now| std::mem::replace(now, active) != active);
    }

    /// Resolves once the tail has moved past `cursor` (or after `wait`).
    pub async fn moved_past(&mut self, cursor: GlobalCursor, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.last.wait_for(|last| *last > cursor)).await;
    }

    /// Up to `limit` derived events after `cursor`: from the ring when it holds them,
    /// otherwise read from the store and derived with `own` (the caller's deriver).
    pub async fn after(
        &self,
        cursor: GlobalCursor,
        limit: usize,
        own: &mut Deriver,
    ) -> Result<Vec<Arc<Derived>>, StoreError> {
        {
            let ring = self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if cursor >= ring.base {
                let start = ring.items.partition_point(|item| item.cursor <= cursor);
                return Ok(ring.items.iter().skip(start).take(limit).cloned().collect());
            }
        }
        let page = self.store.read_all(cursor, i64::try_from(limit).unwrap_or(PAGE)).await?;
        let mut derived = Vec::with_capacity(page.len());
        for (at, event) in page {
            derived.push(Arc::new(own.derive(&self.store, at, event).await?));
        }
        Ok(derived)
    }
}

/// Reads what follows `cursor` into the ring; whether anything was read.
async fn read_into(
    store: &Store,
    deriver: &mut Deriver,
    ring: &Mutex<Ring>,
    cursor: &mut GlobalCursor,
    max_bytes: usize,
) -> Result<bool, StoreError> {
    let page = store.read_all(*cursor, PAGE).await?;
    if page.is_empty() {
        return Ok(false);
    }
    let mut derived = Vec::with_capacity(page.len());
    for (at, event) in page {
        derived.push(Arc::new(deriver.derive(store, at, event).await?));
        *cursor = at;
    }
    let mut ring = ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for item in derived {
        ring.bytes += item.bytes();
        ring.items.push_back(item);
    }
    while ring.bytes > max_bytes
        && let Some(oldest) = ring.items.pop_front()
    {
        ring.bytes = ring.bytes.saturating_sub(oldest.bytes());
        ring.base = oldest.cursor;
    }
    Ok(true)
}
