//! Conversion between the wire (proto) and the domain. Parsing is the only way into the
//! domain: every request field goes through a `values` parser that names the field on
//! failure. Views go out through the `From`-style functions at the bottom.

use chrono::{DateTime, Utc};

use crate::domain::{
    DomainError,
    alignment::{self as al, AlignmentView, DecisionAlignment, FunctionState, InitiativeStatus, evaluate_decision},
    event, explain,
    state::{self, DecisionStatus, Initiative},
    values::{self as v, *},
};
use crate::proto as pb;

// ---- requests → domain ------------------------------------------------------------

/// A proto enum field: unknown numbers and (when `required`) UNSPECIFIED are refused.
fn proto_enum<P: TryFrom<i32>, D>(
    field: &str,
    raw: i32,
    required: bool,
    map: impl FnOnce(P) -> Option<D>,
) -> Result<Option<D>, DomainError> {
    let value = P::try_from(raw).map_err(|_| DomainError::invalid(field, format!("unknown value {raw}")))?;
    match map(value) {
        Some(domain) => Ok(Some(domain)),
        None if required => Err(DomainError::invalid(field, "is required")),
        None => Ok(None),
    }
}

pub fn stage(field: &str, raw: i32, required: bool) -> Result<Option<Stage>, DomainError> {
    proto_enum(field, raw, required, |s: pb::Stage| match s {
        pb::Stage::Unspecified => None,
        pb::Stage::Discovery => Some(Stage::Discovery),
        pb::Stage::Definition => Some(Stage::Definition),
        pb::Stage::Delivery => Some(Stage::Delivery),
        pb::Stage::Launched => Some(Stage::Launched),
        pb::Stage::Scaling => Some(Stage::Scaling),
        pb::Stage::Sunset => Some(Stage::Sunset),
    })
}

pub fn role(field: &str, raw: i32) -> Result<Role, DomainError> {
    proto_enum(field, raw, true, |r: pb::Role| match r {
        pb::Role::Unspecified => None,
        pb::Role::Driver => Some(Role::Driver),
        pb::Role::Approver => Some(Role::Approver),
        pb::Role::Contributor => Some(Role::Contributor),
        pb::Role::Informed => Some(Role::Informed),
    })
    .and_then(|r| r.ok_or_else(|| DomainError::invalid(field, "is required")))
}

pub fn revision_kind(field: &str, raw: i32) -> Result<RevisionKind, DomainError> {
    // Not `required` here: the `and_then` below says which values are allowed.
    proto_enum(field, raw, false, |k: pb::RevisionKind| match k {
        pb::RevisionKind::Unspecified => None,
        pb::RevisionKind::Material => Some(RevisionKind::Material),
        pb::RevisionKind::Editorial => Some(RevisionKind::Editorial),
    })
    .and_then(|k| k.ok_or_else(|| DomainError::invalid(field, "is required (material or editorial)")))
}

pub fn feedback_kind(field: &str, raw: i32) -> Result<FeedbackKind, DomainError> {
    proto_enum(field, raw, true, |k: pb::FeedbackKind| match k {
        pb::FeedbackKind::Unspecified => None,
        pb::FeedbackKind::Comment => Some(FeedbackKind::Comment),
        pb::FeedbackKind::Question => Some(FeedbackKind::Question),
        pb::FeedbackKind::Concern => Some(FeedbackKind::Concern),
        pb::FeedbackKind::Objection => Some(FeedbackKind::Objection),
    })
    .and_then(|k| k.ok_or_else(|| DomainError::invalid(field, "is required")))
}

/// The source defaults to `internal` when not given.
pub fn feedback_source(field: &str, raw: i32) -> Result<FeedbackSource, DomainError> {
    proto_enum(field, raw, false, |s: pb::FeedbackSource| match s {
        pb::FeedbackSource::Unspecified => None,
        pb::FeedbackSource::Internal => Some(FeedbackSource::Internal),
        pb::FeedbackSource::UserResearch => Some(FeedbackSource::UserResearch),
        pb::FeedbackSource::Customer => Some(FeedbackSource::Customer),
    })
    .map(|s| s.unwrap_or(FeedbackSource::Internal))
}

pub fn verdict(field: &str, raw: i32) -> Result<Verdict, DomainError> {
    // Not `required` here: the `and_then` below says which values are allowed.
    proto_enum(field, raw, false, |s: pb::Verdict| match s {
        pb::Verdict::Unspecified => None,
        pb::Verdict::Approve => Some(Verdict::Approve),
        pb::Verdict::Reject => Some(Verdict::Reject),
    })
    .and_then(|k| k.ok_or_else(|| DomainError::invalid(field, "is required (approve or reject)")))
}

pub fn initiative_status(field: &str, raw: i32) -> Result<Option<InitiativeStatus>, DomainError> {
    proto_enum(field, raw, false, |s: pb::InitiativeStatus| match s {
        pb::InitiativeStatus::Unspecified => None,
        pb::InitiativeStatus::NoDecisions => Some(InitiativeStatus::NoDecisions),
        pb::InitiativeStatus::Pending => Some(InitiativeStatus::Pending),
        pb::InitiativeStatus::Blocked => Some(InitiativeStatus::Blocked),
        pb::InitiativeStatus::Aligned => Some(InitiativeStatus::Aligned),
    })
}

pub fn title(field: &str, value: &str) -> Result<String, DomainError> {
    v::parse_text(field, value, MAX_TITLE, true)
}

pub fn text(field: &str, value: &str, required: bool) -> Result<String, DomainError> {
    v::parse_text(field, value, MAX_TEXT, required)
}

pub fn reason(field: &str, value: &str, required: bool) -> Result<String, DomainError> {
    v::parse_text(field, value, MAX_REASON, required)
}

pub fn optional_id<T>(
    field: &str,
    value: &str,
    parse: fn(&str, &str) -> Result<T, DomainError>,
) -> Result<Option<T>, DomainError> {
    if value.is_empty() { Ok(None) } else { parse(field, value).map(Some) }
}

pub fn decision_content(
    field: &str,
    content: Option<&pb::DecisionContent>,
) -> Result<event::DecisionContent, DomainError> {
    let Some(content) = content else {
        return Err(DomainError::invalid(field, "is required"));
    };
    if content.options.len() > MAX_OPTIONS {
        return Err(DomainError::invalid(
            &format!("{field}.options"),
            format!("lists {} options; at most {MAX_OPTIONS} are allowed", content.options.len()),
        ));
    }
    let options = content
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| v::parse_text(&format!("{field}.options[{i}]"), o, MAX_TITLE * 5, true))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(event::DecisionContent {
        title: title(&format!("{field}.title"), &content.title)?,
        context: text(&format!("{field}.context"), &content.context, false)?,
        options,
        proposal: text(&format!("{field}.proposal"), &content.proposal, true)?,
        rationale: text(&format!("{field}.rationale"), &content.rationale, false)?,
    })
}

// ---- domain → views ---------------------------------------------------------------

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0) }
}

fn stage_pb(stage: Stage) -> pb::Stage {
    match stage {
        Stage::Discovery => pb::Stage::Discovery,
        Stage::Definition => pb::Stage::Definition,
        Stage::Delivery => pb::Stage::Delivery,
        Stage::Launched => pb::Stage::Launched,
        Stage::Scaling => pb::Stage::Scaling,
        Stage::Sunset => pb::Stage::Sunset,
    }
}

fn role_pb(role: Role) -> pb::Role {
    match role {
        Role::Driver => pb::Role::Driver,
        Role::Approver => pb::Role::Approver,
        Role::Contributor => pb::Role::Contributor,
        Role::Informed => pb::Role::Informed,
    }
}

pub fn function_state_pb(state: FunctionState) -> pb::FunctionState {
    match state {
        FunctionState::NotApplicable => pb::FunctionState::NotApplicable,
        FunctionState::Approved => pb::FunctionState::Approved,
        FunctionState::Pending => pb::FunctionState::Pending,
        FunctionState::Blocked => pb::FunctionState::Blocked,
        FunctionState::Rejected => pb::FunctionState::Rejected,
    }
}

fn decision_alignment_pb(alignment: DecisionAlignment) -> pb::DecisionAlignment {
    match alignment {
        DecisionAlignment::Aligned => pb::DecisionAlignment::Aligned,
        DecisionAlignment::Pending => pb::DecisionAlignment::Pending,
        DecisionAlignment::Blocked => pb::DecisionAlignment::Blocked,
        DecisionAlignment::Closed => pb::DecisionAlignment::Closed,
    }
}

fn initiative_status_pb(status: InitiativeStatus) -> pb::InitiativeStatus {
    match status {
        InitiativeStatus::NoDecisions => pb::InitiativeStatus::NoDecisions,
        InitiativeStatus::Pending => pb::InitiativeStatus::Pending,
        InitiativeStatus::Blocked => pb::InitiativeStatus::Blocked,
        InitiativeStatus::Aligned => pb::InitiativeStatus::Aligned,
    }
}

fn decision_status_pb(status: DecisionStatus) -> pb::DecisionStatus {
    match status {
        DecisionStatus::Proposed => pb::DecisionStatus::Proposed,
        DecisionStatus::Accepted => pb::DecisionStatus::Accepted,
        DecisionStatus::Rejected => pb::DecisionStatus::Rejected,
        DecisionStatus::Withdrawn => pb::DecisionStatus::Withdrawn,
        DecisionStatus::Superseded => pb::DecisionStatus::Superseded,
    }
}

fn feedback_kind_pb(kind: FeedbackKind) -> pb::FeedbackKind {
    match kind {
        FeedbackKind::Comment => pb::FeedbackKind::Comment,
        FeedbackKind::Question => pb::FeedbackKind::Question,
        FeedbackKind::Concern => pb::FeedbackKind::Concern,
        FeedbackKind::Objection => pb::FeedbackKind::Objection,
    }
}

fn feedback_source_pb(source: FeedbackSource) -> pb::FeedbackSource {
    match source {
        FeedbackSource::Internal => pb::FeedbackSource::Internal,
        FeedbackSource::UserResearch => pb::FeedbackSource::UserResearch,
        FeedbackSource::Customer => pb::FeedbackSource::Customer,
    }
}

fn verdict_pb(verdict: Verdict) -> pb::Verdict {
    match verdict {
        Verdict::Approve => pb::Verdict::Approve,
        Verdict::Reject => pb::Verdict::Reject,
    }
}

fn revision_kind_pb(kind: RevisionKind) -> pb::RevisionKind {
    match kind {
        RevisionKind::Material => pb::RevisionKind::Material,
        RevisionKind::Editorial => pb::RevisionKind::Editorial,
    }
}

fn function_status(function: &Function, state: FunctionState) -> pb::FunctionStatus {
    pb::FunctionStatus { function: function.to_string(), state: function_state_pb(state).into() }
}

fn strings<T: ToString>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

fn evidence(counts: &al::EvidenceCounts) -> pb::EvidenceCounts {
    pb::EvidenceCounts { internal: counts.internal, user_research: counts.user_research, customer: counts.customer }
}

pub fn feedback(item: &state::Feedback) -> pb::FeedbackItem {
    pb::FeedbackItem {
        feedback_id: item.id.to_string(),
        decision_id: item.decision_id.map(|d| d.to_string()).unwrap_or_default(),
        author: item.author.to_string(),
        function: item.function.to_string(),
        kind: feedback_kind_pb(item.kind).into(),
        source: feedback_source_pb(item.source).into(),
        body: item.body.clone(),
        resolved: item.resolution.is_some(),
        resolution: item.resolution.as_ref().map(|r| r.text.clone()).unwrap_or_default(),
        resolved_by: item.resolution.as_ref().map(|r| r.by.to_string()).unwrap_or_default(),
        recorded_at: Some(timestamp(item.recorded_at)),
        resolved_at: item.resolution.as_ref().map(|r| timestamp(r.at)),
    }
}

fn outstanding(item: &al::OutstandingItem) -> pb::OutstandingItem {
    pb::OutstandingItem {
        decision_id: item.decision_id.map(|d| d.to_string()).unwrap_or_default(),
        decision_title: item.decision_title.clone(),
        function: item.function.to_string(),
        state: function_state_pb(item.state).into(),
        can_sign: strings(&item.can_sign),
        reason: item.reason.clone(),
    }
}

fn override_pb(
    decision_id: DecisionId,
    title: &str,
    by: &Principal,
    at: DateTime<Utc>,
    record: &event::OverrideRecord,
) -> pb::Override {
    pb::Override {
        decision_id: decision_id.to_string(),
        decision_title: title.to_owned(),
        accepted_by: by.to_string(),
        reason: record.reason.clone(),
        accepted_at: Some(timestamp(at)),
        unaligned: record.unaligned.iter().map(|(f, s)| function_status(f, *s)).collect(),
    }
}

pub fn alignment(view: &AlignmentView) -> pb::InitiativeAlignment {
    pb::InitiativeAlignment {
        initiative_id: view.initiative_id.to_string(),
        key: view.key.to_string(),
        title: view.title.clone(),
        summary: view.summary.clone(),
        owner: view.owner.to_string(),
        stage: stage_pb(view.stage).into(),
        archived: view.archived,
        required_functions: strings(&view.required_functions),
        status: initiative_status_pb(view.status).into(),
        functions: view.functions.iter().map(|f| function_status(&f.function, f.state)).collect(),
        score: view.score,
        approved_pairs: view.approved_pairs,
        total_pairs: view.total_pairs,
        outstanding: view.outstanding.iter().map(outstanding).collect(),
        stale_sign_offs: view
            .stale_sign_offs
            .iter()
            .map(|s| pb::StaleSignOff {
                decision_id: s.decision_id.to_string(),
                function: s.function.to_string(),
                signer: s.signer.to_string(),
                signed_revision: s.signed_revision,
                stale_since_revision: s.stale_since_revision,
            })
            .collect(),
        open_objections: view.open_objections.iter().map(feedback).collect(),
        open_concerns: view.open_concerns.iter().map(feedback).collect(),
        evidence: Some(evidence(&view.evidence)),
        overrides: view
            .overrides
            .iter()
            .map(|o| override_pb(o.decision_id, &o.decision_title, &o.accepted_by, o.accepted_at, &o.record))
            .collect(),
        decisions: view
            .decisions
            .iter()
            .map(|d| pb::DecisionSummary {
                decision_id: d.decision_id.to_string(),
                title: d.title.clone(),
                status: decision_status_pb(d.status).into(),
                alignment: decision_alignment_pb(d.alignment).into(),
                revision: d.revision,
                functions: d.functions.iter().map(|f| function_status(&f.function, f.state)).collect(),
                approved: d.approved,
                required: d.required,
                evidence: Some(evidence(&d.evidence)),
            })
            .collect(),
        stakeholders: view
            .stakeholders
            .iter()
            .map(|s| pb::Stakeholder {
                principal: s.principal.to_string(),
                function: s.function.to_string(),
                role: role_pb(s.role).into(),
            })
            .collect(),
        last_activity: Some(timestamp(view.last_activity)),
        version: view.version,
        counts: Some(pb::AlignmentCounts {
            outstanding: view.counts.outstanding,
            stale_sign_offs: view.counts.stale_sign_offs,
            open_objections: view.counts.open_objections,
            open_concerns: view.counts.open_concerns,
            overrides: view.counts.overrides,
            decisions: view.counts.decisions,
            open_decisions: view.counts.open_decisions,
            stakeholders: view.counts.stakeholders,
            agreed: view.counts.agreed,
        }),
        agreed: view.agreed.iter().map(agreed_decision).collect(),
    }
}

fn agreed_decision(agreed: &crate::domain::alignment::AgreedDecision) -> pb::AgreedDecision {
    pb::AgreedDecision {
        decision_id: agreed.decision_id.to_string(),
        title: agreed.title.clone(),
        revision: agreed.revision,
        accepted_by: agreed.accepted_by.to_string(),
        accepted_at: Some(timestamp(agreed.accepted_at)),
        overridden: agreed.overridden,
        functions: agreed
            .functions
            .iter()
            .map(|f| pb::AgreedFunction {
                function: f.function.to_string(),
                state: function_state_pb(f.state).into(),
                sign_offs: f
                    .sign_offs
                    .iter()
                    .map(|s| pb::AgreedSignOff {
                        signer: s.signer.to_string(),
                        verdict: verdict_pb(s.verdict).into(),
                        revision: s.revision,
                        signed_at: Some(timestamp(s.at)),
                        via_team: s.via_team.as_ref().map(ToString::to_string).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn content(content: &event::DecisionContent) -> pb::DecisionContent {
    pb::DecisionContent {
        title: content.title.clone(),
        context: content.context.clone(),
        options: content.options.clone(),
        proposal: content.proposal.clone(),
        rationale: content.rationale.clone(),
    }
}

fn sign_off(s: &state::SignOff, counts: bool) -> pb::SignOff {
    pb::SignOff {
        signer: s.signer.to_string(),
        function: s.function.to_string(),
        verdict: verdict_pb(s.verdict).into(),
        revision: s.revision,
        reason: s.reason.clone(),
        comment: s.comment.clone(),
        signed_at: Some(timestamp(s.at)),
        counts,
        replaced: s.replaced,
        revoked: s.revoked,
        via_team: s.via_team.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

/// One decision in full, evaluated against its initiative.
pub fn decision_detail(
    initiative: &Initiative,
    decision: &state::Decision,
    history: &[state::SignOff],
) -> pb::DecisionDetail {
    let eval = evaluate_decision(initiative, decision);
    let thread: Vec<&state::Feedback> =
        initiative.feedback.values().filter(|f| f.decision_id == Some(decision.id)).collect();
    let counts = |s: &state::SignOff| al::sign_off_counts(initiative, decision, s);
    let evidence_counts = al::EvidenceCounts::of(thread.iter().copied());
    let closure = decision.closure.as_ref();
    pb::DecisionDetail {
        initiative_id: initiative.id.to_string(),
        initiative_key: initiative.key.to_string(),
        decision_id: decision.id.to_string(),
        status: decision_status_pb(decision.status).into(),
        alignment: decision_alignment_pb(eval.alignment).into(),
        revision: decision.revision(),
        content: Some(content(&decision.current().content)),
        required_functions: strings(decision.required_functions()),
        functions: eval.functions.iter().map(|f| function_status(&f.function, f.state)).collect(),
        revisions: decision
            .revisions
            .iter()
            .map(|r| pb::Revision {
                number: r.number,
                kind: revision_kind_pb(r.kind).into(),
                content: Some(content(&r.content)),
                required_functions: strings(&r.required_functions),
                revised_by: r.by.to_string(),
                note: r.note.clone(),
                revised_at: Some(timestamp(r.at)),
            })
            .collect(),
        sign_offs: decision.sign_offs.iter().map(|s| sign_off(s, counts(s))).collect(),
        sign_off_history: history.iter().map(|s| sign_off(s, false)).collect(),
        feedback: thread.iter().map(|f| feedback(f)).collect(),
        outstanding: if decision.is_open() {
            eval.functions
                .iter()
                .filter(|f| f.state != FunctionState::Approved)
                .map(|f| pb::OutstandingItem {
                    decision_id: decision.id.to_string(),
                    decision_title: decision.title().to_owned(),
                    function: f.function.to_string(),
                    state: function_state_pb(f.state).into(),
                    can_sign: strings(&f.can_sign),
                    reason: f.reason.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
        proposed_by: decision.proposed_by.to_string(),
        proposed_at: Some(timestamp(decision.proposed_at)),
        supersedes: decision.supersedes.map(|d| d.to_string()).unwrap_or_default(),
        superseded_by: decision.superseded_by.map(|d| d.to_string()).unwrap_or_default(),
        r#override: match (&decision.r#override, closure) {
            (Some(record), Some(c)) => Some(override_pb(decision.id, decision.title(), &c.by, c.at, record)),
            _ => None,
        },
        closed_by: closure.map(|c| c.by.to_string()).unwrap_or_default(),
        close_reason: closure.map(|c| c.reason.clone()).unwrap_or_default(),
        closed_at: closure.map(|c| timestamp(c.at)),
        evidence: Some(evidence(&evidence_counts)),
    }
}

pub fn inbox_item(view: &AlignmentView, item: &al::InboxItem) -> pb::InboxItem {
    pb::InboxItem {
        initiative_id: view.initiative_id.to_string(),
        initiative_key: view.key.to_string(),
        initiative_title: view.title.clone(),
        decision_id: item.decision_id.to_string(),
        decision_title: item.decision_title.clone(),
        revision: item.revision,
        function: item.function.to_string(),
        state: function_state_pb(item.state).into(),
        reason: item.reason.clone(),
        via_team: item.via_team.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

fn event_ref(event: &explain::EventRef) -> pb::EventRef {
    pb::EventRef {
        stream_version: event.version,
        event_type: event.event_type.clone(),
        actor: event.actor.to_string(),
        recorded_at: Some(timestamp(event.at)),
        summary: event.summary.clone(),
    }
}

pub fn explanation(explanation: &explain::Explanation) -> pb::ExplainResponse {
    pb::ExplainResponse {
        initiative_id: explanation.initiative_id.to_string(),
        key: explanation.key.to_string(),
        status: initiative_status_pb(explanation.status).into(),
        version: explanation.version,
        decisions: explanation
            .decisions
            .iter()
            .map(|d| pb::DecisionExplanation {
                decision_id: d.decision_id.to_string(),
                title: d.title.clone(),
                status: decision_status_pb(d.status).into(),
                alignment: decision_alignment_pb(d.alignment).into(),
                revision: d.revision,
                functions: d
                    .functions
                    .iter()
                    .map(|f| pb::FunctionExplanation {
                        function: f.function.to_string(),
                        state: function_state_pb(f.state).into(),
                        reason: f.reason.clone(),
                        events: f.events.iter().map(event_ref).collect(),
                    })
                    .collect(),
                other_objections: d.other_objections.iter().map(event_ref).collect(),
                lifecycle: d.lifecycle.iter().map(event_ref).collect(),
            })
            .collect(),
        initiative_objections: explanation.initiative_objections.iter().map(event_ref).collect(),
    }
}
