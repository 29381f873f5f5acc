//! Verification of the whole log in position order, on every core: the log is read
//! once, sequentially (the order its heap is in), and each event goes to the lane that
//! owns its stream, where it is decoded and checked against that stream's walk. Every
//! stream's walk is held at once (the anchors were already: one per witness of each
//! stream, never one per event); the command records, one per command, arrive beside
//! the events in position order instead, so that none is held longer than a page.
//!
//! The scan decides only whether each stream verifies. The first stream (by id) that
//! does not is verified again on its own, in version order (`Verifier` with `only`),
//! which locates its break exactly as a verification by stream always has: the scan
//! reports that one, so what a break says does not depend on the order the log was read.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::task_failed;

use super::verify::Break;
use super::walk::{Anchor, CommandWitness, Walk, Witness, Witnesses, command_anchor, deleted_stream, step};
use crate::store::rows::{StoredRow, decode_event};
use crate::store::{StoreError, StoredEvent};

/// How many pages a lane may have waiting: enough to keep it busy while the next page is
/// read, few enough that the scan holds a handful of pages whatever the log's size.
const LANE_QUEUE: usize = 2;

/// What a scan starts from: the anchors of the checkpoints (see `Verifier::scan_start`).
pub struct ScanStart {
    pub(super) anchors: BTreeMap<Uuid, Vec<Anchor>>,
}

/// What the scan found: how much it checked, and the first stream (by id) that does
/// not verify, with the break the scan saw there.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    pub events_checked: u64,
    pub streams_checked: u64,
    pub first_suspect: Option<Break>,
}

/// Work done on a lane for the streams that hash to it: told things about its streams
/// (`note`) and given their events in position order (`event`).
pub trait LaneWork: Send + 'static {
    /// What a page carries for a stream besides its events.
    type Note: Send + 'static;

    fn note(&mut self, stream_id: Uuid, note: Self::Note);

    fn event(&mut self, event: &StoredEvent);

    /// After the last page, on the lane.
    fn end(&mut self) {}
}

/// The log read once in position order on every core: one lane per core, each a
/// blocking task owning the work of the streams that hash to it. Feed it pages in
/// position order (`feed`), then `finish`, which gives back each lane's work.
pub struct Lanes<R, W: LaneWork> {
    lanes: Vec<mpsc::Sender<Batch<R, W::Note>>>,
    workers: Vec<tokio::task::JoinHandle<Result<W, StoreError>>>,
}

struct Batch<R, N> {
    notes: Vec<(Uuid, N)>,
    rows: Vec<R>,
}

impl<R: StoredRow + Send + 'static, W: LaneWork> Lanes<R, W> {
    /// How many lanes `start` wants work for: one per core the process may use, at most 8.
    pub fn count() -> usize {
        std::thread::available_parallelism().map_or(2, usize::from).clamp(1, 8)
    }

    /// Starts one lane per work given (`count` of them, or any number above 0).
    pub fn start(works: Vec<W>) -> Self {
        let (mut lanes, mut workers) = (Vec::with_capacity(works.len()), Vec::with_capacity(works.len()));
        for mut work in works {
            let (sender, mut receiver) = mpsc::channel::<Batch<R, W::Note>>(LANE_QUEUE);
            lanes.push(sender);
            workers.push(tokio::task::spawn_blocking(move || {
                // A row that cannot be read at all ends the lane; the rest is drained.
                let mut failed = None;
                while let Some(batch) = receiver.blocking_recv() {
                    if failed.is_some() {
                        continue;
                    }
                    for (stream_id, note) in batch.notes {
                        work.note(stream_id, note);
                    }
                    for row in &batch.rows {
                        match decode_event(row) {
                            Ok(event) => work.event(&event),
                            Err(error) => {
                                failed = Some(error);
                                break;
                            }
                        }
                    }
                }
                work.end();
                failed.map_or(Ok(work), Err)
            }));
        }
        Self { lanes, workers }
    }

    /// One page of the log in position order, with the notes for its streams.
    pub async fn feed(&mut self, notes: Vec<(Uuid, W::Note)>, rows: Vec<R>) -> Result<(), StoreError> {
        let count = self.lanes.len();
        let mut batches: Vec<Batch<R, W::Note>> =
            (0..count).map(|_| Batch { notes: Vec::new(), rows: Vec::new() }).collect();
        for (stream_id, note) in notes {
            batches[lane_of(stream_id, count)].notes.push((stream_id, note));
        }
        for row in rows {
            let stream_id = row.uuid("stream_id")?;
            batches[lane_of(stream_id, count)].rows.push(row);
        }
        for (lane, batch) in self.lanes.iter().zip(batches) {
            if (!batch.rows.is_empty() || !batch.notes.is_empty()) && lane.send(batch).await.is_err() {
                // The lane ended early: `finish` reports why.
                break;
            }
        }
        Ok(())
    }

    /// Waits for every lane to check what it was given; gives back their work.
    pub async fn finish(self) -> Result<Vec<W>, StoreError> {
        drop(self.lanes);
        let mut works = Vec::with_capacity(self.workers.len());
        for worker in self.workers {
            works.push(worker.await.map_err(task_failed)??);
        }
        Ok(works)
    }
}

/// How many events a page of a scan holds at most.
const PAGE_EVENTS: usize = 5_000;

/// A page also ends at this many bytes, whatever the events' sizes: a scan holds a few
/// pages (one being read, two queued per lane), never more.
const PAGE_BYTES: usize = 4 << 20;

/// The rows of a scan gathered into pages bounded in events and in bytes.
pub struct Pager<R> {
    rows: Vec<R>,
    bytes: usize,
}

impl<R: StoredRow> Default for Pager<R> {
    fn default() -> Self {
        Self { rows: Vec::with_capacity(PAGE_EVENTS), bytes: 0 }
    }
}

impl<R: StoredRow> Pager<R> {
    /// Adds an event row; a page once it is full.
    pub fn push(&mut self, row: R) -> Option<Vec<R>> {
        self.bytes += row.byte_len("payload") + 256;
        self.rows.push(row);
        (self.rows.len() >= PAGE_EVENTS || self.bytes >= PAGE_BYTES).then(|| self.take())
    }

    /// The rows gathered so far, as a page.
    pub fn take(&mut self) -> Vec<R> {
        self.bytes = 0;
        std::mem::replace(&mut self.rows, Vec::with_capacity(PAGE_EVENTS))
    }
}

/// The lane of a stream: UUIDs end in random bits (v4 and v7 alike).
pub fn lane_of(stream_id: Uuid, lanes: usize) -> usize {
    (stream_id.as_u128() % lanes.max(1) as u128) as usize
}

/// A verification of the whole log on `Lanes`: each lane walks its streams.
pub struct LogScan<R> {
    lanes: Lanes<R, Lane>,
}

impl<R: StoredRow + Send + 'static> LogScan<R> {
    /// Starts the lanes with the checkpoints' anchors and the witnesses of every stream
    /// (heads, projections, past snapshots; commands come with the pages).
    pub fn new(start: ScanStart, witnesses: Witnesses) -> Self {
        let count = Lanes::<R, Lane>::count();
        let mut lanes: Vec<Lane> = (0..count).map(|_| Lane::default()).collect();
        for (stream_id, list) in start.anchors {
            for anchor in list {
                lanes[lane_of(stream_id, count)].anchors.entry(stream_id).or_default().push(anchor);
            }
        }
        for (stream_id, anchor) in witnesses.anchors() {
            lanes[lane_of(stream_id, count)].anchors.entry(stream_id).or_default().push(anchor);
        }
        Self { lanes: Lanes::start(lanes) }
    }

    /// One page of the log in position order, with the command records whose last event
    /// is at or below the page's last position and above the previous page's.
    pub async fn feed(&mut self, commands: Vec<CommandWitness>, rows: Vec<R>) -> Result<(), StoreError> {
        self.lanes.feed(commands.into_iter().map(command_anchor).collect(), rows).await
    }

    /// Ends the scan: every walk must reach the versions its anchors recorded, and every
    /// stream an anchor names must be in the log.
    pub async fn finish(self) -> Result<ScanOutcome, StoreError> {
        let mut outcome = ScanOutcome::default();
        let mut suspects = BTreeMap::new();
        for lane in self.lanes.finish().await? {
            outcome.events_checked += lane.events_checked;
            outcome.streams_checked += lane.streams_checked;
            suspects.extend(lane.finish());
        }
        outcome.first_suspect = suspects.into_values().next();
        Ok(outcome)
    }
}

/// The walks of one lane's streams.
#[derive(Default)]
struct Lane {
    /// The anchors of streams not met yet in the log.
    anchors: HashMap<Uuid, Vec<Anchor>>,
    walks: HashMap<Uuid, Walk>,
    /// The streams that do not verify, with the break the scan saw.
    suspects: BTreeMap<Uuid, Break>,
    events_checked: u64,
    streams_checked: u64,
}

impl LaneWork for Lane {
    type Note = Anchor;

    fn note(&mut self, stream_id: Uuid, anchor: Anchor) {
        self.add_anchor(stream_id, anchor);
    }

    fn event(&mut self, event: &StoredEvent) {
        self.check(event);
    }
}

impl Lane {
    fn suspect(&mut self, stream_id: Uuid, stream_version: u64, position: i64, reason: String) {
        self.walks.remove(&stream_id);
        let position = u64::try_from(position).unwrap_or_default();
        self.suspects.entry(stream_id).or_insert(Break { stream_id, stream_version, position, reason });
    }

    /// A command record arrives with the page that holds its position: its version is
    /// ahead of the walk unless the event at that version is at an earlier position.
    fn add_anchor(&mut self, stream_id: Uuid, anchor: Anchor) {
        if self.suspects.contains_key(&stream_id) {
            return;
        }
        let Some(walk) = self.walks.get_mut(&stream_id) else {
            self.anchors.entry(stream_id).or_default().push(anchor);
            return;
        };
        if anchor.version > walk.version {
            walk.add_anchor(anchor);
            return;
        }
        let (version, reason) = match &anchor.witness {
            Witness::Command { position, .. } => {
                (anchor.version, format!("a command recorded version {} at position {position}", anchor.version))
            }
            _ => (anchor.version, format!("a witness recorded version {} after the scan passed it", anchor.version)),
        };
        self.suspect(stream_id, version, 0, reason);
    }

    fn check(&mut self, event: &StoredEvent) {
        let stream_id = event.stream_id;
        if self.suspects.contains_key(&stream_id) {
            return;
        }
        let walk = match self.walks.entry(stream_id) {
            std::collections::hash_map::Entry::Occupied(walk) => walk.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                self.streams_checked += 1;
                let anchors = self.anchors.remove(&stream_id).unwrap_or_default();
                vacant.insert(Walk::start(stream_id, anchors))
            }
        };
        match step(walk, event) {
            Ok(()) => self.events_checked += 1,
            Err((version, reason)) => self.suspect(stream_id, version, event.position, reason),
        }
    }

    /// The streams that do not verify once the log has been read to its end.
    fn finish(mut self) -> BTreeMap<Uuid, Break> {
        for (stream_id, walk) in std::mem::take(&mut self.walks) {
            if let Some((version, reason)) = walk.missing_tail() {
                self.suspect(stream_id, version, 0, reason);
            }
        }
        for (stream_id, anchors) in std::mem::take(&mut self.anchors) {
            if let Some(reason) = deleted_stream(&anchors) {
                self.suspect(stream_id, 1, 0, reason);
            }
        }
        self.suspects
    }
}
