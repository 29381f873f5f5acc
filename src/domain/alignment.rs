//! The alignment rules of SPEC section 1 and the projection they produce. Everything
//! here is a pure function of an `Initiative` (itself a fold of the events), so the
//! live projection, a rebuild and an as-of replay can never disagree. `decide` uses
//! the same evaluation to tell whether a decision may be accepted.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::OverrideRecord;
use super::state::{Decision, DecisionStatus, Feedback, Initiative, Member, Stakeholder};
use super::values::*;

/// Ordered from best to worst, so `max` picks the state that wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionState {
    NotApplicable,
    Approved,
    Pending,
    Blocked,
    Rejected,
}

impl FunctionState {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionState::NotApplicable => "not_applicable",
            FunctionState::Approved => "approved",
            FunctionState::Pending => "pending",
            FunctionState::Blocked => "blocked",
            FunctionState::Rejected => "rejected",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAlignment {
    Aligned,
    Pending,
    Blocked,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitiativeStatus {
    NoDecisions,
    Pending,
    Blocked,
    Aligned,
}

impl InitiativeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InitiativeStatus::NoDecisions => "no_decisions",
            InitiativeStatus::Pending => "pending",
            InitiativeStatus::Blocked => "blocked",
            InitiativeStatus::Aligned => "aligned",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::NoDecisions, Self::Pending, Self::Blocked, Self::Aligned].into_iter().find(|s| s.as_str() == name)
    }
}

/// One function's state on one open decision, with the reason in words and the people
/// who can move it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionEval {
    pub function: Function,
    pub state: FunctionState,
    pub reason: String,
    /// Approvers who can sign (pending), the rejecting approvers (rejected), or the
    /// objection authors (blocked).
    pub can_sign: Vec<Principal>,
}

/// The alignment of one decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionEval {
    pub alignment: DecisionAlignment,
    pub functions: Vec<FunctionEval>,
    /// Open objections against the decision, from any function.
    pub objections: Vec<FeedbackId>,
}

impl DecisionEval {
    pub fn approved(&self) -> usize {
        self.functions.iter().filter(|f| f.state == FunctionState::Approved).count()
    }
}

/// Whether a sign-off counts now: its signer is still an approver of the function
/// (themselves, or the team they signed through) and, for an approval, no material
/// revision came after the revision it signed.
pub fn sign_off_counts(initiative: &Initiative, decision: &Decision, sign_off: &super::state::SignOff) -> bool {
    let still_approver = initiative.still_entitled(sign_off);
    match sign_off.verdict {
        Verdict::Reject => still_approver,
        Verdict::Approve => still_approver && sign_off.revision >= decision.material_base,
    }
}

/// " (for team:design-leads)" when a sign-off was given through a team.
fn through(sign_off: &super::state::SignOff) -> String {
    sign_off.via_team.as_ref().map(|team| format!(" (for {team})")).unwrap_or_default()
}

/// Evaluates one function on one decision.
pub fn evaluate_function(initiative: &Initiative, decision: &Decision, function: &Function) -> FunctionEval {
    let verdicts: Vec<_> = decision.sign_offs.iter().filter(|s| &s.function == function).collect();
    let rejections: Vec<_> =
        verdicts.iter().filter(|s| s.verdict == Verdict::Reject && sign_off_counts(initiative, decision, s)).collect();
    if !rejections.is_empty() {
        let reason = rejections
            .iter()
            .map(|s| format!("rejected by {}{}: {}", s.signer, through(s), s.reason))
            .collect::<Vec<_>>()
            .join("; ");
        return FunctionEval {
            function: function.clone(),
            state: FunctionState::Rejected,
            reason,
            can_sign: rejections.iter().map(|s| s.signer.clone()).collect(),
        };
    }
    let objections: Vec<&Feedback> =
        initiative.open_objections(Some(decision.id)).filter(|f| &f.function == function).collect();
    if !objections.is_empty() {
        let reason = objections
            .iter()
            .map(|f| format!("objection by {}: {}", f.author, summarize(&f.body)))
            .collect::<Vec<_>>()
            .join("; ");
        return FunctionEval {
            function: function.clone(),
            state: FunctionState::Blocked,
            reason,
            can_sign: unique(objections.iter().map(|f| f.author.clone())),
        };
    }
    let approvals: Vec<_> =
        verdicts.iter().filter(|s| s.verdict == Verdict::Approve && sign_off_counts(initiative, decision, s)).collect();
    if let Some(approval) = approvals.first() {
        return FunctionEval {
            function: function.clone(),
            state: FunctionState::Approved,
            reason: format!("approved by {}{} at revision {}", approval.signer, through(approval), approval.revision),
            can_sign: Vec::new(),
        };
    }
    let approvers = initiative.approvers(function);
    let stale: Vec<_> = verdicts
        .iter()
        .filter(|s| {
            s.verdict == Verdict::Approve && s.revision < decision.material_base && initiative.still_entitled(s)
        })
        .collect();
    let reason = if approvers.is_empty() {
        format!("no approver assigned for {function}")
    } else if !stale.is_empty() {
        stale
            .iter()
            .map(|s| {
                format!(
                    "approval by {} of revision {} went stale at revision {} (material)",
                    s.signer, s.revision, decision.material_base
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        "waiting for sign-off".to_owned()
    };
    FunctionEval {
        function: function.clone(),
        state: FunctionState::Pending,
        reason,
        can_sign: approvers.into_iter().cloned().collect(),
    }
}

/// Evaluates a decision: every function it needs, and the objections against it.
pub fn evaluate_decision(initiative: &Initiative, decision: &Decision) -> DecisionEval {
    let functions: Vec<FunctionEval> =
        decision.required_functions().iter().map(|f| evaluate_function(initiative, decision, f)).collect();
    let objections: Vec<FeedbackId> = initiative.open_objections(Some(decision.id)).map(|f| f.id).collect();
    let alignment = if !decision.is_open() {
        DecisionAlignment::Closed
    } else if !objections.is_empty() || functions.iter().any(|f| f.state >= FunctionState::Blocked) {
        DecisionAlignment::Blocked
    } else if functions.iter().all(|f| f.state == FunctionState::Approved) {
        DecisionAlignment::Aligned
    } else {
        DecisionAlignment::Pending
    };
    DecisionEval { alignment, functions, objections }
}

/// A sign-off that counted when a decision was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreedSignOff {
    pub signer: Principal,
    pub verdict: Verdict,
    /// The revision it was given on.
    pub revision: u32,
    pub at: DateTime<Utc>,
    /// The team the signer signed for (none: themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_team: Option<Principal>,
}

/// One function a decision needed, as it stood the moment the decision was accepted:
/// approved (with every approval that counted), or — for a decision accepted with an
/// override — the state it was accepted over (with the rejections that counted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreedFunction {
    pub function: Function,
    pub state: FunctionState,
    pub sign_offs: Vec<AgreedSignOff>,
}

/// What an acceptance agreed, function by function, evaluated on the state just before
/// it. The fold records it on the decision (`Decision::agreement`), so a later change of
/// decision rights never rewrites who agreed.
pub fn agreement(initiative: &Initiative, decision: &Decision) -> Vec<AgreedFunction> {
    decision
        .required_functions()
        .iter()
        .map(|function| {
            let eval = evaluate_function(initiative, decision, function);
            let verdict = if eval.state == FunctionState::Rejected { Verdict::Reject } else { Verdict::Approve };
            let sign_offs = decision
                .sign_offs
                .iter()
                .filter(|s| &s.function == function && s.verdict == verdict)
                .filter(|s| sign_off_counts(initiative, decision, s))
                .map(|s| AgreedSignOff {
                    signer: s.signer.clone(),
                    verdict: s.verdict,
                    revision: s.revision,
                    at: s.at,
                    via_team: s.via_team.clone(),
                })
                .collect();
            AgreedFunction { function: function.clone(), state: eval.state, sign_offs }
        })
        .collect()
}

fn summarize(text: &str) -> String {
    const LIMIT: usize = 120;
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > LIMIT || line.len() < text.len() {
        format!("{}…", line.chars().take(LIMIT).collect::<String>())
    } else {
        line.to_owned()
    }
}

fn unique(principals: impl Iterator<Item = Principal>) -> Vec<Principal> {
    principals.collect::<BTreeSet<_>>().into_iter().collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionStatus {
    pub function: Function,
    pub state: FunctionState,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutstandingItem {
    /// `None` for an initiative-level objection.
    pub decision_id: Option<DecisionId>,
    pub decision_title: String,
    pub revision: u32,
    pub function: Function,
    pub state: FunctionState,
    pub can_sign: Vec<Principal>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StaleSignOff {
    pub decision_id: DecisionId,
    pub function: Function,
    pub signer: Principal,
    pub signed_revision: u32,
    pub stale_since_revision: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceCounts {
    pub internal: u32,
    pub user_research: u32,
    pub customer: u32,
}

impl EvidenceCounts {
    pub fn of<'a>(feedback: impl Iterator<Item = &'a Feedback>) -> Self {
        let mut counts = Self::default();
        for item in feedback {
            match item.source {
                FeedbackSource::Internal => counts.internal += 1,
                FeedbackSource::UserResearch => counts.user_research += 1,
                FeedbackSource::Customer => counts.customer += 1,
            }
        }
        counts
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideView {
    pub decision_id: DecisionId,
    pub decision_title: String,
    pub accepted_by: Principal,
    pub accepted_at: DateTime<Utc>,
    pub record: OverrideRecord,
}

/// An accepted decision in force (not superseded) and what was agreed: the revision
/// accepted, who accepted it, and each function's sign-offs at that moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgreedDecision {
    pub decision_id: DecisionId,
    pub title: String,
    pub revision: u32,
    pub accepted_by: Principal,
    pub accepted_at: DateTime<Utc>,
    /// Accepted with an override (the functions not approved show what it overrode).
    pub overridden: bool,
    pub functions: Vec<AgreedFunction>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionSummary {
    pub decision_id: DecisionId,
    pub title: String,
    pub status: DecisionStatus,
    pub alignment: DecisionAlignment,
    pub revision: u32,
    pub functions: Vec<FunctionStatus>,
    pub approved: u32,
    pub required: u32,
    pub evidence: EvidenceCounts,
}

/// How much one alignment view carries, so that a view — which every watcher, board and
/// list page is sent, and which the live feed keeps for watchers that are behind — is
/// bounded in bytes however long an initiative lives and however much anyone writes on
/// it. Counts stay exact (`ViewCounts`); each list carries its most recent items; texts
/// written by people are cut to a preview. The full lists come from `GetDecision` (a
/// decision's revisions, sign-offs and feedback thread) and `ListFeedback`.
pub mod bounds {
    /// Most open objections, open concerns, stale sign-offs, overrides and agreed
    /// decisions a view lists.
    pub const ITEMS: usize = 20;
    /// Most decisions a view lists (open ones first).
    pub const DECISIONS: usize = 50;
    /// Most outstanding items a view lists.
    pub const OUTSTANDING: usize = 50;
    /// Most stakeholders a view lists.
    pub const STAKEHOLDERS: usize = 100;
    /// Most people (or feedback ids) one item names: who can sign, an override's
    /// objections, an agreed function's sign-offs.
    pub const NAMES: usize = 10;
    /// Characters of a feedback body, resolution, reason or override reason a view quotes.
    /// (The initiative's own title and summary are single fields with their own limits,
    /// and are kept whole.)
    pub const PREVIEW_CHARS: usize = 280;
}

/// The exact sizes of the lists a view carries only the most recent items of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewCounts {
    pub outstanding: u32,
    pub stale_sign_offs: u32,
    pub open_objections: u32,
    pub open_concerns: u32,
    pub overrides: u32,
    pub decisions: u32,
    pub open_decisions: u32,
    pub stakeholders: u32,
    /// Accepted decisions in force.
    #[serde(default)]
    pub agreed: u32,
}

/// The alignment projection of one initiative: what dashboards read. Bounded in size:
/// see [`bounds`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlignmentView {
    pub initiative_id: InitiativeId,
    pub key: InitiativeKey,
    pub title: String,
    pub summary: String,
    pub owner: Principal,
    pub stage: Stage,
    pub archived: bool,
    pub required_functions: Vec<Function>,
    pub status: InitiativeStatus,
    pub functions: Vec<FunctionStatus>,
    pub score: f64,
    pub approved_pairs: u32,
    pub total_pairs: u32,
    pub outstanding: Vec<OutstandingItem>,
    pub stale_sign_offs: Vec<StaleSignOff>,
    pub open_objections: Vec<Feedback>,
    pub open_concerns: Vec<Feedback>,
    pub evidence: EvidenceCounts,
    pub overrides: Vec<OverrideView>,
    pub decisions: Vec<DecisionSummary>,
    pub stakeholders: Vec<Stakeholder>,
    pub last_activity: DateTime<Utc>,
    pub version: u64,
    /// The exact sizes of the lists above.
    #[serde(default)]
    pub counts: ViewCounts,
    /// Functions outstanding (not approved) on some open decision, all of them: what the
    /// `pending_function` filters match.
    #[serde(default)]
    pub pending_functions: Vec<String>,
    /// Accepted decisions in force, oldest acceptance first, with what each agreed (the
    /// function states above count open decisions only).
    #[serde(default)]
    pub agreed: Vec<AgreedDecision>,
}

impl AlignmentView {
    /// Functions outstanding (not approved) on some open decision: the list filter.
    pub fn outstanding_functions(&self) -> Vec<String> {
        self.pending_functions.clone()
    }

    /// Whether `outstanding` lists every item with everyone who can sign it, so that an
    /// inbox can be read from the view alone.
    pub fn outstanding_is_complete(&self) -> bool {
        self.outstanding.len() == self.counts.outstanding as usize
            && self.outstanding.iter().all(|item| item.can_sign.len() < bounds::NAMES)
    }
}

/// Everyone with a sign-off waiting on them among `outstanding` (before the view is
/// bounded): the inbox index (see `AlignmentView::inbox`).
fn awaiting(archived: bool, outstanding: &[OutstandingItem]) -> Vec<String> {
    if archived {
        return Vec::new();
    }
    unique_strings(
        outstanding
            .iter()
            .filter(|o| o.decision_id.is_some() && o.state == FunctionState::Pending)
            .flat_map(|o| o.can_sign.iter().map(|p| p.to_string())),
    )
}

impl AlignmentView {
    /// The sign-offs waiting on `principal`: functions they approve for that are still
    /// pending on an open decision. A function already approved, rejected, or blocked by
    /// an objection is not waiting on another signature; an archived initiative waits on
    /// nobody.
    pub fn inbox(&self, principal: &Principal) -> Vec<InboxItem> {
        self.inbox_of(Member::alone(principal))
    }

    /// The sign-offs waiting on a member: those they can give themselves, then those
    /// one of their teams can give (each item once, naming the team).
    pub fn inbox_of(&self, member: Member<'_>) -> Vec<InboxItem> {
        if self.archived {
            return Vec::new();
        }
        self.outstanding
            .iter()
            .filter(|o| o.state == FunctionState::Pending)
            .filter_map(|o| {
                let via_team = if o.can_sign.contains(member.person) {
                    None
                } else {
                    Some(member.teams.iter().find(|team| o.can_sign.contains(team))?.clone())
                };
                Some(InboxItem {
                    decision_id: o.decision_id?,
                    decision_title: o.decision_title.clone(),
                    revision: o.revision,
                    function: o.function.clone(),
                    state: o.state,
                    reason: o.reason.clone(),
                    via_team,
                })
            })
            .collect()
    }
}

fn unique_strings(values: impl Iterator<Item = String>) -> Vec<String> {
    values.collect::<BTreeSet<_>>().into_iter().collect()
}

/// The version of the projection below: raise it whenever a change to this module gives
/// some initiative another view (a new field, another rule). Stored views carry the
/// version that wrote them; one of another version is not served but folded anew.
pub const PROJECTION_VERSION: i32 = 2;

/// The alignment projection of an initiative.
pub fn project(initiative: &Initiative) -> AlignmentView {
    project_indexed(initiative).0
}

/// The alignment projection of an initiative and everyone a sign-off waits on (the inbox
/// index, exact however many the view lists).
pub fn project_indexed(initiative: &Initiative) -> (AlignmentView, Vec<String>) {
    let mut view = project_in_full(initiative);
    let awaiting = awaiting(view.archived, &view.outstanding);
    bound(&mut view);
    (view, awaiting)
}

/// The projection with every list complete and every text whole: what the inbox reads,
/// before the view is bounded for storing and sending.
fn project_in_full(initiative: &Initiative) -> AlignmentView {
    let mut outstanding = Vec::new();
    let mut stale_sign_offs = Vec::new();
    let mut decisions = Vec::new();
    let mut overrides = Vec::new();
    let mut agreed = Vec::new();
    let mut approved_pairs = 0u32;
    let mut total_pairs = 0u32;
    let mut open_count = 0usize;
    let mut accepted_count = 0usize;
    let mut any_blocked = false;
    let mut any_pending = false;
    // Worst state per function across open decisions.
    let mut function_states: std::collections::BTreeMap<Function, FunctionState> =
        initiative.required_functions.iter().map(|f| (f.clone(), FunctionState::NotApplicable)).collect();

    for decision in initiative.decisions.values() {
        let eval = evaluate_decision(initiative, decision);
        let evidence = EvidenceCounts::of(initiative.feedback.values().filter(|f| f.decision_id == Some(decision.id)));
        decisions.push(DecisionSummary {
            decision_id: decision.id,
            title: decision.title().to_owned(),
            status: decision.status,
            alignment: eval.alignment,
            revision: decision.revision(),
            functions: eval
                .functions
                .iter()
                .map(|f| FunctionStatus { function: f.function.clone(), state: f.state })
                .collect(),
            approved: eval.approved() as u32,
            required: eval.functions.len() as u32,
            evidence,
        });
        if decision.status == DecisionStatus::Accepted || decision.status == DecisionStatus::Superseded {
            accepted_count += usize::from(decision.status == DecisionStatus::Accepted);
            if let (DecisionStatus::Accepted, Some(closure)) = (decision.status, &decision.closure) {
                agreed.push((
                    closure.version,
                    AgreedDecision {
                        decision_id: decision.id,
                        title: decision.title().to_owned(),
                        revision: decision.revision(),
                        accepted_by: closure.by.clone(),
                        accepted_at: closure.at,
                        overridden: decision.r#override.is_some(),
                        functions: decision.agreement.clone(),
                    },
                ));
            }
            if let (Some(record), Some(closure)) = (&decision.r#override, &decision.closure) {
                overrides.push(OverrideView {
                    decision_id: decision.id,
                    decision_title: decision.title().to_owned(),
                    accepted_by: closure.by.clone(),
                    accepted_at: closure.at,
                    record: record.clone(),
                });
            }
        }
        if !decision.is_open() {
            continue;
        }
        open_count += 1;
        any_blocked |= eval.alignment == DecisionAlignment::Blocked;
        any_pending |= eval.alignment == DecisionAlignment::Pending;
        for function in &eval.functions {
            total_pairs += 1;
            let worst = function_states.entry(function.function.clone()).or_insert(FunctionState::NotApplicable);
            *worst = (*worst).max(function.state);
            if function.state == FunctionState::Approved {
                approved_pairs += 1;
                continue;
            }
            outstanding.push(OutstandingItem {
                decision_id: Some(decision.id),
                decision_title: decision.title().to_owned(),
                revision: decision.revision(),
                function: function.function.clone(),
                state: function.state,
                can_sign: function.can_sign.clone(),
                reason: function.reason.clone(),
            });
        }
        // Objections from functions the decision does not need still block it.
        for objection in initiative.open_objections(Some(decision.id)) {
            if !decision.required_functions().contains(&objection.function) {
                outstanding.push(objection_item(objection, Some(decision)));
            }
        }
        for sign_off in &decision.sign_offs {
            let approver = initiative.still_entitled(sign_off);
            if sign_off.verdict == Verdict::Approve && approver && sign_off.revision < decision.material_base {
                stale_sign_offs.push(StaleSignOff {
                    decision_id: decision.id,
                    function: sign_off.function.clone(),
                    signer: sign_off.signer.clone(),
                    signed_revision: sign_off.revision,
                    stale_since_revision: decision.material_base,
                });
            }
        }
    }

    let initiative_objections: Vec<&Feedback> = initiative.open_objections(None).collect();
    for objection in &initiative_objections {
        outstanding.push(objection_item(objection, None));
        let state = function_states.entry(objection.function.clone()).or_insert(FunctionState::NotApplicable);
        *state = (*state).max(FunctionState::Blocked);
    }

    let status = if any_blocked || !initiative_objections.is_empty() {
        InitiativeStatus::Blocked
    } else if any_pending {
        InitiativeStatus::Pending
    } else if open_count > 0 || accepted_count > 0 {
        InitiativeStatus::Aligned
    } else {
        InitiativeStatus::NoDecisions
    };
    let score = if total_pairs > 0 {
        f64::from(approved_pairs) / f64::from(total_pairs)
    } else if status == InitiativeStatus::Aligned {
        1.0
    } else {
        0.0
    };

    let pending_functions =
        unique_strings(outstanding.iter().filter(|o| o.decision_id.is_some()).map(|o| o.function.to_string()));
    let mut open_objections: Vec<Feedback> = initiative
        .feedback
        .values()
        .filter(|f| f.is_open_objection())
        .filter(|f| f.decision_id.is_none_or(|d| initiative.decisions.get(&d).is_some_and(Decision::is_open)))
        .cloned()
        .collect();
    let mut open_concerns: Vec<Feedback> =
        initiative.feedback.values().filter(|f| f.is_open() && f.kind == FeedbackKind::Concern).cloned().collect();
    for list in [&mut open_objections, &mut open_concerns] {
        // In the order they were recorded (ids need not be in time order).
        list.sort_by_key(|f| (f.version, f.id));
    }
    let stakeholders: Vec<Stakeholder> = initiative.stakeholders.iter().cloned().collect();
    // In the order they were accepted (decision ids need not be).
    agreed.sort_by_key(|(version, agreed)| (*version, agreed.decision_id));
    let agreed: Vec<AgreedDecision> = agreed.into_iter().map(|(_, agreed)| agreed).collect();
    let counts = ViewCounts {
        outstanding: count(&outstanding),
        stale_sign_offs: count(&stale_sign_offs),
        open_objections: count(&open_objections),
        open_concerns: count(&open_concerns),
        overrides: count(&overrides),
        decisions: count(&decisions),
        open_decisions: u32::try_from(open_count).unwrap_or(u32::MAX),
        stakeholders: count(&stakeholders),
        agreed: count(&agreed),
    };
    AlignmentView {
        initiative_id: initiative.id,
        key: initiative.key.clone(),
        title: initiative.title.clone(),
        summary: initiative.summary.clone(),
        owner: initiative.owner.clone(),
        stage: initiative.stage,
        archived: initiative.archived.is_some(),
        required_functions: initiative.required_functions.iter().cloned().collect(),
        status,
        functions: function_states.into_iter().map(|(function, state)| FunctionStatus { function, state }).collect(),
        score,
        approved_pairs,
        total_pairs,
        outstanding,
        stale_sign_offs,
        // Objections that stand: against the initiative or an open decision (one left open
        // on a decision that was accepted by override is history, shown with the override).
        open_objections,
        open_concerns,
        evidence: EvidenceCounts::of(initiative.feedback.values()),
        overrides,
        decisions,
        stakeholders,
        last_activity: initiative.last_activity,
        version: initiative.version,
        counts,
        pending_functions,
        agreed,
    }
}

/// Cuts a complete view to its bounds (see [`bounds`]); the counts stay exact.
fn bound(view: &mut AlignmentView) {
    for item in &mut view.outstanding {
        item.can_sign.truncate(bounds::NAMES);
        item.reason = preview(&item.reason, bounds::PREVIEW_CHARS);
    }
    keep_last(&mut view.outstanding, bounds::OUTSTANDING);
    keep_last(&mut view.stale_sign_offs, bounds::ITEMS);
    for list in [&mut view.open_objections, &mut view.open_concerns] {
        keep_last(list, bounds::ITEMS);
        list.iter_mut().for_each(preview_feedback);
    }
    keep_last(&mut view.overrides, bounds::ITEMS);
    for item in &mut view.overrides {
        item.record.reason = preview(&item.record.reason, bounds::PREVIEW_CHARS);
        item.record.objections.truncate(bounds::NAMES);
    }
    keep_decisions(&mut view.decisions, bounds::DECISIONS);
    view.stakeholders.truncate(bounds::STAKEHOLDERS);
    keep_last(&mut view.agreed, bounds::ITEMS);
    for function in view.agreed.iter_mut().flat_map(|agreed| agreed.functions.iter_mut()) {
        function.sign_offs.truncate(bounds::NAMES);
    }
}

fn count<T>(list: &[T]) -> u32 {
    u32::try_from(list.len()).unwrap_or(u32::MAX)
}

/// Keeps the last `limit` items (the most recent: lists are built in history order).
fn keep_last<T>(list: &mut Vec<T>, limit: usize) {
    let excess = list.len().saturating_sub(limit);
    list.drain(..excess);
}

/// Keeps at most `limit` decisions, the most recent open ones first, then the most recent
/// closed ones, in their original order.
fn keep_decisions(decisions: &mut Vec<DecisionSummary>, limit: usize) {
    if decisions.len() <= limit {
        return;
    }
    let is_open = |d: &DecisionSummary| d.status == DecisionStatus::Proposed;
    let open: Vec<usize> = (0..decisions.len()).filter(|&i| is_open(&decisions[i])).collect();
    let closed: Vec<usize> = (0..decisions.len()).filter(|&i| !is_open(&decisions[i])).collect();
    let open_kept = open.len().min(limit);
    let mut kept: BTreeSet<usize> = open[open.len() - open_kept..].iter().copied().collect();
    let closed_kept = (limit - open_kept).min(closed.len());
    kept.extend(closed[closed.len() - closed_kept..].iter().copied());
    let mut index = 0;
    decisions.retain(|_| {
        let keep = kept.contains(&index);
        index += 1;
        keep
    });
}

fn preview_feedback(feedback: &mut Feedback) {
    feedback.body = preview(&feedback.body, bounds::PREVIEW_CHARS);
    if let Some(resolution) = &mut feedback.resolution {
        resolution.text = preview(&resolution.text, bounds::PREVIEW_CHARS);
    }
}

/// The first `limit` characters of `text`, with "…" when it was longer.
pub fn preview(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn objection_item(objection: &Feedback, decision: Option<&Decision>) -> OutstandingItem {
    OutstandingItem {
        decision_id: decision.map(|d| d.id),
        decision_title: decision.map(|d| d.title().to_owned()).unwrap_or_default(),
        revision: decision.map(|d| d.revision()).unwrap_or_default(),
        function: objection.function.clone(),
        state: FunctionState::Blocked,
        can_sign: vec![objection.author.clone()],
        reason: format!("objection by {}: {}", objection.author, summarize(&objection.body)),
    }
}

/// One item of a stakeholder's inbox: a sign-off waiting on them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxItem {
    pub decision_id: DecisionId,
    pub decision_title: String,
    pub revision: u32,
    pub function: Function,
    pub state: FunctionState,
    pub reason: String,
    /// The team it waits on the person through (none: on them).
    pub via_team: Option<Principal>,
}

/// The sign-offs waiting on `principal` in one initiative (see `AlignmentView::inbox`),
/// all of them, however many the bounded view lists.
pub fn inbox(initiative: &Initiative, principal: &Principal) -> Vec<InboxItem> {
    inbox_of(initiative, Member::alone(principal))
}

/// The sign-offs waiting on a member and their teams in one initiative, all of them.
pub fn inbox_of(initiative: &Initiative, member: Member<'_>) -> Vec<InboxItem> {
    project_in_full(initiative).inbox_of(member)
}
