//! Hostile command sequences against the pure core. Unlike `properties`, which draws
//! commands blind, each step here is an *intent* resolved against the current state: a
//! well-formed command (the right approver signing a required function of an open
//! decision), a plausible-but-wrong one (the wrong signer, a function the decision does
//! not need, an unknown or withdrawn decision, a stale revision number, a duplicate
//! assignment...) or raw input that the edge's value parsers must refuse (NUL, too long,
//! a bad slug, a bad UUID...). Because the intent is resolved against the state, the
//! test knows which family of refusal to expect, and checks it.
//!
//! After every step: a refusal left the state as it was; an acceptance folded into a
//! state whose version grew by exactly the number of events; the live state and its
//! projection equal a fresh fold of every event so far and its projection.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

use super::*;
use crate::domain::alignment::{DecisionAlignment, evaluate_decision};
use crate::domain::event::SCHEMA_VERSION;
use crate::domain::state::{DecisionStatus, Stakeholder};

/// Everyone who may be given a role. `STRANGER` is never given one, nor made owner, so a
/// command from them is always refused for want of a right.
const ASSIGNABLE: &[&str] = &[OWNER, DRIVER, ENG, DES, BIZ, CONTRIB, INFORMED];
const EVERYONE: &[&str] = &[OWNER, DRIVER, ENG, DES, BIZ, CONTRIB, INFORMED, STRANGER];
const FUNCTIONS: &[&str] = &["engineering", "design", "business", "legal", "product"];

/// A decision and a feedback that never exist.
const UNKNOWN_DECISION: u128 = 0xfff;
const UNKNOWN_FEEDBACK: u128 = 0xfff;

/// Texts that are legal but hostile: SQL, control characters, bidi overrides, combining
/// marks, ZWJ emoji. Each must be stored verbatim.
const EXOTIC: &[&str] = &[
    "'; DROP TABLE events; --",
    "' OR '1'='1",
    "$$ \\ %_ \\x00",
    "tab\there\r\nnext \u{1b}[31mred\u{1b}[0m \u{7f}\u{1}",
    "\u{200f}\u{202e}txet desrever\u{202c}",
    "zero\u{200d}width e\u{301}\u{308}",
    "👩🏽‍💻 🏳️‍🌈 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
];

/// What a step tries to do. Resolved against the state by `plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intent {
    // Well-formed, valid against the current state.
    Sign,
    Propose,
    ProposeSuperseding,
    Revise,
    Accept,
    RejectDecision,
    Withdraw,
    Supersede,
    Feedback,
    Resolve,
    Reopen,
    Assign,
    Remove,
    ChangeStage,
    Update,
    Revoke,
    Archive,
    // Plausible, but wrong.
    SignAsNonApprover,
    SignUnneededFunction,
    SignUnknownDecision,
    SignClosedDecision,
    SignStaleRevision,
    RejectWithoutReason,
    DuplicateAssign,
    RemoveUnheld,
    OutsiderManages,
    AcceptAsNonDriver,
    AcceptWithoutReason,
    AcceptClosed,
    ProposeDuplicateId,
    OutsiderProposes,
    ReviseIdentical,
    OutsiderFeedback,
    ObjectionOnClosedDecision,
    FeedbackOnUnknownDecision,
    ResolveResolved,
    ResolveUnknown,
    ReopenOpen,
    OutsiderResolves,
    RevokeWithoutSignOff,
    SupersedeSelf,
    SupersedeOpen,
    CreateAgain,
    UpdateNothing,
    // Raw input through the value parsers, as the edge does.
    RawNulInBody,
    RawBlankBody,
    RawTitleOverLimit,
    RawTitleAtLimit,
    RawReasonOverLimit,
    RawExoticBody,
    RawExoticComment,
    RawBadFunction,
    RawBadPrincipal,
    RawBadUuid,
    RawEmptyUuid,
    RawBadKey,
    RawTooManyFunctions,
    RawDuplicateFunctions,
}

/// The weight of each intent: well-formed commands often enough that histories grow.
const INTENTS: &[(u32, Intent)] = &[
    (12, Intent::Sign),
    (5, Intent::Propose),
    (1, Intent::ProposeSuperseding),
    (3, Intent::Revise),
    (4, Intent::Accept),
    (1, Intent::RejectDecision),
    (1, Intent::Withdraw),
    (1, Intent::Supersede),
    (4, Intent::Feedback),
    (2, Intent::Resolve),
    (1, Intent::Reopen),
    (3, Intent::Assign),
    (1, Intent::Remove),
    (1, Intent::ChangeStage),
    (1, Intent::Update),
    (1, Intent::Revoke),
    (1, Intent::Archive),
    (2, Intent::SignAsNonApprover),
    (1, Intent::SignUnneededFunction),
    (1, Intent::SignUnknownDecision),
    (1, Intent::SignClosedDecision),
    (1, Intent::SignStaleRevision),
    (1, Intent::RejectWithoutReason),
    (1, Intent::DuplicateAssign),
    (1, Intent::RemoveUnheld),
    (1, Intent::OutsiderManages),
    (1, Intent::AcceptAsNonDriver),
    (1, Intent::AcceptWithoutReason),
    (1, Intent::AcceptClosed),
    (1, Intent::ProposeDuplicateId),
    (1, Intent::OutsiderProposes),
    (1, Intent::ReviseIdentical),
    (1, Intent::OutsiderFeedback),
    (1, Intent::ObjectionOnClosedDecision),
    (1, Intent::FeedbackOnUnknownDecision),
    (1, Intent::ResolveResolved),
    (1, Intent::ResolveUnknown),
    (1, Intent::ReopenOpen),
    (1, Intent::OutsiderResolves),
    (1, Intent::RevokeWithoutSignOff),
    (1, Intent::SupersedeSelf),
    (1, Intent::SupersedeOpen),
    (1, Intent::CreateAgain),
    (1, Intent::UpdateNothing),
    (1, Intent::RawNulInBody),
    (1, Intent::RawBlankBody),
    (1, Intent::RawTitleOverLimit),
    (1, Intent::RawTitleAtLimit),
    (1, Intent::RawReasonOverLimit),
    (1, Intent::RawExoticBody),
    (1, Intent::RawExoticComment),
    (1, Intent::RawBadFunction),
    (1, Intent::RawBadPrincipal),
    (1, Intent::RawBadUuid),
    (1, Intent::RawEmptyUuid),
    (1, Intent::RawBadKey),
    (1, Intent::RawTooManyFunctions),
    (1, Intent::RawDuplicateFunctions),
];

/// One step: an intent and three seeds that pick among the candidates the state offers.
#[derive(Clone, Debug)]
struct Step {
    intent: Intent,
    seeds: [usize; 3],
}

fn step() -> impl Strategy<Value = Step> {
    let intent = Union::new_weighted(INTENTS.iter().map(|(weight, intent)| (*weight, Just(*intent))).collect());
    (intent, [0usize..64, 0usize..64, 0usize..64]).prop_map(|(intent, seeds)| Step { intent, seeds })
}

/// Where a sequence starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    Bare,
    Team,
    Proposed,
    Aligned,
    Accepted,
}

impl Start {
    fn history(self) -> History {
        match self {
            Start::Bare => History::new().given(OWNER, create()),
            Start::Team => team(),
            Start::Proposed => proposed(),
            Start::Aligned => aligned(),
            Start::Accepted => accepted(),
        }
    }
}

fn scenario() -> impl Strategy<Value = (Start, Vec<Step>)> {
    let start = prop_oneof![
        1 => Just(Start::Bare),
        2 => Just(Start::Team),
        3 => Just(Start::Proposed),
        1 => Just(Start::Aligned),
        1 => Just(Start::Accepted),
    ];
    (start, vec(step(), 1..=40))
}

/// The outcome a step must have.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Accepted,
    Invalid(&'static str),
    NotFound,
    AlreadyExists,
    Precondition,
    Denied,
}

/// A text that must come back verbatim from the state after an accepted command.
#[derive(Clone, Debug)]
enum Verbatim {
    FeedbackBody(FeedbackId, String),
    DecisionTitle(DecisionId, String),
    SignOffComment(DecisionId, Principal, Function, String),
}

/// A step resolved against the state: who sends what, and what must happen. `command`
/// is an error when a value parser refused the raw input, as the edge would.
struct Plan {
    actor: Principal,
    command: Result<Command, DomainError>,
    expect: Expect,
    verbatim: Option<Verbatim>,
}

fn pick<T: Clone>(items: &[T], seed: usize) -> Option<T> {
    if items.is_empty() { None } else { Some(items[seed % items.len()].clone()) }
}

fn plan_of(actor: Principal, command: Command, expect: Expect) -> Option<Plan> {
    Some(Plan { actor, command: Ok(command), expect, verbatim: None })
}

fn raw_plan(actor: Principal, command: Result<Command, DomainError>, expect: Expect) -> Option<Plan> {
    Some(Plan { actor, command, expect, verbatim: None })
}

/// The candidates the state offers.
struct View<'a> {
    state: &'a Initiative,
}

impl<'a> View<'a> {
    fn decisions(&self, status: impl Fn(DecisionStatus) -> bool) -> Vec<&'a Decision> {
        self.state.decisions.values().filter(|d| status(d.status)).collect()
    }

    fn open(&self) -> Vec<&'a Decision> {
        self.decisions(|s| s == DecisionStatus::Proposed)
    }

    fn closed(&self) -> Vec<&'a Decision> {
        self.decisions(|s| s != DecisionStatus::Proposed)
    }

    fn accepted(&self) -> Vec<&'a Decision> {
        self.decisions(|s| s == DecisionStatus::Accepted)
    }

    fn drivers(&self) -> Vec<Principal> {
        self.with_role(Role::Driver).into_iter().map(|s| s.principal).collect()
    }

    fn with_role(&self, role: Role) -> Vec<Stakeholder> {
        self.state.stakeholders.iter().filter(|s| s.role == role).cloned().collect()
    }

    /// (person, function) pairs that may give feedback for the function.
    fn authors(&self) -> Vec<(Principal, Function)> {
        self.state
            .stakeholders
            .iter()
            .filter(|s| s.role != Role::Informed)
            .map(|s| (s.principal.clone(), s.function.clone()))
            .collect()
    }

    /// (decision, function, approver) triples: an approver who may sign a function the
    /// open decision needs.
    fn signable(&self) -> Vec<(&'a Decision, Function, Principal)> {
        let mut out = Vec::new();
        for decision in self.open() {
            for function in decision.required_functions() {
                for approver in self.state.approvers(function) {
                    out.push((decision, function.clone(), approver.clone()));
                }
            }
        }
        out
    }

    fn feedback(&self, open: bool) -> Vec<&'a Feedback> {
        self.state.feedback.values().filter(|f| f.is_open() == open).collect()
    }

    fn owner(&self) -> Principal {
        self.state.owner.clone()
    }

    fn non_drivers(&self) -> Vec<Principal> {
        EVERYONE.iter().map(|p| who(p)).filter(|p| !self.state.is_driver(p)).collect()
    }
}

/// Fresh ids: the stream version is unique per accepted command, so `100 + version`
/// never names an existing decision or feedback.
fn fresh_decision(state: &Initiative) -> DecisionId {
    dec(100 + u128::from(state.version))
}

fn fresh_feedback(state: &Initiative) -> FeedbackId {
    fb(100 + u128::from(state.version))
}

fn fresh_content(state: &Initiative) -> DecisionContent {
    content("Use Stripe for payments", &format!("proposal at version {}", state.version))
}

fn text_of(seed: usize) -> String {
    EXOTIC[seed % EXOTIC.len()].to_owned()
}

/// Resolves a step against the state. `None`: the state offers no candidate (e.g. a
/// sign-off intent with no open decision); the step is skipped.
fn plan(state: &Initiative, step: &Step) -> Option<Plan> {
    use Expect::*;
    let view = View { state };
    let [a, b, c] = step.seeds;
    let owner = view.owner();
    let stranger = who(STRANGER);
    match step.intent {
        Intent::Sign => {
            let (decision, function, approver) = pick(&view.signable(), a)?;
            let reject = b % 4 == 0;
            let command = Command::RecordSignOff {
                decision_id: decision.id,
                function,
                verdict: if reject { Verdict::Reject } else { Verdict::Approve },
                reason: if reject { "too expensive".into() } else { String::new() },
                comment: String::new(),
                revision: (c % 2 == 0).then(|| decision.revision()),
            };
            plan_of(approver, command, Accepted)
        }
        Intent::Propose => {
            let actor = if a % 2 == 0 { owner } else { pick(&view.authors(), b).map(|(p, _)| p).unwrap_or(owner) };
            let command = Command::ProposeDecision {
                decision_id: fresh_decision(state),
                content: fresh_content(state),
                required_functions: (c % 3 == 0).then(|| funcs(&["engineering", "legal"])),
                supersedes: None,
            };
            plan_of(actor, command, Accepted)
        }
        Intent::ProposeSuperseding => {
            let old = pick(&view.accepted(), a)?;
            let command = Command::ProposeDecision {
                decision_id: fresh_decision(state),
                content: fresh_content(state),
                required_functions: None,
                supersedes: Some(old.id),
            };
            plan_of(owner, command, Accepted)
        }
        Intent::Revise => {
            let decision = pick(&view.open(), a)?;
            let command = Command::ReviseDecision {
                decision_id: decision.id,
                kind: if b % 2 == 0 { RevisionKind::Material } else { RevisionKind::Editorial },
                content: fresh_content(state),
                required_functions: None,
                note: "hostile revision".into(),
            };
            plan_of(decision.proposed_by.clone(), command, Accepted)
        }
        Intent::Accept => {
            let decision = pick(&view.open(), a)?;
            let driver = pick(&view.drivers(), b)?;
            let aligned = evaluate_decision(state, decision).alignment == DecisionAlignment::Aligned;
            let override_reason = (!aligned || c % 2 == 0).then(|| "disagree and commit".to_owned());
            plan_of(driver, Command::AcceptDecision { decision_id: decision.id, override_reason }, Accepted)
        }
        Intent::RejectDecision => {
            let decision = pick(&view.open(), a)?;
            let driver = pick(&view.drivers(), b)?;
            plan_of(driver, Command::RejectDecision { decision_id: decision.id, reason: "not now".into() }, Accepted)
        }
        Intent::Withdraw => {
            let decision = pick(&view.open(), a)?;
            let command = Command::WithdrawDecision { decision_id: decision.id, reason: String::new() };
            plan_of(decision.proposed_by.clone(), command, Accepted)
        }
        Intent::Supersede => {
            let accepted = view.accepted();
            let old = pick(&accepted, a)?;
            let candidates: Vec<_> = accepted.iter().filter(|d| d.id != old.id && d.supersedes.is_none()).collect();
            let new = pick(&candidates, b)?;
            let driver = pick(&view.drivers(), c)?;
            plan_of(driver, Command::SupersedeDecision { decision_id: old.id, superseded_by: new.id }, Accepted)
        }
        Intent::Feedback => {
            let (author, function) = pick(&view.authors(), a)?;
            let kind = FeedbackKind::ALL[b % FeedbackKind::ALL.len()];
            let candidates = if kind == FeedbackKind::Objection { view.open() } else { view.decisions(|_| true) };
            let decision_id = if c % 3 == 0 { None } else { pick(&candidates, c).map(|d| d.id) };
            let command = Command::RecordFeedback {
                feedback_id: fresh_feedback(state),
                decision_id,
                function,
                kind,
                source: FeedbackSource::ALL[c % FeedbackSource::ALL.len()],
                body: format!("{kind} at version {}", state.version),
            };
            plan_of(author, command, Accepted)
        }
        Intent::Resolve => {
            let feedback = pick(&view.feedback(true), a)?;
            let command = Command::ResolveFeedback { feedback_id: feedback.id, resolution: "addressed".into() };
            plan_of(feedback.author.clone(), command, Accepted)
        }
        Intent::Reopen => {
            let feedback = pick(&view.feedback(false), a)?;
            let closed_target = feedback
                .decision_id
                .and_then(|d| state.decisions.get(&d))
                .is_some_and(|d| !d.is_open() && feedback.kind == FeedbackKind::Objection);
            let command = Command::ReopenFeedback { feedback_id: feedback.id, reason: String::new() };
            plan_of(feedback.author.clone(), command, if closed_target { Precondition } else { Accepted })
        }
        Intent::Assign => {
            let principal = who(ASSIGNABLE[a % ASSIGNABLE.len()]);
            let function = func(FUNCTIONS[b % FUNCTIONS.len()]);
            let role = Role::ALL[c % Role::ALL.len()];
            let expect = if state.has_role(&principal, &function, role) { AlreadyExists } else { Accepted };
            plan_of(owner, Command::AssignStakeholder { principal, function, role }, expect)
        }
        Intent::Remove => {
            let held = pick(&state.stakeholders.iter().cloned().collect::<Vec<_>>(), a)?;
            let command =
                Command::RemoveStakeholder { principal: held.principal, function: held.function, role: held.role };
            plan_of(owner, command, Accepted)
        }
        Intent::ChangeStage => {
            let stage = Stage::ALL[a % Stage::ALL.len()];
            let expect = if stage == state.stage { Precondition } else { Accepted };
            plan_of(owner, Command::ChangeStage { stage }, expect)
        }
        Intent::Update => {
            let command = Command::UpdateInitiative {
                title: Some(format!("Checkout at version {}", state.version)),
                summary: (a % 2 == 0).then(|| text_of(b)),
                owner: None,
                required_functions: None,
            };
            plan_of(owner, command, Accepted)
        }
        Intent::Revoke => {
            let in_force: Vec<_> = view
                .open()
                .into_iter()
                .flat_map(|d| d.sign_offs.iter().map(move |s| (d.id, s.signer.clone(), s.function.clone())))
                .collect();
            let (decision_id, signer, function) = pick(&in_force, a)?;
            plan_of(signer, Command::RevokeSignOff { decision_id, function }, Accepted)
        }
        Intent::Archive => plan_of(owner, Command::ArchiveInitiative { reason: text_of(a) }, Accepted),

        Intent::SignAsNonApprover => {
            let decision = pick(&view.open(), a)?;
            let function = pick(&decision.required_functions().iter().cloned().collect::<Vec<_>>(), b)?;
            let outsiders: Vec<Principal> =
                EVERYONE.iter().map(|p| who(p)).filter(|p| !state.has_role(p, &function, Role::Approver)).collect();
            let actor = pick(&outsiders, c)?;
            plan_of(actor, approve_command(decision.id, function, None), Denied)
        }
        Intent::SignUnneededFunction => {
            let decision = pick(&view.open(), a)?;
            let unneeded: Vec<Function> =
                FUNCTIONS.iter().map(|f| func(f)).filter(|f| !decision.required_functions().contains(f)).collect();
            let function = pick(&unneeded, b)?;
            // Even its approver may not sign it: the rule about the decision comes first.
            let actor = state.approvers(&function).first().map(|p| (*p).clone()).unwrap_or_else(|| who(ENG));
            plan_of(actor, approve_command(decision.id, function, None), Precondition)
        }
        Intent::SignUnknownDecision => {
            plan_of(who(ENG), approve_command(dec(UNKNOWN_DECISION), func("engineering"), None), NotFound)
        }
        Intent::SignClosedDecision => {
            let decision = pick(&view.closed(), a)?;
            let function = pick(&decision.required_functions().iter().cloned().collect::<Vec<_>>(), b)?;
            let actor = state.approvers(&function).first().map(|p| (*p).clone()).unwrap_or_else(|| who(ENG));
            plan_of(actor, approve_command(decision.id, function, None), Precondition)
        }
        Intent::SignStaleRevision => {
            let (decision, function, approver) = pick(&view.signable(), a)?;
            let current = decision.revision();
            let read = if current > 1 && b % 2 == 0 { current - 1 } else { current + 1 + (b as u32 % 3) };
            plan_of(approver, approve_command(decision.id, function, Some(read)), Precondition)
        }
        Intent::RejectWithoutReason => {
            let (decision, function, approver) = pick(&view.signable(), a)?;
            let command = Command::RecordSignOff {
                decision_id: decision.id,
                function,
                verdict: Verdict::Reject,
                reason: ["", " ", "\t\r\n"][b % 3].into(),
                comment: "no reason given".into(),
                revision: None,
            };
            plan_of(approver, command, Invalid("reason"))
        }
        Intent::DuplicateAssign => {
            let held = pick(&state.stakeholders.iter().cloned().collect::<Vec<_>>(), a)?;
            let command =
                Command::AssignStakeholder { principal: held.principal, function: held.function, role: held.role };
            plan_of(owner, command, AlreadyExists)
        }
        Intent::RemoveUnheld => {
            let principal = who(EVERYONE[a % EVERYONE.len()]);
            let function = func(FUNCTIONS[b % FUNCTIONS.len()]);
            let role = Role::ALL[c % Role::ALL.len()];
            let expect = if state.has_role(&principal, &function, role) { Accepted } else { NotFound };
            plan_of(owner, Command::RemoveStakeholder { principal, function, role }, expect)
        }
        Intent::OutsiderManages => {
            let command = match a % 4 {
                0 => Command::AssignStakeholder {
                    principal: stranger.clone(),
                    function: func("legal"),
                    role: Role::Driver,
                },
                1 => Command::ChangeStage { stage: state.stage },
                2 => Command::ArchiveInitiative { reason: "mine now".into() },
                _ => Command::UpdateInitiative {
                    title: Some("hijacked".into()),
                    summary: None,
                    owner: Some(stranger.clone()),
                    required_functions: None,
                },
            };
            plan_of(stranger, command, Denied)
        }
        Intent::AcceptAsNonDriver => {
            let decision = pick(&view.open(), a)?;
            let actor = pick(&view.non_drivers(), b)?;
            let command =
                Command::AcceptDecision { decision_id: decision.id, override_reason: Some("I say so".into()) };
            plan_of(actor, command, Denied)
        }
        Intent::AcceptWithoutReason => {
            let decision = pick(&view.open(), a)?;
            let driver = pick(&view.drivers(), b)?;
            let aligned = evaluate_decision(state, decision).alignment == DecisionAlignment::Aligned;
            let override_reason = [None, Some(String::new()), Some(" \t ".to_owned())][c % 3].clone();
            let command = Command::AcceptDecision { decision_id: decision.id, override_reason };
            plan_of(driver, command, if aligned { Accepted } else { Precondition })
        }
        Intent::AcceptClosed => {
            let decision = pick(&view.closed(), a)?;
            let driver = pick(&view.drivers(), b).unwrap_or_else(|| who(DRIVER));
            let command = Command::AcceptDecision { decision_id: decision.id, override_reason: Some("again".into()) };
            plan_of(driver, command, Precondition)
        }
        Intent::ProposeDuplicateId => {
            let existing = pick(&view.decisions(|_| true), a)?;
            let command = Command::ProposeDecision {
                decision_id: existing.id,
                content: fresh_content(state),
                required_functions: None,
                supersedes: None,
            };
            plan_of(owner, command, AlreadyExists)
        }
        Intent::OutsiderProposes => {
            let command = Command::ProposeDecision {
                decision_id: fresh_decision(state),
                content: fresh_content(state),
                required_functions: None,
                supersedes: None,
            };
            plan_of(stranger, command, Denied)
        }
        Intent::ReviseIdentical => {
            let decision = pick(&view.open(), a)?;
            let command = Command::ReviseDecision {
                decision_id: decision.id,
                kind: if b % 2 == 0 { RevisionKind::Material } else { RevisionKind::Editorial },
                content: decision.current().content.clone(),
                required_functions: (c % 2 == 0).then(|| decision.required_functions().clone()),
                note: "no change".into(),
            };
            plan_of(decision.proposed_by.clone(), command, Invalid("content"))
        }
        Intent::OutsiderFeedback => {
            let command = Command::RecordFeedback {
                feedback_id: fresh_feedback(state),
                decision_id: None,
                function: func(FUNCTIONS[a % FUNCTIONS.len()]),
                kind: FeedbackKind::ALL[b % FeedbackKind::ALL.len()],
                source: FeedbackSource::Customer,
                body: "let me in".into(),
            };
            plan_of(stranger, command, Denied)
        }
        Intent::ObjectionOnClosedDecision => {
            let decision = pick(&view.closed(), a)?;
            let (author, function) = pick(&view.authors(), b).unwrap_or_else(|| (who(ENG), func("engineering")));
            let command = Command::RecordFeedback {
                feedback_id: fresh_feedback(state),
                decision_id: Some(decision.id),
                function,
                kind: FeedbackKind::Objection,
                source: FeedbackSource::Internal,
                body: "too late".into(),
            };
            plan_of(author, command, Precondition)
        }
        Intent::FeedbackOnUnknownDecision => {
            let (author, function) = pick(&view.authors(), a).unwrap_or_else(|| (who(ENG), func("engineering")));
            let command = Command::RecordFeedback {
                feedback_id: fresh_feedback(state),
                decision_id: Some(dec(UNKNOWN_DECISION)),
                function,
                kind: FeedbackKind::ALL[b % FeedbackKind::ALL.len()],
                source: FeedbackSource::Internal,
                body: "about what?".into(),
            };
            plan_of(author, command, NotFound)
        }
        Intent::ResolveResolved => {
            let feedback = pick(&view.feedback(false), a)?;
            let command = Command::ResolveFeedback { feedback_id: feedback.id, resolution: "twice".into() };
            plan_of(feedback.author.clone(), command, Precondition)
        }
        Intent::ResolveUnknown => {
            let command = Command::ResolveFeedback { feedback_id: fb(UNKNOWN_FEEDBACK), resolution: "what?".into() };
            plan_of(owner, command, NotFound)
        }
        Intent::ReopenOpen => {
            let feedback = pick(&view.feedback(true), a)?;
            let command = Command::ReopenFeedback { feedback_id: feedback.id, reason: "still open".into() };
            plan_of(feedback.author.clone(), command, Precondition)
        }
        Intent::OutsiderResolves => {
            let feedback = pick(&view.feedback(true), a)?;
            let command = Command::ResolveFeedback { feedback_id: feedback.id, resolution: "not yours".into() };
            plan_of(stranger, command, Denied)
        }
        Intent::RevokeWithoutSignOff => {
            let decision = pick(&view.open(), a)?;
            let function = func(FUNCTIONS[b % FUNCTIONS.len()]);
            plan_of(stranger, Command::RevokeSignOff { decision_id: decision.id, function }, NotFound)
        }
        Intent::SupersedeSelf => {
            let id = pick(&view.decisions(|_| true), a).map(|d| d.id).unwrap_or(dec(UNKNOWN_DECISION));
            let driver = pick(&view.drivers(), b).unwrap_or_else(|| who(DRIVER));
            plan_of(driver, Command::SupersedeDecision { decision_id: id, superseded_by: id }, Invalid("superseded_by"))
        }
        Intent::SupersedeOpen => {
            let open = pick(&view.open(), a)?;
            let accepted = pick(&view.accepted(), b)?;
            let driver = pick(&view.drivers(), c)?;
            let (decision_id, superseded_by) = if c % 2 == 0 { (accepted.id, open.id) } else { (open.id, accepted.id) };
            plan_of(driver, Command::SupersedeDecision { decision_id, superseded_by }, Precondition)
        }
        Intent::CreateAgain => {
            let Command::CreateInitiative { key, title, summary, owner, stage, required_functions, .. } = create()
            else {
                unreachable!("create() builds a CreateInitiative")
            };
            let command = Command::CreateInitiative {
                id: InitiativeId(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002)),
                key,
                title,
                summary,
                owner,
                stage,
                required_functions,
            };
            plan_of(who(EVERYONE[a % EVERYONE.len()]), command, AlreadyExists)
        }
        Intent::UpdateNothing => {
            let command = Command::UpdateInitiative {
                title: Some(state.title.clone()),
                summary: (a % 2 == 0).then(|| state.summary.clone()),
                owner: (b % 2 == 0).then(|| state.owner.clone()),
                required_functions: (c % 2 == 0).then(|| state.required_functions.clone()),
            };
            plan_of(owner, command, Invalid("initiative"))
        }

        Intent::RawNulInBody | Intent::RawBlankBody | Intent::RawExoticBody => {
            let (author, function) = pick(&view.authors(), a)?;
            let raw = match step.intent {
                Intent::RawNulInBody => ["\0", "before\0after", "\u{1}\0\u{2}"][b % 3].to_owned(),
                Intent::RawBlankBody => ["", "   ", "\t\r\n", "\u{3000}"][b % 4].to_owned(),
                _ if c % 3 == 0 => "é".repeat(MAX_TEXT),
                _ => text_of(b),
            };
            let feedback_id = fresh_feedback(state);
            let command = parse_text("body", &raw, MAX_TEXT, true).map(|body| Command::RecordFeedback {
                feedback_id,
                decision_id: None,
                function,
                kind: FeedbackKind::Comment,
                source: FeedbackSource::UserResearch,
                body,
            });
            let expect = if step.intent == Intent::RawExoticBody { Accepted } else { Invalid("body") };
            let verbatim = Some(Verbatim::FeedbackBody(feedback_id, raw));
            Some(Plan { actor: author, command, expect, verbatim })
        }
        Intent::RawTitleOverLimit | Intent::RawTitleAtLimit => {
            let unit = ["x", "é", "👩🏽‍💻", "\u{202e}"][a % 4];
            let chars = unit.chars().count();
            let at_limit = step.intent == Intent::RawTitleAtLimit;
            // Whole units up to the limit, then single characters to hit it exactly.
            let mut raw = unit.repeat(MAX_TITLE / chars);
            raw.push_str(&"y".repeat(MAX_TITLE % chars + usize::from(!at_limit)));
            let decision_id = fresh_decision(state);
            let command = parse_text("content.title", &raw, MAX_TITLE, true).map(|title| {
                let mut content = fresh_content(state);
                content.title = title;
                Command::ProposeDecision { decision_id, content, required_functions: None, supersedes: None }
            });
            let expect = if at_limit { Accepted } else { Invalid("content.title") };
            Some(Plan { actor: owner, command, expect, verbatim: Some(Verbatim::DecisionTitle(decision_id, raw)) })
        }
        Intent::RawReasonOverLimit => {
            let decision = pick(&view.open(), a)?;
            let driver = pick(&view.drivers(), b).unwrap_or_else(|| who(DRIVER));
            let raw = "ü".repeat(MAX_REASON + 1);
            let command = parse_text("reason", &raw, MAX_REASON, true)
                .map(|reason| Command::RejectDecision { decision_id: decision.id, reason });
            raw_plan(driver, command, Invalid("reason"))
        }
        Intent::RawExoticComment => {
            let (decision, function, approver) = pick(&view.signable(), a)?;
            let raw = if c % 4 == 0 { "🙂".repeat(MAX_REASON) } else { text_of(b) };
            let command = parse_text("comment", &raw, MAX_REASON, false).map(|comment| Command::RecordSignOff {
                decision_id: decision.id,
                function: function.clone(),
                verdict: Verdict::Approve,
                reason: String::new(),
                comment,
                revision: None,
            });
            let verbatim = Some(Verbatim::SignOffComment(decision.id, approver.clone(), function, raw));
            Some(Plan { actor: approver, command, expect: Accepted, verbatim })
        }
        Intent::RawBadFunction => {
            let decision = pick(&view.decisions(|_| true), a).map(|d| d.id).unwrap_or(dec(1));
            let raw = ["Engineering", "eng ineering", "-legal", "légal", "", "engineering\0"][b % 6];
            let command = Function::parse("function", raw).map(|function| approve_command(decision, function, None));
            raw_plan(who(ENG), command, Invalid("function"))
        }
        Intent::RawBadPrincipal => {
            let raw = ["ann @example.com", "", "tab\tbed", "nul\0", "\u{1b}[31m", &"p".repeat(MAX_PRINCIPAL + 1)]
                [a % 6]
                .to_owned();
            let command = Principal::parse("principal", &raw).map(|principal| Command::AssignStakeholder {
                principal,
                function: func("legal"),
                role: Role::Approver,
            });
            raw_plan(owner, command, Invalid("principal"))
        }
        Intent::RawBadUuid | Intent::RawEmptyUuid => {
            let raw = if step.intent == Intent::RawEmptyUuid {
                ""
            } else {
                ["not-a-uuid", "0190", "'; DROP TABLE events; --", "{00000000-0000-0000-0000-00000000000g}"][a % 4]
            };
            let command =
                DecisionId::parse("decision_id", raw).map(|id| approve_command(id, func("engineering"), None));
            raw_plan(who(ENG), command, Invalid("decision_id"))
        }
        Intent::RawBadKey => {
            let raw = ["checkout 42", "42-CHECKOUT", "C", "CHECKOUT--42", "CHECKOUT-", "ÄPFEL-1", ""][a % 7];
            let command = InitiativeKey::parse("key", raw).map(|key| Command::CreateInitiative {
                id: INITIATIVE,
                key,
                title: "again".into(),
                summary: String::new(),
                owner: None,
                stage: None,
                required_functions: None,
            });
            raw_plan(owner, command, Invalid("key"))
        }
        Intent::RawTooManyFunctions | Intent::RawDuplicateFunctions => {
            let raw: Vec<String> = if step.intent == Intent::RawTooManyFunctions {
                (0..=MAX_FUNCTIONS).map(|i| format!("f{i}")).collect()
            } else {
                vec!["legal".into(), FUNCTIONS[a % FUNCTIONS.len()].into(), "legal".into()]
            };
            let command =
                Function::parse_set("required_functions", &raw).map(|required_functions| Command::ProposeDecision {
                    decision_id: fresh_decision(state),
                    content: fresh_content(state),
                    required_functions,
                    supersedes: None,
                });
            raw_plan(owner, command, Invalid("required_functions"))
        }
    }
}

fn approve_command(decision_id: DecisionId, function: Function, revision: Option<u32>) -> Command {
    Command::RecordSignOff {
        decision_id,
        function,
        verdict: Verdict::Approve,
        reason: String::new(),
        comment: String::new(),
        revision,
    }
}

/// The family of an outcome, for the tally and messages.
fn family(outcome: &Result<Vec<Event>, DomainError>) -> &'static str {
    match outcome {
        Ok(_) => "accepted",
        Err(DomainError::InvalidArgument { .. }) => "invalid_argument",
        Err(DomainError::NotFound(_)) => "not_found",
        Err(DomainError::AlreadyExists(_)) => "already_exists",
        Err(DomainError::FailedPrecondition(_)) => "failed_precondition",
        Err(DomainError::PermissionDenied(_)) => "permission_denied",
        Err(DomainError::VersionConflict { .. }) => "version_conflict",
    }
}

fn matches_expectation(expect: &Expect, outcome: &Result<Vec<Event>, DomainError>) -> bool {
    match (expect, outcome) {
        (Expect::Accepted, Ok(_)) => true,
        (Expect::Invalid(field), Err(DomainError::InvalidArgument { field: actual, .. })) => field == actual,
        (Expect::NotFound, Err(DomainError::NotFound(_)))
        | (Expect::AlreadyExists, Err(DomainError::AlreadyExists(_)))
        | (Expect::Precondition, Err(DomainError::FailedPrecondition(_)))
        | (Expect::Denied, Err(DomainError::PermissionDenied(_))) => true,
        _ => false,
    }
}

/// How often each outcome family occurred, and how many steps found no candidate.
#[derive(Debug, Default)]
struct Tally {
    families: BTreeMap<&'static str, usize>,
    intents: BTreeMap<String, usize>,
    skipped: usize,
}

/// Runs one sequence, checking every property after every step.
fn run_hostile(start: Start, steps: &[Step], tally: &mut Tally) -> Result<(), TestCaseError> {
    let history = start.history();
    let mut events = history.events.clone();
    let mut state = history.state.clone().expect("every start creates the initiative");
    for step in steps {
        let Some(plan) = plan(&state, step) else {
            tally.skipped += 1;
            continue;
        };
        // An archived initiative takes no more commands: whatever the step meant, a
        // command that parsed is refused as a precondition (a second creation still
        // finds the initiative first).
        let expect = match &plan.command {
            Ok(Command::CreateInitiative { .. }) | Err(_) => plan.expect.clone(),
            Ok(_) if state.archived.is_some() => Expect::Precondition,
            Ok(_) => plan.expect.clone(),
        };
        let before = state.clone();
        let projected_before = project(&state);
        let outcome = match &plan.command {
            Ok(command) => decide(Some(&state), command, &plan.actor),
            Err(refused) => Err(refused.clone()),
        };
        *tally.families.entry(family(&outcome)).or_default() += 1;
        *tally.intents.entry(format!("{:?}", step.intent)).or_default() += 1;
        prop_assert!(
            matches_expectation(&expect, &outcome),
            "{:?} by {} ({:?}) expected {:?}, got {:?}",
            step.intent,
            plan.actor,
            plan.command,
            expect,
            outcome.as_ref().map(|events| events.iter().map(Event::event_type).collect::<Vec<_>>())
        );
        match outcome {
            Err(error) => {
                if let DomainError::InvalidArgument { field, message } = &error {
                    prop_assert!(!field.is_empty() && !message.is_empty(), "an invalid argument says what and why");
                }
                prop_assert!(!error.to_string().is_empty());
                // The caller folds nothing: the state and its projection are as they were.
                prop_assert_eq!(&state, &before);
                prop_assert_eq!(project(&state), projected_before);
            }
            Ok(new_events) => {
                prop_assert!(!new_events.is_empty(), "an accepted command records something: {:?}", step.intent);
                let count = new_events.len() as u64;
                for event in new_events {
                    let version = events.len() as u64 + 1;
                    let payload = event.payload();
                    let stored =
                        Event::from_stored(event.event_type(), SCHEMA_VERSION, payload).map_err(TestCaseError::fail)?;
                    prop_assert_eq!(&stored, &event, "the stored payload gives back the event");
                    let recorded = Recorded { version, actor: plan.actor.clone(), recorded_at: at(version), event };
                    state = evolve(Some(state), &recorded)
                        .map_err(|e| TestCaseError::fail(format!("decide produced an event the fold refuses: {e}")))?;
                    events.push(recorded);
                }
                prop_assert_eq!(state.version, before.version + count, "the version grew by the number of events");
                prop_assert_eq!(state.version, events.len() as u64);
                if let Some(verbatim) = &plan.verbatim {
                    check_verbatim(&state, verbatim)?;
                }
            }
        }
        let refolded = fold(&events).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(refolded.as_ref(), Some(&state), "the live state is the fold of every event");
        prop_assert_eq!(project(&state), project(&refolded.expect("folded")), "live projection equals a rebuild");
    }
    Ok(())
}

fn check_verbatim(state: &Initiative, verbatim: &Verbatim) -> Result<(), TestCaseError> {
    match verbatim {
        Verbatim::FeedbackBody(id, text) => {
            prop_assert_eq!(&state.feedback[id].body, text);
            let view = project(state);
            let json = serde_json::to_string(&view).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: AlignmentView = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, view, "the projection round-trips through JSON");
        }
        Verbatim::DecisionTitle(id, text) => {
            prop_assert_eq!(state.decisions[id].title(), text.as_str());
            prop_assert_eq!(text.chars().count(), MAX_TITLE);
            let view = project(state);
            prop_assert!(view.decisions.iter().any(|d| d.decision_id == *id && &d.title == text));
        }
        Verbatim::SignOffComment(id, signer, function, text) => {
            let sign_off = state.decisions[id].sign_off_of(signer, function).expect("the sign-off is in force");
            prop_assert_eq!(&sign_off.comment, text);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Nothing panics; refusals change nothing and are of the expected family; accepted
    /// commands grow the version by their events; the live projection equals a rebuild.
    #[test]
    fn hostile_sequences_keep_the_state_and_its_projection_consistent((start, steps) in scenario()) {
        run_hostile(start, &steps, &mut Tally::default())?;
    }
}

/// The generator is not degenerate: over a fixed sample it accepts commands, refuses
/// with every family of error, and resolves most intents against the state.
#[test]
fn hostile_generator_reaches_every_outcome_family() {
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]));
    let strategy = scenario();
    let mut tally = Tally::default();
    let mut steps_total = 0;
    for _ in 0..64 {
        let (start, steps) = strategy.new_tree(&mut runner).expect("generate").current();
        steps_total += steps.len();
        if let Err(failure) = run_hostile(start, &steps, &mut tally) {
            panic!("{failure}");
        }
    }
    for family in
        ["accepted", "invalid_argument", "not_found", "already_exists", "failed_precondition", "permission_denied"]
    {
        assert!(tally.families.get(family).copied().unwrap_or(0) > 0, "no {family} in {tally:?}");
    }
    assert!(tally.families["accepted"] * 4 > steps_total, "a quarter of the steps are accepted: {tally:?}");
    assert!(tally.skipped * 3 < steps_total, "most intents find a candidate: {tally:?}");
    assert!(tally.intents.len() * 10 >= INTENTS.len() * 9, "most intents occur: {tally:?}");
}
