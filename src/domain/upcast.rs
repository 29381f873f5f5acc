//! Reading events of older schema versions: the upcaster chain. An event once written
//! is never changed, so when an event type's payload changes shape it gets a new
//! `SCHEMA_VERSION` and a step here, a pure function from the payload of version n to
//! that of n + 1; reading applies the steps one after another until the payload is of
//! the current version, and only then decodes it. An event of a version above the
//! current one was written by a newer Accord (a rolling deploy): that is not corruption,
//! and it is refused as `Upcast::Newer` so that callers can say so.
//!
//! Every version ever written must keep folding to the same alignment: the corpus test
//! (`tests/corpus`) folds a checked-in log of every version and compares it with
//! checked-in views, so a payload shape changed without a new version and a step here
//! fails it.

use std::fmt;

use super::event::SCHEMA_VERSION;

/// One step of the chain: the payload of `from` → the payload of `from + 1`.
pub type Step = fn(serde_json::Value) -> Result<serde_json::Value, String>;

/// The registered steps, as (event type, from version, step). A step for a type that
/// did not change between two versions is not needed: `upcast` passes such payloads
/// through unchanged.
///
/// Version 2 (teams in decision rights) added `via_team` to `SignOffRecorded`: a version 1
/// sign-off was always given by an approver in person, which is what an absent
/// `via_team` means, so its step keeps the payload as it is (and, being the oldest
/// step, marks version 1 as the oldest version ever written).
pub const STEPS: &[(&str, i32, Step)] = &[("SignOffRecorded", 1, sign_off_given_in_person)];

/// `SignOffRecorded` 1 → 2: no team; the payload is already a version 2 one.
fn sign_off_given_in_person(payload: serde_json::Value) -> Result<serde_json::Value, String> {
    match payload.get("via_team") {
        None => Ok(payload),
        Some(_) => Err("a version 1 sign-off cannot name a team".into()),
    }
}

/// Why a stored payload could not be brought to the current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upcast {
    /// Written by a newer Accord than this process: read it there.
    Newer { event_type: String, version: i32, current: i32 },
    /// A version this code never wrote (zero or negative).
    Unknown { event_type: String, version: i32 },
    /// A step refused the payload.
    Step { event_type: String, from: i32, reason: String },
}

impl fmt::Display for Upcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upcast::Newer { event_type, version, current } => write!(
                f,
                "{event_type}: schema version {version} was written by a newer Accord (this one reads up to {current})"
            ),
            Upcast::Unknown { event_type, version } => write!(f, "{event_type}: unknown schema version {version}"),
            Upcast::Step { event_type, from, reason } => {
                write!(f, "{event_type}: cannot upcast from schema version {from}: {reason}")
            }
        }
    }
}

/// Brings `payload`, stored as `event_type` at `version`, to `SCHEMA_VERSION` with the
/// registered steps.
pub fn upcast(event_type: &str, version: i32, payload: serde_json::Value) -> Result<serde_json::Value, Upcast> {
    upcast_with(STEPS, SCHEMA_VERSION, event_type, version, payload)
}

/// `upcast` over an explicit chain and current version: the tests prove the mechanism
/// with a chain of their own, without inventing versions production never wrote.
pub fn upcast_with(
    steps: &[(&str, i32, Step)],
    current: i32,
    event_type: &str,
    version: i32,
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, Upcast> {
    if version > current {
        return Err(Upcast::Newer { event_type: event_type.to_owned(), version, current });
    }
    // The oldest version ever written is the lowest `from` of any step, or the current one.
    let oldest = steps.iter().map(|(_, from, _)| *from).min().map_or(current, |from| from.min(current));
    if version < oldest || version < 1 {
        return Err(Upcast::Unknown { event_type: event_type.to_owned(), version });
    }
    for from in version..current {
        if let Some((_, _, step)) = steps.iter().find(|(name, v, _)| *name == event_type && *v == from) {
            payload =
                step(payload).map_err(|reason| Upcast::Step { event_type: event_type.to_owned(), from, reason })?;
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;
    use crate::domain::values::Stage;

    /// A synthetic history: version 1 called `StageChanged`'s fields `old` and `new`,
    /// version 2 renamed them to `from` and `to` (today's shape), and version 2 added a
    /// `note` to `InitiativeArchived` that version 3 dropped again.
    fn rename_stage_fields(mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
        let fields = payload.as_object_mut().ok_or("not an object")?;
        let old = fields.remove("old").ok_or("no field old")?;
        let new = fields.remove("new").ok_or("no field new")?;
        fields.insert("from".into(), old);
        fields.insert("to".into(), new);
        Ok(payload)
    }

    fn drop_note(mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
        payload.as_object_mut().ok_or("not an object")?.remove("note");
        Ok(payload)
    }

    const CHAIN: &[(&str, i32, Step)] =
        &[("StageChanged", 1, rename_stage_fields), ("InitiativeArchived", 2, drop_note)];

    #[test]
    fn a_payload_is_upcast_step_by_step_to_the_current_version_and_then_decodes() {
        let v1 = serde_json::json!({ "old": "discovery", "new": "delivery" });
        let current = upcast_with(CHAIN, 3, "StageChanged", 1, v1).expect("upcast");
        assert_eq!(current, serde_json::json!({ "from": "discovery", "to": "delivery" }));
        let tagged = serde_json::json!({ "type": "StageChanged", "data": current });
        let event: Event = serde_json::from_value(tagged).expect("decodes as today's event");
        assert_eq!(event, Event::StageChanged { from: Stage::Discovery, to: Stage::Delivery });

        // Only the steps at or after the stored version apply, and only the type's own.
        let v2 = serde_json::json!({ "reason": "done", "note": "x" });
        assert_eq!(
            upcast_with(CHAIN, 3, "InitiativeArchived", 2, v2.clone()),
            Ok(serde_json::json!({ "reason": "done" }))
        );
        assert_eq!(upcast_with(CHAIN, 3, "InitiativeArchived", 3, v2.clone()), Ok(v2));
        let unchanged = serde_json::json!({ "reason": "r" });
        assert_eq!(
            upcast_with(CHAIN, 3, "InitiativeArchived", 1, unchanged.clone()),
            Ok(serde_json::json!({ "reason": "r" }))
        );
        assert_eq!(upcast_with(CHAIN, 3, "DecisionRejected", 1, unchanged.clone()), Ok(unchanged));
    }

    #[test]
    fn a_newer_version_is_refused_as_written_by_a_newer_accord_and_an_unknown_one_as_unknown() {
        let payload = serde_json::json!({ "from": "discovery", "to": "delivery" });
        let newer = upcast_with(CHAIN, 3, "StageChanged", 4, payload.clone()).expect_err("newer");
        assert_eq!(newer, Upcast::Newer { event_type: "StageChanged".into(), version: 4, current: 3 });
        assert!(newer.to_string().contains("written by a newer Accord"), "{newer}");
        assert!(!newer.to_string().contains("corrupt"), "{newer}");
        let unknown = upcast_with(CHAIN, 3, "StageChanged", 0, payload.clone()).expect_err("zero");
        assert!(matches!(unknown, Upcast::Unknown { version: 0, .. }), "{unknown:?}");
        let broken = upcast_with(CHAIN, 3, "StageChanged", 1, payload).expect_err("a v1 payload without old");
        assert!(broken.to_string().contains("cannot upcast from schema version 1: no field old"), "{broken}");
    }

    #[test]
    fn the_production_chain_reads_today_s_version_unchanged_and_refuses_the_next() {
        let payload = serde_json::json!({ "reason": "done" });
        assert_eq!(upcast("InitiativeArchived", SCHEMA_VERSION, payload.clone()), Ok(payload.clone()));
        assert!(matches!(
            upcast("InitiativeArchived", SCHEMA_VERSION + 1, payload),
            Err(Upcast::Newer { version, current: SCHEMA_VERSION, .. }) if version == SCHEMA_VERSION + 1
        ));
        // Every step's `from` is below the current version: a step for a version that is
        // not older could never run.
        assert!(STEPS.iter().all(|(_, from, _)| *from < SCHEMA_VERSION));
    }
}
