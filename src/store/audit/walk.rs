//! One stream's walk in a verification: the witnesses besides the log that say how far a
//! stream goes (checkpoints, the stream head and its state snapshot, command records, the
//! projection), and `step`, the checks each event of the stream passes in turn.

use std::collections::{BTreeMap, VecDeque};

use uuid::Uuid;

use crate::domain::{Initiative, evolve};
use crate::store::snapshots::{PastSnapshot, SNAPSHOT_FORMAT};
use crate::store::{StoredEvent, event_hash};

/// What the store keeps about a page of streams besides their events, read in the same
/// snapshot as those events: each is an independent witness of how far each stream goes
/// (all are written in the append's transaction, so in one snapshot they agree with the
/// log exactly).
#[derive(Clone, Debug, Default)]
pub struct Witnesses {
    /// The stream heads (`streams`): version, head hash, position of the last event.
    pub heads: Vec<HeadWitness>,
    /// The idempotency records (`commands`): the version and position of each
    /// command's last event.
    pub commands: Vec<CommandWitness>,
    /// The alignment projection's version of each initiative.
    pub projections: Vec<(Uuid, i64)>,
    /// The snapshots of past states (`past_snapshots`) at or below each stream's last
    /// version in the page (read just after it: they are derived, written beside the
    /// log rather than with it).
    pub past: Vec<PastSnapshot>,
}

impl Witnesses {
    /// Every witness as an anchor of its stream.
    pub(super) fn anchors(self) -> impl Iterator<Item = (Uuid, Anchor)> {
        // A negative version can be in no log: it stays ahead of every walk.
        let anchor =
            |version: i64, witness: Witness| Anchor { version: u64::try_from(version).unwrap_or(u64::MAX), witness };
        let heads = self.heads.into_iter().flat_map(move |head| {
            let snapshot = head.state_version.map(|version| (head.stream_id, anchor(version, Witness::Snapshot)));
            let last = Witness::Head { hash: head.hash, position: head.last_position };
            snapshot.into_iter().chain([(head.stream_id, anchor(head.version, last))])
        });
        let commands = self.commands.into_iter().map(command_anchor);
        let projections = self
            .projections
            .into_iter()
            .map(move |(stream_id, version)| (stream_id, anchor(version, Witness::Projection)));
        let past = self.past.into_iter().map(move |past| {
            // Another format's state cannot be compared: only its place in the history.
            let state = (past.format == SNAPSHOT_FORMAT).then(|| Box::new(past.state));
            (past.stream_id, anchor(past.version, Witness::Past { hash: past.hash, state }))
        });
        heads.chain(commands).chain(projections).chain(past)
    }
}

/// A command record as an anchor of its stream.
pub(super) fn command_anchor(command: CommandWitness) -> (Uuid, Anchor) {
    // A negative version can be in no log: it stays ahead of every walk.
    let version = u64::try_from(command.stream_version).unwrap_or(u64::MAX);
    let witness = Witness::Command { id: command.command_id, position: command.global_position };
    (command.stream_id, Anchor { version, witness })
}

#[derive(Clone, Debug)]
pub struct HeadWitness {
    pub stream_id: Uuid,
    pub version: i64,
    pub hash: Vec<u8>,
    pub last_position: i64,
    /// The version of the folded state kept beside the head (`None`: none recorded).
    pub state_version: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct CommandWitness {
    pub command_id: String,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub global_position: i64,
}

/// Something outside the log that says a stream has a version: the log must hold it.
#[derive(Clone, Debug)]
pub(super) struct Anchor {
    pub(super) version: u64,
    pub(super) witness: Witness,
}

#[derive(Clone, Debug)]
pub(super) enum Witness {
    /// A checkpoint recorded the stream's head at this version, with this hash.
    Checkpoint { id: u64, hash: [u8; 32] },
    /// The stream head: this is the last version, with this hash, at this position.
    Head { hash: Vec<u8>, position: i64 },
    /// The state snapshot beside the head was folded up to this version, the last one.
    Snapshot,
    /// A command's last event is this version, at this position.
    Command { id: String, position: i64 },
    /// The projection was folded up to this version, the last one.
    Projection,
    /// A snapshot of the past state at this version, of the event with this hash; its
    /// state (of the current format) must be the fold of the log up to it.
    Past { hash: Vec<u8>, state: Option<Box<serde_json::Value>> },
}

impl Witness {
    /// The order witnesses are reported in: checkpoints (by id), the head, commands, the
    /// projection.
    pub(super) fn rank(&self) -> (u8, u64) {
        match self {
            Witness::Checkpoint { id, .. } => (0, *id),
            Witness::Head { .. } => (1, 0),
            Witness::Snapshot => (2, 0),
            Witness::Command { .. } => (3, 0),
            Witness::Projection => (4, 0),
            Witness::Past { .. } => (5, 0),
        }
    }
}

/// At most 40 characters of a command id, for a message.
fn short_id(id: &str) -> String {
    match id.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_owned(),
    }
}

/// The witnesses of versions the log does not hold, each kind once (its highest version):
/// "checkpoint 1 recorded the stream at version 9, the stream head records version 9, …".
pub(super) fn describe_missing<'a>(anchors: impl Iterator<Item = &'a Anchor>, deleted_stream: bool) -> String {
    let mut latest: BTreeMap<u8, (&Anchor, usize)> = BTreeMap::new();
    for anchor in anchors {
        let kind = anchor.witness.rank().0;
        let entry = latest.entry(kind).or_insert((anchor, 0));
        entry.1 += 1;
        // The highest version; among checkpoints at that version, the earliest.
        if (anchor.version, std::cmp::Reverse(anchor.witness.rank().1))
            > (entry.0.version, std::cmp::Reverse(entry.0.witness.rank().1))
        {
            entry.0 = anchor;
        }
    }
    let parts: Vec<String> = latest
        .values()
        .map(|(anchor, count)| {
            let version = anchor.version;
            match &anchor.witness {
                Witness::Checkpoint { id, .. } if deleted_stream => {
                    format!("checkpoint {id} recorded it at version {version}")
                }
                Witness::Checkpoint { id, .. } => format!("checkpoint {id} recorded the stream at version {version}"),
                Witness::Head { .. } => format!("the stream head records version {version}"),
                Witness::Snapshot => format!("the head's state snapshot is at version {version}"),
                Witness::Command { id, .. } if *count > 1 => format!(
                    "command {} recorded version {version} (and {} more command records are past the log's end)",
                    short_id(id),
                    count - 1
                ),
                Witness::Command { id, .. } => format!("command {} recorded version {version}", short_id(id)),
                Witness::Projection => format!("the alignment projection is at version {version}"),
                Witness::Past { .. } if *count > 1 => {
                    format!("a past snapshot is at version {version} (and {} more past the log's end)", count - 1)
                }
                Witness::Past { .. } => format!("a past snapshot is at version {version}"),
            }
        })
        .collect();
    parts.join(", ")
}

/// Why a stream the anchors name and the log does not hold at all is a break (`None`:
/// no anchor names it).
pub(super) fn deleted_stream(anchors: &[Anchor]) -> Option<String> {
    (!anchors.is_empty()).then(|| format!("stream deleted: {}", describe_missing(anchors.iter(), true)))
}

/// The stream being walked.
pub(super) struct Walk {
    pub(super) stream_id: Uuid,
    pub(super) version: u64,
    pub(super) hash: Vec<u8>,
    pub(super) position: i64,
    /// This stream's anchors still ahead, by version.
    pub(super) anchors: VecDeque<Anchor>,
    /// The version a stream head or the projection says is the last, and which one.
    pub(super) last: Option<(u64, &'static str)>,
    /// The stream's state folded so far, when a past snapshot's state is to be checked
    /// against it (`None`: the stream has none, and is not folded).
    pub(super) folded: Option<Option<Initiative>>,
}

impl Walk {
    /// The walk of a stream from its first event, against the anchors of its witnesses.
    pub(super) fn start(stream_id: Uuid, mut anchors: Vec<Anchor>) -> Walk {
        anchors.sort_by_key(|anchor| (anchor.version, anchor.witness.rank()));
        // Folded only to check a past snapshot's state: most streams have none.
        let folded = anchors.iter().any(|a| matches!(a.witness, Witness::Past { state: Some(_), .. })).then_some(None);
        Walk {
            stream_id,
            version: 0,
            hash: crate::store::ZERO_HASH.to_vec(),
            position: 0,
            anchors: anchors.into(),
            last: None,
            folded,
        }
    }

    /// Takes an anchor for a version not walked yet, in its place by version.
    pub(super) fn add_anchor(&mut self, anchor: Anchor) {
        let key = (anchor.version, anchor.witness.rank());
        let at = self.anchors.partition_point(|a| (a.version, a.witness.rank()) <= key);
        self.anchors.insert(at, anchor);
    }

    /// At the end of the stream's events: the first version an anchor recorded that the
    /// log does not hold, and what recorded it.
    pub(super) fn missing_tail(&self) -> Option<(u64, String)> {
        if self.anchors.is_empty() {
            return None;
        }
        let first_missing = self.version + 1;
        let reason = format!(
            "version {first_missing} missing: {}, the log ends at version {}",
            describe_missing(self.anchors.iter(), false),
            self.version
        );
        Some((first_missing, reason))
    }
}

/// Checks one event against the walk of its stream; on a break, returns the version it
/// locates and why.
pub(super) fn step(walk: &mut Walk, event: &StoredEvent) -> Result<(), (u64, String)> {
    let expected = walk.version + 1;
    let version = u64::try_from(event.stream_version)
        .map_err(|_| (expected, format!("stream_version {} is not positive", event.stream_version)))?;
    if version > expected {
        let missing = if version == expected + 1 {
            format!("version {expected} missing")
        } else {
            format!("versions {expected} to {} missing", version - 1)
        };
        return Err((expected, missing));
    }
    if version < expected {
        return Err((version, format!("version {version} appears again after version {}", walk.version)));
    }
    if walk.version > 0 && event.position <= walk.position {
        return Err((
            version,
            format!(
                "events reordered: version {version} is at position {}, not after version {} at position {}",
                event.position, walk.version, walk.position
            ),
        ));
    }
    if event.prev_hash != walk.hash {
        return Err((
            version,
            if version == 1 {
                "prev_hash of the first event is not zero".to_owned()
            } else {
                format!("prev_hash does not link to version {}", walk.version)
            },
        ));
    }
    if event_hash(&event.prev_hash, &event.content()).as_slice() != event.hash.as_slice() {
        return Err((version, "payload or metadata changed: hash mismatch".to_owned()));
    }
    if let Some(folded) = walk.folded.as_mut() {
        let state = event.to_recorded().and_then(|recorded| {
            evolve(folded.take(), &recorded).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))
        });
        match state {
            Ok(state) => *folded = Some(state),
            Err(e) => return Err((version, format!("does not fold onto the versions before it: {e}"))),
        }
    }
    if let Some((last, who)) = walk.last {
        return Err((
            version,
            format!(
                "version {version} is past version {last}, where {who} ends the stream: an event was added to the \
                 log outside of an append"
            ),
        ));
    }
    while let Some(anchor) = walk.anchors.front() {
        if anchor.version > version {
            break;
        }
        match &anchor.witness {
            Witness::Checkpoint { id, hash } => {
                if hash.as_slice() != event.hash.as_slice() {
                    return Err((
                        version,
                        format!(
                            "hash differs from the one checkpoint {id} recorded at version {version}: the stream was rewritten"
                        ),
                    ));
                }
            }
            Witness::Head { hash, position } => {
                if hash.as_slice() != event.hash.as_slice() {
                    return Err((
                        version,
                        format!("hash differs from the head hash the stream head records at version {version}"),
                    ));
                }
                if *position != event.position {
                    return Err((
                        version,
                        format!(
                            "the stream head records its last event at position {position}, but version {version} is \
                             at position {}",
                            event.position
                        ),
                    ));
                }
                walk.last = Some((version, "the stream head"));
            }
            Witness::Command { id, position } => {
                if *id != event.command_id {
                    return Err((
                        version,
                        format!(
                            "command {} recorded version {version} as its last event, but version {version} was \
                             appended by command {}",
                            short_id(id),
                            short_id(&event.command_id)
                        ),
                    ));
                }
                if *position != event.position {
                    return Err((
                        version,
                        format!(
                            "command {} recorded its last event at position {position}, but version {version} is at \
                             position {}",
                            short_id(id),
                            event.position
                        ),
                    ));
                }
            }
            // A snapshot is kept every few events behind the head: the log must hold its
            // version, but the stream goes on past it.
            Witness::Snapshot => {}
            Witness::Projection => {
                walk.last = walk.last.or(Some((version, "the alignment projection")));
            }
            Witness::Past { hash, state } => {
                if hash.as_slice() != event.hash.as_slice() {
                    return Err((
                        version,
                        format!(
                            "hash differs from the one the past snapshot at version {version} was folded from: the \
                             snapshot is of another history"
                        ),
                    ));
                }
                let folded = walk.folded.as_ref().and_then(Option::as_ref).map(serde_json::to_value);
                if let (Some(stored), Some(Ok(folded))) = (state, folded)
                    && **stored != folded
                {
                    return Err((
                        version,
                        format!(
                            "the past snapshot at version {version} does not hold the state the log folds to there \
                             (delete it with `accord rebuild-projections`, which derives the snapshots again)"
                        ),
                    ));
                }
            }
        }
        walk.anchors.pop_front();
    }
    walk.version = version;
    walk.hash.clone_from(&event.hash);
    walk.position = event.position;
    Ok(())
}
