//! Who must act now, derived purely from the log: the notifications one event gives rise
//! to (`notifications`, from the initiative's state before and after it) and the daily
//! digest of what waits on one person (`digest`). They are not domain events: replaying
//! the same history always gives the same notifications, so a redelivery re-derives
//! them instead of storing them.
//!
//! The rules, and their fine print:
//! - Nothing is sent about an archived initiative, nor for the first event of a stream
//!   (`before` is `None`: an initiative is created without decisions), and a notification
//!   that would name nobody is not made at all.
//! - `sign_off_requested`: a decision is proposed, or revised materially (an editorial
//!   revision asks nobody: approvals still count), and is still open; one notification
//!   for the event, listing every required function that is pending (the alignment
//!   evaluation of `after`: a function already rejected or blocked by an objection asks
//!   for no signature) and the approvers who can sign it. An approver newly assigned to
//!   a function asks only that person, once per open decision on which the function is
//!   pending. Other ways a function becomes pending again (a revoked sign-off, a resolved
//!   objection, a removed approver) ask nobody: the daily digest lists them.
//! - `blocked_by_objection`: an objection becomes open (recorded, or reopened) against an
//!   open decision or against the initiative itself (then without a decision): one per
//!   objection, however many already stand, since each is a new thing to resolve. It
//!   concerns the objection's function (even one the decision does not require: it still
//!   blocks it) and asks the owner and the drivers of that function to resolve it with the
//!   objector, whom the sentence names; the reason is the objection's body.
//! - `aligned`: an open decision is aligned after the event (every required function
//!   approved, no open objection) and was not before (or did not exist): the owner and
//!   every driver may accept it. A decision that falls back (a material revision) and is
//!   approved again is aligned again, and so notifies again.
//! - `accepted_with_override`: a decision accepted with an override record tells the
//!   approvers (now) of the functions that were not approved, and the authors of the
//!   objections that stood; it concerns those functions and the objections' functions,
//!   and the reason is the override's.
//!
//! One event's notifications come in that order (kind, then decision id). People are
//! sorted, unique and at most `bounds::NAMES`; the sentence says how many more there are.
//! Texts people wrote are quoted as previews of `bounds::PREVIEW_CHARS` characters.
//!
//! The digest lists the sign-offs a person can give that are pending on open decisions
//! of initiatives not archived (the inbox rule of `alignment`), longest waiting first.
//! An item waits since its decision's latest material revision: the state does not
//! record when someone became an approver, so a later assignment does not move it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::alignment::{DecisionAlignment, FunctionState, bounds, evaluate_decision, evaluate_function, preview};
use super::event::{Event, Recorded};
use super::state::{Decision, Feedback, Initiative};
use super::values::*;

/// What a notification asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    SignOffRequested,
    BlockedByObjection,
    Aligned,
    AcceptedWithOverride,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 4] = [
        NotificationKind::SignOffRequested,
        NotificationKind::BlockedByObjection,
        NotificationKind::Aligned,
        NotificationKind::AcceptedWithOverride,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::SignOffRequested => "sign_off_requested",
            NotificationKind::BlockedByObjection => "blocked_by_objection",
            NotificationKind::Aligned => "aligned",
            NotificationKind::AcceptedWithOverride => "accepted_with_override",
        }
    }

    pub fn parse(name: &str) -> Option<NotificationKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone must act (or be told) because of one event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    pub kind: NotificationKind,
    pub initiative_id: InitiativeId,
    pub initiative_key: InitiativeKey,
    pub initiative_title: String,
    /// `None` for an objection against the initiative itself.
    pub decision_id: Option<DecisionId>,
    /// Empty without a decision.
    pub decision_title: String,
    /// 0 without a decision.
    pub revision: u32,
    /// The functions it concerns, sorted.
    pub functions: Vec<Function>,
    /// At most `bounds::NAMES`, sorted, unique.
    pub who_must_act: Vec<Principal>,
    /// One sentence saying who must do what.
    pub action: String,
    /// The objection's body or the override's reason, as a preview; otherwise empty.
    pub reason: String,
}

/// The notifications one event gives rise to: `before` is the initiative's state before
/// the event (None for its first event), `after` the state after it.
pub fn notifications(before: Option<&Initiative>, recorded: &Recorded, after: &Initiative) -> Vec<Notification> {
    let Some(before) = before else {
        return Vec::new();
    };
    if after.archived.is_some() {
        return Vec::new();
    }
    let mut found = sign_offs_requested(recorded, after);
    found.extend(objections_blocking(before, after));
    found.extend(newly_aligned(before, after));
    found.extend(overridden(recorded, after));
    found
}

fn sign_offs_requested(recorded: &Recorded, after: &Initiative) -> Vec<Notification> {
    match &recorded.event {
        Event::DecisionProposed { decision_id, .. }
        | Event::DecisionRevised { decision_id, kind: RevisionKind::Material, .. } => {
            let Some(decision) = after.decisions.get(decision_id).filter(|d| d.is_open()) else {
                return Vec::new();
            };
            let pending: Vec<_> = evaluate_decision(after, decision)
                .functions
                .into_iter()
                .filter(|f| f.state == FunctionState::Pending && !f.can_sign.is_empty())
                .collect();
            let functions: BTreeSet<Function> = pending.iter().map(|f| f.function.clone()).collect();
            let people: BTreeSet<Principal> = pending.into_iter().flat_map(|f| f.can_sign).collect();
            sign_off_request(after, decision, functions, people).into_iter().collect()
        }
        Event::StakeholderAssigned { principal, function, role: Role::Approver } => after
            .decisions
            .values()
            .filter(|d| d.is_open() && d.required_functions().contains(function))
            .filter(|d| {
                let eval = evaluate_function(after, d, function);
                eval.state == FunctionState::Pending && eval.can_sign.contains(principal)
            })
            .filter_map(|d| sign_off_request(after, d, [function.clone()].into(), [principal.clone()].into()))
            .collect(),
        _ => Vec::new(),
    }
}

fn sign_off_request(
    initiative: &Initiative,
    decision: &Decision,
    functions: BTreeSet<Function>,
    people: BTreeSet<Principal>,
) -> Option<Notification> {
    let (named, sentence) = bounded(people)?;
    let action = format!(
        "{sentence} must sign off on “{}” (revision {}) for {}.",
        decision.title(),
        decision.revision(),
        listed(&functions)
    );
    Some(about(initiative, Some(decision), NotificationKind::SignOffRequested, functions, named, action, String::new()))
}

/// Open objections after the event that were not open before it, against the
/// initiative or an open decision.
fn objections_blocking(before: &Initiative, after: &Initiative) -> Vec<Notification> {
    let was_open = |feedback: &Feedback| before.feedback.get(&feedback.id).is_some_and(Feedback::is_open_objection);
    let mut newly_open: Vec<&Feedback> =
        after.feedback.values().filter(|f| f.is_open_objection() && !was_open(f)).collect();
    newly_open.sort_by_key(|f| (f.decision_id, f.id));
    newly_open.into_iter().filter_map(|objection| objection_blocking(after, objection)).collect()
}

fn objection_blocking(after: &Initiative, objection: &Feedback) -> Option<Notification> {
    let decision = match objection.decision_id {
        Some(id) => Some(after.decisions.get(&id).filter(|d| d.is_open())?),
        None => None,
    };
    let function = &objection.function;
    let people: BTreeSet<Principal> = std::iter::once(after.owner.clone())
        .chain(
            after
                .stakeholders
                .iter()
                .filter(|s| s.role == Role::Driver && &s.function == function)
                .map(|s| s.principal.clone()),
        )
        .collect();
    let (named, sentence) = bounded(people)?;
    let on = match decision {
        Some(decision) => format!("“{}” (revision {})", decision.title(), decision.revision()),
        None => format!("the initiative {}", after.key),
    };
    let action = format!("{sentence} must resolve the {function} objection by {} on {on}.", objection.author);
    let reason = preview(&objection.body, bounds::PREVIEW_CHARS);
    Some(about(after, decision, NotificationKind::BlockedByObjection, [function.clone()].into(), named, action, reason))
}

fn newly_aligned(before: &Initiative, after: &Initiative) -> Vec<Notification> {
    let is_aligned = |initiative: &Initiative, decision: &Decision| {
        decision.is_open() && evaluate_decision(initiative, decision).alignment == DecisionAlignment::Aligned
    };
    after
        .decisions
        .values()
        .filter(|d| is_aligned(after, d))
        .filter(|d| !before.decisions.get(&d.id).is_some_and(|old| is_aligned(before, old)))
        .filter_map(|decision| {
            let people: BTreeSet<Principal> = std::iter::once(after.owner.clone())
                .chain(after.stakeholders.iter().filter(|s| s.role == Role::Driver).map(|s| s.principal.clone()))
                .collect();
            let (named, sentence) = bounded(people)?;
            let action = format!(
                "{sentence} may accept “{}” (revision {}): every required function approved.",
                decision.title(),
                decision.revision()
            );
            let functions = decision.required_functions().clone();
            Some(about(after, Some(decision), NotificationKind::Aligned, functions, named, action, String::new()))
        })
        .collect()
}

fn overridden(recorded: &Recorded, after: &Initiative) -> Option<Notification> {
    let Event::DecisionAccepted { decision_id, r#override: Some(record), .. } = &recorded.event else {
        return None;
    };
    let decision = after.decisions.get(decision_id)?;
    let objections: Vec<&Feedback> = record.objections.iter().filter_map(|id| after.feedback.get(id)).collect();
    let unaligned: BTreeSet<Function> = record.unaligned.iter().map(|(function, _)| function.clone()).collect();
    let people: BTreeSet<Principal> = unaligned
        .iter()
        .flat_map(|function| after.approvers(function))
        .cloned()
        .chain(objections.iter().map(|f| f.author.clone()))
        .collect();
    let (named, sentence) = bounded(people)?;
    let mut although = Vec::new();
    if !unaligned.is_empty() {
        although.push(format!("{} had not approved", listed(&unaligned)));
    }
    match record.objections.len() {
        0 => {}
        1 => although.push("1 objection stood".to_owned()),
        n => although.push(format!("{n} objections stood")),
    }
    let although = if although.is_empty() { "it was not aligned".to_owned() } else { although.join(" and ") };
    let action = format!(
        "{sentence}: “{}” (revision {}) was accepted by {} by override although {although}.",
        decision.title(),
        decision.revision(),
        recorded.actor,
    );
    let functions: BTreeSet<Function> =
        unaligned.into_iter().chain(objections.iter().map(|f| f.function.clone())).collect();
    let reason = preview(&record.reason, bounds::PREVIEW_CHARS);
    Some(about(after, Some(decision), NotificationKind::AcceptedWithOverride, functions, named, action, reason))
}

fn about(
    initiative: &Initiative,
    decision: Option<&Decision>,
    kind: NotificationKind,
    functions: BTreeSet<Function>,
    who_must_act: Vec<Principal>,
    action: String,
    reason: String,
) -> Notification {
    Notification {
        kind,
        initiative_id: initiative.id,
        initiative_key: initiative.key.clone(),
        initiative_title: initiative.title.clone(),
        decision_id: decision.map(|d| d.id),
        decision_title: decision.map(|d| d.title().to_owned()).unwrap_or_default(),
        revision: decision.map(Decision::revision).unwrap_or_default(),
        functions: functions.into_iter().collect(),
        who_must_act,
        action,
        reason,
    }
}

/// The first `bounds::NAMES` people, and how a sentence names them all ("a, b and 3
/// others"); `None` for nobody.
fn bounded(people: BTreeSet<Principal>) -> Option<(Vec<Principal>, String)> {
    if people.is_empty() {
        return None;
    }
    let total = people.len();
    let named: Vec<Principal> = people.into_iter().take(bounds::NAMES).collect();
    let names: Vec<&str> = named.iter().map(Principal::as_str).collect();
    let sentence = match (names.split_last(), total - named.len()) {
        (Some((only, [])), 0) => (*only).to_owned(),
        (Some((last, rest)), 0) => format!("{} and {last}", rest.join(", ")),
        (_, 1) => format!("{} and 1 other", names.join(", ")),
        (_, more) => format!("{} and {more} others", names.join(", ")),
    };
    Some((named, sentence))
}

/// Functions as "a, b, c".
fn listed(functions: &BTreeSet<Function>) -> String {
    functions.iter().map(Function::as_str).collect::<Vec<_>>().join(", ")
}

/// Most items a digest lists.
pub const DIGEST_ITEMS: usize = 20;

/// One sign-off waiting on the digest's person.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DigestItem {
    pub initiative_id: InitiativeId,
    pub initiative_key: InitiativeKey,
    pub initiative_title: String,
    pub decision_id: DecisionId,
    pub decision_title: String,
    pub revision: u32,
    pub function: Function,
    /// When this ask began: the decision's latest material revision.
    pub waiting_since: DateTime<Utc>,
}

/// What waits on one person.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Digest {
    pub person: Principal,
    /// Longest waiting first, at most `DIGEST_ITEMS`.
    pub items: Vec<DigestItem>,
    /// How many items wait in all.
    pub total: usize,
}

/// What waits on `person` (sign-offs they can give that are pending on open decisions of
/// non-archived initiatives), longest-waiting first, at most DIGEST_ITEMS (total counts all).
pub fn digest<'a>(person: &Principal, initiatives: impl IntoIterator<Item = &'a Initiative>) -> Digest {
    let mut items: Vec<DigestItem> = Vec::new();
    for initiative in initiatives.into_iter().filter(|i| i.archived.is_none()) {
        for decision in initiative.decisions.values().filter(|d| d.is_open()) {
            for function in decision.required_functions() {
                if !initiative.has_role(person, function, Role::Approver) {
                    continue;
                }
                if evaluate_function(initiative, decision, function).state != FunctionState::Pending {
                    continue;
                }
                items.push(DigestItem {
                    initiative_id: initiative.id,
                    initiative_key: initiative.key.clone(),
                    initiative_title: initiative.title.clone(),
                    decision_id: decision.id,
                    decision_title: decision.title().to_owned(),
                    revision: decision.revision(),
                    function: function.clone(),
                    waiting_since: material_since(decision),
                });
            }
        }
    }
    // Ties fall to the key, decision and function, so the order never depends on the
    // order the caller passed the initiatives in.
    items.sort_by(|a, b| {
        (a.waiting_since, &a.initiative_key, a.decision_id, &a.function).cmp(&(
            b.waiting_since,
            &b.initiative_key,
            b.decision_id,
            &b.function,
        ))
    });
    let total = items.len();
    items.truncate(DIGEST_ITEMS);
    Digest { person: person.clone(), items, total }
}

/// When the decision's latest material revision was recorded.
fn material_since(decision: &Decision) -> DateTime<Utc> {
    decision.revisions.iter().rev().find(|r| r.number == decision.material_base).map_or(decision.proposed_at, |r| r.at)
}
