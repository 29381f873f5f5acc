//! The state of one initiative, folded from its events (`evolve`). It is everything the
//! rules need to decide a command and everything the alignment projection shows; the
//! store keeps a copy of it beside the stream head so a command never re-reads the
//! whole stream.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::event::{DecisionContent, Event, OverrideRecord, Recorded};
use super::values::*;

/// A history that the rules could not have produced (an event for a decision that does
/// not exist, a gap in versions): the log is corrupt, not the caller's input.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("inconsistent history at version {version}: {message}")]
pub struct HistoryError {
    pub version: u64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stakeholder {
    pub principal: Principal,
    pub function: Function,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    pub by: Principal,
    pub at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    Proposed,
    Accepted,
    Rejected,
    Withdrawn,
    Superseded,
}

impl DecisionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionStatus::Proposed => "proposed",
            DecisionStatus::Accepted => "accepted",
            DecisionStatus::Rejected => "rejected",
            DecisionStatus::Withdrawn => "withdrawn",
            DecisionStatus::Superseded => "superseded",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub number: u32,
    pub kind: RevisionKind,
    pub content: DecisionContent,
    pub required_functions: BTreeSet<Function>,
    pub by: Principal,
    pub at: DateTime<Utc>,
    pub note: String,
    /// The stream version of the event that recorded it.
    #[serde(default)]
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOff {
    pub signer: Principal,
    pub function: Function,
    pub verdict: Verdict,
    pub revision: u32,
    pub reason: String,
    pub comment: String,
    pub at: DateTime<Utc>,
    /// The stream version of the event that recorded it.
    #[serde(default)]
    pub version: u64,
    /// Set in the history when a later verdict of the same signer replaced it.
    #[serde(default)]
    pub replaced: bool,
    /// Set in the history when its signer revoked it.
    #[serde(default)]
    pub revoked: bool,
    /// The team through which the signer was an approver when they signed (none: they
    /// were one themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_team: Option<Principal>,
}

/// Who closed a decision (accepted, rejected, withdrew or superseded it), when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub by: Principal,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// The stream version of the event that recorded it.
    #[serde(default)]
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: DecisionId,
    /// Never empty: revision 1 is the proposal.
    pub revisions: Vec<Revision>,
    /// The latest material revision (1 at first): approvals of earlier revisions are stale.
    pub material_base: u32,
    pub status: DecisionStatus,
    pub proposed_by: Principal,
    pub proposed_at: DateTime<Utc>,
    pub supersedes: Option<DecisionId>,
    pub superseded_by: Option<DecisionId>,
    /// The verdicts in force: at most one per signer and function. Earlier verdicts are
    /// not kept here (the state would grow with every vote); `sign_off_history` rebuilds
    /// them from the decision's events when someone asks.
    pub sign_offs: Vec<SignOff>,
    pub closure: Option<Closure>,
    pub r#override: Option<OverrideRecord>,
    /// What its acceptance agreed, function by function (empty unless accepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agreement: Vec<super::alignment::AgreedFunction>,
}

impl Decision {
    pub fn current(&self) -> &Revision {
        // `revisions` is never empty: the fold creates it with revision 1.
        &self.revisions[self.revisions.len() - 1]
    }

    pub fn revision(&self) -> u32 {
        self.current().number
    }

    pub fn title(&self) -> &str {
        &self.current().content.title
    }

    pub fn required_functions(&self) -> &BTreeSet<Function> {
        &self.current().required_functions
    }

    pub fn is_open(&self) -> bool {
        self.status == DecisionStatus::Proposed
    }

    pub fn sign_off_of(&self, signer: &Principal, function: &Function) -> Option<&SignOff> {
        self.sign_offs.iter().find(|s| &s.signer == signer && &s.function == function)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub by: Principal,
    pub at: DateTime<Utc>,
    pub text: String,
    /// The stream version of the event that recorded it.
    #[serde(default)]
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub id: FeedbackId,
    pub decision_id: Option<DecisionId>,
    pub author: Principal,
    pub function: Function,
    pub kind: FeedbackKind,
    pub source: FeedbackSource,
    pub body: String,
    pub recorded_at: DateTime<Utc>,
    pub resolution: Option<Resolution>,
    /// The stream version of the event that recorded it.
    #[serde(default)]
    pub version: u64,
}

impl Feedback {
    pub fn is_open(&self) -> bool {
        self.resolution.is_none()
    }

    pub fn is_open_objection(&self) -> bool {
        self.is_open() && self.kind == FeedbackKind::Objection
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiative {
    pub id: InitiativeId,
    pub key: InitiativeKey,
    pub title: String,
    pub summary: String,
    pub owner: Principal,
    pub stage: Stage,
    pub required_functions: BTreeSet<Function>,
    pub archived: Option<Archived>,
    pub created_by: Principal,
    pub created_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    /// The stream version this state reflects.
    pub version: u64,
    pub stakeholders: BTreeSet<Stakeholder>,
    /// Ordered by id; ids are UUID v7, so this is proposal order.
    pub decisions: BTreeMap<DecisionId, Decision>,
    pub feedback: BTreeMap<FeedbackId, Feedback>,
}

/// A person with the teams they belong to at the moment they act (from their identity
/// provider's group claim): what a role check is asked about. Membership is not in the
/// log; it only decides whether a command may be recorded now.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub person: &'a Principal,
    pub teams: &'a BTreeSet<Principal>,
}

impl<'a> Member<'a> {
    /// Someone whose teams are not known (or who belongs to none).
    pub fn alone(person: &'a Principal) -> Self {
        static NONE: BTreeSet<Principal> = BTreeSet::new();
        Member { person, teams: &NONE }
    }

    /// Whether a stakeholder entry names this person or one of their teams.
    pub fn is(&self, principal: &Principal) -> bool {
        principal == self.person || self.teams.contains(principal)
    }
}

/// How someone holds a role: themselves, or through a team they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entitlement {
    Direct,
    Team(Principal),
}

impl Initiative {
    pub fn has_role(&self, principal: &Principal, function: &Function, role: Role) -> bool {
        self.stakeholders.contains(&Stakeholder { principal: principal.clone(), function: function.clone(), role })
    }

    /// How `member` holds `role` for `function`, if they do: themselves first, else the
    /// first of their teams (in name order) that holds it.
    pub fn entitlement(&self, member: Member<'_>, function: &Function, role: Role) -> Option<Entitlement> {
        if self.has_role(member.person, function, role) {
            return Some(Entitlement::Direct);
        }
        member.teams.iter().find(|team| self.has_role(team, function, role)).map(|team| Entitlement::Team(team.clone()))
    }

    /// Whether a recorded sign-off still counts as its signer's: the role it was given
    /// through (the signer's own, or the team's) is still held. A signer who left the
    /// team keeps their recorded sign-off; removing the team's role retracts it.
    pub fn still_entitled(&self, sign_off: &SignOff) -> bool {
        let through = sign_off.via_team.as_ref().unwrap_or(&sign_off.signer);
        self.has_role(through, &sign_off.function, Role::Approver)
    }

    pub fn is_driver(&self, principal: &Principal) -> bool {
        self.is_driver_as(Member::alone(principal))
    }

    /// Whether the member is a driver, themselves or through a team.
    pub fn is_driver_as(&self, member: Member<'_>) -> bool {
        self.stakeholders.iter().any(|s| member.is(&s.principal) && s.role == Role::Driver)
    }

    /// The owner and the drivers run the initiative itself: its fields, stage and people.
    pub fn can_manage(&self, principal: &Principal) -> bool {
        self.can_manage_as(Member::alone(principal))
    }

    /// The owner and the drivers (themselves or through a team) run the initiative.
    pub fn can_manage_as(&self, member: Member<'_>) -> bool {
        &self.owner == member.person || self.is_driver_as(member)
    }

    pub fn approvers(&self, function: &Function) -> Vec<&Principal> {
        self.stakeholders
            .iter()
            .filter(|s| &s.function == function && s.role == Role::Approver)
            .map(|s| &s.principal)
            .collect()
    }

    /// Open objections against one decision (or, with `None`, against the initiative).
    pub fn open_objections(&self, decision: Option<DecisionId>) -> impl Iterator<Item = &Feedback> {
        self.feedback.values().filter(move |f| f.decision_id == decision && f.is_open_objection())
    }
}

/// Folds one event into the state. `None` is the state of a stream with no events.
pub fn evolve(state: Option<Initiative>, recorded: &Recorded) -> Result<Initiative, HistoryError> {
    let fail = |message: String| HistoryError { version: recorded.version, message };
    let at = recorded.recorded_at;
    let actor = &recorded.actor;

    let mut initiative = match (state, &recorded.event) {
        (None, Event::InitiativeCreated { initiative_id, key, title, summary, owner, stage, required_functions }) => {
            if recorded.version != 1 {
                return Err(fail("InitiativeCreated must be the first event".into()));
            }
            return Ok(Initiative {
                id: *initiative_id,
                key: key.clone(),
                title: title.clone(),
                summary: summary.clone(),
                owner: owner.clone(),
                stage: *stage,
                required_functions: required_functions.clone(),
                archived: None,
                created_by: actor.clone(),
                created_at: at,
                last_activity: at,
                version: 1,
                stakeholders: BTreeSet::new(),
                decisions: BTreeMap::new(),
                feedback: BTreeMap::new(),
            });
        }
        (None, other) => return Err(fail(format!("{} before InitiativeCreated", other.event_type()))),
        (Some(_), Event::InitiativeCreated { .. }) => return Err(fail("InitiativeCreated twice".into())),
        (Some(initiative), _) => initiative,
    };
    if recorded.version != initiative.version + 1 {
        return Err(fail(format!("version follows {}", initiative.version)));
    }
    initiative.version = recorded.version;
    initiative.last_activity = at;

    match &recorded.event {
        // Only ever the first event, handled above.
        Event::InitiativeCreated { .. } => {}
        Event::InitiativeUpdated { title, summary, owner, required_functions } => {
            if let Some(title) = title {
                initiative.title = title.clone();
            }
            if let Some(summary) = summary {
                initiative.summary = summary.clone();
            }
            if let Some(owner) = owner {
                initiative.owner = owner.clone();
            }
            if let Some(functions) = required_functions {
                initiative.required_functions = functions.clone();
            }
        }
        Event::StageChanged { to, .. } => initiative.stage = *to,
        Event::InitiativeArchived { reason } => {
            initiative.archived = Some(Archived { by: actor.clone(), at, reason: reason.clone() });
        }
        Event::StakeholderAssigned { principal, function, role } => {
            initiative.stakeholders.insert(Stakeholder {
                principal: principal.clone(),
                function: function.clone(),
                role: *role,
            });
        }
        Event::StakeholderRemoved { principal, function, role } => {
            initiative.stakeholders.remove(&Stakeholder {
                principal: principal.clone(),
                function: function.clone(),
                role: *role,
            });
        }
        Event::DecisionProposed { decision_id, content, required_functions, supersedes } => {
            let revision = Revision {
                number: 1,
                kind: RevisionKind::Material,
                content: content.clone(),
                required_functions: required_functions.clone(),
                by: actor.clone(),
                at,
                note: String::new(),
                version: recorded.version,
            };
            let decision = Decision {
                id: *decision_id,
                revisions: vec![revision],
                material_base: 1,
                status: DecisionStatus::Proposed,
                proposed_by: actor.clone(),
                proposed_at: at,
                supersedes: *supersedes,
                superseded_by: None,
                sign_offs: Vec::new(),
                closure: None,
                r#override: None,
                agreement: Vec::new(),
            };
            if initiative.decisions.insert(*decision_id, decision).is_some() {
                return Err(fail(format!("decision {decision_id} proposed twice")));
            }
        }
        Event::DecisionRevised { decision_id, revision, kind, content, required_functions, note, .. } => {
            let decision = decision_mut(&mut initiative, decision_id, &fail)?;
            decision.revisions.push(Revision {
                number: *revision,
                kind: *kind,
                content: content.clone(),
                required_functions: required_functions.clone(),
                by: actor.clone(),
                at,
                note: note.clone(),
                version: recorded.version,
            });
            if *kind == RevisionKind::Material {
                decision.material_base = *revision;
            }
        }
        Event::DecisionAccepted { decision_id, r#override, .. } => {
            let agreement = match initiative.decisions.get(decision_id) {
                Some(decision) => super::alignment::agreement(&initiative, decision),
                None => Vec::new(),
            };
            let decision = decision_mut(&mut initiative, decision_id, &fail)?;
            decision.agreement = agreement;
            decision.status = DecisionStatus::Accepted;
            let reason = r#override.as_ref().map(|o| o.reason.clone()).unwrap_or_default();
            decision.closure = Some(Closure { by: actor.clone(), at, reason, version: recorded.version });
            decision.r#override = r#override.clone();
        }
        Event::DecisionRejected { decision_id, reason } => {
            close(decision_mut(&mut initiative, decision_id, &fail)?, DecisionStatus::Rejected, recorded, reason);
        }
        Event::DecisionWithdrawn { decision_id, reason } => {
            close(decision_mut(&mut initiative, decision_id, &fail)?, DecisionStatus::Withdrawn, recorded, reason);
        }
        Event::DecisionSuperseded { decision_id, superseded_by } => {
            let old = decision_mut(&mut initiative, decision_id, &fail)?;
            old.status = DecisionStatus::Superseded;
            old.superseded_by = Some(*superseded_by);
            let new = decision_mut(&mut initiative, superseded_by, &fail)?;
            new.supersedes = Some(*decision_id);
        }
        Event::FeedbackRecorded { feedback_id, decision_id, function, kind, source, body } => {
            let feedback = Feedback {
                id: *feedback_id,
                decision_id: *decision_id,
                author: actor.clone(),
                function: function.clone(),
                kind: *kind,
                source: *source,
                body: body.clone(),
                recorded_at: at,
                resolution: None,
                version: recorded.version,
            };
            if initiative.feedback.insert(*feedback_id, feedback).is_some() {
                return Err(fail(format!("feedback {feedback_id} recorded twice")));
            }
        }
        Event::FeedbackResolved { feedback_id, resolution } => {
            let feedback = feedback_mut(&mut initiative, feedback_id, &fail)?;
            feedback.resolution =
                Some(Resolution { by: actor.clone(), at, text: resolution.clone(), version: recorded.version });
        }
        Event::FeedbackReopened { feedback_id, .. } => {
            feedback_mut(&mut initiative, feedback_id, &fail)?.resolution = None;
        }
        Event::SignOffRecorded { decision_id, revision, function, verdict, reason, comment, via_team } => {
            let decision = decision_mut(&mut initiative, decision_id, &fail)?;
            let sign_off = SignOff {
                signer: actor.clone(),
                function: function.clone(),
                verdict: *verdict,
                revision: *revision,
                reason: reason.clone(),
                comment: comment.clone(),
                at,
                replaced: false,
                revoked: false,
                version: recorded.version,
                via_team: via_team.clone(),
            };
            decision.sign_offs.retain(|s| !(&s.signer == actor && &s.function == function));
            decision.sign_offs.push(sign_off);
        }
        Event::SignOffRevoked { decision_id, function } => {
            let decision = decision_mut(&mut initiative, decision_id, &fail)?;
            decision.sign_offs.retain(|s| !(&s.signer == actor && &s.function == function));
        }
    }
    Ok(initiative)
}

/// Folds a whole history from the empty state.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Recorded>) -> Result<Option<Initiative>, HistoryError> {
    let mut state = None;
    for recorded in events {
        state = Some(evolve(state, recorded)?);
    }
    Ok(state)
}

fn close(decision: &mut Decision, status: DecisionStatus, recorded: &Recorded, reason: &str) {
    decision.status = status;
    decision.closure = Some(Closure {
        by: recorded.actor.clone(),
        at: recorded.recorded_at,
        reason: reason.to_owned(),
        version: recorded.version,
    });
}

/// Every verdict recorded on one decision, oldest first, each marked when a later
/// verdict of the same signer for the same function replaced it or when it was revoked.
pub fn sign_off_history<'a>(decision: DecisionId, events: impl IntoIterator<Item = &'a Recorded>) -> Vec<SignOff> {
    let mut history: Vec<SignOff> = Vec::new();
    let in_force = |history: &mut Vec<SignOff>, signer: &Principal, function: &Function| -> Option<usize> {
        history.iter().rposition(|s| &s.signer == signer && &s.function == function && !s.replaced && !s.revoked)
    };
    for recorded in events {
        match &recorded.event {
            Event::SignOffRecorded { decision_id, revision, function, verdict, reason, comment, via_team }
                if *decision_id == decision =>
            {
                if let Some(i) = in_force(&mut history, &recorded.actor, function) {
                    history[i].replaced = true;
                }
                history.push(SignOff {
                    signer: recorded.actor.clone(),
                    function: function.clone(),
                    verdict: *verdict,
                    revision: *revision,
                    reason: reason.clone(),
                    comment: comment.clone(),
                    at: recorded.recorded_at,
                    replaced: false,
                    revoked: false,
                    version: recorded.version,
                    via_team: via_team.clone(),
                });
            }
            Event::SignOffRevoked { decision_id, function } if *decision_id == decision => {
                if let Some(i) = in_force(&mut history, &recorded.actor, function) {
                    history[i].revoked = true;
                }
            }
            _ => {}
        }
    }
    history
}

fn decision_mut<'a>(
    initiative: &'a mut Initiative,
    id: &DecisionId,
    fail: &impl Fn(String) -> HistoryError,
) -> Result<&'a mut Decision, HistoryError> {
    initiative.decisions.get_mut(id).ok_or_else(|| fail(format!("unknown decision {id}")))
}

fn feedback_mut<'a>(
    initiative: &'a mut Initiative,
    id: &FeedbackId,
    fail: &impl Fn(String) -> HistoryError,
) -> Result<&'a mut Feedback, HistoryError> {
    initiative.feedback.get_mut(id).ok_or_else(|| fail(format!("unknown feedback {id}")))
}
