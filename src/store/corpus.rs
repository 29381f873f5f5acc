//! The schema corpus (`tests/corpus`): for every schema version ever written, a
//! checked-in log of stored events (`vN.jsonl`, exactly as an export writes them) with
//! every event type and the variants that fold differently, and the alignment views it
//! folds to (`vN.alignment.json`). The test folds each log through the path the store
//! uses (`StoredEvent::to_recorded`, `fold::refold`) and compares with the checked-in
//! views: it fails the day an event's shape, the upcasters or the fold change what a
//! stored history means. The generator writes today's version's files; it runs only by
//! hand (`cargo test --lib store::corpus::regenerate -- --ignored`), and a log once
//! checked in is never regenerated: a new schema version adds a new pair beside it. The
//! views are re-folded from the checked-in logs only when the projection itself changes
//! (`PROJECTION_VERSION` raised; `cargo test --lib store::corpus::reproject -- --ignored`),
//! and the diff must then show only what the new projection adds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::audit::ExportLine;
use super::fold::refold;
use super::{StoredEvent, ZERO_HASH, event_hash};
use crate::domain::event::{DecisionContent, EVENT_TYPES, SCHEMA_VERSION};
use crate::domain::values::*;
use crate::domain::{Authority, Command, Initiative, Member, Recorded, decide_for, evolve};

/// Every corpus: (schema version, its log, the views it folds to).
const CORPUS: &[(i32, &str, &str)] = &[
    (1, include_str!("../../tests/corpus/v1.jsonl"), include_str!("../../tests/corpus/v1.alignment.json")),
    (2, include_str!("../../tests/corpus/v2.jsonl"), include_str!("../../tests/corpus/v2.alignment.json")),
];

/// The events of a corpus log, parsed as an import parses them.
fn parse(log: &str) -> Vec<StoredEvent> {
    log.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| ExportLine::parse(n + 1, line).unwrap_or_else(|e| panic!("corpus line {}: {e}", n + 1)))
        .collect()
}

/// Every stream of a log folded from its first event, as the store folds it: key → view.
fn fold_views(events: &[StoredEvent]) -> BTreeMap<String, serde_json::Value> {
    let mut streams: BTreeMap<Uuid, Vec<StoredEvent>> = BTreeMap::new();
    for event in events {
        streams.entry(event.stream_id).or_default().push(event.clone());
    }
    streams
        .into_iter()
        .map(|(id, events)| {
            let (state, projection) = refold(id, &events).unwrap_or_else(|e| panic!("stream {id}: {e}"));
            (state.key.to_string(), projection.view_json)
        })
        .collect()
}

#[test]
fn every_corpus_folds_to_its_checked_in_alignment() {
    for (version, log, expected) in CORPUS {
        let expected: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(expected).unwrap_or_else(|e| panic!("v{version}.alignment.json: {e}"));
        let folded = fold_views(&parse(log));
        assert_eq!(folded.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "v{version}: initiatives");
        for (key, view) in &expected {
            assert_eq!(&folded[key], view, "v{version}: {key} no longer folds to its checked-in alignment");
        }
    }
}

/// Today's code writes today's version's events exactly as the corpus holds them: a
/// changed shape that still reads (a renamed field with an alias, a new field) is a new
/// schema version all the same, because older processes read what this one writes.
#[test]
fn todays_events_are_written_exactly_as_the_current_version_s_corpus_holds_them() {
    let Some((_, log, _)) = CORPUS.iter().find(|(v, _, _)| *v == SCHEMA_VERSION) else {
        panic!("no corpus of the current schema version {SCHEMA_VERSION}")
    };
    for event in parse(log) {
        let decoded = event.to_recorded().unwrap_or_else(|e| panic!("{e}")).event;
        assert_eq!(
            decoded.payload(),
            event.payload,
            "{} at position {} is written differently today: give it a new schema version and an upcast",
            event.event_type,
            event.position
        );
    }
}

#[test]
fn every_schema_version_has_a_corpus_with_every_event_type() {
    for version in 1..=SCHEMA_VERSION {
        let Some((_, log, _)) = CORPUS.iter().find(|(v, _, _)| *v == version) else {
            panic!("no corpus of schema version {version}: add tests/corpus/v{version}.jsonl (see store::corpus)")
        };
        let events = parse(log);
        let types: BTreeSet<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let missing: Vec<&&str> = EVENT_TYPES.iter().filter(|t| !types.contains(**t)).collect();
        assert!(missing.is_empty(), "the v{version} corpus has no {missing:?}");
        assert!(events.iter().all(|e| e.schema_version == version), "the v{version} corpus holds other versions");
    }
}

#[test]
fn the_corpus_holds_the_variants_that_fold_differently() {
    let events = parse(CORPUS[0].1);
    let has = |event_type: &str, field: &str, value: serde_json::Value| {
        events.iter().any(|e| e.event_type == event_type && e.payload.get(field) == Some(&value))
    };
    assert!(has("DecisionRevised", "kind", "material".into()), "a material revision");
    assert!(has("DecisionRevised", "kind", "editorial".into()), "an editorial revision");
    assert!(has("SignOffRecorded", "verdict", "reject".into()), "a rejection");
    assert!(events.iter().any(|e| e.event_type == "DecisionAccepted" && e.payload.get("override").is_some()));
    assert!(
        events.iter().any(|e| e.event_type == "InitiativeUpdated" && e.payload.get("required_functions").is_some())
    );
    assert!(
        events.iter().any(|e| e.event_type == "DecisionRevised"
            && e.payload["stale"].as_array().is_some_and(|stale| !stale.is_empty()))
    );
    let today = parse(CORPUS[CORPUS.len() - 1].1);
    assert!(
        today.iter().any(|e| e.event_type == "SignOffRecorded" && e.payload.get("via_team").is_some()),
        "a sign-off through a team (schema 2)"
    );
}

/// A corpus being written: commands decided and folded as the service does, stored with
/// fixed ids and times so that a regeneration changes nothing that did not change.
struct Writer {
    lines: Vec<String>,
    states: BTreeMap<Uuid, (Option<Initiative>, Vec<u8>)>,
    clock: DateTime<Utc>,
    ids: u128,
}

impl Writer {
    fn new() -> Self {
        let clock = DateTime::parse_from_rfc3339("2026-11-26T09:00:00Z").expect("time").with_timezone(&Utc);
        Writer { lines: Vec::new(), states: BTreeMap::new(), clock, ids: 0 }
    }

    /// A fixed UUID (version 7 layout), the next of the corpus.
    fn id(&mut self) -> Uuid {
        self.ids += 1;
        Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0000 | self.ids)
    }

    fn run(&mut self, stream: Uuid, actor: &str, command: Command) {
        self.run_in(stream, actor, &[], command);
    }

    /// `run`, by a member of `teams`.
    fn run_in(&mut self, stream: Uuid, actor: &str, teams: &[&str], command: Command) {
        let actor = Principal::parse("actor", actor).expect("actor");
        let teams: BTreeSet<Principal> = teams.iter().map(|team| principal(team)).collect();
        let (state, prev) = self.states.remove(&stream).unwrap_or((None, ZERO_HASH.to_vec()));
        let member = Member { person: &actor, teams: &teams };
        let events = decide_for(state.as_ref(), &command, member, Authority::Member)
            .unwrap_or_else(|e| panic!("the corpus command {command:?} is refused: {e}"));
        self.clock += Duration::minutes(7);
        let command_id = format!("corpus-{}", self.lines.len() + 1);
        let (mut state, mut prev) = (state, prev);
        for event in events {
            let version = state.as_ref().map_or(0, |s| s.version) + 1;
            let stored = StoredEvent {
                position: i64::try_from(self.lines.len() + 1).expect("position"),
                stream_id: stream,
                stream_version: i64::try_from(version).expect("version"),
                event_id: self.id(),
                event_type: event.event_type().to_owned(),
                schema_version: SCHEMA_VERSION,
                payload: event.payload(),
                actor: actor.as_str().to_owned(),
                command_id: command_id.clone(),
                correlation_id: "corpus".into(),
                causation_id: String::new(),
                recorded_at: self.clock,
                prev_hash: prev.clone(),
                hash: Vec::new(),
            };
            let hash = event_hash(&prev, &stored.content()).to_vec();
            let stored = StoredEvent { hash: hash.clone(), ..stored };
            self.lines.push(ExportLine::from(&stored).to_json().expect("line"));
            let recorded = Recorded { version, actor: actor.clone(), recorded_at: self.clock, event };
            state = Some(evolve(state, &recorded).expect("evolve"));
            prev = hash;
        }
        self.states.insert(stream, (state, prev));
    }
}

fn content(title: &str, proposal: &str) -> DecisionContent {
    DecisionContent {
        title: title.into(),
        context: "Checkout needs a payment provider.".into(),
        options: vec!["Stripe".into(), "Adyen".into()],
        proposal: proposal.into(),
        rationale: "Fastest to integrate.".into(),
    }
}

fn function(name: &str) -> Function {
    Function::parse("function", name).expect("function")
}

fn principal(name: &str) -> Principal {
    Principal::parse("principal", name).expect("principal")
}

const OWNER: &str = "pm@example.com";
const DRIVER: &str = "dana@example.com";
const ENGINEER: &str = "eve@example.com";
const DESIGNER: &str = "dee@example.com";
const BUSINESS: &str = "bo@example.com";

/// Today's corpus: three initiatives that between them record every event type.
fn write_today() -> Writer {
    let mut w = Writer::new();
    let checkout = w.id();
    let create = |id: Uuid, key: &str, title: &str| Command::CreateInitiative {
        id: InitiativeId(id),
        key: InitiativeKey::parse("key", key).expect("key"),
        title: title.into(),
        summary: "Rebuild checkout around a payment provider.".into(),
        owner: None,
        stage: Some(Stage::Definition),
        required_functions: None,
    };
    w.run(checkout, OWNER, create(checkout, "CORPUS-1", "New checkout"));
    w.run(
        checkout,
        OWNER,
        Command::UpdateInitiative {
            title: Some("New checkout flow".into()),
            summary: None,
            owner: None,
            required_functions: None,
        },
    );
    for (who, f, role) in [
        (DRIVER, "product", Role::Driver),
        (ENGINEER, "engineering", Role::Approver),
        (DESIGNER, "design", Role::Approver),
        (BUSINESS, "business", Role::Approver),
        ("ivy@example.com", "design", Role::Informed),
    ] {
        w.run(checkout, OWNER, Command::AssignStakeholder { principal: principal(who), function: function(f), role });
    }
    w.run(
        checkout,
        OWNER,
        Command::RemoveStakeholder {
            principal: principal("ivy@example.com"),
            function: function("design"),
            role: Role::Informed,
        },
    );
    w.run(checkout, OWNER, Command::ChangeStage { stage: Stage::Delivery });
    let stripe = DecisionId(w.id());
    w.run(
        checkout,
        DRIVER,
        Command::ProposeDecision {
            decision_id: stripe,
            content: content("Use Stripe for payments", "Integrate Stripe Checkout."),
            required_functions: None,
            supersedes: None,
        },
    );
    let sign = |decision: DecisionId, f: &str, verdict: Verdict, reason: &str| Command::RecordSignOff {
        decision_id: decision,
        function: function(f),
        verdict,
        reason: reason.into(),
        comment: String::new(),
        revision: None,
    };
    w.run(checkout, ENGINEER, sign(stripe, "engineering", Verdict::Approve, ""));
    w.run(checkout, DESIGNER, sign(stripe, "design", Verdict::Approve, ""));
    let objection = FeedbackId(w.id());
    w.run(
        checkout,
        BUSINESS,
        Command::RecordFeedback {
            feedback_id: objection,
            decision_id: Some(stripe),
            function: function("business"),
            kind: FeedbackKind::Objection,
            source: FeedbackSource::Customer,
            body: "Stripe's fees are above our negotiated rate.".into(),
        },
    );
    let revise = |kind: RevisionKind, proposal: &str, note: &str| Command::ReviseDecision {
        decision_id: stripe,
        kind,
        content: content("Use Stripe for payments", proposal),
        required_functions: None,
        note: note.into(),
    };
    // Editorial: the approvals stand. Material: they go stale.
    w.run(checkout, DRIVER, revise(RevisionKind::Editorial, "Integrate Stripe Checkout (hosted).", "wording"));
    w.run(checkout, DRIVER, revise(RevisionKind::Material, "Stripe with a negotiated rate.", "new pricing"));
    // A sign-off replaced (approve, then reject), revoked, and given again.
    w.run(checkout, ENGINEER, sign(stripe, "engineering", Verdict::Approve, ""));
    w.run(checkout, ENGINEER, sign(stripe, "engineering", Verdict::Reject, "The rate is not in the contract."));
    w.run(checkout, ENGINEER, Command::RevokeSignOff { decision_id: stripe, function: function("engineering") });
    w.run(checkout, ENGINEER, sign(stripe, "engineering", Verdict::Approve, ""));
    w.run(checkout, BUSINESS, Command::ResolveFeedback { feedback_id: objection, resolution: "Rate agreed.".into() });
    w.run(checkout, BUSINESS, Command::ReopenFeedback { feedback_id: objection, reason: "Not signed yet.".into() });
    w.run(checkout, BUSINESS, Command::ResolveFeedback { feedback_id: objection, resolution: "Signed.".into() });
    w.run(checkout, DESIGNER, sign(stripe, "design", Verdict::Approve, ""));
    w.run(checkout, BUSINESS, sign(stripe, "business", Verdict::Approve, ""));
    w.run(checkout, DRIVER, Command::AcceptDecision { decision_id: stripe, override_reason: None });
    // Decisions rejected, withdrawn, superseded, and accepted over the objections.
    let adyen = DecisionId(w.id());
    let propose = |id: DecisionId, title: &str, supersedes: Option<DecisionId>| Command::ProposeDecision {
        decision_id: id,
        content: content(title, "Do it."),
        required_functions: None,
        supersedes,
    };
    w.run(checkout, DRIVER, propose(adyen, "Use Adyen", None));
    w.run(checkout, DRIVER, Command::RejectDecision { decision_id: adyen, reason: "Stripe chosen.".into() });
    let inhouse = DecisionId(w.id());
    w.run(checkout, DRIVER, propose(inhouse, "Build in-house", None));
    w.run(checkout, DRIVER, Command::WithdrawDecision { decision_id: inhouse, reason: "Too slow.".into() });
    let wallets = DecisionId(w.id());
    w.run(checkout, DRIVER, propose(wallets, "Add wallets", Some(stripe)));
    w.run(checkout, DESIGNER, sign(wallets, "design", Verdict::Reject, "The flow is unclear."));
    w.run(
        checkout,
        DRIVER,
        Command::AcceptDecision { decision_id: wallets, override_reason: Some("Deadline.".into()) },
    );
    let fees = DecisionId(w.id());
    w.run(checkout, DRIVER, propose(fees, "Show fees", None));
    w.run(
        checkout,
        DRIVER,
        Command::AcceptDecision { decision_id: fees, override_reason: Some("Required by law.".into()) },
    );
    w.run(checkout, DRIVER, Command::SupersedeDecision { decision_id: wallets, superseded_by: fees });
    // The decision rights change: legal must sign from now on.
    let required: BTreeSet<Function> =
        ["engineering", "design", "business", "legal"].into_iter().map(function).collect();
    w.run(
        checkout,
        OWNER,
        Command::UpdateInitiative { title: None, summary: None, owner: None, required_functions: Some(required) },
    );
    w.run(
        checkout,
        OWNER,
        Command::AssignStakeholder {
            principal: principal("lee@example.com"),
            function: function("legal"),
            role: Role::Approver,
        },
    );
    let terms = DecisionId(w.id());
    w.run(checkout, DRIVER, propose(terms, "Publish new terms", None));
    w.run(checkout, "lee@example.com", sign(terms, "legal", Verdict::Approve, ""));
    // Schema 2: a team holds design's approval, and a member signs through it.
    w.run(
        checkout,
        OWNER,
        Command::AssignStakeholder {
            principal: principal("team:design-leads"),
            function: function("design"),
            role: Role::Approver,
        },
    );
    w.run_in(checkout, "lea@example.com", &["team:design-leads"], sign(terms, "design", Verdict::Approve, ""));

    // An initiative with open questions, then one archived.
    let search = w.id();
    w.run(search, OWNER, create(search, "CORPUS-2", "Search"));
    w.run(
        search,
        OWNER,
        Command::AssignStakeholder {
            principal: principal(DESIGNER),
            function: function("design"),
            role: Role::Contributor,
        },
    );
    let question = FeedbackId(w.id());
    w.run(
        search,
        DESIGNER,
        Command::RecordFeedback {
            feedback_id: question,
            decision_id: None,
            function: function("design"),
            kind: FeedbackKind::Question,
            source: FeedbackSource::UserResearch,
            body: "Do people search by SKU?".into(),
        },
    );
    let legacy = w.id();
    w.run(legacy, OWNER, create(legacy, "CORPUS-3", "Legacy cart"));
    w.run(legacy, OWNER, Command::ArchiveInitiative { reason: "Replaced by CORPUS-1.".into() });
    w
}

/// Writes today's corpus files. By hand only, for a new schema version's pair (then add
/// it to `CORPUS`); never to make the test pass.
#[test]
#[ignore = "writes tests/corpus; run by hand"]
fn regenerate() {
    let writer = write_today();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    std::fs::create_dir_all(&dir).expect("corpus folder");
    let log = writer.lines.join("\n") + "\n";
    let views = fold_views(&parse(&log));
    let views = serde_json::to_string_pretty(&views).expect("views") + "\n";
    std::fs::write(dir.join(format!("v{SCHEMA_VERSION}.jsonl")), log).expect("write log");
    std::fs::write(dir.join(format!("v{SCHEMA_VERSION}.alignment.json")), views).expect("write views");
}

/// Re-folds every checked-in log into its views file after a projection change (the logs
/// stay as they are). Run by hand, then read the diff: only the new projection's fields
/// may change.
#[test]
#[ignore = "rewrites tests/corpus/*.alignment.json; run by hand after raising PROJECTION_VERSION"]
fn reproject() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for (version, log, _) in CORPUS {
        let views = fold_views(&parse(log));
        let views = serde_json::to_string_pretty(&views).expect("views") + "\n";
        std::fs::write(dir.join(format!("v{version}.alignment.json")), views).expect("write views");
    }
}
