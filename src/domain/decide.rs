//! `decide`: the rules that turn a command and the current state into new events, or
//! into the reason the command is refused. Pure: no clock, no ids, no I/O.

use super::alignment::{DecisionAlignment, FunctionState, evaluate_decision, sign_off_counts};
use super::command::Command;
use super::error::DomainError;
use super::event::{Event, OverrideRecord, StaleApproval};
use super::state::{Decision, DecisionStatus, Entitlement, Feedback, Initiative, Member};
use super::values::*;

/// The standing of the actor beyond their stakeholder roles on the initiative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Authority {
    /// An ordinary person: the owner and drivers manage an initiative, and everyone acts
    /// under the decision rights of their stakeholder roles.
    #[default]
    Member,
    /// An administrator may also manage (update, restage, archive, staff) any initiative.
    /// It grants no decision right: an administrator signs, accepts and objects only under
    /// their own stakeholder roles, like anyone else.
    Administrator,
}

/// Decides `command`, issued by `actor` as a member, against the initiative's current
/// state (`None` when the stream does not exist yet).
pub fn decide(state: Option<&Initiative>, command: &Command, actor: &Principal) -> Result<Vec<Event>, DomainError> {
    decide_as(state, command, actor, Authority::Member)
}

/// `decide`, for an actor with the given authority.
pub fn decide_as(
    state: Option<&Initiative>,
    command: &Command,
    actor: &Principal,
    authority: Authority,
) -> Result<Vec<Event>, DomainError> {
    decide_for(state, command, Member::alone(actor), authority)
}

/// `decide`, for an actor who belongs to teams (a role given to one of them is theirs
/// too) and has the given authority. A sign-off records the team it was given through.
pub fn decide_for(
    state: Option<&Initiative>,
    command: &Command,
    member: Member<'_>,
    authority: Authority,
) -> Result<Vec<Event>, DomainError> {
    let actor = member.person;
    let initiative = match (state, command) {
        (None, Command::CreateInitiative { id, key, title, summary, owner, stage, required_functions }) => {
            return Ok(vec![Event::InitiativeCreated {
                initiative_id: *id,
                key: key.clone(),
                title: title.clone(),
                summary: summary.clone(),
                owner: owner.clone().unwrap_or_else(|| actor.clone()),
                stage: stage.unwrap_or(Stage::Discovery),
                required_functions: required_functions.clone().unwrap_or_else(Function::default_set),
            }]);
        }
        (Some(existing), Command::CreateInitiative { .. }) => {
            return Err(DomainError::AlreadyExists(format!("initiative {} exists already", existing.key)));
        }
        (None, _) => return Err(DomainError::not_found("initiative not found")),
        (Some(initiative), _) => initiative,
    };
    if let Some(archived) = &initiative.archived {
        return Err(DomainError::precondition(format!(
            "initiative {} was archived by {} and takes no more commands",
            initiative.key, archived.by
        )));
    }
    let key = &initiative.key;

    match command {
        Command::CreateInitiative { .. } => Err(DomainError::AlreadyExists(format!("initiative {key} exists already"))),

        Command::UpdateInitiative { title, summary, owner, required_functions } => {
            require_manager(initiative, member, authority, "update")?;
            let changed = |new: &Option<String>, old: &String| new.as_ref().filter(|n| *n != old).cloned();
            let event = Event::InitiativeUpdated {
                title: changed(title, &initiative.title),
                summary: changed(summary, &initiative.summary),
                owner: owner.clone().filter(|o| o != &initiative.owner),
                required_functions: required_functions.clone().filter(|f| f != &initiative.required_functions),
            };
            match &event {
                Event::InitiativeUpdated { title: None, summary: None, owner: None, required_functions: None } => {
                    Err(DomainError::invalid("initiative", "the update changes nothing"))
                }
                _ => Ok(vec![event]),
            }
        }

        Command::ChangeStage { stage } => {
            require_manager(initiative, member, authority, "change the stage of")?;
            if *stage == initiative.stage {
                return Err(DomainError::precondition(format!("initiative {key} is already in stage {stage}")));
            }
            Ok(vec![Event::StageChanged { from: initiative.stage, to: *stage }])
        }

        Command::ArchiveInitiative { reason } => {
            require_manager(initiative, member, authority, "archive")?;
            Ok(vec![Event::InitiativeArchived { reason: reason.clone() }])
        }

        Command::AssignStakeholder { principal, function, role } => {
            require_manager(initiative, member, authority, "assign stakeholders to")?;
            if initiative.has_role(principal, function, *role) {
                return Err(DomainError::AlreadyExists(format!(
                    "{principal} is already {role} for {function} on {key}"
                )));
            }
            Ok(vec![Event::StakeholderAssigned {
                principal: principal.clone(),
                function: function.clone(),
                role: *role,
            }])
        }

        Command::RemoveStakeholder { principal, function, role } => {
            require_manager(initiative, member, authority, "remove stakeholders from")?;
            if !initiative.has_role(principal, function, *role) {
                return Err(DomainError::not_found(format!("{principal} is not {role} for {function} on {key}")));
            }
            Ok(vec![Event::StakeholderRemoved {
                principal: principal.clone(),
                function: function.clone(),
                role: *role,
            }])
        }

        Command::ProposeDecision { decision_id, content, required_functions, supersedes } => {
            let participates = initiative.can_manage_as(member)
                || initiative.stakeholders.iter().any(|s| member.is(&s.principal) && s.role != Role::Informed);
            if !participates {
                return Err(DomainError::denied(format!(
                    "{actor} holds no driver, approver or contributor role on {key} and may not propose decisions"
                )));
            }
            if initiative.decisions.contains_key(decision_id) {
                return Err(DomainError::AlreadyExists(format!("decision {decision_id} exists already on {key}")));
            }
            if let Some(old) = supersedes {
                let old = find_decision(initiative, old, "supersedes")?;
                if old.status != DecisionStatus::Accepted {
                    return Err(DomainError::precondition(format!(
                        "decision {} is {}; only an accepted decision can be superseded",
                        old.id,
                        old.status.as_str()
                    )));
                }
            }
            Ok(vec![Event::DecisionProposed {
                decision_id: *decision_id,
                content: content.clone(),
                required_functions: required_functions.clone().unwrap_or_else(|| initiative.required_functions.clone()),
                supersedes: *supersedes,
            }])
        }

        Command::ReviseDecision { decision_id, kind, content, required_functions, note } => {
            let decision = open_decision(initiative, decision_id, "revised")?;
            if !(initiative.is_driver(actor) || &decision.proposed_by == actor) {
                return Err(DomainError::denied(format!(
                    "only a driver of {key} or the decision's proposer may revise it; {actor} is neither"
                )));
            }
            let current = decision.current();
            let required_functions = required_functions.clone().unwrap_or_else(|| current.required_functions.clone());
            if content == &current.content && required_functions == current.required_functions {
                return Err(DomainError::invalid("content", format!("is identical to revision {}", current.number)));
            }
            let stale = if *kind == RevisionKind::Material {
                decision
                    .sign_offs
                    .iter()
                    .filter(|s| s.verdict == Verdict::Approve && sign_off_counts(initiative, decision, s))
                    .map(|s| StaleApproval {
                        signer: s.signer.clone(),
                        function: s.function.clone(),
                        revision: s.revision,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Ok(vec![Event::DecisionRevised {
                decision_id: *decision_id,
                revision: current.number + 1,
                kind: *kind,
                content: content.clone(),
                required_functions,
                note: note.clone(),
                stale,
            }])
        }

        Command::AcceptDecision { decision_id, override_reason } => {
            let decision = open_decision(initiative, decision_id, "accepted")?;
            require_driver(initiative, member, "accept decisions")?;
            let eval = evaluate_decision(initiative, decision);
            let r#override = if eval.alignment == DecisionAlignment::Aligned {
                None
            } else {
                // A blank reason is no written reason: it cannot justify an override.
                let Some(reason) = override_reason.as_ref().filter(|r| !r.trim().is_empty()) else {
                    let waiting = eval
                        .functions
                        .iter()
                        .filter(|f| f.state != FunctionState::Approved)
                        .map(|f| format!("{} {}", f.function, f.state.as_str()))
                        .chain(
                            (!eval.objections.is_empty())
                                .then(|| format!("{} open objection(s)", eval.objections.len())),
                        )
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(DomainError::precondition(format!(
                        "decision {decision_id} is not aligned ({waiting}); accept it with an override reason to disagree and commit"
                    )));
                };
                Some(OverrideRecord {
                    reason: reason.clone(),
                    unaligned: eval
                        .functions
                        .iter()
                        .filter(|f| f.state != FunctionState::Approved)
                        .map(|f| (f.function.clone(), f.state))
                        .collect(),
                    objections: eval.objections.clone(),
                })
            };
            let mut events =
                vec![Event::DecisionAccepted { decision_id: *decision_id, revision: decision.revision(), r#override }];
            // A decision proposed as superseding an accepted one replaces it on acceptance.
            if let Some(old) = decision.supersedes.and_then(|id| initiative.decisions.get(&id))
                && old.status == DecisionStatus::Accepted
            {
                events.push(Event::DecisionSuperseded { decision_id: old.id, superseded_by: *decision_id });
            }
            Ok(events)
        }

        Command::RejectDecision { decision_id, reason } => {
            open_decision(initiative, decision_id, "rejected")?;
            require_driver(initiative, member, "reject decisions")?;
            Ok(vec![Event::DecisionRejected { decision_id: *decision_id, reason: reason.clone() }])
        }

        Command::WithdrawDecision { decision_id, reason } => {
            let decision = open_decision(initiative, decision_id, "withdrawn")?;
            if !(initiative.is_driver(actor) || &decision.proposed_by == actor) {
                return Err(DomainError::denied(format!(
                    "only a driver of {key} or the decision's proposer may withdraw it; {actor} is neither"
                )));
            }
            Ok(vec![Event::DecisionWithdrawn { decision_id: *decision_id, reason: reason.clone() }])
        }

        Command::SupersedeDecision { decision_id, superseded_by } => {
            if decision_id == superseded_by {
                return Err(DomainError::invalid("superseded_by", "a decision cannot supersede itself"));
            }
            let old = find_decision(initiative, decision_id, "decision_id")?;
            let new = find_decision(initiative, superseded_by, "superseded_by")?;
            require_driver(initiative, member, "supersede decisions")?;
            for decision in [old, new] {
                if decision.status != DecisionStatus::Accepted {
                    return Err(DomainError::precondition(format!(
                        "decision {} is {}; only accepted decisions take part in a supersession",
                        decision.id,
                        decision.status.as_str()
                    )));
                }
            }
            // A decision supersedes at most one other; a second link would overwrite the first.
            if let Some(earlier) = new.supersedes.filter(|earlier| earlier != decision_id) {
                return Err(DomainError::precondition(format!(
                    "decision {superseded_by} already supersedes decision {earlier}; a decision supersedes at most one other"
                )));
            }
            Ok(vec![Event::DecisionSuperseded { decision_id: *decision_id, superseded_by: *superseded_by }])
        }

        Command::RecordFeedback { feedback_id, decision_id, function, kind, source, body } => {
            let may_give_feedback = [Role::Driver, Role::Approver, Role::Contributor]
                .into_iter()
                .any(|role| initiative.entitlement(member, function, role).is_some());
            if let Some(decision_id) = decision_id {
                let decision = find_decision(initiative, decision_id, "decision_id")?;
                if *kind == FeedbackKind::Objection && !decision.is_open() {
                    return Err(DomainError::precondition(format!(
                        "decision {decision_id} is {}; objections can only be raised against proposed decisions",
                        decision.status.as_str()
                    )));
                }
            }
            if !may_give_feedback {
                return Err(DomainError::denied(format!(
                    "{actor} holds no driver, approver or contributor role for {function} on {key}, so may not give feedback for it"
                )));
            }
            if initiative.feedback.contains_key(feedback_id) {
                return Err(DomainError::AlreadyExists(format!("feedback {feedback_id} exists already on {key}")));
            }
            Ok(vec![Event::FeedbackRecorded {
                feedback_id: *feedback_id,
                decision_id: *decision_id,
                function: function.clone(),
                kind: *kind,
                source: *source,
                body: body.clone(),
            }])
        }

        Command::ResolveFeedback { feedback_id, resolution } => {
            let feedback = find_feedback(initiative, feedback_id)?;
            if !feedback.is_open() {
                return Err(DomainError::precondition(format!("feedback {feedback_id} is already resolved")));
            }
            require_author_or_driver(initiative, feedback, member, "resolve")?;
            Ok(vec![Event::FeedbackResolved { feedback_id: *feedback_id, resolution: resolution.clone() }])
        }

        Command::ReopenFeedback { feedback_id, reason } => {
            let feedback = find_feedback(initiative, feedback_id)?;
            if feedback.is_open() {
                return Err(DomainError::precondition(format!("feedback {feedback_id} is not resolved")));
            }
            // An objection may only stand against an open decision, reopened or new.
            if let Some(decision) = feedback.decision_id.and_then(|d| initiative.decisions.get(&d))
                && feedback.kind == FeedbackKind::Objection
                && !decision.is_open()
            {
                return Err(DomainError::precondition(format!(
                    "decision {} is {}; an objection against it cannot be reopened",
                    decision.id,
                    decision.status.as_str()
                )));
            }
            require_author_or_driver(initiative, feedback, member, "reopen")?;
            Ok(vec![Event::FeedbackReopened { feedback_id: *feedback_id, reason: reason.clone() }])
        }

        Command::RecordSignOff { decision_id, function, verdict, reason, comment, revision } => {
            let decision = open_decision(initiative, decision_id, "signed")?;
            if !decision.required_functions().contains(function) {
                return Err(DomainError::precondition(format!(
                    "decision {decision_id} does not need a sign-off from {function} (it needs {})",
                    join(decision.required_functions().iter())
                )));
            }
            let Some(entitlement) = initiative.entitlement(member, function, Role::Approver) else {
                let teams =
                    if member.teams.is_empty() { String::new() } else { " (nor is any of their teams)".to_owned() };
                return Err(DomainError::denied(format!("{actor} is not an approver for {function} on {key}{teams}")));
            };
            let via_team = match entitlement {
                Entitlement::Direct => None,
                Entitlement::Team(team) => Some(team),
            };
            let current = decision.revision();
            if let Some(read) = revision
                && *read != current
            {
                return Err(DomainError::precondition(format!(
                    "you signed revision {read} but decision {decision_id} is at revision {current}; read it again and sign revision {current}"
                )));
            }
            if *verdict == Verdict::Reject && reason.trim().is_empty() {
                return Err(DomainError::invalid("reason", "is required to reject"));
            }
            Ok(vec![Event::SignOffRecorded {
                decision_id: *decision_id,
                revision: current,
                function: function.clone(),
                verdict: *verdict,
                reason: reason.clone(),
                comment: comment.clone(),
                via_team,
            }])
        }

        Command::RevokeSignOff { decision_id, function } => {
            let decision = open_decision(initiative, decision_id, "signed")?;
            if decision.sign_off_of(actor, function).is_none() {
                return Err(DomainError::not_found(format!(
                    "{actor} has no sign-off for {function} on decision {decision_id} to revoke"
                )));
            }
            Ok(vec![Event::SignOffRevoked { decision_id: *decision_id, function: function.clone() }])
        }
    }
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

fn require_manager(
    initiative: &Initiative,
    member: Member<'_>,
    authority: Authority,
    what: &str,
) -> Result<(), DomainError> {
    let actor = member.person;
    if authority == Authority::Administrator || initiative.can_manage_as(member) {
        Ok(())
    } else {
        Err(DomainError::denied(format!(
            "only the owner ({}) or a driver of {} may {what} it; {actor} is neither",
            initiative.owner, initiative.key
        )))
    }
}

fn require_driver(initiative: &Initiative, member: Member<'_>, what: &str) -> Result<(), DomainError> {
    let actor = member.person;
    if initiative.is_driver_as(member) {
        Ok(())
    } else {
        Err(DomainError::denied(format!("only a driver of {} may {what}; {actor} is not one", initiative.key)))
    }
}

fn require_author_or_driver(
    initiative: &Initiative,
    feedback: &Feedback,
    member: Member<'_>,
    what: &str,
) -> Result<(), DomainError> {
    let actor = member.person;
    if &feedback.author == actor || initiative.is_driver_as(member) {
        Ok(())
    } else {
        Err(DomainError::denied(format!(
            "only the author ({}) or a driver of {} may {what} feedback {}",
            feedback.author, initiative.key, feedback.id
        )))
    }
}

fn find_decision<'a>(initiative: &'a Initiative, id: &DecisionId, field: &str) -> Result<&'a Decision, DomainError> {
    initiative.decisions.get(id).ok_or_else(|| {
        DomainError::not_found(format!("{field}: decision {id} not found on initiative {}", initiative.key))
    })
}

/// A decision that must still be proposed for the command to make sense.
fn open_decision<'a>(initiative: &'a Initiative, id: &DecisionId, verb: &str) -> Result<&'a Decision, DomainError> {
    let decision = find_decision(initiative, id, "decision_id")?;
    if decision.is_open() {
        Ok(decision)
    } else {
        Err(DomainError::precondition(format!(
            "decision {id} is {}; only proposed decisions can be {verb}",
            decision.status.as_str()
        )))
    }
}

fn find_feedback<'a>(initiative: &'a Initiative, id: &FeedbackId) -> Result<&'a Feedback, DomainError> {
    initiative.feedback.get(id).ok_or_else(|| {
        DomainError::not_found(format!("feedback_id: feedback {id} not found on initiative {}", initiative.key))
    })
}
