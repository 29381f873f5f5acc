//! Snapshots for the past: a stream's folded state kept at every `every`-th version
//! (`past_snapshots`), so that an as-of or an explain on a long initiative folds only
//! the events after the nearest snapshot at or before the version or time asked, and
//! costs the same at version 1,000 as at version 1,000,000.
//!
//! They are derived data and never decide what the history says: written in the
//! background (`Store::refresh_snapshots`, from the events and the snapshot before),
//! each holding the chain hash of the event it was folded up to, so `verify` checks it
//! against the log — the hash at that version and the state folded there — and a
//! rebuild deletes and derives them again. A snapshot of another format (another code's
//! `Initiative`) or one that does not decode is ignored by the read and replaced by the
//! next refresh (`prune`), so a code change never breaks an as-of. They hold people's
//! names and words: `Store::purge_snapshots` deletes a stream's rows, and the next
//! refresh derives them again from whatever the log then holds — an erasure of the log
//! purges the stream's snapshots after it.

use chrono::{DateTime, Utc};
use tracing::warn;
use uuid::Uuid;

use super::{Store, StoreError, StoredEvent, Until, fold::fold_onto};
use crate::domain::Initiative;

/// The format of a snapshot's `state`: the serde form of today's `Initiative`, the same
/// version as the head's snapshot (`fold::SNAPSHOT_VERSION`). A change to `Initiative`'s
/// shape raises it, and every older snapshot is then ignored and derived again.
pub const SNAPSHOT_FORMAT: i32 = super::fold::SNAPSHOT_VERSION;

/// The versions between two snapshots by default: an as-of folds at most this many
/// events after the snapshot it starts from.
pub const SNAPSHOT_EVERY: i64 = 500;

/// How many streams one refresh round looks at (the next round takes the rest).
const STREAMS_PER_ROUND: i64 = 100;

/// How many events a refresh reads at once.
const REFRESH_PAGE: i64 = 2_000;

/// One stored snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct PastSnapshot {
    pub stream_id: Uuid,
    pub version: i64,
    /// The chain hash of the event at `version`.
    pub hash: Vec<u8>,
    /// The latest `recorded_at` among the events up to `version`.
    pub folded_until: DateTime<Utc>,
    pub format: i32,
    pub state: serde_json::Value,
}

impl PastSnapshot {
    /// The state, when it is of this code's format and decodes at its own version.
    pub fn decode(&self) -> Option<Initiative> {
        if self.format != SNAPSHOT_FORMAT {
            return None;
        }
        match serde_json::from_value::<Initiative>(self.state.clone()) {
            Ok(state) if i64::try_from(state.version).ok() == Some(self.version) => Some(state),
            Ok(_) => {
                warn!(stream = %self.stream_id, version = self.version, "a past snapshot is of another version; ignored");
                None
            }
            Err(error) => {
                warn!(stream = %self.stream_id, version = self.version, %error, "a past snapshot does not decode; ignored");
                None
            }
        }
    }

    /// Whether an as-of `until` may start from this snapshot: every event up to its
    /// version is in the prefix asked for.
    pub fn serves(&self, until: Until) -> bool {
        match until {
            Until::Version(version) => u64::try_from(self.version).is_ok_and(|v| v <= version),
            Until::Time(time) => self.folded_until <= time,
        }
    }
}

/// A stream whose head is at least one spacing past its latest snapshot, or whose
/// snapshots have a hole (one of another format was pruned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueStream {
    pub stream_id: Uuid,
    /// The latest snapshot's version of the current format (0: none).
    pub latest: i64,
    /// How many snapshots of the current format it has.
    pub count: i64,
    pub head: i64,
}

/// What a refresh did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    pub streams: u64,
    pub snapshots: u64,
    /// Snapshots of other formats deleted.
    pub pruned: u64,
}

impl Store {
    /// One initiative's folded state as of `until` (`None`: no event in that prefix):
    /// the nearest usable snapshot at or before it, with the events after it up to
    /// `until`; from the first event when there is none. The answer is the fold of the
    /// log's prefix whatever the snapshots hold — only the cost depends on them.
    pub async fn state_until(&self, stream_id: Uuid, until: Until) -> Result<Option<Initiative>, StoreError> {
        let snapshot = self.read(|b| async move { b.snapshot_before(stream_id, until).await }).await?;
        let start = snapshot.filter(|s| s.serves(until)).and_then(|s| s.decode().map(|state| (s.version, state)));
        let (after, state) = match start {
            Some((version, state)) => (version, Some(state)),
            None => (0, None),
        };
        let events = self.read(|b| async move { b.read_stream_after(stream_id, after, until).await }).await?;
        fold_onto(stream_id, state, &events)
    }

    /// Writes the snapshots that are due — for every stream whose head is `every` or more
    /// versions past its latest snapshot, one at each multiple of `every` up to the head —
    /// folding on from the latest one; and deletes those of other formats first. Runs
    /// beside appends: it reads only committed events and writes derived rows. One pass
    /// over the streams in id order: a stream whose events do not fold (a damaged log,
    /// which verify reports) is skipped with a warning and does not hold up the others,
    /// and none is visited twice.
    pub async fn refresh_snapshots(&self, every: i64) -> Result<Refreshed, StoreError> {
        let every = every.max(1);
        let mut done = Refreshed { pruned: self.backend.delete_snapshots(None, true).await?, ..Refreshed::default() };
        let mut after = Uuid::nil();
        loop {
            let due = self.backend.snapshots_due(every, after, STREAMS_PER_ROUND).await?;
            let Some(last) = due.last() else { return Ok(done) };
            after = last.stream_id;
            for stream in &due {
                match self.refresh_stream(*stream, every).await {
                    Ok(written) => done.snapshots += written,
                    Err(StoreError::Corrupt(why)) => {
                        warn!(stream = %stream.stream_id, %why, "past snapshots: the stream does not fold; skipped")
                    }
                    Err(other) => return Err(other),
                }
                done.streams += 1;
            }
        }
    }

    async fn refresh_stream(&self, due: DueStream, every: i64) -> Result<u64, StoreError> {
        let stream_id = due.stream_id;
        // With a hole below the latest, everything is derived again from the first event.
        let whole = due.count < due.latest / every;
        let latest = match due.latest {
            _ if whole => None,
            0 => None,
            version => self
                .backend
                .snapshot_before(stream_id, Until::Version(u64::try_from(version).unwrap_or_default()))
                .await?
                .filter(|s| s.version == version),
        };
        let (mut version, mut state, mut folded_until) = match latest.as_ref().and_then(|s| s.decode().map(|d| (s, d)))
        {
            Some((snapshot, state)) => (snapshot.version, Some(state), Some(snapshot.folded_until)),
            // None usable: derive from the first event (a latest one that does not
            // decode is then written over).
            None => (0, None, None),
        };
        let mut written = 0;
        // Snapshots at multiples of `every` only up to the head seen now: a stream that
        // grows meanwhile is due again next round.
        let last_due = due.head - due.head % every;
        while version < last_due {
            let page = self.backend.read_stream(stream_id, version + 1, REFRESH_PAGE).await?;
            if page.is_empty() {
                break;
            }
            let mut snapshots = Vec::new();
            for event in page.iter().take_while(|e| e.stream_version <= last_due) {
                state = fold_onto(stream_id, state, std::slice::from_ref(event))?;
                folded_until = Some(folded_until.map_or(event.recorded_at, |t| t.max(event.recorded_at)));
                version = event.stream_version;
                if version % every == 0
                    && let (Some(state), Some(folded_until)) = (&state, folded_until)
                {
                    snapshots.push(snapshot_of(event, state, folded_until)?);
                }
            }
            written += snapshots.len() as u64;
            self.backend.put_snapshots(&snapshots).await?;
            if page.last().is_none_or(|e| e.stream_version >= last_due) {
                break;
            }
        }
        Ok(written)
    }

    /// Deletes every past snapshot of one stream (`None`: of every stream): what an
    /// erasure or a rebuild does before they are derived again.
    pub async fn purge_snapshots(&self, stream_id: Option<Uuid>) -> Result<u64, StoreError> {
        self.backend.delete_snapshots(stream_id, false).await
    }

    /// Every past snapshot of these streams, of any format, by stream and version.
    pub async fn past_snapshots(&self, streams: &[Uuid]) -> Result<Vec<PastSnapshot>, StoreError> {
        self.bounded(self.backend.past_snapshots(streams)).await
    }
}

pub(super) fn snapshot_of(
    event: &StoredEvent,
    state: &Initiative,
    folded_until: DateTime<Utc>,
) -> Result<PastSnapshot, StoreError> {
    Ok(PastSnapshot {
        stream_id: event.stream_id,
        version: event.stream_version,
        hash: event.hash.clone(),
        folded_until,
        format: SNAPSHOT_FORMAT,
        state: serde_json::to_value(state)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode a snapshot of stream {}: {e}", event.stream_id)))?,
    })
}

/// The stored columns of a snapshot, in the order `decode_snapshot` reads them.
pub(super) const SNAPSHOT_COLUMNS: &str = "stream_id, version, hash, folded_until, format, state";

/// A snapshot row (`SNAPSHOT_COLUMNS`), read the same way from both databases.
pub(super) fn decode_snapshot<R: super::rows::StoredRow>(row: &R) -> Result<PastSnapshot, StoreError> {
    let stream_id = row.uuid("stream_id")?;
    let version: i64 = row.read("version")?;
    let corrupt =
        |what: String| StoreError::Corrupt(format!("past snapshot of stream {stream_id} at {version}: {what}"));
    Ok(PastSnapshot {
        stream_id,
        version,
        hash: row.read("hash")?,
        folded_until: row.time("folded_until")?.map_err(corrupt)?,
        format: row.read("format")?,
        state: row.json("state")?.map_err(|e| corrupt(format!("state: {e}")))?,
    })
}
