//! Property tests: arbitrary command sequences from a small fixed cast of people,
//! functions, decisions and feedback. Most commands are refused; the ones accepted
//! build a history on which the fold, the snapshot and the stored event schema must
//! all agree.

use proptest::collection::{btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;

use super::*;
use crate::domain::alignment::{DecisionAlignment, FunctionState, InitiativeStatus, evaluate_decision};
use crate::domain::event::SCHEMA_VERSION;
use crate::domain::state::DecisionStatus;

const PEOPLE: &[&str] = &[OWNER, DRIVER, ENG, DES, BIZ, CONTRIB, INFORMED, STRANGER];
const FUNCTIONS: &[&str] = &["engineering", "design", "business", "legal", "product"];

fn person() -> impl Strategy<Value = &'static str> {
    select(PEOPLE)
}

fn principal() -> impl Strategy<Value = Principal> {
    person().prop_map(who)
}

fn function() -> impl Strategy<Value = Function> {
    select(FUNCTIONS).prop_map(func)
}

fn functions() -> impl Strategy<Value = Option<BTreeSet<Function>>> {
    option::of(btree_set(function(), 1..=3))
}

/// Three decisions, the first most often, so that commands meet existing decisions.
fn decision_id() -> impl Strategy<Value = DecisionId> {
    prop_oneof![5 => Just(dec(1)), 3 => Just(dec(2)), 2 => Just(dec(3))]
}

fn feedback_id() -> impl Strategy<Value = FeedbackId> {
    prop_oneof![5 => Just(fb(1)), 3 => Just(fb(2)), 2 => Just(fb(3))]
}

fn text() -> impl Strategy<Value = String> {
    select(&["", "  ", "ok", "because of the deadline"][..]).prop_map(String::from)
}

fn decision_content() -> impl Strategy<Value = DecisionContent> {
    (select(&["Use Stripe", "Use Adyen"][..]), select(&["Stripe", "Adyen", "Both"][..]))
        .prop_map(|(title, proposal)| content(title, proposal))
}

/// Mostly someone the rule allows, sometimes anyone: refusals are half the rules.
fn mostly(allowed: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => select(allowed), 1 => person()]
}

/// An approver with the function they approve for in `team()`, or sometimes anyone
/// with any function.
fn signer() -> impl Strategy<Value = (&'static str, Function)> {
    let approvers: &'static [(&'static str, &'static str)] =
        &[(ENG, "engineering"), (DES, "design"), (BIZ, "business")];
    prop_oneof![
        4 => select(approvers).prop_map(|(person, function)| (person, func(function))),
        1 => (person(), function()),
    ]
}

/// Someone who may give feedback for a function in `team()`, or sometimes anyone.
fn author() -> impl Strategy<Value = (&'static str, Function)> {
    let authors: &'static [(&'static str, &'static str)] =
        &[(CONTRIB, "engineering"), (ENG, "engineering"), (DES, "design"), (BIZ, "business"), (DRIVER, "product")];
    prop_oneof![
        4 => select(authors).prop_map(|(person, function)| (person, func(function))),
        1 => (person(), function()),
    ]
}

/// A role held in `team()`, or sometimes any triple.
fn stakeholder() -> impl Strategy<Value = (Principal, Function, Role)> {
    let held: &'static [(&'static str, &'static str, Role)] = &[
        (DRIVER, "product", Role::Driver),
        (ENG, "engineering", Role::Approver),
        (DES, "design", Role::Approver),
        (BIZ, "business", Role::Approver),
        (CONTRIB, "engineering", Role::Contributor),
        (INFORMED, "design", Role::Informed),
    ];
    prop_oneof![
        3 => select(held).prop_map(|(person, function, role)| (who(person), func(function), role)),
        1 => (principal(), function(), select(Role::ALL)),
    ]
}

const MANAGERS: &[&str] = &[OWNER, DRIVER];
const DRIVERS: &[&str] = &[DRIVER];
const PROPOSERS: &[&str] = &[OWNER, DRIVER, ENG, CONTRIB];
const RESOLVERS: &[&str] = &[DRIVER, CONTRIB, ENG, DES, BIZ];

/// One step: who issues which command, drawn so that many are allowed.
fn step() -> impl Strategy<Value = (&'static str, Command)> {
    prop_oneof![
        1 => (person(), Just(create())),
        2 => (mostly(MANAGERS), option::of(text()), option::of(text()), option::of(principal()), functions()).prop_map(
            |(actor, title, summary, owner, required_functions)| {
                (actor, Command::UpdateInitiative { title, summary, owner, required_functions })
            }
        ),
        2 => (mostly(MANAGERS), select(Stage::ALL)).prop_map(|(actor, stage)| (actor, Command::ChangeStage { stage })),
        1 => (person(), text()).prop_map(|(actor, reason)| (actor, Command::ArchiveInitiative { reason })),
        4 => (mostly(MANAGERS), principal(), function(), select(Role::ALL)).prop_map(|(actor, principal, function, role)| {
            (actor, Command::AssignStakeholder { principal, function, role })
        }),
        1 => (mostly(MANAGERS), stakeholder()).prop_map(|(actor, (principal, function, role))| {
            (actor, Command::RemoveStakeholder { principal, function, role })
        }),
        8 => (mostly(PROPOSERS), decision_id(), decision_content(), functions(), option::weighted(0.2, decision_id()))
            .prop_map(|(actor, decision_id, content, required_functions, supersedes)| {
                (actor, Command::ProposeDecision { decision_id, content, required_functions, supersedes })
            }),
        6 => (mostly(PROPOSERS), decision_id(), select(RevisionKind::ALL), decision_content(), functions(), text()).prop_map(
            |(actor, decision_id, kind, content, required_functions, note)| {
                (actor, Command::ReviseDecision { decision_id, kind, content, required_functions, note })
            }
        ),
        8 => (mostly(DRIVERS), decision_id(), option::weighted(0.7, text())).prop_map(|(actor, decision_id, override_reason)| {
            (actor, Command::AcceptDecision { decision_id, override_reason })
        }),
        2 => (mostly(DRIVERS), decision_id(), text())
            .prop_map(|(actor, decision_id, reason)| (actor, Command::RejectDecision { decision_id, reason })),
        2 => (mostly(PROPOSERS), decision_id(), text())
            .prop_map(|(actor, decision_id, reason)| (actor, Command::WithdrawDecision { decision_id, reason })),
        3 => (mostly(DRIVERS), decision_id(), decision_id()).prop_map(|(actor, decision_id, superseded_by)| {
            (actor, Command::SupersedeDecision { decision_id, superseded_by })
        }),
        8 => (author(), feedback_id(), option::of(decision_id()), select(FeedbackKind::ALL), select(FeedbackSource::ALL), text())
            .prop_map(|((actor, function), feedback_id, decision_id, kind, source, body)| {
                (actor, Command::RecordFeedback { feedback_id, decision_id, function, kind, source, body })
            }),
        4 => (mostly(RESOLVERS), feedback_id(), text())
            .prop_map(|(actor, feedback_id, resolution)| (actor, Command::ResolveFeedback { feedback_id, resolution })),
        2 => (mostly(RESOLVERS), feedback_id(), text())
            .prop_map(|(actor, feedback_id, reason)| (actor, Command::ReopenFeedback { feedback_id, reason })),
        20 => (
            signer(),
            decision_id(),
            prop_oneof![3 => Just(Verdict::Approve), 1 => Just(Verdict::Reject)],
            text(),
            text(),
            option::weighted(0.2, 1u32..=3)
        )
            .prop_map(|((actor, function), decision_id, verdict, reason, comment, revision)| {
                (actor, Command::RecordSignOff { decision_id, function, verdict, reason, comment, revision })
            }),
        3 => (signer(), decision_id())
            .prop_map(|((actor, function), decision_id)| (actor, Command::RevokeSignOff { decision_id, function })),
    ]
}

/// Where a scenario starts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Start {
    /// Just the created initiative, nobody assigned.
    Bare,
    /// `team()`.
    Team,
    /// `proposed()`: the team and decision 1.
    Proposed,
}

impl Start {
    fn history(self) -> History {
        match self {
            Start::Bare => History::new().given(OWNER, create()),
            Start::Team => team(),
            Start::Proposed => proposed(),
        }
    }
}

/// A starting point and the steps to try.
pub(super) fn scenario() -> impl Strategy<Value = (Start, Vec<(&'static str, Command)>)> {
    (prop_oneof![1 => Just(Start::Bare), 2 => Just(Start::Team), 3 => Just(Start::Proposed)], vec(step(), 0..80))
}

/// What running a scenario produced: every recorded event and the state after each.
pub(super) struct Run {
    pub(super) events: Vec<Recorded>,
    /// `states[i]` is the state after `events[i]`.
    pub(super) states: Vec<Initiative>,
    pub(super) accepted_commands: usize,
}

/// Runs every command through `decide`, skipping the refused ones and folding the
/// events of the others one by one; checks the per-command rules on the way.
pub(super) fn run(start: Start, steps: &[(&'static str, Command)]) -> Result<Run, TestCaseError> {
    let history = start.history();
    let mut events = history.events.clone();
    let mut state = history.state.clone();
    let mut states: Vec<Initiative> = Vec::new();
    for prefix in 1..=events.len() {
        states.push(fold(&events[..prefix]).unwrap().unwrap());
    }
    let mut accepted_commands = 0;
    for (actor, command) in steps {
        let actor_id = who(actor);
        let decided = decide(state.as_ref(), command, &actor_id);
        prop_assert_eq!(&decided, &decide(state.as_ref(), command, &actor_id), "decide is deterministic");
        let new_events = match decided {
            Ok(new_events) => new_events,
            Err(DomainError::InvalidArgument { field, .. }) => {
                prop_assert!(!field.is_empty(), "an invalid argument names its field");
                continue;
            }
            Err(_) => continue,
        };
        accepted_commands += 1;
        prop_assert!(!new_events.is_empty(), "an accepted command records something: {:?}", command);
        let before = state.clone().expect("only CreateInitiative succeeds on an empty stream, and it is refused here");
        for event in &new_events {
            if let Event::DecisionAccepted { decision_id, r#override, .. } = event {
                let alignment = evaluate_decision(&before, &before.decisions[decision_id]).alignment;
                match r#override {
                    None => prop_assert_eq!(alignment, DecisionAlignment::Aligned, "accepted without override"),
                    Some(record) => {
                        prop_assert_ne!(alignment, DecisionAlignment::Aligned, "an override of an aligned decision");
                        prop_assert!(!record.reason.trim().is_empty(), "an override needs a written reason");
                    }
                }
            }
            if let Event::SignOffRecorded { decision_id, revision, .. } = event {
                prop_assert_eq!(
                    *revision,
                    before.decisions[decision_id].revision(),
                    "sign-offs are for the current revision"
                );
            }
        }
        for event in new_events {
            let version = events.len() as u64 + 1;
            let recorded = Recorded { version, actor: actor_id.clone(), recorded_at: at(version), event };
            let next = evolve(state.take(), &recorded)
                .map_err(|e| TestCaseError::fail(format!("decide produced an event the fold refuses: {e}")))?;
            states.push(next.clone());
            state = Some(next);
            events.push(recorded);
        }
    }
    Ok(Run { events, states, accepted_commands })
}

/// Invariants of one state, folded from `events`, that every history the rules allow
/// must keep.
fn check_invariants(state: &Initiative, events: &[Recorded]) -> Result<(), TestCaseError> {
    for decision in state.decisions.values() {
        let numbers: Vec<u32> = decision.revisions.iter().map(|r| r.number).collect();
        prop_assert_eq!(numbers, (1..=decision.revisions.len() as u32).collect::<Vec<_>>());
        prop_assert!(decision.material_base >= 1 && decision.material_base <= decision.revision());
        let mut holders = BTreeSet::new();
        for sign_off in &decision.sign_offs {
            prop_assert!(
                holders.insert((&sign_off.signer, &sign_off.function)),
                "one verdict in force per signer and function"
            );
            prop_assert!(sign_off.revision <= decision.revision());
        }
        let unmarked: Vec<SignOff> =
            sign_off_history(decision.id, events).into_iter().filter(|s| !s.replaced && !s.revoked).collect();
        let mut in_force = decision.sign_offs.clone();
        in_force.sort_by_key(|s| s.at);
        prop_assert_eq!(unmarked, in_force, "the history's unmarked verdicts are the ones in force");
        prop_assert_eq!(decision.is_open(), decision.closure.is_none());
        if let Some(newer) = decision.superseded_by {
            prop_assert_eq!(decision.status, DecisionStatus::Superseded);
            let newer = &state.decisions[&newer];
            prop_assert_eq!(newer.supersedes, Some(decision.id), "supersession links both ways");
            prop_assert!(matches!(newer.status, DecisionStatus::Accepted | DecisionStatus::Superseded));
        }
        if decision.status == DecisionStatus::Superseded {
            prop_assert!(decision.superseded_by.is_some());
        }
        if decision.r#override.is_some() {
            prop_assert!(matches!(decision.status, DecisionStatus::Accepted | DecisionStatus::Superseded));
        }
    }
    let view = project(state);
    prop_assert!(view.approved_pairs <= view.total_pairs);
    prop_assert!((0.0..=1.0).contains(&view.score));
    prop_assert_eq!(view.version, state.version);
    let open = state.decisions.values().filter(|d| d.is_open()).count();
    match view.status {
        InitiativeStatus::Aligned => prop_assert_eq!(view.approved_pairs, view.total_pairs),
        InitiativeStatus::NoDecisions => prop_assert_eq!(open, 0),
        InitiativeStatus::Pending => prop_assert!(open > 0 && view.approved_pairs < view.total_pairs),
        InitiativeStatus::Blocked => {}
    }
    if view.status != InitiativeStatus::Blocked {
        prop_assert!(view.outstanding.iter().all(|o| o.state == FunctionState::Pending));
    }
    for person in PEOPLE {
        for item in view.inbox(&who(person)) {
            prop_assert_eq!(item.state, FunctionState::Pending);
            prop_assert!(state.has_role(&who(person), &item.function, Role::Approver));
            prop_assert!(crate::domain::alignment::project_indexed(state).1.contains(&person.to_string()));
        }
    }
    Ok(())
}

proptest! {
    // Failing cases are kept beside this file (`properties.regressions`), not in a
    // crate-level folder.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// (e) `decide` never panics (a panic fails the case), and every event it returns folds.
    #[test]
    fn decide_never_panics_and_its_events_always_fold((start, steps) in scenario()) {
        let run = run(start, &steps)?;
        prop_assert!(run.accepted_commands <= steps.len());
    }

    /// (a) Folding all events at once gives the state built incrementally, at every prefix.
    #[test]
    fn folding_all_events_at_once_equals_folding_incrementally((start, steps) in scenario()) {
        let run = run(start, &steps)?;
        prop_assert_eq!(fold(&run.events).unwrap(), run.states.last().cloned());
        for (i, state) in run.states.iter().enumerate() {
            prop_assert_eq!(fold(&run.events[..=i]).unwrap(), Some(state.clone()));
        }
    }

    /// (b) The JSON snapshot of the state round-trips to an equal state and projection.
    #[test]
    fn state_snapshot_round_trips_through_json_with_an_equal_projection((start, steps) in scenario()) {
        let run = run(start, &steps)?;
        for state in &run.states {
            let json = serde_json::to_string(state).unwrap();
            let back: Initiative = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, state);
            prop_assert_eq!(project(&back), project(state));
        }
    }

    /// (c) Every event round-trips through its stored type, schema version and payload.
    #[test]
    fn every_event_round_trips_through_its_stored_payload((start, steps) in scenario()) {
        let run = run(start, &steps)?;
        for recorded in &run.events {
            let event = &recorded.event;
            let payload = event.payload();
            prop_assert!(payload.is_object(), "the payload is a JSON object: {}", payload);
            prop_assert!(payload.get("type").is_none(), "the payload does not repeat the type");
            let back = Event::from_stored(event.event_type(), SCHEMA_VERSION, payload).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&back, event);
        }
    }

    /// (d) The state's version is the number of events, and versions count up from 1.
    #[test]
    fn state_version_equals_the_number_of_events((start, steps) in scenario()) {
        let run = run(start, &steps)?;
        for (i, (recorded, state)) in run.events.iter().zip(&run.states).enumerate() {
            prop_assert_eq!(recorded.version, i as u64 + 1);
            prop_assert_eq!(state.version, i as u64 + 1);
            prop_assert_eq!(state.last_activity, recorded.recorded_at);
        }
        prop_assert_eq!(run.states.last().map(|s| s.version), Some(run.events.len() as u64));
    }

    /// The rules never let a history reach a state that breaks the model's invariants.
    #[test]
    fn every_reachable_state_keeps_the_invariants((start, steps) in scenario()) {
        let run = run(start, &steps)?;
        for (i, state) in run.states.iter().enumerate() {
            check_invariants(state, &run.events[..=i])?;
        }
    }
}

#[test]
fn from_stored_refuses_an_unknown_schema_version_or_an_undecodable_payload() {
    let event = Event::StageChanged { from: Stage::Discovery, to: Stage::Delivery };
    let error = Event::from_stored("StageChanged", SCHEMA_VERSION + 1, event.payload()).unwrap_err();
    let newer = format!("schema version {} was written by a newer Accord", SCHEMA_VERSION + 1);
    assert!(error.contains(&newer), "{error}");
    assert!(Event::decode_stored("StageChanged", SCHEMA_VERSION + 1, event.payload()).unwrap_err().is_newer());
    let error = Event::from_stored("StageChanged", 0, event.payload()).unwrap_err();
    assert!(error.contains("unknown schema version 0"), "{error}");
    let error =
        Event::from_stored("StageChanged", SCHEMA_VERSION, serde_json::json!({ "from": "nowhere" })).unwrap_err();
    assert!(error.contains("undecodable payload"), "{error}");
    let error = Event::from_stored("NoSuchEvent", SCHEMA_VERSION, serde_json::json!({})).unwrap_err();
    assert!(error.starts_with("NoSuchEvent"), "{error}");
}

#[test]
fn the_payload_of_an_update_leaves_out_unchanged_fields() {
    let event =
        Event::InitiativeUpdated { title: Some("T".into()), summary: None, owner: None, required_functions: None };
    assert_eq!(event.payload(), serde_json::json!({ "title": "T" }));
    assert_eq!(Event::from_stored("InitiativeUpdated", SCHEMA_VERSION, event.payload()).unwrap(), event);
}

#[test]
fn the_stored_payload_names_the_override_field_override() {
    let history = proposed().given(DRIVER, accept_overriding(dec(1), "deadline"));
    let payload = history.events.last().unwrap().event.payload();
    assert_eq!(payload["override"]["reason"], serde_json::json!("deadline"));
}

#[test]
fn the_fold_refuses_histories_the_rules_could_not_have_produced() {
    let created = History::new().given(OWNER, create()).events[0].clone();
    let stage = |version| Recorded {
        version,
        actor: who(OWNER),
        recorded_at: at(version),
        event: Event::StageChanged { from: Stage::Discovery, to: Stage::Delivery },
    };
    // An event before the creation; the creation twice; a gap in versions; an unknown decision.
    assert!(fold(&[stage(1)]).unwrap_err().message.contains("before InitiativeCreated"));
    let mut twice = created.clone();
    twice.version = 2;
    assert!(fold(&[created.clone(), twice]).unwrap_err().message.contains("twice"));
    assert_eq!(fold(&[created.clone(), stage(3)]).unwrap_err().version, 3);
    let revoke = Recorded {
        version: 2,
        actor: who(ENG),
        recorded_at: at(2),
        event: Event::SignOffRevoked { decision_id: dec(1), function: func("engineering") },
    };
    assert!(fold(&[created, revoke]).unwrap_err().message.contains("unknown decision"));
    assert_eq!(fold(&[]).unwrap(), None);
}
