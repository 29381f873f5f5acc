//! The feed: one task per process that tails the event log gap-free in commit order,
//! folds every initiative forward and publishes each new alignment view with the cursor
//! and position of the last event it reflects. The published map (the "cut") and the
//! ring of recent changes are updated under one lock, so a watcher that starts under
//! that lock sees the cut and then exactly the changes after it.
//!
//! Memory is bounded in bytes: the ring drops its oldest changes past its byte (and
//! count) bound, and watchers pull from it rather than being pushed to, so a client that
//! never reads pins nothing but its place in the ring; once that place is dropped it is
//! told (`Resync`) and caught up from the cut when it reads again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio_stream::StreamExt;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::index::Index;
use super::ring::Ring;
use super::{WatchFilter, watcher::Watch};
use crate::app::{CommitSink, Committed};
use crate::domain::{AlignmentView, Initiative, alignment::project_indexed, evolve, values::InitiativeId};
use crate::metrics;
use crate::store::{AppendSignal, AppendSignals, GlobalCursor, Store, StoreError, StoredEvent};

/// Events read from the log per query.
const PAGE: i64 = 1000;
/// How often the log is read without a wake-up: the bound on the delay a lost
/// notification can cause.
const POLL: Duration = Duration::from_secs(1);
/// The longest a new watcher waits for the feed to reach the head it saw.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);
/// How long a notification of an append the feed has not seen waits for this process's
/// committer to hand that append over before the feed reads the log for it: the
/// notification and the append's answer leave the database together, and the append is
/// usually this process's own.
const NOTIFIED_GRACE: Duration = Duration::from_millis(10);
/// Most bytes of this process's appended events waiting to be applied (see `Handoff`);
/// past it a batch is dropped and the feed reads the log instead.
const HANDOFF_BYTES: usize = 8 * 1024 * 1024;

/// How much the feed keeps of recent changes for watchers that are behind; a watcher
/// further behind is resynchronised from the current views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedBuffers {
    /// Most changes kept.
    pub changes: usize,
    /// Most bytes of changes kept (each change counted at its view's encoded size).
    pub change_bytes: usize,
}

impl Default for FeedBuffers {
    fn default() -> Self {
        FeedBuffers { changes: 4096, change_bytes: 32 * 1024 * 1024 }
    }
}

/// One initiative's alignment as published: the view and the last event it reflects.
#[derive(Clone, Debug)]
pub(super) struct Published {
    pub cursor: GlobalCursor,
    pub position: u64,
    pub view: Arc<AlignmentView>,
    /// The view's size as sent (its JSON encoding): what it costs to keep it.
    pub bytes: usize,
}

impl Published {
    pub(super) fn new(cursor: GlobalCursor, position: u64, view: AlignmentView) -> Published {
        let bytes = encoded_size(&view);
        Published { cursor, position, view: Arc::new(view), bytes }
    }
}

/// The length of a view's JSON encoding, counted without building it.
fn encoded_size(view: &AlignmentView) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serialising a view cannot fail (no maps with non-string keys); were it to, the
    // size of the fixed fields is a floor.
    match serde_json::to_writer(&mut count, view) {
        Ok(()) => count.0,
        Err(_) => std::mem::size_of::<AlignmentView>(),
    }
}

/// What the feed has published so far.
#[derive(Debug)]
pub(super) struct Cut {
    /// The last event applied (in commit order) and its position.
    pub cursor: GlobalCursor,
    pub position: u64,
    pub initiatives: HashMap<Uuid, Arc<Published>>,
    /// The recent changes, for watchers that are behind.
    pub recent: Ring<Published>,
}

/// How old the feed's views may be and still count as current: it reads the log at
/// least every `POLL`, so a feed further behind than this is stuck — behind a database
/// that does not answer, or (on PostgreSQL) behind a transaction that has been open for
/// that long somewhere on the server, which the gap-free read must wait for.
const FRESH: Duration = Duration::from_secs(2);
/// Reads of the log the feed remembers while it has not yet applied the head each saw.
const UNCOVERED_ROUNDS: usize = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Rounds {
    begun: u64,
    completed: u64,
    /// The highest position applied so far.
    applied: u64,
    /// Events applied so far (positions need not grow in commit order; this does).
    events: u64,
    /// The feed has applied everything the log held at this instant (the start of a read
    /// whose head it has applied since); `None` once a read fails, until one succeeds.
    caught_up: Option<Instant>,
    /// Since when the store's append signals have been coming (`None` while not):
    /// what other replicas append is only seen promptly while it is.
    listening_since: Option<Instant>,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub cut: Mutex<Cut>,
    /// The same views for queries, with the writes acknowledged here that are still to
    /// come (see `index`).
    index: RwLock<Index>,
    /// The ring's next sequence number, sent after every change: what waiting watchers
    /// wait on.
    pub published: watch::Sender<u64>,
    wake: Arc<Notify>,
    /// Set when the log must be read (another process may have appended, or a batch
    /// handed over was dropped); a wake-up without it only applies what was handed over.
    read_wanted: AtomicBool,
    /// This process's appended batches, waiting to be applied.
    handoff: Mutex<Handoff>,
    /// The highest position handed over so far.
    handed: AtomicU64,
    /// The highest position the database's notifications announced.
    notified: AtomicU64,
    /// Since when that position has been neither applied nor handed over: the log the
    /// feed reads (a standby's) is behind what the primary announced.
    behind_notified: Mutex<Option<Instant>>,
    /// Reads of the log begun and completed: a watcher waits for one begun after it
    /// arrived, so it sees every write acknowledged before it asked.
    rounds: watch::Sender<Rounds>,
    /// True once the server stops: watchers end.
    pub stopping: watch::Sender<bool>,
}

impl Shared {
    pub fn cut(&self) -> MutexGuard<'_, Cut> {
        // A panic while holding the lock leaves a consistent map (updates are single
        // inserts), so a poisoned lock is still usable.
        self.cut.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        // As for the cut: every update leaves the index consistent.
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn handoff(&self) -> MutexGuard<'_, Handoff> {
        // Every update leaves the queue and its byte count consistent.
        self.handoff.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks for a read of the log now.
    fn want_read(&self) {
        self.read_wanted.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether something at `position` may not have reached the feed by any other way
    /// than the log: it is neither applied nor handed over.
    fn unseen(&self, position: u64) -> bool {
        position > self.handed.load(Ordering::Acquire).max(self.rounds.borrow().applied)
    }
}

/// The batches this process appended that the feed has not applied yet, bounded in
/// bytes: a committer never waits for the feed, and a feed that falls behind reads the
/// log instead (what it is given is only a shortcut past reading it back).
#[derive(Debug, Default)]
struct Handoff {
    batches: VecDeque<Committed>,
    bytes: usize,
}

/// The shared tail of the log. Cheap to clone; the task stops with `stop` or when the
/// last clone is dropped.
#[derive(Clone, Debug)]
pub struct Feed {
    store: Store,
    shared: Arc<Shared>,
    /// Whether the store signals other processes' appends (PostgreSQL): then the feed's
    /// views are current only while it listens.
    signalled: bool,
}

impl Feed {
    /// Starts tailing `store`: from its stored projection at a consistent cut, then the
    /// log after it (watchers wait for that), then new events as wake-ups arrive.
    pub fn start(store: Store) -> Feed {
        Feed::start_with(store, FeedBuffers::default())
    }

    /// `start` with other buffer sizes (the tests make them small).
    pub fn start_with(store: Store, buffers: FeedBuffers) -> Feed {
        let cut = Cut {
            cursor: GlobalCursor::default(),
            position: 0,
            initiatives: HashMap::new(),
            recent: Ring::new(buffers),
        };
        let shared = Arc::new(Shared {
            cut: Mutex::new(cut),
            index: RwLock::new(Index::default()),
            published: watch::channel(0).0,
            wake: Arc::new(Notify::new()),
            read_wanted: AtomicBool::new(true),
            handoff: Mutex::new(Handoff::default()),
            handed: AtomicU64::new(0),
            notified: AtomicU64::new(0),
            behind_notified: Mutex::new(None),
            rounds: watch::channel(Rounds::default()).0,
            stopping: watch::channel(false).0,
        });
        tokio::spawn(tail(store.clone(), store.standby_reads(), Arc::downgrade(&shared)));
        let signalled = match store.append_signals() {
            Some(signals) => {
                tokio::spawn(listen(signals, Arc::downgrade(&shared)));
                true
            }
            None => false,
        };
        Feed { store, shared, signalled }
    }

    /// Says "events may have been appended": the feed reads the log again now rather
    /// than at its next poll (notifications from PostgreSQL do the same across replicas).
    pub fn nudge(&self) {
        self.shared.want_read();
    }

    /// Says "this process acknowledged a write to `initiative` at `position`": queries
    /// answered from the feed's views wait until the feed has applied it (see `Reads`);
    /// unless the write was handed over (`commit_sink`), the feed reads the log now.
    pub fn acknowledged(&self, initiative: InitiativeId, position: u64) {
        self.shared.index_mut().acknowledge(initiative.0, position, Instant::now());
        if self.shared.unseen(position) {
            self.nudge();
        }
    }

    /// Where this process's committer hands its appended batches (`App::on_commit`):
    /// the feed applies each without reading it back when it follows directly on what
    /// the feed has applied. Holds the feed weakly: it does not keep it running.
    pub fn commit_sink(&self) -> CommitSink {
        let shared = Arc::downgrade(&self.shared);
        Arc::new(move |committed: Committed| {
            let Some(feed) = shared.upgrade() else { return };
            let last = committed.events.last().and_then(|(_, event)| u64::try_from(event.position).ok());
            let mut handoff = feed.handoff();
            if handoff.bytes.saturating_add(committed.bytes) > HANDOFF_BYTES {
                // Behind by this much: the log is read instead, and it holds this batch.
                drop(handoff);
                feed.want_read();
                return;
            }
            handoff.bytes += committed.bytes;
            handoff.batches.push_back(committed);
            drop(handoff);
            if let Some(last) = last {
                feed.handed.fetch_max(last, Ordering::AcqRel);
            }
            feed.wake.notify_one();
        })
    }

    /// Whether the feed's views are as current as the log, give or take `FRESH`: it has
    /// applied everything the log held less than `FRESH` ago and (where the store signals
    /// appends) has listened for them since before then, so that nothing another replica
    /// wrote can have gone unnoticed for longer.
    pub(super) fn is_current(&self) -> bool {
        if self.is_stopping() {
            return false;
        }
        let rounds = *self.shared.rounds.borrow();
        let Some(caught_up) = rounds.caught_up else { return false };
        let heard = !self.signalled || rounds.listening_since.is_some_and(|since| since <= caught_up);
        // A read of a standby that stopped replaying still "catches up" with what the
        // standby shows; what the primary announced and the feed has not applied for
        // `FRESH` says that the feed is behind all the same.
        let behind = self
            .shared
            .behind_notified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|since| since.elapsed() >= FRESH);
        heard && caught_up.elapsed() < FRESH && !behind
    }

    /// Waits until `ready` holds of the index (checked now and after every page the feed
    /// applies), or until `deadline` passes or the feed stops (`false`).
    pub(super) async fn wait_until(
        &self,
        deadline: tokio::time::Instant,
        mut ready: impl FnMut(&Index) -> bool,
    ) -> bool {
        let mut rounds = self.shared.rounds.subscribe();
        let mut stopping = self.shared.stopping.subscribe();
        loop {
            // Subscribed before the check: a page applied right after it is not missed.
            let done = ready(&self.shared.index());
            if done {
                return true;
            }
            tokio::select! {
                changed = rounds.changed() => if changed.is_err() { return false },
                _ = stopping.wait_for(|stopping| *stopping) => return false,
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    pub(super) fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.shared.index()
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Ends every watcher (their streams end) and stops following the log.
    pub fn stop(&self) {
        self.shared.stopping.send_replace(true);
        self.shared.wake.notify_one();
    }

    /// Whether `stop` was called.
    pub fn is_stopping(&self) -> bool {
        *self.shared.stopping.borrow()
    }

    /// How many events the feed has applied: a mark for `applied_since`.
    pub fn events_applied(&self) -> u64 {
        self.shared.rounds.borrow().events
    }

    /// Resolves once the feed has applied events beyond `mark` (from `events_applied`),
    /// or stops: the wake-up of history readers that follow the log, so that they read
    /// the store when something was appended (by any replica) rather than on a timer.
    pub async fn applied_since(&self, mark: u64) {
        let mut rounds = self.shared.rounds.subscribe();
        let mut stopping = self.shared.stopping.subscribe();
        tokio::select! {
            _ = rounds.wait_for(|rounds| rounds.events > mark) => {}
            _ = stopping.wait_for(|stopping| *stopping) => {}
        }
    }

    /// The position of the last event published.
    pub fn position(&self) -> u64 {
        self.shared.cut().position
    }

    /// A new watcher: the snapshot (`after_position` 0: every matching initiative) or the
    /// catch-up (the initiatives changed after that position, each once, at its current
    /// alignment), then `CaughtUp`, then live changes until the server stops (the
    /// receiver then ends). The items come in feed order, so the position of any item is
    /// a valid place to resume from.
    pub async fn watch(&self, filter: WatchFilter, after_position: u64) -> Result<Watch, StoreError> {
        // Read-your-writes: wait until the feed has read the log once and applied the head
        // as of now, so a watcher sees every write acknowledged before it asked. On
        // PostgreSQL the gap-free read waits for every older transaction in the cluster,
        // so the wait is bounded; what it did not wait for follows as live changes.
        let head = self.store.head_position().await?;
        let mut rounds = self.shared.rounds.subscribe();
        let mut stopping = self.shared.stopping.subscribe();
        self.nudge();
        let caught_up = rounds.wait_for(|rounds| rounds.completed > 0 && rounds.applied >= head);
        tokio::select! {
            waited = tokio::time::timeout(SNAPSHOT_WAIT, caught_up) => {
                if let Ok(Err(_)) = waited {
                    return Err(StoreError::Unavailable("the live feed has stopped".to_owned()));
                }
            }
            _ = stopping.wait_for(|stopping| *stopping) => {
                return Err(StoreError::Unavailable("the server is shutting down".to_owned()));
            }
        }
        let after = match after_position {
            0 => None,
            position => Some((self.store.cursor_after_position(position).await?, position)),
        };
        Ok(Watch::new(self.shared.clone(), filter, after))
    }
}

/// Starts from the stored projection at a consistent cut (`start_from_cut`), then applies what
/// this process appends as it is handed over, and reads the log whenever that is not
/// enough: another process may have appended (a notification, a nudge), a batch does not
/// follow on what was applied, a read failed, or `POLL` has passed since the last read.
///
/// `log` is where the log is read from: the standby when one is configured (its snapshot
/// is a prefix of the primary's commits, so the gap-free read holds there; see
/// `store::standby`), the primary otherwise or while it is down. The initiatives' folded
/// states are always loaded from `store`, the primary: a batch this process hands over
/// may be ahead of the standby, and a state loaded there could be older than the event
/// it is folded up to. While a standby lags behind what the primary's notifications
/// announced, the feed reads it again every `NOTIFIED_GRACE` until it has caught up
/// (small reads of the log's end, on the standby).
async fn tail(store: Store, log: Store, shared: std::sync::Weak<Shared>) {
    // The folded states of the initiatives the feed has applied events to since it
    // started; the others are loaded when their next event comes (`apply`).
    let mut states: HashMap<Uuid, Initiative> = HashMap::new();
    let mut cursor = GlobalCursor::default();
    let mut started = false;
    // Whether what has been applied is the log's prefix in commit order up to `cursor`,
    // as a read that reached the end leaves it (and a batch that follows on it).
    let mut in_sync = false;
    let mut last_read = Instant::now();
    let mut failures = 0u32;
    // Each read's start and the head the log had then, until the feed has applied it:
    // a read that reaches the end of what the gap-free read shows has not caught up
    // while an older transaction holds later commits back.
    let mut uncovered: VecDeque<(Instant, u64)> = VecDeque::new();
    // Since when a notified position has been neither applied nor handed over.
    let mut unseen_since: Option<Instant> = None;
    loop {
        let Some(feed) = shared.upgrade() else { return };
        if *feed.stopping.borrow() {
            return;
        }
        if !started {
            match start_from_cut(&store, &log, &feed, &mut states).await {
                Ok(at) => {
                    cursor = at;
                    started = true;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(60) {
                        warn!(%error, failures, "live feed: cannot read the stored projection; retrying");
                    }
                    let mut stopping = feed.stopping.subscribe();
                    drop(feed);
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stopping.wait_for(|stopping| *stopping) => return,
                    }
                    continue;
                }
            }
        }
        let handed = std::mem::take(&mut *feed.handoff());
        let mut read = feed.read_wanted.swap(false, Ordering::AcqRel) || last_read.elapsed() >= POLL;
        for batch in handed.batches {
            let Some(&(last, _)) = batch.events.last() else { continue };
            if last <= cursor {
                continue;
            }
            // Something came in between (another process's append), or the feed is not
            // where a read would leave it: the read below covers this batch.
            if read || !in_sync || cursor.position != batch.after {
                read = true;
                continue;
            }
            match publish(&store, &feed, &mut states, &batch.events).await {
                Ok(()) => {
                    metrics::feed_applied(true);
                    cursor = last;
                    // The log held nothing past `after` when the batch was sent.
                    feed.rounds.send_modify(|rounds| {
                        rounds.caught_up = Some(rounds.caught_up.map_or(batch.sent, |at| at.max(batch.sent)));
                    });
                }
                Err(error) => {
                    warn!(%error, "live feed: cannot apply appended events; reading the log");
                    in_sync = false;
                    read = true;
                }
            }
        }
        if !read && feed.unseen(feed.notified.load(Ordering::Acquire)) {
            // Another process's append, or this one's on its way: give the hand-over a
            // moment before reading.
            let since = *unseen_since.get_or_insert_with(Instant::now);
            read = since.elapsed() >= NOTIFIED_GRACE;
        } else {
            unseen_since = None;
        }
        if read {
            unseen_since = None;
            last_read = Instant::now();
            in_sync = read_round(&store, &log, &feed, &mut states, &mut cursor, &mut uncovered, &mut failures).await;
        }
        {
            let behind = feed.unseen(feed.notified.load(Ordering::Acquire));
            let mut since = feed.behind_notified.lock().unwrap_or_else(PoisonError::into_inner);
            match (behind, *since) {
                (true, None) => *since = Some(Instant::now()),
                (false, Some(_)) => *since = None,
                _ => {}
            }
        }
        let next_read = match unseen_since {
            Some(since) => (since + NOTIFIED_GRACE).min(last_read + POLL),
            None => last_read + POLL,
        };
        // A wake-up during the work above left a permit, so it is not lost.
        let wake = feed.wake.clone();
        let mut stopping = feed.stopping.subscribe();
        drop(feed);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(next_read.into()) => {}
            _ = stopping.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// Publishes every initiative's stored alignment at one consistent cut of the log, so
/// that a start costs one row per initiative whatever the log's length; an initiative
/// whose row cannot stand for its head (written by another projection version, behind
/// its head, missing) is folded from the store instead. Returns the cut's cursor: the
/// feed reads the log after it.
async fn start_from_cut(
    store: &Store,
    log: &Store,
    feed: &Shared,
    states: &mut HashMap<Uuid, Initiative>,
) -> Result<GlobalCursor, StoreError> {
    let began = Instant::now();
    let cut = log.projection_cut().await?;
    let initiatives = cut.rows.len();
    let mut folded = 0usize;
    let mut published = Vec::with_capacity(initiatives);
    for row in cut.rows {
        let (view, awaiting) = match row.view {
            Some(stored) => (stored.view, stored.awaiting),
            None => {
                let state = store
                    .state_at(row.initiative_id, row.version)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("stream {} has no events", row.initiative_id)))?;
                let projected = project_indexed(&state);
                states.insert(row.initiative_id, state);
                folded += 1;
                projected
            }
        };
        published.push((Arc::new(Published::new(row.cursor, row.position, view)), awaiting));
    }
    {
        let mut at = feed.cut();
        for (change, _) in &published {
            at.initiatives.insert(change.view.initiative_id.0, change.clone());
        }
        at.cursor = cut.cursor;
        at.position = cut.position;
    }
    {
        let mut index = feed.index_mut();
        for (change, awaiting) in published {
            index.publish(change, awaiting);
        }
        index.cursor = cut.cursor;
    }
    feed.rounds.send_modify(|rounds| rounds.applied = rounds.applied.max(cut.position));
    info!(
        initiatives,
        folded,
        position = cut.position,
        ms = began.elapsed().as_millis() as u64,
        "live feed: started from the stored projection"
    );
    Ok(cut.cursor)
}

/// One read of the log to its end, with the bookkeeping watchers and queries wait on.
/// Whether it succeeded.
#[allow(clippy::too_many_arguments)]
async fn read_round(
    store: &Store,
    log: &Store,
    feed: &Shared,
    states: &mut HashMap<Uuid, Initiative>,
    cursor: &mut GlobalCursor,
    uncovered: &mut VecDeque<(Instant, u64)>,
    failures: &mut u32,
) -> bool {
    feed.rounds.send_modify(|rounds| rounds.begun += 1);
    let begun = Instant::now();
    let read = match log.head_position().await {
        Ok(head) => read_to_end(store, log, feed, states, cursor).await.map(|()| head),
        Err(error) => Err(error),
    };
    // Watchers waiting for this round go on even if it failed: they get what has been
    // published and the changes that follow once the store answers again. Queries do
    // not: they read the database until the feed has caught up again.
    feed.rounds.send_modify(|rounds| {
        rounds.completed = rounds.begun;
        match &read {
            Ok(head) => {
                uncovered.push_back((begun, *head));
                if uncovered.len() > UNCOVERED_ROUNDS {
                    uncovered.pop_front();
                }
                while let Some(&(at, _)) = uncovered.front().filter(|(_, head)| *head <= rounds.applied) {
                    rounds.caught_up = Some(rounds.caught_up.map_or(at, |since| since.max(at)));
                    uncovered.pop_front();
                }
            }
            Err(_) => {
                uncovered.clear();
                rounds.caught_up = None;
            }
        }
    });
    match read {
        Ok(_) => {
            *failures = 0;
            true
        }
        Err(error) => {
            *failures = failures.saturating_add(1);
            if *failures == 1 || failures.is_multiple_of(60) {
                warn!(%error, failures = *failures, "live feed: cannot read the log; retrying");
            }
            false
        }
    }
}

/// Applies every event after `cursor` that the log can show gap-free, page by page.
async fn read_to_end(
    store: &Store,
    log: &Store,
    feed: &Shared,
    states: &mut HashMap<Uuid, Initiative>,
    cursor: &mut GlobalCursor,
) -> Result<(), StoreError> {
    loop {
        let page = log.read_all(*cursor, PAGE).await?;
        let Some(&(last, _)) = page.last() else { return Ok(()) };
        publish(store, feed, states, &page).await?;
        metrics::feed_applied(false);
        *cursor = last;
        if page.len() < PAGE as usize {
            return Ok(());
        }
    }
}

/// Applies events that follow directly on what the feed has applied, in commit order,
/// publishing one change per initiative they touch.
async fn publish(
    store: &Store,
    feed: &Shared,
    states: &mut HashMap<Uuid, Initiative>,
    page: &[(GlobalCursor, StoredEvent)],
) -> Result<(), StoreError> {
    let Some(&(last, _)) = page.last() else { return Ok(()) };
    // The last event of each initiative in this page: where its change is published.
    let mut touched: HashMap<Uuid, (GlobalCursor, u64)> = HashMap::new();
    for (at, event) in page {
        apply(store, states, event).await?;
        touched.insert(event.stream_id, (*at, u64::try_from(event.position).unwrap_or_default()));
    }
    let mut changes: Vec<(Arc<Published>, Vec<String>)> = touched
        .into_iter()
        .filter_map(|(stream, (at, position))| {
            let (view, awaiting) = project_indexed(states.get(&stream)?);
            Some((Arc::new(Published::new(at, position, view)), awaiting))
        })
        .collect();
    changes.sort_by_key(|(change, _)| change.cursor);
    let (next_seq, kept) = {
        let mut cut = feed.cut();
        for (change, _) in &changes {
            cut.initiatives.insert(change.view.initiative_id.0, change.clone());
            cut.recent.push(change.clone(), change.bytes);
        }
        cut.cursor = last;
        cut.position = u64::try_from(last.position).unwrap_or(cut.position);
        (cut.recent.next_seq(), cut.recent.bytes())
    };
    {
        let mut index = feed.index_mut();
        for (change, awaiting) in changes {
            index.publish(change, awaiting);
        }
        index.cursor = last;
    }
    feed.published.send_replace(next_seq);
    metrics::watch_buffer(kept);
    let applied = page.iter().filter_map(|(_, e)| u64::try_from(e.position).ok()).max().unwrap_or_default();
    feed.rounds.send_modify(|rounds| {
        rounds.applied = rounds.applied.max(applied);
        rounds.events += page.len() as u64;
    });
    debug!(events = page.len(), position = last.position, "live feed: applied");
    Ok(())
}

/// Folds one event into its initiative's state. An initiative the feed has not applied
/// an event to since it started has its state loaded from the store at this event
/// (`Store::state_at`: the head's snapshot and the events after it). Otherwise the feed
/// has read every earlier event of the stream, so the state is at the version before; if
/// it is not (an event the fold refuses), the stream is folded afresh up to this event.
async fn apply(store: &Store, states: &mut HashMap<Uuid, Initiative>, event: &StoredEvent) -> Result<(), StoreError> {
    let recorded = event.to_recorded()?;
    if recorded.version > 1 && !states.contains_key(&event.stream_id) {
        let state = store
            .state_at(event.stream_id, event.stream_version)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("stream {} has no events", event.stream_id)))?;
        states.insert(event.stream_id, state);
        return Ok(());
    }
    let expected = states.get(&event.stream_id).map_or(0, |state| state.version) + 1;
    if recorded.version < expected {
        // Already folded in: a later version came first and the stream was folded from
        // the store up to it (logs written before writers queued per stream could put
        // one stream's versions out of order in the global read).
        return Ok(());
    }
    let previous = states.remove(&event.stream_id);
    let next = if recorded.version == expected {
        evolve(previous, &recorded).map_err(|e| StoreError::Corrupt(e.to_string()))?
    } else {
        warn!(
            stream = %event.stream_id,
            version = recorded.version,
            expected,
            "live feed: out of sequence; folding the initiative afresh"
        );
        store
            .state_at(event.stream_id, event.stream_version)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("stream {} has no events", event.stream_id)))?
    };
    states.insert(event.stream_id, next);
    Ok(())
}

/// Wakes the feed on the database's append signals (any process's appends), and after
/// every reconnection (signals sent meanwhile are lost; the log is not).
async fn listen(mut signals: AppendSignals, shared: std::sync::Weak<Shared>) {
    loop {
        let Some(feed) = shared.upgrade() else { return };
        let mut stopping = feed.stopping.subscribe();
        drop(feed);
        let signal = tokio::select! {
            signal = signals.next() => signal,
            _ = stopping.wait_for(|stopping| *stopping) => return,
        };
        let Some(feed) = shared.upgrade() else { return };
        match signal {
            // Anything may have been appended while nobody listened.
            Some(AppendSignal::Listening) => {
                feed.rounds.send_modify(|rounds| rounds.listening_since = Some(Instant::now()));
                feed.want_read();
            }
            // An append the feed has applied or been handed already (its own process's)
            // needs no read; one it has not is waited on briefly (`NOTIFIED_GRACE`).
            Some(AppendSignal::Appended(Some(position))) => {
                if feed.unseen(position) {
                    feed.notified.fetch_max(position, Ordering::AcqRel);
                    feed.wake.notify_one();
                }
            }
            Some(AppendSignal::Appended(None)) => feed.want_read(),
            Some(AppendSignal::Lost) => feed.rounds.send_modify(|rounds| rounds.listening_since = None),
            None => return,
        }
    }
}

/// The initiatives whose published alignment changed after `after` (all of them when
/// `None`) and that `keep` accepts, by the cursor of that change, in feed order: what a
/// catch-up sends. Only ids are kept, so a watcher that does not read pins no views.
pub(super) fn changed_since(
    cut: &Cut,
    after: Option<GlobalCursor>,
    keep: impl Fn(&AlignmentView) -> bool,
) -> Vec<(GlobalCursor, Uuid)> {
    let mut changed: Vec<(GlobalCursor, Uuid)> = cut
        .initiatives
        .iter()
        .filter(|(_, published)| after.is_none_or(|after| published.cursor > after) && keep(&published.view))
        .map(|(id, published)| (published.cursor, *id))
        .collect();
    changed.sort_unstable();
    changed
}
