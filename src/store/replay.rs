//! A rebuild of every head, projection and past snapshot in one pass over the log: the
//! log is read once in position order (the order its heap is in), each stream folded on
//! the lane that owns it (`audit::Lanes`), and the past snapshots derived on the way at
//! every `every` versions, written while the read goes on. What was folded is then
//! written stream by stream under the head's lock, with whatever was appended meanwhile
//! folded on top (`StreamFold::head`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::audit::LaneWork;
use super::fold::{FoldedHead, Projection, fold_onto};
use super::snapshots::{PastSnapshot, snapshot_of};
use super::{StoreError, StoredEvent};
use crate::domain::Initiative;

/// How many past snapshots a lane gathers before it hands them to the writer.
const SNAPSHOTS_PER_WRITE: usize = 200;

/// One stream folded as far as the read went.
#[derive(Clone, Debug, Default)]
pub struct StreamFold {
    state: Option<Initiative>,
    version: i64,
    hash: Vec<u8>,
    position: i64,
    folded_until: Option<DateTime<Utc>>,
    /// Why the stream does not fold (it is then left as it is, and the rebuild fails).
    failed: Option<String>,
}

impl StreamFold {
    /// The version folded so far (0: none).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Folds `event`, the next version of the stream.
    fn push(&mut self, event: &StoredEvent) -> Result<(), String> {
        if event.stream_version != self.version + 1 {
            return Err(format!("version {} follows version {}", event.stream_version, self.version));
        }
        let state = fold_onto(event.stream_id, self.state.take(), std::slice::from_ref(event));
        self.state = state.map_err(|e| e.to_string())?;
        self.version = event.stream_version;
        self.hash.clone_from(&event.hash);
        self.position = event.position;
        self.folded_until = Some(self.folded_until.map_or(event.recorded_at, |t| t.max(event.recorded_at)));
        Ok(())
    }

    /// The head to write: this fold with `tail` (the events appended after it, in version
    /// order) folded on top.
    pub fn head(mut self, stream_id: Uuid, tail: &[StoredEvent]) -> Result<FoldedHead, StoreError> {
        if let Some(why) = self.failed.take() {
            return Err(StoreError::Corrupt(format!("stream {stream_id} does not fold: {why}")));
        }
        for event in tail {
            self.push(event).map_err(|why| StoreError::Corrupt(format!("stream {stream_id}: {why}")))?;
        }
        let state = self.state.ok_or_else(|| StoreError::Corrupt(format!("stream {stream_id} has no events")))?;
        let projection = Projection::of(&state)?;
        Ok(FoldedHead {
            stream_id,
            version: self.version,
            head_hash: self.hash,
            last_position: self.position,
            state,
            projection,
        })
    }
}

/// The folds of one lane's streams, and the past snapshots they produce.
pub struct FoldLane {
    streams: HashMap<Uuid, StreamFold>,
    every: i64,
    ready: Vec<PastSnapshot>,
    writer: mpsc::Sender<Vec<PastSnapshot>>,
}

impl FoldLane {
    /// A lane whose past snapshots, one every `every` versions, go to `writer`.
    pub fn new(every: i64, writer: mpsc::Sender<Vec<PastSnapshot>>) -> Self {
        Self { streams: HashMap::new(), every: every.max(1), ready: Vec::new(), writer }
    }

    /// The lane's folds, once the read ended.
    pub fn finish(self) -> HashMap<Uuid, StreamFold> {
        self.streams
    }

    fn hand_on(&mut self) {
        if !self.ready.is_empty() {
            // A writer that stopped has failed: the rebuild reports its error.
            let _ = self.writer.blocking_send(std::mem::take(&mut self.ready));
        }
    }
}

impl LaneWork for FoldLane {
    type Note = ();

    fn note(&mut self, _: Uuid, (): ()) {}

    fn end(&mut self) {
        self.hand_on();
    }

    fn event(&mut self, event: &StoredEvent) {
        let fold = self.streams.entry(event.stream_id).or_default();
        if fold.failed.is_some() {
            return;
        }
        if let Err(why) = fold.push(event) {
            fold.failed = Some(why);
            return;
        }
        if fold.version % self.every == 0
            && let (Some(state), Some(folded_until)) = (&fold.state, fold.folded_until)
        {
            match snapshot_of(event, state, folded_until) {
                Ok(snapshot) => self.ready.push(snapshot),
                Err(why) => fold.failed = Some(why.to_string()),
            }
            if self.ready.len() >= SNAPSHOTS_PER_WRITE {
                self.hand_on();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ExportLine;

    /// Today's corpus: every event type, several streams interleaved.
    fn corpus() -> Vec<StoredEvent> {
        let log = include_str!("../../tests/corpus/v1.jsonl");
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(n, l)| ExportLine::parse(n + 1, l).expect("line"))
            .collect()
    }

    /// A lane fed part of the log in position order, then each stream's head written
    /// with the rest as its tail (what was appended during the read), is the head a fold
    /// of each whole stream gives; and the snapshots are those of every `every` versions.
    #[test]
    fn a_fold_of_part_of_the_log_with_the_rest_as_its_tail_is_the_whole_fold() {
        let events = corpus();
        let (writer, mut written) = mpsc::channel(1_000);
        let mut lane = FoldLane::new(2, writer);
        let cut = events.len() / 2;
        for event in &events[..cut] {
            lane.event(event);
        }
        lane.end();
        let mut folds = lane.finish();
        let mut snapshots = Vec::new();
        while let Ok(batch) = written.try_recv() {
            snapshots.extend(batch);
        }
        let mut streams: Vec<Uuid> = events.iter().map(|e| e.stream_id).collect();
        streams.sort();
        streams.dedup();
        assert!(streams.len() > 1, "the corpus has several streams");
        for stream_id in streams {
            let whole: Vec<StoredEvent> = events.iter().filter(|e| e.stream_id == stream_id).cloned().collect();
            let fold = folds.remove(&stream_id).unwrap_or_default();
            let tail: Vec<StoredEvent> = whole.iter().filter(|e| e.stream_version > fold.version()).cloned().collect();
            let head = fold.head(stream_id, &tail).expect("folds");
            let expected = FoldedHead::refold(stream_id, &whole).expect("refolds");
            assert_eq!(
                (head.version, &head.head_hash, head.last_position, &head.projection.view_json),
                (expected.version, &expected.head_hash, expected.last_position, &expected.projection.view_json)
            );
            let before_cut = whole.iter().filter(|e| events[..cut].contains(e) && e.stream_version % 2 == 0).count();
            assert_eq!(snapshots.iter().filter(|s| s.stream_id == stream_id).count(), before_cut);
        }
    }

    #[test]
    fn a_stream_with_a_missing_version_does_not_fold() {
        let events = corpus();
        let first = events[0].stream_id;
        let mut lane = FoldLane::new(500, mpsc::channel(1).0);
        for event in events.iter().filter(|e| e.stream_id == first && e.stream_version != 2) {
            lane.event(event);
        }
        let fold = lane.finish().remove(&first).expect("folded");
        let refused = fold.head(first, &[]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("version 3 follows version 1"), "{refused}");
    }
}
