//! Writes the committed seed inputs of the fuzz targets into `fuzz/seeds/<target>/`, so
//! that every run starts from well-formed input instead of having to discover protobuf
//! framing, field numbers and a valid hash chain by chance. Run it again after changing
//! the protos, the export format or the domain rules:
//!
//! ```text
//! cd fuzz && CARGO_TARGET_DIR=../target cargo run --example make_seeds
//! ```
//!
//! (The main crate's target directory reuses the debug build of the dependencies that
//! `cargo build` left there; fuzz/target would build them all again.)
//!
//! The seeds are deterministic (fixed ids and times), so an unchanged format rewrites
//! the same bytes. The generator checks what it writes: every command seed parses, every
//! export history is accepted by the importer and every page token decodes.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use accord::domain::values::{DecisionId, FeedbackId, InitiativeId, Principal};
use accord::domain::{Command, Initiative, Recorded, decide, event::SCHEMA_VERSION, evolve};
use accord::grpc::parse::{self, Parsed};
use accord::grpc::queries::{decode_token, list_filter};
use accord::proto as pb;
use accord::store::audit::Importer;
use accord::store::{ExportLine, ListFilter, StoredEvent, ZERO_HASH, event_hash};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use uuid::Uuid;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const CHECKOUT: &str = "01900000-0000-7000-8000-00000000c001";
const SEARCH: &str = "01900000-0000-7000-8000-00000000c002";
const PILOT: &str = "01900000-0000-7000-8000-00000000c003";
const D1: &str = "01900000-0000-7000-8000-00000000d001";
const D2: &str = "01900000-0000-7000-8000-00000000d002";
const D3: &str = "01900000-0000-7000-8000-00000000d003";
const F1: &str = "01900000-0000-7000-8000-00000000f001";
const F2: &str = "01900000-0000-7000-8000-00000000f002";

const OWNER: &str = "ana@example.com";
const ENGINEER: &str = "ben@example.com";
const DESIGNER: &str = "cleo@example.com";

/// One command request: which RPC (the selector byte of the `commands` target), who sends
/// it, its encoding, and what it parses into (with the ids the history needs).
struct Step {
    rpc: u8,
    name: &'static str,
    actor: &'static str,
    encoded: Vec<u8>,
    command: Command,
}

fn step<R: Message>(rpc: u8, name: &'static str, actor: &'static str, request: R, parse: fn(&R) -> Parsed) -> Step {
    let (_, mut command) = parse(&request).unwrap_or_else(|e| panic!("the {name} seed does not parse: {e}"));
    // The service gives new initiatives, decisions and feedback fresh v7 ids; the seeds
    // use fixed ones, so that later steps can refer to them and the bytes are stable.
    match &mut command {
        Command::CreateInitiative { id, key, .. } => {
            *id = InitiativeId(fixed(match key.as_str() {
                "CHECKOUT-42" => CHECKOUT,
                "SEARCH-7" => SEARCH,
                _ => PILOT,
            }));
        }
        Command::ProposeDecision { decision_id, content, .. } => {
            *decision_id = DecisionId(fixed(match content.title.as_str() {
                "Pay by card only" => D1,
                "Drop the search filters" => D2,
                _ => D3,
            }));
        }
        Command::RecordFeedback { feedback_id, decision_id, .. } => {
            *feedback_id = FeedbackId(fixed(if decision_id.is_some_and(|d| d.0 == fixed(D1)) { F1 } else { F2 }));
        }
        _ => {}
    }
    Step { rpc, name, actor, encoded: request.encode_to_vec(), command }
}

fn fixed(id: &str) -> Uuid {
    Uuid::parse_str(id).expect("a fixed seed id is a UUID")
}

fn options(command_id: &str) -> Option<pb::CommandOptions> {
    Some(pb::CommandOptions { command_id: command_id.to_owned(), expected_version: None })
}

fn functions(names: &[&str]) -> Vec<String> {
    names.iter().map(|&name| name.to_owned()).collect()
}

fn content(title: &str, proposal: &str) -> Option<pb::DecisionContent> {
    Some(pb::DecisionContent {
        title: title.to_owned(),
        context: "Conversion dropped.".to_owned(),
        options: functions(&["Cards", "Wallets"]),
        proposal: proposal.to_owned(),
        rationale: "Less to test.".to_owned(),
    })
}

/// An initiative's decision lifecycle: stakeholders, a proposal, feedback, sign-offs and
/// acceptance. `rpc` numbers follow the `match` in `fuzz_targets/commands.rs`.
fn checkout_history() -> Vec<Step> {
    vec![
        step(
            0,
            "create-initiative",
            OWNER,
            pb::CreateInitiativeRequest {
                options: options("seed-checkout-create"),
                key: "CHECKOUT-42".into(),
                title: "One-page checkout".into(),
                summary: "Fewer steps between cart and payment.".into(),
                owner: String::new(),
                stage: pb::Stage::Discovery.into(),
                required_functions: functions(&["engineering", "design"]),
            },
            parse::create_initiative,
        ),
        step(
            4,
            "assign-driver",
            OWNER,
            pb::AssignStakeholderRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                principal: OWNER.into(),
                function: "business".into(),
                role: pb::Role::Driver.into(),
            },
            parse::assign_stakeholder,
        ),
        step(
            4,
            "assign-stakeholder",
            OWNER,
            pb::AssignStakeholderRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                principal: ENGINEER.into(),
                function: "engineering".into(),
                role: pb::Role::Approver.into(),
            },
            parse::assign_stakeholder,
        ),
        step(
            4,
            "assign-stakeholder-design",
            OWNER,
            pb::AssignStakeholderRequest {
                options: None,
                initiative: CHECKOUT.into(),
                principal: DESIGNER.into(),
                function: "design".into(),
                role: pb::Role::Approver.into(),
            },
            parse::assign_stakeholder,
        ),
        step(
            6,
            "propose-decision",
            OWNER,
            pb::ProposeDecisionRequest {
                options: options("seed-checkout-propose"),
                initiative: "CHECKOUT-42".into(),
                content: content("Pay by card only", "Launch with cards; add wallets in Q3."),
                required_functions: Vec::new(),
                supersedes: String::new(),
            },
            parse::propose_decision,
        ),
        step(
            12,
            "record-feedback",
            ENGINEER,
            pb::RecordFeedbackRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                decision_id: D1.into(),
                function: "engineering".into(),
                kind: pb::FeedbackKind::Concern.into(),
                source: pb::FeedbackSource::Customer.into(),
                body: "Two enterprise customers pay only by wallet.".into(),
            },
            parse::record_feedback,
        ),
        step(
            13,
            "resolve-feedback",
            ENGINEER,
            pb::ResolveFeedbackRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                feedback_id: F1.into(),
                resolution: "They keep invoicing until Q3.".into(),
            },
            parse::resolve_feedback,
        ),
        step(
            15,
            "record-sign-off",
            ENGINEER,
            pb::RecordSignOffRequest {
                options: options("seed-checkout-sign-engineering"),
                initiative: "CHECKOUT-42".into(),
                decision_id: D1.into(),
                function: "engineering".into(),
                verdict: pb::Verdict::Approve.into(),
                reason: String::new(),
                comment: "Fine by us.".into(),
                revision: Some(1),
            },
            parse::record_sign_off,
        ),
        step(
            15,
            "record-sign-off-design",
            DESIGNER,
            pb::RecordSignOffRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                decision_id: D1.into(),
                function: "design".into(),
                verdict: pb::Verdict::Approve.into(),
                reason: String::new(),
                comment: String::new(),
                revision: None,
            },
            parse::record_sign_off,
        ),
        step(
            8,
            "accept-decision",
            OWNER,
            pb::AcceptDecisionRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                decision_id: D1.into(),
                override_reason: String::new(),
            },
            parse::accept_decision,
        ),
    ]
}

/// Updates, revisions, reopened feedback, a revoked sign-off and rejection, on a second
/// initiative.
fn search_history() -> Vec<Step> {
    let on = || "SEARCH-7".to_owned();
    vec![
        step(
            0,
            "create-initiative-search",
            OWNER,
            pb::CreateInitiativeRequest {
                options: None,
                key: "search-7".into(),
                title: "Faster search".into(),
                summary: String::new(),
                owner: OWNER.into(),
                stage: pb::Stage::Unspecified.into(),
                required_functions: Vec::new(),
            },
            parse::create_initiative,
        ),
        step(
            1,
            "update-initiative",
            OWNER,
            pb::UpdateInitiativeRequest {
                options: options("seed-search-update"),
                initiative: on(),
                title: Some("Faster, simpler search".into()),
                summary: Some("Results in under 200 ms.".into()),
                owner: None,
                required_functions: functions(&["engineering"]),
            },
            parse::update_initiative,
        ),
        step(
            2,
            "change-stage",
            OWNER,
            pb::ChangeStageRequest { options: None, initiative: on(), stage: pb::Stage::Delivery.into() },
            parse::change_stage,
        ),
        step(
            4,
            "assign-driver-search",
            OWNER,
            pb::AssignStakeholderRequest {
                options: None,
                initiative: on(),
                principal: OWNER.into(),
                function: "product".into(),
                role: pb::Role::Driver.into(),
            },
            parse::assign_stakeholder,
        ),
        step(
            4,
            "assign-stakeholder-search",
            OWNER,
            pb::AssignStakeholderRequest {
                options: None,
                initiative: on(),
                principal: ENGINEER.into(),
                function: "engineering".into(),
                role: pb::Role::Approver.into(),
            },
            parse::assign_stakeholder,
        ),
        step(
            6,
            "propose-decision-search",
            OWNER,
            pb::ProposeDecisionRequest {
                options: None,
                initiative: on(),
                content: content("Drop the search filters", "Remove the rarely used filters."),
                required_functions: functions(&["engineering"]),
                supersedes: String::new(),
            },
            parse::propose_decision,
        ),
        step(
            7,
            "revise-decision",
            OWNER,
            pb::ReviseDecisionRequest {
                options: None,
                initiative: on(),
                decision_id: D2.into(),
                kind: pb::RevisionKind::Material.into(),
                content: content("Drop the search filters", "Remove all filters but price."),
                required_functions: Vec::new(),
                note: "Keep price: it is used.".into(),
            },
            parse::revise_decision,
        ),
        step(
            12,
            "record-feedback-search",
            ENGINEER,
            pb::RecordFeedbackRequest {
                options: None,
                initiative: on(),
                decision_id: String::new(),
                function: "engineering".into(),
                kind: pb::FeedbackKind::Question.into(),
                source: pb::FeedbackSource::Unspecified.into(),
                body: "Is the index ready?".into(),
            },
            parse::record_feedback,
        ),
        step(
            13,
            "resolve-feedback-search",
            OWNER,
            pb::ResolveFeedbackRequest {
                options: None,
                initiative: on(),
                feedback_id: F2.into(),
                resolution: "Yes.".into(),
            },
            parse::resolve_feedback,
        ),
        step(
            14,
            "reopen-feedback",
            ENGINEER,
            pb::ReopenFeedbackRequest {
                options: None,
                initiative: on(),
                feedback_id: F2.into(),
                reason: "Not in staging.".into(),
            },
            parse::reopen_feedback,
        ),
        step(
            15,
            "record-sign-off-search",
            ENGINEER,
            pb::RecordSignOffRequest {
                options: None,
                initiative: on(),
                decision_id: D2.into(),
                function: "engineering".into(),
                verdict: pb::Verdict::Reject.into(),
                reason: "Filters are in the contract with a partner.".into(),
                comment: String::new(),
                revision: Some(2),
            },
            parse::record_sign_off,
        ),
        step(
            16,
            "revoke-sign-off",
            ENGINEER,
            pb::RevokeSignOffRequest {
                options: None,
                initiative: on(),
                decision_id: D2.into(),
                function: "engineering".into(),
            },
            parse::revoke_sign_off,
        ),
        step(
            9,
            "reject-decision",
            OWNER,
            pb::RejectDecisionRequest {
                options: None,
                initiative: on(),
                decision_id: D2.into(),
                reason: "Partner contract.".into(),
            },
            parse::reject_decision,
        ),
    ]
}

/// Withdrawal, removal and archival, on a third initiative (an export line is about
/// 650 bytes, so one history of every RPC would not fit a 10 KB seed).
fn pilot_history() -> Vec<Step> {
    let on = || "PILOT-1".to_owned();
    vec![
        step(
            0,
            "create-initiative-pilot",
            OWNER,
            pb::CreateInitiativeRequest {
                options: None,
                key: "PILOT-1".into(),
                title: "Pilot".into(),
                summary: String::new(),
                owner: String::new(),
                stage: pb::Stage::Launched.into(),
                required_functions: functions(&["engineering"]),
            },
            parse::create_initiative,
        ),
        step(
            4,
            "assign-driver-pilot",
            OWNER,
            pb::AssignStakeholderRequest {
                options: None,
                initiative: on(),
                principal: OWNER.into(),
                function: "product".into(),
                role: pb::Role::Driver.into(),
            },
            parse::assign_stakeholder,
        ),
        step(
            4,
            "assign-stakeholder-pilot",
            OWNER,
            pb::AssignStakeholderRequest {
                options: None,
                initiative: on(),
                principal: ENGINEER.into(),
                function: "engineering".into(),
                role: pb::Role::Approver.into(),
            },
            parse::assign_stakeholder,
        ),
        step(
            6,
            "propose-decision-withdrawn",
            OWNER,
            pb::ProposeDecisionRequest {
                options: None,
                initiative: on(),
                content: content("Rename search", "Call it Find."),
                required_functions: Vec::new(),
                supersedes: String::new(),
            },
            parse::propose_decision,
        ),
        step(
            10,
            "withdraw-decision",
            OWNER,
            pb::WithdrawDecisionRequest {
                options: None,
                initiative: on(),
                decision_id: D3.into(),
                reason: "Out of scope.".into(),
            },
            parse::withdraw_decision,
        ),
        step(
            5,
            "remove-stakeholder",
            OWNER,
            pb::RemoveStakeholderRequest {
                options: None,
                initiative: on(),
                principal: ENGINEER.into(),
                function: "engineering".into(),
                role: pb::Role::Approver.into(),
            },
            parse::remove_stakeholder,
        ),
        step(
            3,
            "archive-initiative",
            OWNER,
            pb::ArchiveInitiativeRequest { options: None, initiative: on(), reason: "Merged into CHECKOUT-42.".into() },
            parse::archive_initiative,
        ),
    ]
}

/// Supersession needs two accepted decisions, so it is a command seed only.
fn supersede() -> Step {
    step(
        11,
        "supersede-decision",
        OWNER,
        pb::SupersedeDecisionRequest {
            options: options("seed-supersede"),
            initiative: "CHECKOUT-42".into(),
            decision_id: D1.into(),
            superseded_by: D2.into(),
        },
        parse::supersede_decision,
    )
}

/// Runs `steps` through the domain as the service would, and writes the events as an
/// export: one JSON line each, positions counting on from `position`.
fn export(steps: &[Step], position: &mut i64, start: DateTime<Utc>) -> Result<Vec<String>> {
    let mut state: Option<Initiative> = None;
    let mut prev_hash = ZERO_HASH.to_vec();
    let mut lines = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let actor = Principal::parse("actor", step.actor)?;
        let events = decide(state.as_ref(), &step.command, &actor).map_err(|e| format!("{}: {e}", step.name))?;
        let command_id = format!("seed-{}", step.name);
        let recorded_at = start + Duration::minutes(i64::try_from(index)?);
        for event in events {
            let version = state.as_ref().map_or(1, |s| s.version + 1);
            let recorded = Recorded { version, actor: actor.clone(), recorded_at, event };
            state = Some(evolve(state, &recorded).map_err(|e| format!("{}: {}", step.name, e.message))?);
            *position += 1;
            let stream_id = state.as_ref().map(|s| s.id.0).ok_or("no stream")?;
            let mut stored = StoredEvent {
                position: *position,
                stream_id,
                stream_version: i64::try_from(version)?,
                event_id: Uuid::from_u128(stream_id.as_u128() ^ (u128::from(version) << 64)),
                event_type: recorded.event.event_type().to_owned(),
                schema_version: SCHEMA_VERSION,
                payload: recorded.event.payload(),
                actor: step.actor.to_owned(),
                command_id: command_id.clone(),
                correlation_id: command_id.clone(),
                causation_id: command_id.clone(),
                recorded_at,
                prev_hash: prev_hash.clone(),
                hash: Vec::new(),
            };
            stored.hash = event_hash(&stored.prev_hash, &stored.content()).to_vec();
            prev_hash.clone_from(&stored.hash);
            lines.push(ExportLine::from(&stored).to_json()?);
        }
    }
    Ok(lines)
}

/// A page token as `queries::encode_token` issues it (private there): the fingerprint of
/// the filters and the last key served. `decode_token` checks the result below.
fn page_token(filter: &ListFilter, last_key: &str) -> String {
    let fingerprint = hex::encode(&Sha256::digest(format!("{filter:?}").as_bytes())[..8]);
    URL_SAFE_NO_PAD.encode(format!("{fingerprint}:{last_key}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    assert!(bytes.len() < 10_000, "seed {name} is {} bytes; keep committed seeds under 10 KB", bytes.len());
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// Empties (or creates) `seeds/<target>/`, so that renamed seeds leave nothing behind.
fn seed_dir(target: &str) -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn command_seeds(steps: &[&Step]) -> Result<()> {
    let dir = seed_dir("commands")?;
    let mut covered = [false; 17];
    for step in steps {
        // One seed per RPC is enough: the fuzzer mutates it into the others' shapes.
        if !std::mem::replace(&mut covered[usize::from(step.rpc)], true) {
            let input: Vec<u8> = std::iter::once(step.rpc).chain(step.encoded.iter().copied()).collect();
            write(&dir, &format!("{:02}-{}.bin", step.rpc, step.name), &input)?;
        }
    }
    let missing: Vec<usize> = (0..covered.len()).filter(|&rpc| !covered[rpc]).collect();
    assert!(missing.is_empty(), "no command seed for the RPCs numbered {missing:?}");
    Ok(())
}

fn import_seeds(checkout: &[Step], search: &[Step], pilot: &[Step]) -> Result<()> {
    let dir = seed_dir("import_lines")?;
    let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00.123456Z")?.with_timezone(&Utc);
    let mut position = 0;
    let checkout = export(checkout, &mut position, start)?;
    let search = export(search, &mut position, start + Duration::hours(1))?;
    let pilot = export(pilot, &mut position, start + Duration::hours(2))?;
    let files = [
        ("single-line.jsonl", checkout[..1].join("\n")),
        ("checkout-history.jsonl", checkout.join("\n") + "\n"),
        // Windows line ends, and no newline after the last line.
        ("search-history.jsonl", search.join("\r\n")),
        ("pilot-history.jsonl", pilot.join("\n") + "\n"),
        // Two streams interleaved, with a blank line (an import numbers positions anew).
        ("two-streams.jsonl", [&checkout[..3], &search[..2], &[String::new()], &checkout[3..5]].concat().join("\n")),
    ];
    for (name, text) in files {
        let mut importer = Importer::new();
        for (index, line) in text.lines().enumerate() {
            importer.accept(index + 1, line).map_err(|e| format!("{name}: {e}"))?;
        }
        importer.finish().map_err(|e| format!("{name}: {e}"))?;
        write(&dir, name, text.as_bytes())?;
    }
    Ok(())
}

fn query_seeds() -> Result<()> {
    let dir = seed_dir("queries")?;
    let filtered = pb::ListAlignmentsRequest {
        status: pb::InitiativeStatus::Pending.into(),
        pending_function: "engineering".into(),
        stage: pb::Stage::Delivery.into(),
        owner: OWNER.into(),
        text: "checkout".into(),
        include_archived: true,
        page_size: 20,
        page_token: String::new(),
    };
    let filter = list_filter(&filtered)?;
    let next_page = pb::ListAlignmentsRequest { page_token: page_token(&filter, "CHECKOUT-42"), ..filtered.clone() };
    assert_eq!(decode_token(&filter, &next_page.page_token)?.as_deref(), Some("CHECKOUT-42"), "page token format");
    let unfiltered = pb::ListAlignmentsRequest::default();
    let unfiltered_next_page = pb::ListAlignmentsRequest {
        page_token: page_token(&list_filter(&unfiltered)?, "A1"),
        page_size: 500,
        ..unfiltered
    };
    let foreign_token = pb::ListAlignmentsRequest { page_token: "bm90LWEtdG9rZW4".into(), ..filtered.clone() };
    for (name, request) in [
        ("filtered", &filtered),
        ("next-page", &next_page),
        ("unfiltered-next-page", &unfiltered_next_page),
        ("foreign-token", &foreign_token),
    ] {
        write(&dir, &format!("{name}.bin"), &request.encode_to_vec())?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let checkout = checkout_history();
    let search = search_history();
    let pilot = pilot_history();
    let supersede = supersede();
    let all: Vec<&Step> = checkout.iter().chain(&search).chain(&pilot).chain([&supersede]).collect();
    command_seeds(&all)?;
    import_seeds(&checkout, &search, &pilot)?;
    query_seeds()?;
    println!("wrote seeds to {}/seeds", env!("CARGO_MANIFEST_DIR"));
    Ok(())
}
