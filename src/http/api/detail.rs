//! `GET /api/initiatives/{initiative}`: one initiative's alignment, its decisions with
//! each function's state and the sign-off matrix of every revision, its feedback, and
//! its timeline — each event told by the domain's narrator as the board reads it.

use std::collections::BTreeSet;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{domain_response, error_response, store_response};
use crate::domain::values::InitiativeRef;
use crate::domain::{
    alignment::{AlignmentView, DecisionAlignment, FunctionEval, evaluate_decision, sign_off_counts},
    event::{DecisionContent, OverrideRecord},
    narrate::{Reader, Tone, narrate},
    state::{Closure, Decision, DecisionStatus, Feedback, Initiative, SignOff, sign_off_history},
    values::{DecisionId, FeedbackId, Function, Principal, RevisionKind, Verdict},
};
use crate::http::App;
use crate::store::{StoreError, StoredEvent};

/// The most recent events the timeline shows.
const TIMELINE_LIMIT: u64 = 500;

#[derive(Debug, Serialize)]
struct InitiativeDetail {
    alignment: AlignmentView,
    decisions: Vec<DecisionDetail>,
    /// Feedback on the initiative itself (not on one decision).
    feedback: Vec<Feedback>,
    timeline: Vec<TimelineEntry>,
    /// Whether the timeline starts after the first event (only the latest are shown).
    timeline_truncated: bool,
}

#[derive(Debug, Serialize)]
struct DecisionDetail {
    decision_id: DecisionId,
    title: String,
    status: DecisionStatus,
    alignment: DecisionAlignment,
    revision: u32,
    /// The revision approvals must be of to count (the latest material one).
    material_base: u32,
    content: DecisionContent,
    required_functions: Vec<Function>,
    proposed_by: Principal,
    proposed_at: DateTime<Utc>,
    /// Each required function's state now, why, and who can move it.
    functions: Vec<FunctionEval>,
    revisions: Vec<RevisionDetail>,
    feedback: Vec<Feedback>,
    closure: Option<Closure>,
    r#override: Option<OverrideRecord>,
    supersedes: Option<DecisionId>,
    superseded_by: Option<DecisionId>,
}

#[derive(Debug, Serialize)]
struct RevisionDetail {
    number: u32,
    kind: RevisionKind,
    title: String,
    by: Principal,
    at: DateTime<Utc>,
    note: String,
    required_functions: Vec<Function>,
    /// Function × verdicts recorded against this revision.
    matrix: Vec<MatrixRow>,
}

#[derive(Debug, Serialize)]
struct MatrixRow {
    function: Function,
    /// Oldest first; the ones no longer in force are marked.
    sign_offs: Vec<MatrixCell>,
}

#[derive(Debug, Serialize)]
struct MatrixCell {
    signer: Principal,
    verdict: Verdict,
    reason: String,
    comment: String,
    at: DateTime<Utc>,
    /// Neither replaced by a later verdict of the same signer nor revoked.
    in_force: bool,
    replaced: bool,
    revoked: bool,
    /// In force and counting now (signer still an approver; an approval not stale).
    counts: bool,
    /// The team the signer signed for; absent when for themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    via_team: Option<Principal>,
}

#[derive(Debug, Serialize)]
pub(super) struct TimelineEntry {
    position: i64,
    version: i64,
    r#type: String,
    actor: String,
    recorded_at: DateTime<Utc>,
    summary: String,
    /// good, bad, warn or none: how the board colours it.
    tone: &'static str,
}

pub(crate) async fn initiative(State(app): State<App>, Path(initiative): Path<String>) -> Response {
    let target = match InitiativeRef::parse("initiative", &initiative) {
        Ok(target) => target,
        Err(error) => return domain_response(error),
    };
    match initiative_detail(&app, &target).await {
        Ok(Some(detail)) => Json(detail).into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, &format!("initiative {target} not found")),
        Err(error) => store_response(error),
    }
}

async fn initiative_detail(app: &App, target: &InitiativeRef) -> Result<Option<InitiativeDetail>, StoreError> {
    let store = &app.state.store;
    let Some(initiative) = store.initiative(target).await? else {
        return Ok(None);
    };
    let Some(alignment) = store.alignment(&InitiativeRef::Id(initiative.id)).await? else {
        return Ok(None);
    };
    let mut decisions = Vec::with_capacity(initiative.decisions.len());
    for decision in initiative.decisions.values() {
        let events = store.sign_off_events(initiative.id, decision.id).await?;
        let recorded = events.iter().map(StoredEvent::to_recorded).collect::<Result<Vec<_>, _>>()?;
        let history = sign_off_history(decision.id, &recorded);
        decisions.push(decision_detail(&initiative, decision, &history));
    }
    // Newest first: what changed last matters most on a board.
    decisions.reverse();
    let from = initiative.version.saturating_sub(TIMELINE_LIMIT - 1).max(1);
    let events = store.read_stream(initiative.id.0, i64::try_from(from).unwrap_or(1), TIMELINE_LIMIT as i64).await?;
    let mut timeline: Vec<TimelineEntry> = events.iter().map(|e| timeline_entry(&initiative, e)).collect();
    timeline.reverse();
    let feedback = initiative.feedback.values().filter(|f| f.decision_id.is_none()).cloned().collect();
    Ok(Some(InitiativeDetail { alignment, decisions, feedback, timeline, timeline_truncated: from > 1 }))
}

fn decision_detail(initiative: &Initiative, decision: &Decision, history: &[SignOff]) -> DecisionDetail {
    let eval = evaluate_decision(initiative, decision);
    let revisions = decision
        .revisions
        .iter()
        .map(|revision| {
            let at_revision: Vec<&SignOff> = history.iter().filter(|s| s.revision == revision.number).collect();
            // Every function the revision needed, and any other that signed it anyway.
            let functions: BTreeSet<&Function> =
                revision.required_functions.iter().chain(at_revision.iter().map(|s| &s.function)).collect();
            let matrix = functions
                .into_iter()
                .map(|function| MatrixRow {
                    function: function.clone(),
                    sign_offs: at_revision
                        .iter()
                        .filter(|s| &s.function == function)
                        .map(|s| {
                            let in_force = !s.replaced && !s.revoked;
                            MatrixCell {
                                signer: s.signer.clone(),
                                verdict: s.verdict,
                                reason: s.reason.clone(),
                                comment: s.comment.clone(),
                                at: s.at,
                                in_force,
                                replaced: s.replaced,
                                revoked: s.revoked,
                                counts: in_force && decision.is_open() && sign_off_counts(initiative, decision, s),
                                via_team: s.via_team.clone(),
                            }
                        })
                        .collect(),
                })
                .collect();
            RevisionDetail {
                number: revision.number,
                kind: revision.kind,
                title: revision.content.title.clone(),
                by: revision.by.clone(),
                at: revision.at,
                note: revision.note.clone(),
                required_functions: revision.required_functions.iter().cloned().collect(),
                matrix,
            }
        })
        .rev()
        .collect();
    DecisionDetail {
        decision_id: decision.id,
        title: decision.title().to_owned(),
        status: decision.status,
        alignment: eval.alignment,
        revision: decision.revision(),
        material_base: decision.material_base,
        content: decision.current().content.clone(),
        required_functions: decision.required_functions().iter().cloned().collect(),
        proposed_by: decision.proposed_by.clone(),
        proposed_at: decision.proposed_at,
        functions: eval.functions,
        revisions,
        feedback: initiative.feedback.values().filter(|f| f.decision_id == Some(decision.id)).cloned().collect(),
        closure: decision.closure.clone(),
        r#override: decision.r#override.clone(),
        supersedes: decision.supersedes,
        superseded_by: decision.superseded_by,
    }
}

pub(super) fn timeline_entry(initiative: &Initiative, stored: &StoredEvent) -> TimelineEntry {
    let (summary, tone) = match stored.to_recorded() {
        Ok(recorded) => {
            let told = narrate(&recorded.event, &BoardReader(initiative));
            (told.text, told.tone.as_str())
        }
        Err(_) => (format!("{} (cannot be decoded)", stored.event_type), Tone::Bad.as_str()),
    };
    TimelineEntry {
        position: stored.position,
        version: stored.stream_version,
        r#type: stored.event_type.clone(),
        actor: stored.actor.clone(),
        recorded_at: stored.recorded_at,
        summary,
        tone,
    }
}

/// The board reads decisions by their title and free text to its first line, and
/// does not tell feedback items apart.
struct BoardReader<'a>(&'a Initiative);

impl Reader for BoardReader<'_> {
    fn decision(&self, id: &DecisionId) -> String {
        match self.0.decisions.get(id) {
            Some(decision) => self.title(decision.title()),
            None => id.to_string(),
        }
    }

    /// The title the decision has now, as everywhere else on the board.
    fn proposal(&self, id: &DecisionId, _title: &str) -> String {
        self.decision(id)
    }

    fn feedback(&self, _id: &FeedbackId) -> Option<String> {
        None
    }

    fn title(&self, title: &str) -> String {
        format!("“{}”", brief(title))
    }

    fn brief(&self, text: &str) -> String {
        brief(text)
    }
}

/// The first line of `text`, at most 140 characters.
fn brief(text: &str) -> String {
    const MAX: usize = 140;
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= MAX && line.len() == text.trim().len() {
        line.to_owned()
    } else {
        format!("{}…", line.chars().take(MAX - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_cuts_long_and_multi_line_text() {
        assert_eq!(brief("short"), "short");
        assert_eq!(brief("first\nsecond"), "first…");
        assert_eq!(brief(&"x".repeat(200)).chars().count(), 140);
    }
}
