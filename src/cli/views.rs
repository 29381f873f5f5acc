//! The API's views as the client shows them: enum values as the domain's words
//! (`pending`, `user_research`…), timestamps in RFC 3339, and every view as JSON for
//! `--json`. Field names follow the proto, so scripts can read either.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::proto as pb;

pub fn stage_name(stage: pb::Stage) -> &'static str {
    match stage {
        pb::Stage::Discovery => "discovery",
        pb::Stage::Definition => "definition",
        pb::Stage::Delivery => "delivery",
        pb::Stage::Launched => "launched",
        pb::Stage::Scaling => "scaling",
        pb::Stage::Sunset => "sunset",
        pb::Stage::Unspecified => "unspecified",
    }
}

pub fn role_name(role: pb::Role) -> &'static str {
    match role {
        pb::Role::Driver => "driver",
        pb::Role::Approver => "approver",
        pb::Role::Contributor => "contributor",
        pb::Role::Informed => "informed",
        pb::Role::Unspecified => "unspecified",
    }
}

pub fn function_state_name(state: pb::FunctionState) -> &'static str {
    match state {
        pb::FunctionState::Approved => "approved",
        pb::FunctionState::Pending => "pending",
        pb::FunctionState::Blocked => "blocked",
        pb::FunctionState::Rejected => "rejected",
        pb::FunctionState::NotApplicable => "not_applicable",
        pb::FunctionState::Unspecified => "unspecified",
    }
}

pub fn decision_status_name(status: pb::DecisionStatus) -> &'static str {
    match status {
        pb::DecisionStatus::Proposed => "proposed",
        pb::DecisionStatus::Accepted => "accepted",
        pb::DecisionStatus::Rejected => "rejected",
        pb::DecisionStatus::Withdrawn => "withdrawn",
        pb::DecisionStatus::Superseded => "superseded",
        pb::DecisionStatus::Unspecified => "unspecified",
    }
}

pub fn decision_alignment_name(alignment: pb::DecisionAlignment) -> &'static str {
    match alignment {
        pb::DecisionAlignment::Aligned => "aligned",
        pb::DecisionAlignment::Pending => "pending",
        pb::DecisionAlignment::Blocked => "blocked",
        pb::DecisionAlignment::Closed => "closed",
        pb::DecisionAlignment::Unspecified => "unspecified",
    }
}

pub fn initiative_status_name(status: pb::InitiativeStatus) -> &'static str {
    match status {
        pb::InitiativeStatus::NoDecisions => "no_decisions",
        pb::InitiativeStatus::Pending => "pending",
        pb::InitiativeStatus::Blocked => "blocked",
        pb::InitiativeStatus::Aligned => "aligned",
        pb::InitiativeStatus::Unspecified => "unspecified",
    }
}

pub fn feedback_kind_name(kind: pb::FeedbackKind) -> &'static str {
    match kind {
        pb::FeedbackKind::Comment => "comment",
        pb::FeedbackKind::Question => "question",
        pb::FeedbackKind::Concern => "concern",
        pb::FeedbackKind::Objection => "objection",
        pb::FeedbackKind::Unspecified => "unspecified",
    }
}

pub fn feedback_source_name(source: pb::FeedbackSource) -> &'static str {
    match source {
        pb::FeedbackSource::Internal => "internal",
        pb::FeedbackSource::UserResearch => "user_research",
        pb::FeedbackSource::Customer => "customer",
        pb::FeedbackSource::Unspecified => "unspecified",
    }
}

pub fn verdict_name(verdict: pb::Verdict) -> &'static str {
    match verdict {
        pb::Verdict::Approve => "approve",
        pb::Verdict::Reject => "reject",
        pb::Verdict::Unspecified => "unspecified",
    }
}

pub fn revision_kind_name(kind: pb::RevisionKind) -> &'static str {
    match kind {
        pb::RevisionKind::Material => "material",
        pb::RevisionKind::Editorial => "editorial",
        pb::RevisionKind::Unspecified => "initial",
    }
}

/// A function state as a short word for tables (`n/a` instead of `not_applicable`).
pub fn state_word(state: pb::FunctionState) -> &'static str {
    match state {
        pb::FunctionState::NotApplicable => "n/a",
        other => function_state_name(other),
    }
}

pub fn time(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let at = at?;
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
}

/// RFC 3339 with microseconds, for JSON.
pub fn time_json(at: Option<&prost_types::Timestamp>) -> Value {
    match time(at) {
        Some(at) => Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        None => Value::Null,
    }
}

/// Seconds precision, for people.
pub fn time_text(at: Option<&prost_types::Timestamp>) -> String {
    match time(at) {
        Some(at) => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "-".to_owned(),
    }
}

fn non_empty(text: &str) -> Value {
    if text.is_empty() { Value::Null } else { Value::String(text.to_owned()) }
}

pub fn functions_json(functions: &[pb::FunctionStatus]) -> Value {
    Value::Object(
        functions
            .iter()
            .map(|f| (f.function.clone(), Value::String(function_state_name(f.state()).to_owned())))
            .collect(),
    )
}

pub fn evidence_json(evidence: Option<&pb::EvidenceCounts>) -> Value {
    let evidence = evidence.copied().unwrap_or_default();
    json!({"internal": evidence.internal, "user_research": evidence.user_research, "customer": evidence.customer})
}

pub fn outstanding_json(item: &pb::OutstandingItem) -> Value {
    json!({
        "decision_id": non_empty(&item.decision_id),
        "decision_title": non_empty(&item.decision_title),
        "function": item.function,
        "state": function_state_name(item.state()),
        "can_sign": item.can_sign,
        "reason": item.reason,
    })
}

pub fn feedback_json(item: &pb::FeedbackItem) -> Value {
    json!({
        "feedback_id": item.feedback_id,
        "decision_id": non_empty(&item.decision_id),
        "author": item.author,
        "function": item.function,
        "kind": feedback_kind_name(item.kind()),
        "source": feedback_source_name(item.source()),
        "body": item.body,
        "resolved": item.resolved,
        "resolution": non_empty(&item.resolution),
        "resolved_by": non_empty(&item.resolved_by),
        "recorded_at": time_json(item.recorded_at.as_ref()),
        "resolved_at": time_json(item.resolved_at.as_ref()),
    })
}

pub fn override_json(item: &pb::Override) -> Value {
    json!({
        "decision_id": item.decision_id,
        "decision_title": item.decision_title,
        "accepted_by": item.accepted_by,
        "reason": item.reason,
        "accepted_at": time_json(item.accepted_at.as_ref()),
        "unaligned": functions_json(&item.unaligned),
    })
}

pub fn alignment_json(view: &pb::InitiativeAlignment) -> Value {
    json!({
        "initiative_id": view.initiative_id,
        "key": view.key,
        "title": view.title,
        "summary": view.summary,
        "owner": view.owner,
        "stage": stage_name(view.stage()),
        "archived": view.archived,
        "required_functions": view.required_functions,
        "status": initiative_status_name(view.status()),
        "functions": functions_json(&view.functions),
        "score": view.score,
        "approved_pairs": view.approved_pairs,
        "total_pairs": view.total_pairs,
        "outstanding": view.outstanding.iter().map(outstanding_json).collect::<Vec<_>>(),
        "stale_sign_offs": view.stale_sign_offs.iter().map(|s| json!({
            "decision_id": s.decision_id,
            "function": s.function,
            "signer": s.signer,
            "signed_revision": s.signed_revision,
            "stale_since_revision": s.stale_since_revision,
        })).collect::<Vec<_>>(),
        "open_objections": view.open_objections.iter().map(feedback_json).collect::<Vec<_>>(),
        "open_concerns": view.open_concerns.iter().map(feedback_json).collect::<Vec<_>>(),
        "evidence": evidence_json(view.evidence.as_ref()),
        "overrides": view.overrides.iter().map(override_json).collect::<Vec<_>>(),
        "decisions": view.decisions.iter().map(|d| json!({
            "decision_id": d.decision_id,
            "title": d.title,
            "status": decision_status_name(d.status()),
            "alignment": decision_alignment_name(d.alignment()),
            "revision": d.revision,
            "functions": functions_json(&d.functions),
            "approved": d.approved,
            "required": d.required,
            "evidence": evidence_json(d.evidence.as_ref()),
        })).collect::<Vec<_>>(),
        "stakeholders": view.stakeholders.iter().map(|s| json!({
            "principal": s.principal,
            "function": s.function,
            "role": role_name(s.role()),
        })).collect::<Vec<_>>(),
        "agreed": view.agreed.iter().map(|a| json!({
            "decision_id": a.decision_id,
            "title": a.title,
            "revision": a.revision,
            "accepted_by": a.accepted_by,
            "accepted_at": time_json(a.accepted_at.as_ref()),
            "overridden": a.overridden,
            "functions": a.functions.iter().map(|f| json!({
                "function": f.function,
                "state": function_state_name(f.state()),
                "sign_offs": f.sign_offs.iter().map(|s| json!({
                    "signer": s.signer,
                    "verdict": verdict_name(s.verdict()),
                    "revision": s.revision,
                    "signed_at": time_json(s.signed_at.as_ref()),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "last_activity": time_json(view.last_activity.as_ref()),
        "version": view.version,
    })
}

fn content_json(content: Option<&pb::DecisionContent>) -> Value {
    let content = content.cloned().unwrap_or_default();
    json!({
        "title": content.title,
        "context": content.context,
        "options": content.options,
        "proposal": content.proposal,
        "rationale": content.rationale,
    })
}

pub fn sign_off_json(s: &pb::SignOff, stale: bool) -> Value {
    json!({
        "signer": s.signer,
        "function": s.function,
        "verdict": verdict_name(s.verdict()),
        "revision": s.revision,
        "reason": non_empty(&s.reason),
        "comment": non_empty(&s.comment),
        "signed_at": time_json(s.signed_at.as_ref()),
        "counts": s.counts,
        "stale": stale,
        "replaced": s.replaced,
        "revoked": s.revoked,
        "via_team": non_empty(&s.via_team),
    })
}

/// Whether an approval of `revision` went stale: a material revision came after it.
pub fn is_stale(detail: &pb::DecisionDetail, sign_off: &pb::SignOff) -> bool {
    sign_off.verdict() == pb::Verdict::Approve
        && detail.revisions.iter().any(|r| r.number > sign_off.revision && r.kind() == pb::RevisionKind::Material)
}

pub fn decision_json(detail: &pb::DecisionDetail) -> Value {
    json!({
        "initiative_id": detail.initiative_id,
        "initiative_key": detail.initiative_key,
        "decision_id": detail.decision_id,
        "status": decision_status_name(detail.status()),
        "alignment": decision_alignment_name(detail.alignment()),
        "revision": detail.revision,
        "content": content_json(detail.content.as_ref()),
        "required_functions": detail.required_functions,
        "functions": functions_json(&detail.functions),
        "revisions": detail.revisions.iter().map(|r| json!({
            "number": r.number,
            "kind": revision_kind_name(r.kind()),
            "content": content_json(r.content.as_ref()),
            "required_functions": r.required_functions,
            "revised_by": r.revised_by,
            "note": non_empty(&r.note),
            "revised_at": time_json(r.revised_at.as_ref()),
        })).collect::<Vec<_>>(),
        "sign_offs": detail.sign_offs.iter().map(|s| sign_off_json(s, !s.counts && is_stale(detail, s))).collect::<Vec<_>>(),
        "sign_off_history": detail.sign_off_history.iter().map(|s| sign_off_json(s, is_stale(detail, s))).collect::<Vec<_>>(),
        "feedback": detail.feedback.iter().map(feedback_json).collect::<Vec<_>>(),
        "outstanding": detail.outstanding.iter().map(outstanding_json).collect::<Vec<_>>(),
        "proposed_by": detail.proposed_by,
        "proposed_at": time_json(detail.proposed_at.as_ref()),
        "supersedes": non_empty(&detail.supersedes),
        "superseded_by": non_empty(&detail.superseded_by),
        "override": detail.r#override.as_ref().map(override_json),
        "closed_by": non_empty(&detail.closed_by),
        "close_reason": non_empty(&detail.close_reason),
        "closed_at": time_json(detail.closed_at.as_ref()),
        "evidence": evidence_json(detail.evidence.as_ref()),
    })
}

pub fn inbox_item_json(item: &pb::InboxItem) -> Value {
    json!({
        "initiative_id": item.initiative_id,
        "initiative_key": item.initiative_key,
        "initiative_title": item.initiative_title,
        "decision_id": item.decision_id,
        "decision_title": item.decision_title,
        "revision": item.revision,
        "function": item.function,
        "state": function_state_name(item.state()),
        "reason": item.reason,
        "via_team": non_empty(&item.via_team),
    })
}

pub fn command_json(response: &pb::CommandResponse) -> Value {
    json!({
        "initiative_id": response.initiative_id,
        "stream_version": response.stream_version,
        "global_position": response.global_position,
        "created_id": non_empty(&response.created_id),
        "replayed": response.replayed,
    })
}
