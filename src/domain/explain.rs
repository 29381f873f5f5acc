//! Explanations for auditors: for each open decision and function, the state and the
//! events that made it so — the approval that counts, the material revision that made
//! an approval stale, the standing rejection or objection — and each decision's
//! lifecycle (proposal, revisions, acceptance or override with its reason). Built from
//! the same fold and the same rules as the projection; nothing here decides anything
//! the alignment module does not.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alignment::{
    DecisionAlignment, FunctionState, InitiativeStatus, evaluate_decision, project, sign_off_counts,
};
use super::state::{Decision, DecisionStatus, Feedback, Initiative};
use super::values::*;

/// One event that contributes to a state, in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRef {
    pub version: u64,
    pub event_type: String,
    pub actor: Principal,
    pub at: DateTime<Utc>,
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionExplanation {
    pub function: Function,
    pub state: FunctionState,
    pub reason: String,
    pub events: Vec<EventRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionExplanation {
    pub decision_id: DecisionId,
    pub title: String,
    pub status: DecisionStatus,
    pub alignment: DecisionAlignment,
    pub revision: u32,
    pub functions: Vec<FunctionExplanation>,
    pub other_objections: Vec<EventRef>,
    pub lifecycle: Vec<EventRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub initiative_id: InitiativeId,
    pub key: InitiativeKey,
    pub status: InitiativeStatus,
    pub version: u64,
    pub decisions: Vec<DecisionExplanation>,
    pub initiative_objections: Vec<EventRef>,
}

/// Explains the initiative's alignment (every decision, or only `only`).
pub fn explain(initiative: &Initiative, only: Option<DecisionId>) -> Explanation {
    let decisions = initiative
        .decisions
        .values()
        .filter(|d| only.is_none_or(|id| id == d.id))
        .map(|d| explain_decision(initiative, d))
        .collect();
    Explanation {
        initiative_id: initiative.id,
        key: initiative.key.clone(),
        status: project(initiative).status,
        version: initiative.version,
        decisions,
        initiative_objections: initiative.open_objections(None).map(objection_ref).collect(),
    }
}

fn objection_ref(objection: &Feedback) -> EventRef {
    EventRef {
        version: objection.version,
        event_type: "FeedbackRecorded".into(),
        actor: objection.author.clone(),
        at: objection.recorded_at,
        summary: format!("objection from {}: {}", objection.function, objection.body),
    }
}

fn explain_decision(initiative: &Initiative, decision: &Decision) -> DecisionExplanation {
    let eval = evaluate_decision(initiative, decision);
    let functions = eval
        .functions
        .iter()
        .map(|f| FunctionExplanation {
            function: f.function.clone(),
            state: f.state,
            reason: f.reason.clone(),
            events: function_events(initiative, decision, &f.function, f.state),
        })
        .collect();
    let other_objections = initiative
        .open_objections(Some(decision.id))
        .filter(|o| !decision.required_functions().contains(&o.function))
        .map(objection_ref)
        .collect();
    DecisionExplanation {
        decision_id: decision.id,
        title: decision.title().to_owned(),
        status: decision.status,
        alignment: eval.alignment,
        revision: decision.revision(),
        functions,
        other_objections,
        lifecycle: lifecycle(decision),
    }
}

/// The events behind one function's state on one decision.
fn function_events(
    initiative: &Initiative,
    decision: &Decision,
    function: &Function,
    state: FunctionState,
) -> Vec<EventRef> {
    let verdicts = decision.sign_offs.iter().filter(|s| &s.function == function);
    let sign_off_ref = |s: &super::state::SignOff, summary: String| EventRef {
        version: s.version,
        event_type: "SignOffRecorded".into(),
        actor: s.signer.clone(),
        at: s.at,
        summary,
    };
    match state {
        FunctionState::Rejected => verdicts
            .filter(|s| s.verdict == Verdict::Reject && sign_off_counts(initiative, decision, s))
            .map(|s| {
                sign_off_ref(s, format!("{} rejected revision {} for {function}: {}", s.signer, s.revision, s.reason))
            })
            .collect(),
        FunctionState::Blocked => initiative
            .open_objections(Some(decision.id))
            .filter(|o| &o.function == function)
            .map(objection_ref)
            .collect(),
        FunctionState::Approved => {
            let mut events: Vec<EventRef> = verdicts
                .filter(|s| s.verdict == Verdict::Approve && sign_off_counts(initiative, decision, s))
                .map(|s| sign_off_ref(s, format!("{} approved revision {} for {function}", s.signer, s.revision)))
                .collect();
            let signed_at = events.iter().map(|e| e.version).min().unwrap_or(u64::MAX);
            // Editorial revisions after the approval carried it forward.
            events.extend(
                decision
                    .revisions
                    .iter()
                    .filter(|r| r.version > signed_at && r.kind == RevisionKind::Editorial)
                    .map(|r| revision_ref(r, "carried the approval forward")),
            );
            events
        }
        FunctionState::Pending => {
            let stale: Vec<EventRef> = verdicts
                .filter(|s| {
                    s.verdict == Verdict::Approve && s.revision < decision.material_base && initiative.still_entitled(s)
                })
                .map(|s| {
                    sign_off_ref(s, format!("{} approved revision {} for {function} (now stale)", s.signer, s.revision))
                })
                .collect();
            let mut events = stale;
            if !events.is_empty() {
                events.extend(
                    decision
                        .revisions
                        .iter()
                        .filter(|r| r.number == decision.material_base)
                        .map(|r| revision_ref(r, "made earlier approvals stale")),
                );
            }
            events
        }
        FunctionState::NotApplicable => Vec::new(),
    }
}

fn revision_ref(revision: &super::state::Revision, effect: &str) -> EventRef {
    let kind = revision.kind.as_str();
    let note = if revision.note.is_empty() { String::new() } else { format!(" — {}", revision.note) };
    EventRef {
        version: revision.version,
        event_type: "DecisionRevised".into(),
        actor: revision.by.clone(),
        at: revision.at,
        summary: format!("revision {} ({kind}) {effect}{note}", revision.number),
    }
}

fn lifecycle(decision: &Decision) -> Vec<EventRef> {
    let mut events: Vec<EventRef> = decision
        .revisions
        .iter()
        .map(|r| {
            if r.number == 1 {
                EventRef {
                    version: r.version,
                    event_type: "DecisionProposed".into(),
                    actor: r.by.clone(),
                    at: r.at,
                    summary: format!("proposed: {}", r.content.proposal),
                }
            } else {
                revision_ref(r, "revised the decision")
            }
        })
        .collect();
    if let Some(closure) = &decision.closure {
        let (event_type, summary) = match (decision.status, &decision.r#override) {
            (_, Some(record)) => (
                "DecisionAccepted",
                format!(
                    "accepted by override: {} (not approved then: {})",
                    record.reason,
                    record.unaligned.iter().map(|(f, s)| format!("{f} {}", s.as_str())).collect::<Vec<_>>().join(", ")
                ),
            ),
            (DecisionStatus::Accepted | DecisionStatus::Superseded, None) => {
                ("DecisionAccepted", "accepted, aligned".to_owned())
            }
            (DecisionStatus::Rejected, None) => ("DecisionRejected", format!("rejected: {}", closure.reason)),
            (DecisionStatus::Withdrawn, None) => ("DecisionWithdrawn", format!("withdrawn: {}", closure.reason)),
            (DecisionStatus::Proposed, None) => ("DecisionAccepted", String::new()),
        };
        events.push(EventRef {
            version: closure.version,
            event_type: event_type.into(),
            actor: closure.by.clone(),
            at: closure.at,
            summary,
        });
    }
    events
}
