//! Parsing of every `CommandService` request into its domain `Command` and target
//! initiative: the whole of the edge's input validation for commands, as pure functions
//! (no store, no caller) so that the fuzz target (`fuzz/`) exercises exactly what the
//! service runs. Every failure names the field that is wrong.

use super::convert::{self as c, optional_id};
use crate::domain::{Command, DomainError, values::*};
use crate::proto as pb;

/// A parsed command request: the initiative it targets (`None` for a creation) and the command.
pub type Parsed = Result<(Option<InitiativeRef>, Command), DomainError>;

fn target(value: &str) -> Result<Option<InitiativeRef>, DomainError> {
    InitiativeRef::parse("initiative", value).map(Some)
}

fn optional_text(
    field: &str,
    value: Option<&String>,
    parse: impl Fn(&str, &str) -> Result<String, DomainError>,
) -> Result<Option<String>, DomainError> {
    value.map(|v| parse(field, v)).transpose()
}

/// `CreateInitiative`.
pub fn create_initiative(r: &pb::CreateInitiativeRequest) -> Parsed {
    Ok((
        None,
        Command::CreateInitiative {
            id: InitiativeId::new_v7(),
            key: InitiativeKey::parse("key", &r.key)?,
            title: c::title("title", &r.title)?,
            summary: c::text("summary", &r.summary, false)?,
            owner: optional_id("owner", &r.owner, Principal::parse)?,
            stage: c::stage("stage", r.stage, false)?,
            required_functions: Function::parse_set("required_functions", &r.required_functions)?,
        },
    ))
}

/// `UpdateInitiative`.
pub fn update_initiative(r: &pb::UpdateInitiativeRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::UpdateInitiative {
            title: optional_text("title", r.title.as_ref(), c::title)?,
            summary: optional_text("summary", r.summary.as_ref(), |f, v| c::text(f, v, false))?,
            owner: r.owner.as_deref().map(|o| Principal::parse("owner", o)).transpose()?,
            required_functions: Function::parse_set("required_functions", &r.required_functions)?,
        },
    ))
}

/// `ChangeStage`.
pub fn change_stage(r: &pb::ChangeStageRequest) -> Parsed {
    let stage = c::stage("stage", r.stage, true)?.ok_or_else(|| DomainError::invalid("stage", "is required"))?;
    Ok((target(&r.initiative)?, Command::ChangeStage { stage }))
}

/// `ArchiveInitiative`.
pub fn archive_initiative(r: &pb::ArchiveInitiativeRequest) -> Parsed {
    Ok((target(&r.initiative)?, Command::ArchiveInitiative { reason: c::reason("reason", &r.reason, false)? }))
}

/// `AssignStakeholder`.
pub fn assign_stakeholder(r: &pb::AssignStakeholderRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::AssignStakeholder {
            principal: Principal::parse("principal", &r.principal)?,
            function: Function::parse("function", &r.function)?,
            role: c::role("role", r.role)?,
        },
    ))
}

/// `RemoveStakeholder`.
pub fn remove_stakeholder(r: &pb::RemoveStakeholderRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::RemoveStakeholder {
            principal: Principal::parse("principal", &r.principal)?,
            function: Function::parse("function", &r.function)?,
            role: c::role("role", r.role)?,
        },
    ))
}

/// `ProposeDecision`.
pub fn propose_decision(r: &pb::ProposeDecisionRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::ProposeDecision {
            decision_id: DecisionId::new_v7(),
            content: c::decision_content("content", r.content.as_ref())?,
            required_functions: Function::parse_set("required_functions", &r.required_functions)?,
            supersedes: optional_id("supersedes", &r.supersedes, DecisionId::parse)?,
        },
    ))
}

/// `ReviseDecision`.
pub fn revise_decision(r: &pb::ReviseDecisionRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::ReviseDecision {
            decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
            kind: c::revision_kind("kind", r.kind)?,
            content: c::decision_content("content", r.content.as_ref())?,
            required_functions: Function::parse_set("required_functions", &r.required_functions)?,
            note: c::reason("note", &r.note, false)?,
        },
    ))
}

/// `AcceptDecision`.
pub fn accept_decision(r: &pb::AcceptDecisionRequest) -> Parsed {
    let reason = c::reason("override_reason", &r.override_reason, false)?;
    Ok((
        target(&r.initiative)?,
        Command::AcceptDecision {
            decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
            override_reason: Some(reason).filter(|r| !r.trim().is_empty()),
        },
    ))
}

/// `RejectDecision`.
pub fn reject_decision(r: &pb::RejectDecisionRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::RejectDecision {
            decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
            reason: c::reason("reason", &r.reason, true)?,
        },
    ))
}

/// `WithdrawDecision`.
pub fn withdraw_decision(r: &pb::WithdrawDecisionRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::WithdrawDecision {
            decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
            reason: c::reason("reason", &r.reason, false)?,
        },
    ))
}

/// `SupersedeDecision`.
pub fn supersede_decision(r: &pb::SupersedeDecisionRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::SupersedeDecision {
            decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
            superseded_by: DecisionId::parse("superseded_by", &r.superseded_by)?,
        },
    ))
}

/// `RecordFeedback`.
pub fn record_feedback(r: &pb::RecordFeedbackRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::RecordFeedback {
            feedback_id: FeedbackId::new_v7(),
            decision_id: optional_id("decision_id", &r.decision_id, DecisionId::parse)?,
            function: Function::parse("function", &r.function)?,
            kind: c::feedback_kind("kind", r.kind)?,
            source: c::feedback_source("source", r.source)?,
            body: c::text("body", &r.body, true)?,
        },
    ))
}

/// `ResolveFeedback`.
pub fn resolve_feedback(r: &pb::ResolveFeedbackRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::ResolveFeedback {
            feedback_id: FeedbackId::parse("feedback_id", &r.feedback_id)?,
            resolution: c::reason("resolution", &r.resolution, true)?,
        },
    ))
}

/// `ReopenFeedback`.
pub fn reopen_feedback(r: &pb::ReopenFeedbackRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::ReopenFeedback {
            feedback_id: FeedbackId::parse("feedback_id", &r.feedback_id)?,
            reason: c::reason("reason", &r.reason, false)?,
        },
    ))
}

/// `RecordSignOff`.
pub fn record_sign_off(r: &pb::RecordSignOffRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::RecordSignOff {
            decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
            function: Function::parse("function", &r.function)?,
            verdict: c::verdict("verdict", r.verdict)?,
            reason: c::reason("reason", &r.reason, false)?,
            comment: c::reason("comment", &r.comment, false)?,
            revision: r.revision,
        },
    ))
}

/// `RevokeSignOff`.
pub fn revoke_sign_off(r: &pb::RevokeSignOffRequest) -> Parsed {
    Ok((
        target(&r.initiative)?,
        Command::RevokeSignOff {
            decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
            function: Function::parse("function", &r.function)?,
        },
    ))
}
