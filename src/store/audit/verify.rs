//! Verification: the `Verifier`, which checks every checkpoint and then the log stream
//! by stream against them and the other witnesses; its report (`VerifyReport`, `Break`);
//! and `verify_paged`, which runs it over a backend's pages and then checks the log tree
//! against the log-tree checkpoints.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;
use uuid::Uuid;

use super::checkpoint::{CheckpointRecord, RawCheckpoint};
use super::scan::{ScanOutcome, ScanStart};
use super::task_failed;
use super::walk::{Anchor, Walk, Witness, Witnesses, deleted_stream, step};
use crate::store::note::CheckpointVerifier;
use crate::store::tlog::{TreeAudit, TreeEvent, TreeMark};
use crate::store::{GlobalCursor, StoreError, StoredEvent};

/// Where the history first fails to verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The stream; the nil UUID when a checkpoint itself is damaged, or the log tree
    /// differs from a checkpoint without pointing at one stream.
    pub stream_id: Uuid,
    /// The first version that is wrong or missing (0 for a damaged checkpoint).
    pub stream_version: u64,
    /// The global position of the stored event where the break was found; 0 when there
    /// is none (a missing tail or stream, a damaged checkpoint).
    pub position: u64,
    pub reason: String,
}

/// The result of a verification: what was checked, and the first break if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub events_checked: u64,
    pub streams_checked: u64,
    pub checkpoints_checked: u64,
    pub first_break: Option<Break>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Verifies the log event by event, holding one stream's walk and the anchors of the
/// streams not walked yet, never the events: feed it every checkpoint (`add_checkpoint`,
/// in id order), then page by page the witnesses of the page's streams
/// (`add_witnesses`) and the page's events ordered by (stream id, version) with `check`
/// while `is_broken` is false, then `finish`. The log tree of the checkpoints is checked
/// after that, in commit order, by `tlog::TreeAudit` over `tree_marks`.
pub struct Verifier {
    only: Option<Uuid>,
    /// The key the checkpoints' notes must be signed with, when the server has one.
    key: Option<CheckpointVerifier>,
    anchors: BTreeMap<Uuid, Vec<Anchor>>,
    marks: Vec<TreeMark>,
    walk: Option<Walk>,
    report: VerifyReport,
}

impl Verifier {
    /// A verification of the whole log, or of one stream only.
    pub fn new(only: Option<Uuid>, key: Option<CheckpointVerifier>) -> Self {
        Self { only, key, anchors: BTreeMap::new(), marks: Vec::new(), walk: None, report: VerifyReport::default() }
    }

    pub fn is_broken(&self) -> bool {
        self.report.first_break.is_some()
    }

    fn broken(&mut self, stream_id: Uuid, stream_version: u64, position: i64, reason: String) {
        if self.report.first_break.is_none() {
            let position = u64::try_from(position).unwrap_or_default();
            self.report.first_break = Some(Break { stream_id, stream_version, position, reason });
        }
    }

    /// Takes the log-tree checkpoints to check the log's commit order against.
    pub fn take_tree_marks(&mut self) -> Vec<TreeMark> {
        std::mem::take(&mut self.marks)
    }

    /// Gives back the log-tree checkpoints taken with `take_tree_marks`.
    pub fn restore_tree_marks(&mut self, marks: Vec<TreeMark>) {
        self.marks = marks;
    }

    /// Checks a stored checkpoint (and its note's signature, with a key) and takes note
    /// of the heads it recorded.
    pub fn add_checkpoint(&mut self, raw: RawCheckpoint) {
        if self.is_broken() {
            return;
        }
        self.report.checkpoints_checked += 1;
        let checkpoint = match CheckpointRecord::decode(raw).and_then(|c| c.check().map(|()| c)) {
            Ok(checkpoint) => checkpoint,
            Err(reason) => return self.broken(Uuid::nil(), 0, 0, reason),
        };
        if let (Some(key), Some(note)) = (&self.key, &checkpoint.note)
            && let Err(reason) = key.open(note)
        {
            return self.broken(Uuid::nil(), 0, 0, format!("checkpoint {}: its note {reason}", checkpoint.id));
        }
        self.marks.extend(checkpoint.mark());
        for head in checkpoint.heads {
            if self.only.is_none_or(|only| only == head.stream_id) {
                let witness = Witness::Checkpoint { id: checkpoint.id, hash: head.hash };
                self.anchors.entry(head.stream_id).or_default().push(Anchor { version: head.version, witness });
            }
        }
    }

    /// Takes note of what the stream heads, command records and projection say about
    /// the streams of the page that follows (read in the same snapshot as its events).
    pub fn add_witnesses(&mut self, witnesses: Witnesses) {
        for (stream_id, anchor) in witnesses.anchors() {
            if self.only.is_none_or(|only| only == stream_id) {
                self.anchors.entry(stream_id).or_default().push(anchor);
            }
        }
    }

    /// Hands the checkpoints' anchors to a scan of the whole log in position order
    /// (`scan::LogScan`), after every checkpoint was added.
    pub fn scan_start(&mut self) -> ScanStart {
        ScanStart { anchors: std::mem::take(&mut self.anchors) }
    }

    /// The report of a whole-log scan: its counts, the checkpoints checked here, and the
    /// break the scan saw first (which the caller locates exactly by verifying that
    /// stream alone).
    pub fn scanned(self, outcome: &ScanOutcome) -> VerifyReport {
        VerifyReport {
            events_checked: outcome.events_checked,
            streams_checked: outcome.streams_checked,
            checkpoints_checked: self.report.checkpoints_checked,
            first_break: self.report.first_break.or_else(|| outcome.first_suspect.clone()),
        }
    }

    /// Checks the next event (ordered by stream id, then version).
    pub fn check(&mut self, event: &StoredEvent) {
        if self.is_broken() || self.only.is_some_and(|only| only != event.stream_id) {
            return;
        }
        if self.walk.as_ref().is_none_or(|walk| walk.stream_id != event.stream_id) {
            if let Some(walk) = self.walk.take() {
                self.close(walk);
            }
            self.deleted_before(Some(event.stream_id));
            if self.is_broken() {
                return;
            }
            let anchors = self.anchors.remove(&event.stream_id).unwrap_or_default();
            self.report.streams_checked += 1;
            self.walk = Some(Walk::start(event.stream_id, anchors));
        }
        let Some(walk) = self.walk.as_mut() else { return };
        match step(walk, event) {
            Ok(()) => self.report.events_checked += 1,
            Err((version, reason)) => self.broken(event.stream_id, version, event.position, reason),
        }
    }

    /// Ends the walk: a stream or tail a checkpoint or a witness recorded and the log
    /// lost is a break.
    pub fn finish(mut self) -> VerifyReport {
        if let Some(walk) = self.walk.take() {
            self.close(walk);
        }
        self.deleted_before(None);
        self.report
    }

    /// The end of a stream's walk: it must reach every version an anchor recorded.
    fn close(&mut self, walk: Walk) {
        if let Some((first_missing, reason)) = walk.missing_tail() {
            self.broken(walk.stream_id, first_missing, 0, reason);
        }
    }

    /// Streams an anchor recorded, ordered before `next` (or all that are left), are gone
    /// from the log.
    fn deleted_before(&mut self, next: Option<Uuid>) {
        let Some((&stream_id, anchors)) = self.anchors.first_key_value() else { return };
        if next.is_some_and(|next| stream_id >= next) {
            return;
        }
        if let Some(reason) = deleted_stream(anchors) {
            self.broken(stream_id, 1, 0, reason);
        }
    }
}

/// How many events a verification reads at a time (a page goes on to the end of its
/// last stream, so that each stream is read, with its witnesses, in one snapshot).
pub const VERIFY_PAGE: i64 = 2_000;

/// Where a page of a verification resumes: after this stream id (`None`: the start).
pub type VerifyKey = Option<Uuid>;

/// One page of a verification, read in one snapshot: whole streams in (stream id,
/// version) order, and the witnesses of every stream id in the page's range — after
/// the key it resumed from, up to its last stream, or to the end for the last page (so
/// that a stream with witnesses and no events left is seen too).
#[derive(Debug, Default)]
pub struct VerifyPage {
    pub events: Vec<StoredEvent>,
    pub witnesses: Witnesses,
    /// Whether more pages follow (the page reached `VERIFY_PAGE` events).
    pub more: bool,
}

/// Runs `verifier` over the pages `fetch` returns, resuming after the last stream of the
/// page before: the next page is read while the previous one is checked on a blocking
/// thread, and no more than three pages are held at once. Then, for a verification of
/// the whole log that found no break, checks the log tree against every log-tree
/// checkpoint: `tree_page` reads the log in commit order after a cursor.
pub async fn verify_paged<F, Fut, T, TFut>(
    mut verifier: Verifier,
    fetch: F,
    tree_page: Option<T>,
) -> Result<VerifyReport, StoreError>
where
    F: Fn(VerifyKey) -> Fut + Send + 'static,
    Fut: Future<Output = Result<VerifyPage, StoreError>> + Send + 'static,
    T: Fn(GlobalCursor) -> TFut,
    TFut: Future<Output = Result<Vec<(GlobalCursor, TreeEvent)>, StoreError>>,
{
    let marks = verifier.take_tree_marks();
    if verifier.is_broken() {
        return Ok(verifier.finish());
    }
    let (pages, mut receiver) = tokio::sync::mpsc::channel(1);
    let reader = tokio::spawn(async move {
        let mut after = None;
        loop {
            let page = fetch(after).await;
            let next = match &page {
                Ok(page) if page.more => page.events.last().map(|event| event.stream_id),
                _ => None,
            };
            if pages.send(page).await.is_err() || next.is_none() {
                return;
            }
            after = next;
        }
    });
    while let Some(page) = receiver.recv().await {
        let page = page?;
        verifier = tokio::task::spawn_blocking(move || {
            verifier.add_witnesses(page.witnesses);
            for event in &page.events {
                verifier.check(event);
                if verifier.is_broken() {
                    break;
                }
            }
            verifier
        })
        .await
        .map_err(task_failed)?;
        if verifier.is_broken() {
            break;
        }
    }
    reader.abort();
    let mut report = verifier.finish();
    if let Some(tree_page) = tree_page
        && report.ok()
        && !marks.is_empty()
    {
        report.first_break = verify_tree(marks, tree_page).await?;
    }
    Ok(report)
}

/// Checks the log, read in commit order, against the log-tree checkpoints: the first
/// checkpoint whose root is not the root of the log's first `size` events is a break.
pub async fn verify_tree<T, TFut>(marks: Vec<TreeMark>, page: T) -> Result<Option<Break>, StoreError>
where
    T: Fn(GlobalCursor) -> TFut,
    TFut: Future<Output = Result<Vec<(GlobalCursor, TreeEvent)>, StoreError>>,
{
    let mut audit = TreeAudit::new(marks);
    let mut cursor = GlobalCursor::default();
    while !audit.is_done() {
        let events = page(cursor).await?;
        let Some((last, _)) = events.last() else { break };
        cursor = *last;
        for (_, event) in &events {
            audit.push(event);
        }
    }
    Ok(audit.finish().map(|mismatch| mismatch.to_break()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::testing::{chain, folded};
    use crate::store::event_hash;
    use crate::store::note::CheckpointSigner;

    fn verify(checkpoints: &[RawCheckpoint], events: &[StoredEvent]) -> VerifyReport {
        let mut verifier = Verifier::new(None, None);
        for checkpoint in checkpoints {
            verifier.add_checkpoint(checkpoint.clone());
        }
        for event in events {
            verifier.check(event);
        }
        verifier.finish()
    }

    fn checkpoint_of(id: i64, events: &[StoredEvent]) -> RawCheckpoint {
        folded(id, events, None)
    }

    #[test]
    fn an_intact_log_verifies_with_its_counts() {
        let events = [chain(Uuid::from_u128(1), 4, 0), chain(Uuid::from_u128(2), 3, 10)].concat();
        let report = verify(&[checkpoint_of(1, &events)], &events);
        assert_eq!(
            report,
            VerifyReport { events_checked: 7, streams_checked: 2, checkpoints_checked: 1, first_break: None }
        );
    }

    #[test]
    fn each_kind_of_damage_is_located() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let events = [chain(a, 4, 0), chain(b, 3, 10)].concat();
        let checkpoint = checkpoint_of(1, &events);
        let first_break = |events: &[StoredEvent]| {
            let b = verify(std::slice::from_ref(&checkpoint), events).first_break.expect("a break");
            (b.stream_id, b.stream_version, b.position, b.reason)
        };

        let mut edited = events.clone();
        edited[1].payload = serde_json::json!({"from": "discovery", "to": "sunset"});
        assert_eq!(first_break(&edited), (a, 2, 2, "payload or metadata changed: hash mismatch".into()));

        let mut gap = events.clone();
        gap.remove(2);
        assert_eq!(first_break(&gap), (a, 3, 4, "version 3 missing".into()));

        let mut tail = events.clone();
        tail.remove(3);
        let (stream, version, position, reason) = first_break(&tail);
        assert_eq!((stream, version, position), (a, 4, 0));
        assert!(reason.starts_with("version 4 missing: checkpoint 1 recorded the stream at version 4"), "{reason}");

        let mut swapped = events.clone();
        swapped.swap(1, 2);
        (swapped[1].stream_version, swapped[2].stream_version) = (2, 3);
        assert_eq!(first_break(&swapped), (a, 2, 3, "prev_hash does not link to version 1".into()));

        let mut positions = events.clone();
        (positions[1].position, positions[2].position) = (3, 2);
        let (stream, version, position, reason) = first_break(&positions);
        assert_eq!((stream, version, position), (a, 3, 2));
        assert!(reason.starts_with("events reordered"), "{reason}");

        let deleted: Vec<StoredEvent> = events.iter().filter(|e| e.stream_id != a).cloned().collect();
        assert_eq!(first_break(&deleted), (a, 1, 0, "stream deleted: checkpoint 1 recorded it at version 4".into()));
    }

    #[test]
    fn a_rehashed_stream_links_but_differs_from_its_checkpoint() {
        let a = Uuid::from_u128(1);
        let events = chain(a, 3, 0);
        let checkpoint = checkpoint_of(1, &events);
        let mut forged = events.clone();
        forged[1].actor = "mallory@example.com".into();
        forged[1].hash = event_hash(&forged[1].prev_hash, &forged[1].content()).to_vec();
        forged[2].prev_hash = forged[1].hash.clone();
        forged[2].hash = event_hash(&forged[2].prev_hash, &forged[2].content()).to_vec();
        assert!(verify(&[], &forged).ok(), "without a checkpoint a re-hashed chain links");
        let report = verify(&[checkpoint], &forged);
        let found = report.first_break.expect("a break");
        assert_eq!((found.stream_id, found.stream_version), (a, 3));
        assert!(found.reason.contains("checkpoint 1 recorded at version 3"), "{}", found.reason);
    }

    #[test]
    fn a_signed_checkpoint_s_note_says_its_size_and_root_and_a_changed_note_is_caught() {
        let (key, _) = crate::store::note::generate_key("accord.example/test").expect("key");
        let signer = CheckpointSigner::parse(&key).expect("parses");
        let events = chain(Uuid::from_u128(1), 3, 0);
        let raw = folded(1, &events, Some(&signer));
        let record = CheckpointRecord::decode(raw.clone()).expect("decode");
        let said = signer.verifier().open(record.note.as_deref().expect("a note")).expect("verifies");
        assert_eq!((said.size, said.root), (3, record.root));

        let mut verifier = Verifier::new(None, Some(signer.verifier().clone()));
        verifier.add_checkpoint(raw.clone());
        assert!(!verifier.is_broken());
        // A note for another size: the row and its note disagree.
        let mut other = raw.clone();
        other.note = Some(signer.sign(2, &record.root).expect("sign"));
        let report = verify(&[other], &events);
        assert!(report.first_break.is_some_and(|b| b.reason.contains("its signed note says 2 events")));
        // A note re-signed by another key: refused with the server's key only.
        let (stranger, _) = crate::store::note::generate_key("accord.example/test").expect("key");
        let stranger = CheckpointSigner::parse(&stranger).expect("parses");
        let mut resigned = raw;
        resigned.note = Some(stranger.sign(3, &record.root).expect("sign"));
        assert!(verify(std::slice::from_ref(&resigned), &events).ok(), "without a key the note is only read");
        let mut verifier = Verifier::new(None, Some(signer.verifier().clone()));
        verifier.add_checkpoint(resigned);
        let found = verifier.finish().first_break.expect("a break");
        assert!(found.reason.contains("is not signed by the key given"), "{}", found.reason);
    }
}
