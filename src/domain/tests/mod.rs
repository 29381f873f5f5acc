//! Unit tests of the pure domain core, written as given(events) / when(command) /
//! then(events or error). No I/O: a `History` runs `decide` on the state folded so far
//! and folds what it returns with `evolve`, exactly as the store would.
//!
//! Submodules follow SPEC section 1: values, the initiative, stakeholders, decisions,
//! feedback, sign-offs, the alignment projection, the acceptance scenario of section 4
//! and property tests over arbitrary command sequences.

mod agreed;
mod alignment;
mod bounds;
mod decisions;
mod explain;
mod feedback;
mod hostile;
mod initiative;
mod narrate;
mod notify;
mod properties;
mod scenario;
mod sign_offs;
mod stakeholders;
mod standing;
mod teams;
mod values;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::alignment::{AlignmentView, InboxItem, inbox, project};
use super::command::Command;
use super::decide::decide;
use super::error::DomainError;
use super::event::{DecisionContent, Event, Recorded};
use super::state::{Decision, Feedback, Initiative, SignOff, evolve, fold, sign_off_history};
use super::values::*;

// ---------------------------------------------------------------------------------
// The cast: fixed people, functions and ids, so every test is deterministic.
// ---------------------------------------------------------------------------------

/// Creates the initiative; owner unless the owner is transferred.
const OWNER: &str = "olivia@example.com";
/// The driver (assigned for the `product` function, which no decision needs).
const DRIVER: &str = "dana@example.com";
/// Approver for engineering.
const ENG: &str = "erin@example.com";
/// Approver for design.
const DES: &str = "desmond@example.com";
/// Approver for business.
const BIZ: &str = "bianca@example.com";
/// Contributor for engineering.
const CONTRIB: &str = "carl@example.com";
/// Informed for design: read-only.
const INFORMED: &str = "ines@example.com";
/// Holds no role at all.
const STRANGER: &str = "sam@example.com";

const INITIATIVE: InitiativeId = InitiativeId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));

fn who(principal: &str) -> Principal {
    Principal::parse("principal", principal).expect("valid principal")
}

fn func(name: &str) -> Function {
    Function::parse("function", name).expect("valid function")
}

fn funcs(names: &[&str]) -> BTreeSet<Function> {
    names.iter().map(|n| func(n)).collect()
}

fn dec(n: u128) -> DecisionId {
    DecisionId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_d000 + n))
}

fn fb(n: u128) -> FeedbackId {
    FeedbackId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_f000 + n))
}

/// The fixed time of stream version `version`: one minute apart.
fn at(version: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + 60 * version as i64, 0).expect("valid timestamp")
}

// ---------------------------------------------------------------------------------
// Command builders.
// ---------------------------------------------------------------------------------

fn create() -> Command {
    Command::CreateInitiative {
        id: INITIATIVE,
        key: InitiativeKey::parse("key", "CHECKOUT-42").unwrap(),
        title: "Checkout".into(),
        summary: "A faster checkout".into(),
        owner: None,
        stage: None,
        required_functions: None,
    }
}

fn update() -> Command {
    Command::UpdateInitiative { title: None, summary: None, owner: None, required_functions: None }
}

fn assign(principal: &str, function: &str, role: Role) -> Command {
    Command::AssignStakeholder { principal: who(principal), function: func(function), role }
}

fn remove(principal: &str, function: &str, role: Role) -> Command {
    Command::RemoveStakeholder { principal: who(principal), function: func(function), role }
}

fn content(title: &str, proposal: &str) -> DecisionContent {
    DecisionContent {
        title: title.into(),
        context: "Payments are slow".into(),
        options: vec!["Stripe".into(), "Adyen".into()],
        proposal: proposal.into(),
        rationale: "Best fit".into(),
    }
}

fn propose(id: DecisionId) -> Command {
    Command::ProposeDecision {
        decision_id: id,
        content: content("Use Stripe for payments", "Stripe"),
        required_functions: None,
        supersedes: None,
    }
}

fn propose_for(id: DecisionId, functions: &[&str]) -> Command {
    Command::ProposeDecision {
        decision_id: id,
        content: content("Use Stripe for payments", "Stripe"),
        required_functions: Some(funcs(functions)),
        supersedes: None,
    }
}

fn propose_superseding(id: DecisionId, old: DecisionId) -> Command {
    Command::ProposeDecision {
        decision_id: id,
        content: content("Use Adyen for payments", "Adyen"),
        required_functions: None,
        supersedes: Some(old),
    }
}

fn revise(id: DecisionId, kind: RevisionKind, proposal: &str) -> Command {
    Command::ReviseDecision {
        decision_id: id,
        kind,
        content: content("Use Stripe for payments", proposal),
        required_functions: None,
        note: format!("{kind} change"),
    }
}

fn accept(id: DecisionId) -> Command {
    Command::AcceptDecision { decision_id: id, override_reason: None }
}

fn accept_overriding(id: DecisionId, reason: &str) -> Command {
    Command::AcceptDecision { decision_id: id, override_reason: Some(reason.into()) }
}

fn reject_decision(id: DecisionId) -> Command {
    Command::RejectDecision { decision_id: id, reason: "not now".into() }
}

fn withdraw(id: DecisionId) -> Command {
    Command::WithdrawDecision { decision_id: id, reason: "changed our mind".into() }
}

fn supersede(old: DecisionId, new: DecisionId) -> Command {
    Command::SupersedeDecision { decision_id: old, superseded_by: new }
}

fn feedback(
    id: FeedbackId,
    decision: Option<DecisionId>,
    function: &str,
    kind: FeedbackKind,
    source: FeedbackSource,
) -> Command {
    Command::RecordFeedback {
        feedback_id: id,
        decision_id: decision,
        function: func(function),
        kind,
        source,
        body: format!("a {kind} from {function}"),
    }
}

fn objection(id: FeedbackId, decision: Option<DecisionId>, function: &str) -> Command {
    feedback(id, decision, function, FeedbackKind::Objection, FeedbackSource::Internal)
}

fn resolve(id: FeedbackId) -> Command {
    Command::ResolveFeedback { feedback_id: id, resolution: "addressed".into() }
}

fn reopen(id: FeedbackId) -> Command {
    Command::ReopenFeedback { feedback_id: id, reason: "not addressed after all".into() }
}

fn approve(id: DecisionId, function: &str) -> Command {
    Command::RecordSignOff {
        decision_id: id,
        function: func(function),
        verdict: Verdict::Approve,
        reason: String::new(),
        comment: String::new(),
        revision: None,
    }
}

fn approve_revision(id: DecisionId, function: &str, revision: u32) -> Command {
    Command::RecordSignOff {
        decision_id: id,
        function: func(function),
        verdict: Verdict::Approve,
        reason: String::new(),
        comment: String::new(),
        revision: Some(revision),
    }
}

fn reject(id: DecisionId, function: &str, reason: &str) -> Command {
    Command::RecordSignOff {
        decision_id: id,
        function: func(function),
        verdict: Verdict::Reject,
        reason: reason.into(),
        comment: String::new(),
        revision: None,
    }
}

fn revoke(id: DecisionId, function: &str) -> Command {
    Command::RevokeSignOff { decision_id: id, function: func(function) }
}

// ---------------------------------------------------------------------------------
// The harness.
// ---------------------------------------------------------------------------------

/// An initiative's stream in memory: the recorded events and the state folded from them.
#[derive(Clone, Debug, Default)]
struct History {
    events: Vec<Recorded>,
    state: Option<Initiative>,
}

impl History {
    fn new() -> Self {
        Self::default()
    }

    /// given: runs a command that must succeed and folds its events.
    #[track_caller]
    fn given(mut self, actor: &str, command: Command) -> Self {
        self.run(actor, command);
        self
    }

    /// when/then: runs a command that must succeed, folds its events and returns them.
    #[track_caller]
    fn run(&mut self, actor: &str, command: Command) -> Vec<Event> {
        let events = match decide(self.state.as_ref(), &command, &who(actor)) {
            Ok(events) => events,
            Err(error) => panic!("{actor} could not {command:?}: {error:?}"),
        };
        assert!(!events.is_empty(), "a successful command must record at least one event: {command:?}");
        for event in &events {
            self.record(actor, event.clone());
        }
        events
    }

    /// Folds one event as if the store had appended it.
    #[track_caller]
    fn record(&mut self, actor: &str, event: Event) {
        let version = self.events.len() as u64 + 1;
        let recorded = Recorded { version, actor: who(actor), recorded_at: at(version), event };
        self.state = Some(evolve(self.state.take(), &recorded).expect("the events decide returns must fold"));
        self.events.push(recorded);
    }

    /// when: decides a command without recording anything.
    fn try_run(&self, actor: &str, command: Command) -> Result<Vec<Event>, DomainError> {
        decide(self.state.as_ref(), &command, &who(actor))
    }

    /// then refused: the command must fail; returns the error.
    #[track_caller]
    fn refuse(&self, actor: &str, command: Command) -> DomainError {
        match self.try_run(actor, command.clone()) {
            Ok(events) => panic!("{actor} was allowed to {command:?}, recording {events:?}"),
            Err(error) => error,
        }
    }

    #[track_caller]
    fn state(&self) -> &Initiative {
        self.state.as_ref().expect("the initiative exists")
    }

    #[track_caller]
    fn decision(&self, id: DecisionId) -> &Decision {
        self.state().decisions.get(&id).expect("the decision exists")
    }

    #[track_caller]
    fn feedback(&self, id: FeedbackId) -> &Feedback {
        self.state().feedback.get(&id).expect("the feedback exists")
    }

    fn view(&self) -> AlignmentView {
        project(self.state())
    }

    /// Everyone a sign-off waits on: the inbox index stored beside the view.
    fn awaiting(&self) -> Vec<String> {
        crate::domain::alignment::project_indexed(self.state()).1
    }

    fn inbox(&self, principal: &str) -> Vec<InboxItem> {
        inbox(self.state(), &who(principal))
    }

    /// Every verdict recorded on a decision, marked replaced / revoked, rebuilt from the events.
    fn sign_off_history(&self, id: DecisionId) -> Vec<SignOff> {
        sign_off_history(id, &self.events)
    }

    fn version(&self) -> u64 {
        self.events.len() as u64
    }
}

/// An initiative `CHECKOUT-42` created by the owner, needing engineering, design and
/// business, with a driver, one approver per function, a contributor for engineering
/// and an informed designer.
fn team() -> History {
    History::new()
        .given(OWNER, create())
        .given(OWNER, assign(DRIVER, "product", Role::Driver))
        .given(DRIVER, assign(ENG, "engineering", Role::Approver))
        .given(DRIVER, assign(DES, "design", Role::Approver))
        .given(DRIVER, assign(BIZ, "business", Role::Approver))
        .given(DRIVER, assign(CONTRIB, "engineering", Role::Contributor))
        .given(DRIVER, assign(INFORMED, "design", Role::Informed))
}

/// `team()` with decision 1 proposed by the driver.
fn proposed() -> History {
    team().given(DRIVER, propose(dec(1)))
}

/// `proposed()` with all three functions approving revision 1.
fn aligned() -> History {
    proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(DES, approve(dec(1), "design"))
        .given(BIZ, approve(dec(1), "business"))
}

/// `aligned()` with decision 1 accepted.
fn accepted() -> History {
    aligned().given(DRIVER, accept(dec(1)))
}

// ---------------------------------------------------------------------------------
// Refusal assertions: the variant, and that the message names what it is about.
// ---------------------------------------------------------------------------------

#[track_caller]
fn assert_mentions(error: &DomainError, mentions: &[&str]) {
    let message = error.to_string();
    for needle in mentions {
        assert!(message.contains(needle), "message {message:?} should mention {needle:?}");
    }
}

#[track_caller]
fn assert_invalid(error: DomainError, field: &str, mentions: &[&str]) {
    match &error {
        DomainError::InvalidArgument { field: actual, .. } => {
            assert_eq!(actual, field, "InvalidArgument names the wrong field: {error}")
        }
        other => panic!("expected InvalidArgument on {field:?}, got {other:?}"),
    }
    assert_mentions(&error, mentions);
}

#[track_caller]
fn assert_not_found(error: DomainError, mentions: &[&str]) {
    assert!(matches!(error, DomainError::NotFound(_)), "expected NotFound, got {error:?}");
    assert_mentions(&error, mentions);
}

#[track_caller]
fn assert_already_exists(error: DomainError, mentions: &[&str]) {
    assert!(matches!(error, DomainError::AlreadyExists(_)), "expected AlreadyExists, got {error:?}");
    assert_mentions(&error, mentions);
}

#[track_caller]
fn assert_precondition(error: DomainError, mentions: &[&str]) {
    assert!(matches!(error, DomainError::FailedPrecondition(_)), "expected FailedPrecondition, got {error:?}");
    assert_mentions(&error, mentions);
}

#[track_caller]
fn assert_denied(error: DomainError, mentions: &[&str]) {
    assert!(matches!(error, DomainError::PermissionDenied(_)), "expected PermissionDenied, got {error:?}");
    assert_mentions(&error, mentions);
}

// ---------------------------------------------------------------------------------
// Tests of the harness itself, so a broken helper cannot make every test pass.
// ---------------------------------------------------------------------------------

#[test]
fn history_records_versions_from_one_with_increasing_times_and_folds_to_the_same_state() {
    let history = proposed();
    let versions: Vec<u64> = history.events.iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=history.version()).collect::<Vec<_>>());
    assert!(history.events.windows(2).all(|w| w[0].recorded_at < w[1].recorded_at));
    assert_eq!(fold(&history.events).unwrap().as_ref(), history.state.as_ref());
    assert_eq!(history.state().version, history.version());
    assert_eq!(history.state().last_activity, at(history.version()));
}

#[test]
fn refuse_returns_the_error_and_records_nothing() {
    let history = team();
    let before = history.state().clone();
    let error = history.refuse(STRANGER, propose(dec(1)));
    assert!(matches!(error, DomainError::PermissionDenied(_)));
    assert_eq!(history.state(), &before);
    assert_eq!(history.version(), 7);
}
