//! Hardening: a refusal quotes at most a short prefix of what it refuses. Every string
//! field of every request (and the metadata entries the guard reads) is sent with a
//! 100,000-character value — ASCII, two-byte characters and control characters, the last
//! of which an escaping quote would make six times longer — and must be refused with
//! INVALID_ARGUMENT naming the field, a message under 1 KB and a status, as the client
//! receives it on the wire (message and `grpc-status-details-bin` with the rest of the
//! response's header block), far under the 16 KB metadata limit of ordinary gRPC
//! clients. The board's HTTP API answers 400 with a small body. The log stays unchanged.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use accord::proto::{
    self as pb, alignment_service_client::AlignmentServiceClient, audit_service_client::AuditServiceClient,
    command_service_client::CommandServiceClient,
};
use accord::security::Authenticator;
use accord::server::ServerOptions;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::{Code, Request, Status, service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

use crate::support::*;

/// How many characters each long value has.
const LONG: usize = 100_000;
/// The most a refusal's message may take.
const MAX_MESSAGE: usize = 1024;
/// The most a refusal's whole header block may take on the wire: a quarter of the
/// 16 KB metadata limit of grpcio and most other clients.
const MAX_HEADER_BLOCK: usize = 4 * 1024;

/// The long values: one-byte, two-byte and control characters (escaped when quoted).
fn long_values() -> [(&'static str, String); 3] {
    [("ASCII", "x".repeat(LONG)), ("two-byte", "é".repeat(LONG)), ("control", "\u{1b}".repeat(LONG))]
}

// ---- A client that records the header block of each response ------------------------

/// Wraps the channel and keeps the header block of the last response, which for a
/// refusal (a trailers-only response) holds the whole status as the client receives it.
#[derive(Clone)]
struct Recording {
    channel: Channel,
    last: Arc<Mutex<Option<http::HeaderMap>>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Recording {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let call = self.channel.call(request);
        let last = self.last.clone();
        Box::pin(async move {
            let response = call.await?;
            *last.lock().expect("not poisoned") = Some(response.headers().clone());
            Ok(response)
        })
    }
}

/// The size of a header block as HTTP/2 counts it against SETTINGS_MAX_HEADER_LIST_SIZE:
/// each entry's name and value plus 32 bytes.
fn header_block_size(headers: &http::HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum()
}

type Via = InterceptedService<Recording, Bearer>;

/// Clients of every service over one recording channel: the administrator for commands
/// (the guard lets every command through to its parser), a reader and an auditor.
#[derive(Clone)]
struct Clients {
    commands: CommandServiceClient<Via>,
    queries: AlignmentServiceClient<Via>,
    audit: AuditServiceClient<Via>,
    /// Imports need the administrator.
    import: AuditServiceClient<Via>,
    last: Arc<Mutex<Option<http::HeaderMap>>>,
}

impl Clients {
    fn of(app: &TestApp) -> Clients {
        let last = Arc::new(Mutex::new(None));
        let recording = Recording { channel: app.channel(), last: last.clone() };
        let bearer = |principal: &str| Bearer(Some(token(principal, roles_of(principal))));
        Clients {
            commands: CommandServiceClient::with_interceptor(recording.clone(), bearer(OWNER)),
            queries: AlignmentServiceClient::with_interceptor(recording.clone(), bearer(DASHBOARD)),
            audit: AuditServiceClient::with_interceptor(recording.clone(), bearer(AUDITOR)),
            import: AuditServiceClient::with_interceptor(recording, bearer(OWNER)),
            last,
        }
    }

    /// The header block of the last response, and its size.
    fn last_header_block(&self) -> (http::HeaderMap, usize) {
        let headers = self.last.lock().expect("not poisoned").take().expect("a response arrived");
        let size = header_block_size(&headers);
        (headers, size)
    }
}

/// Asserts that a refusal is small: its message, and the header block that carried it.
#[track_caller]
fn assert_small(clients: &Clients, status: &Status, context: &str) {
    assert!(
        status.message().len() < MAX_MESSAGE,
        "{context}: a {}-byte message: {}…",
        status.message().len(),
        status.message().chars().take(120).collect::<String>()
    );
    let (headers, size) = clients.last_header_block();
    assert!(headers.contains_key("grpc-status"), "{context}: the status came in the response's header block");
    assert!(size < MAX_HEADER_BLOCK, "{context}: a {size}-byte header block");
}

// ---- Every string field of every request ---------------------------------------------

/// One request with one field set to the value given, sent with the right client.
struct Case {
    rpc: &'static str,
    field: &'static str,
    send: fn(Clients, String) -> BoxFuture<Result<(), Status>>,
}

/// A valid id, so that only the field under test is wrong.
const ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/// Builds a `Case` for a command: `$base` is a valid request, `$set` puts the value in.
macro_rules! command {
    ($rpc:ident, $field:literal, $base:expr, |$r:ident, $v:ident| $set:expr) => {
        Case {
            rpc: stringify!($rpc),
            field: $field,
            send: |clients, $v| {
                let mut $r = $base;
                $set;
                let mut client = clients.commands.clone();
                Box::pin(async move { client.$rpc($r).await.map(drop) })
            },
        }
    };
}

/// Builds a `Case` for a unary query or a stream (refused before its first item).
macro_rules! query {
    ($client:ident, $rpc:ident, $field:literal, $base:expr, |$r:ident, $v:ident| $set:expr) => {
        Case {
            rpc: stringify!($rpc),
            field: $field,
            send: |clients, $v| {
                let mut $r = $base;
                $set;
                let mut client = clients.$client.clone();
                Box::pin(async move { client.$rpc($r).await.map(drop) })
            },
        }
    };
}

fn content_of(r: &mut Option<pb::DecisionContent>) -> &mut pb::DecisionContent {
    r.as_mut().expect("content")
}

fn revision() -> pb::ReviseDecisionRequest {
    pb::ReviseDecisionRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        decision_id: ID.into(),
        kind: pb::RevisionKind::Material.into(),
        content: content("Use Stripe", "Integrate Stripe."),
        required_functions: vec![],
        note: String::new(),
    }
}

fn update() -> pb::UpdateInitiativeRequest {
    pb::UpdateInitiativeRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        title: None,
        summary: None,
        owner: None,
        required_functions: vec![],
    }
}

fn resolution() -> pb::ResolveFeedbackRequest {
    pb::ResolveFeedbackRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        feedback_id: ID.into(),
        resolution: "Done.".into(),
    }
}

fn reopening() -> pb::ReopenFeedbackRequest {
    pb::ReopenFeedbackRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        feedback_id: ID.into(),
        reason: String::new(),
    }
}

fn rejection() -> pb::RejectDecisionRequest {
    pb::RejectDecisionRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        decision_id: ID.into(),
        reason: "No.".into(),
    }
}

fn withdrawal() -> pb::WithdrawDecisionRequest {
    pb::WithdrawDecisionRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        decision_id: ID.into(),
        reason: String::new(),
    }
}

fn supersession() -> pb::SupersedeDecisionRequest {
    pb::SupersedeDecisionRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        decision_id: ID.into(),
        superseded_by: ID.into(),
    }
}

fn revocation() -> pb::RevokeSignOffRequest {
    pb::RevokeSignOffRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        decision_id: ID.into(),
        function: "engineering".into(),
    }
}

fn stage_change() -> pb::ChangeStageRequest {
    pb::ChangeStageRequest { options: None, initiative: "CHECKOUT-42".into(), stage: pb::Stage::Delivery.into() }
}

fn archival() -> pb::ArchiveInitiativeRequest {
    pb::ArchiveInitiativeRequest { options: None, initiative: "CHECKOUT-42".into(), reason: String::new() }
}

fn removal() -> pb::RemoveStakeholderRequest {
    pb::RemoveStakeholderRequest {
        options: None,
        initiative: "CHECKOUT-42".into(),
        principal: ENGINEER.into(),
        function: "engineering".into(),
        role: pb::Role::Approver.into(),
    }
}

fn sign_off() -> pb::RecordSignOffRequest {
    sign_off_request("CHECKOUT-42", ID, "engineering", pb::Verdict::Approve)
}

fn feedback() -> pb::RecordFeedbackRequest {
    feedback_request("CHECKOUT-42", ID, "design", pb::FeedbackKind::Comment, "Looks fine.")
}

fn command_id(value: String) -> Option<pb::CommandOptions> {
    Some(pb::CommandOptions { command_id: value, expected_version: None })
}

// Each case is a valid request with one field changed: clearer as base, then change.
#[allow(clippy::field_reassign_with_default)]
fn cases() -> Vec<Case> {
    vec![
        // CreateInitiative
        command!(create_initiative, "key", new_initiative("PAYMENTS-1", "Payments"), |r, v| r.key = v),
        command!(create_initiative, "title", new_initiative("PAYMENTS-1", "Payments"), |r, v| r.title = v),
        command!(create_initiative, "summary", new_initiative("PAYMENTS-1", "Payments"), |r, v| r.summary = v),
        command!(create_initiative, "owner", new_initiative("PAYMENTS-1", "Payments"), |r, v| r.owner = v),
        command!(create_initiative, "required_functions", new_initiative("PAYMENTS-1", "Payments"), |r, v| r
            .required_functions =
            vec!["legal".into(), v]),
        command!(create_initiative, "options.command_id", new_initiative("PAYMENTS-1", "Payments"), |r, v| r.options =
            command_id(v)),
        // UpdateInitiative
        command!(update_initiative, "initiative", update(), |r, v| r.initiative = v),
        command!(update_initiative, "title", update(), |r, v| r.title = Some(v)),
        command!(update_initiative, "summary", update(), |r, v| r.summary = Some(v)),
        command!(update_initiative, "owner", update(), |r, v| r.owner = Some(v)),
        command!(update_initiative, "required_functions", update(), |r, v| r.required_functions = vec![v]),
        command!(update_initiative, "options.command_id", update(), |r, v| r.options = command_id(v)),
        // ChangeStage, ArchiveInitiative
        command!(change_stage, "initiative", stage_change(), |r, v| r.initiative = v),
        command!(change_stage, "options.command_id", stage_change(), |r, v| r.options = command_id(v)),
        command!(archive_initiative, "initiative", archival(), |r, v| r.initiative = v),
        command!(archive_initiative, "reason", archival(), |r, v| r.reason = v),
        command!(archive_initiative, "options.command_id", archival(), |r, v| r.options = command_id(v)),
        // AssignStakeholder, RemoveStakeholder
        command!(
            assign_stakeholder,
            "initiative",
            assignment("CHECKOUT-42", ENGINEER, "legal", pb::Role::Approver),
            |r, v| r.initiative = v
        ),
        command!(
            assign_stakeholder,
            "principal",
            assignment("CHECKOUT-42", ENGINEER, "legal", pb::Role::Approver),
            |r, v| r.principal = v
        ),
        command!(
            assign_stakeholder,
            "function",
            assignment("CHECKOUT-42", ENGINEER, "legal", pb::Role::Approver),
            |r, v| r.function = v
        ),
        command!(
            assign_stakeholder,
            "options.command_id",
            assignment("CHECKOUT-42", ENGINEER, "legal", pb::Role::Approver),
            |r, v| r.options = command_id(v)
        ),
        command!(remove_stakeholder, "initiative", removal(), |r, v| r.initiative = v),
        command!(remove_stakeholder, "principal", removal(), |r, v| r.principal = v),
        command!(remove_stakeholder, "function", removal(), |r, v| r.function = v),
        command!(remove_stakeholder, "options.command_id", removal(), |r, v| r.options = command_id(v)),
        // ProposeDecision
        command!(propose_decision, "initiative", proposal("CHECKOUT-42", "Use Adyen"), |r, v| r.initiative = v),
        command!(propose_decision, "content.title", proposal("CHECKOUT-42", "Use Adyen"), |r, v| content_of(
            &mut r.content
        )
        .title = v),
        command!(propose_decision, "content.context", proposal("CHECKOUT-42", "Use Adyen"), |r, v| content_of(
            &mut r.content
        )
        .context = v),
        command!(propose_decision, "content.options[1]", proposal("CHECKOUT-42", "Use Adyen"), |r, v| content_of(
            &mut r.content
        )
        .options[1] = v),
        command!(propose_decision, "content.proposal", proposal("CHECKOUT-42", "Use Adyen"), |r, v| content_of(
            &mut r.content
        )
        .proposal = v),
        command!(propose_decision, "content.rationale", proposal("CHECKOUT-42", "Use Adyen"), |r, v| content_of(
            &mut r.content
        )
        .rationale = v),
        command!(propose_decision, "required_functions", proposal("CHECKOUT-42", "Use Adyen"), |r, v| r
            .required_functions =
            vec![v]),
        command!(propose_decision, "supersedes", proposal("CHECKOUT-42", "Use Adyen"), |r, v| r.supersedes = v),
        command!(propose_decision, "options.command_id", proposal("CHECKOUT-42", "Use Adyen"), |r, v| r.options =
            command_id(v)),
        // ReviseDecision
        command!(revise_decision, "initiative", revision(), |r, v| r.initiative = v),
        command!(revise_decision, "decision_id", revision(), |r, v| r.decision_id = v),
        command!(revise_decision, "content.title", revision(), |r, v| content_of(&mut r.content).title = v),
        command!(revise_decision, "content.proposal", revision(), |r, v| content_of(&mut r.content).proposal = v),
        command!(revise_decision, "required_functions", revision(), |r, v| r.required_functions = vec![v]),
        command!(revise_decision, "note", revision(), |r, v| r.note = v),
        command!(revise_decision, "options.command_id", revision(), |r, v| r.options = command_id(v)),
        // AcceptDecision, RejectDecision, WithdrawDecision, SupersedeDecision
        command!(accept_decision, "initiative", acceptance("CHECKOUT-42", ID, ""), |r, v| r.initiative = v),
        command!(accept_decision, "decision_id", acceptance("CHECKOUT-42", ID, ""), |r, v| r.decision_id = v),
        command!(accept_decision, "override_reason", acceptance("CHECKOUT-42", ID, ""), |r, v| r.override_reason = v),
        command!(accept_decision, "options.command_id", acceptance("CHECKOUT-42", ID, ""), |r, v| r.options =
            command_id(v)),
        command!(reject_decision, "initiative", rejection(), |r, v| r.initiative = v),
        command!(reject_decision, "decision_id", rejection(), |r, v| r.decision_id = v),
        command!(reject_decision, "reason", rejection(), |r, v| r.reason = v),
        command!(reject_decision, "options.command_id", rejection(), |r, v| r.options = command_id(v)),
        command!(withdraw_decision, "initiative", withdrawal(), |r, v| r.initiative = v),
        command!(withdraw_decision, "decision_id", withdrawal(), |r, v| r.decision_id = v),
        command!(withdraw_decision, "reason", withdrawal(), |r, v| r.reason = v),
        command!(withdraw_decision, "options.command_id", withdrawal(), |r, v| r.options = command_id(v)),
        command!(supersede_decision, "initiative", supersession(), |r, v| r.initiative = v),
        command!(supersede_decision, "decision_id", supersession(), |r, v| r.decision_id = v),
        command!(supersede_decision, "superseded_by", supersession(), |r, v| r.superseded_by = v),
        command!(supersede_decision, "options.command_id", supersession(), |r, v| r.options = command_id(v)),
        // RecordFeedback, ResolveFeedback, ReopenFeedback
        command!(record_feedback, "initiative", feedback(), |r, v| r.initiative = v),
        command!(record_feedback, "decision_id", feedback(), |r, v| r.decision_id = v),
        command!(record_feedback, "function", feedback(), |r, v| r.function = v),
        command!(record_feedback, "body", feedback(), |r, v| r.body = v),
        command!(record_feedback, "options.command_id", feedback(), |r, v| r.options = command_id(v)),
        command!(resolve_feedback, "initiative", resolution(), |r, v| r.initiative = v),
        command!(resolve_feedback, "feedback_id", resolution(), |r, v| r.feedback_id = v),
        command!(resolve_feedback, "resolution", resolution(), |r, v| r.resolution = v),
        command!(resolve_feedback, "options.command_id", resolution(), |r, v| r.options = command_id(v)),
        command!(reopen_feedback, "initiative", reopening(), |r, v| r.initiative = v),
        command!(reopen_feedback, "feedback_id", reopening(), |r, v| r.feedback_id = v),
        command!(reopen_feedback, "reason", reopening(), |r, v| r.reason = v),
        command!(reopen_feedback, "options.command_id", reopening(), |r, v| r.options = command_id(v)),
        // RecordSignOff, RevokeSignOff
        command!(record_sign_off, "initiative", sign_off(), |r, v| r.initiative = v),
        command!(record_sign_off, "decision_id", sign_off(), |r, v| r.decision_id = v),
        command!(record_sign_off, "function", sign_off(), |r, v| r.function = v),
        command!(record_sign_off, "reason", sign_off(), |r, v| r.reason = v),
        command!(record_sign_off, "comment", sign_off(), |r, v| r.comment = v),
        command!(record_sign_off, "options.command_id", sign_off(), |r, v| r.options = command_id(v)),
        command!(revoke_sign_off, "initiative", revocation(), |r, v| r.initiative = v),
        command!(revoke_sign_off, "decision_id", revocation(), |r, v| r.decision_id = v),
        command!(revoke_sign_off, "function", revocation(), |r, v| r.function = v),
        command!(revoke_sign_off, "options.command_id", revocation(), |r, v| r.options = command_id(v)),
        // AlignmentService
        query!(queries, get_alignment, "initiative", pb::GetAlignmentRequest::default(), |r, v| r.initiative = v),
        query!(queries, list_alignments, "pending_function", pb::ListAlignmentsRequest::default(), |r, v| r
            .pending_function =
            v),
        query!(queries, list_alignments, "owner", pb::ListAlignmentsRequest::default(), |r, v| r.owner = v),
        query!(queries, list_alignments, "text", pb::ListAlignmentsRequest::default(), |r, v| r.text = v),
        query!(queries, list_alignments, "page_token", pb::ListAlignmentsRequest::default(), |r, v| r.page_token = v),
        query!(queries, get_inbox, "principal", pb::GetInboxRequest::default(), |r, v| r.principal = v),
        query!(
            queries,
            get_decision,
            "initiative",
            pb::GetDecisionRequest { initiative: String::new(), decision_id: ID.into() },
            |r, v| r.initiative = v
        ),
        query!(
            queries,
            get_decision,
            "decision_id",
            pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: String::new() },
            |r, v| r.decision_id = v
        ),
        query!(queries, watch_alignments, "initiatives[1]", pb::WatchAlignmentsRequest::default(), |r, v| r
            .initiatives =
            vec!["CHECKOUT-42".into(), v]),
        query!(queries, watch_alignments, "pending_function", pb::WatchAlignmentsRequest::default(), |r, v| r
            .pending_function =
            v),
        query!(queries, watch_alignments, "owner", pb::WatchAlignmentsRequest::default(), |r, v| r.owner = v),
        // AuditService
        query!(audit, read_events, "initiative", pb::ReadEventsRequest::default(), |r, v| r.initiative = v),
        query!(audit, read_events, "event_types[1]", pb::ReadEventsRequest::default(), |r, v| r.event_types =
            vec!["SignOffRecorded".into(), v]),
        query!(
            audit,
            get_alignment_as_of,
            "initiative",
            pb::GetAlignmentAsOfRequest {
                initiative: String::new(),
                at: Some(pb::get_alignment_as_of_request::At::Version(1)),
            },
            |r, v| r.initiative = v
        ),
        query!(audit, explain, "initiative", pb::ExplainRequest::default(), |r, v| r.initiative = v),
        query!(
            audit,
            explain,
            "decision_id",
            pb::ExplainRequest { initiative: "CHECKOUT-42".into(), ..Default::default() },
            |r, v| r.decision_id = v
        ),
        query!(audit, verify, "initiative", pb::VerifyRequest::default(), |r, v| r.initiative = v),
    ]
}

/// Fields refused without their length: principals ("is longer than 254 characters"),
/// the command id and the page token (which are never quoted).
const SAY_NO_LENGTH: &[&str] = &["owner", "principal", "options.command_id", "page_token"];

async fn every_string_field_of_every_request_at_100000_characters_is_refused_naming_it_in_a_small_status(app: TestApp) {
    let before = app.log().await;
    let clients = Clients::of(&app);
    let cases = cases();
    for (kind, value) in long_values() {
        for case in &cases {
            let context = format!("{} {} ({kind}, {LONG} characters)", case.rpc, case.field);
            let status = (case.send)(clients.clone(), value.clone()).await.expect_err(&context);
            assert_invalid(&status, case.field, "");
            assert_small(&clients, &status, &context);
            // Every refusal says how long the value was (a quote's prefix with the length,
            // or the length against the limit), except those that refuse by length alone.
            if !SAY_NO_LENGTH.contains(&case.field) {
                assert!(status.message().contains("100000 characters"), "{context}: {}", status.message());
            }
        }
    }
    assert_eq!(app.log().await, before, "nothing was written");
}

/// A line of an export, valid but for `field`, which is `value`.
fn export_line(field: &str, value: &str) -> String {
    let zeros = "0".repeat(64);
    let mut line = serde_json::json!({
        "position": 1, "stream_id": ID, "stream_version": 1, "event_id": ID, "event_type": "InitiativeCreated",
        "schema_version": 1, "payload": {}, "actor": OWNER, "command_id": "c-1", "correlation_id": "c-1",
        "causation_id": "c-1", "recorded_at": "2026-01-01T00:00:00Z", "prev_hash": zeros, "hash": zeros,
    });
    line[field] = serde_json::json!(value);
    line.to_string()
}

/// An import line that is not JSON, names an unknown field, or holds a refused value:
/// the refusal names the line and quotes no more of it than a short prefix.
async fn an_import_line_of_100000_characters_is_refused_naming_the_line_in_a_small_status(app: TestApp) {
    let clients = Clients::of(&app);
    for (kind, value) in long_values() {
        let lines = [
            ("not JSON", value.clone()),
            ("an unknown field", serde_json::json!({ value.clone(): 1 }).to_string()),
            ("position", export_line("position", &value)),
            ("stream_id", export_line("stream_id", &value)),
            ("recorded_at", export_line("recorded_at", &value)),
            ("prev_hash", export_line("prev_hash", &value)),
        ];
        for (what, line) in lines {
            let context = format!("import of a {}-byte line ({what}, {kind})", line.len());
            let upload = tokio_stream::iter([
                pb::ImportEventsRequest { line, end: false },
                pb::ImportEventsRequest { line: String::new(), end: true },
            ]);
            let status = clients.import.clone().import_events(upload).await.expect_err(&context);
            assert_invalid(&status, "line 1", "");
            assert_small(&clients, &status, &context);
        }
    }
    assert!(app.log().await.is_empty(), "nothing was imported");
}

// ---- Metadata ------------------------------------------------------------------------

/// A long metadata value that still reaches Accord: the server takes header blocks of up
/// to 32 KB (HTTP/2 refuses a larger one before the guard sees it).
const LONG_METADATA: usize = 24_000;

/// The correlation and causation ids, and in local development mode the caller's name
/// and roles, at 24,000 characters: refused naming the entry, in a small status.
async fn metadata_entries_of_24000_characters_are_refused_naming_the_entry_in_a_small_status(app: TestApp) {
    let before = app.log().await;
    let clients = Clients::of(&app);
    let long = "x".repeat(LONG_METADATA);
    for entry in ["x-correlation-id", "x-causation-id"] {
        let mut request = Request::new(new_initiative("PAYMENTS-1", "Payments"));
        request.metadata_mut().insert(entry, long.parse().expect("ASCII metadata"));
        let status = clients.commands.clone().create_initiative(request).await.expect_err(entry);
        assert_invalid(&status, entry, "must be 1-128 printable ASCII characters");
        assert_small(&clients, &status, entry);
    }

    let local =
        app.reserve(ServerOptions { authenticator: Authenticator::LocalDevelopment, ..harness_options() }).await;
    // The harness's bearer token goes along; local development mode does not read it.
    let local_clients = Clients::of(&local);
    let unknown_role = format!("member,{long}");
    let with_space = format!("{} {}", "a".repeat(100), "b".repeat(100));
    for (entry, value, says) in [
        ("x-accord-actor", long.as_str(), "x-accord-actor: is longer than 254 characters"),
        ("x-accord-actor", with_space.as_str(), "must not contain whitespace"),
        ("x-accord-roles", unknown_role.as_str(), "is not a role"),
    ] {
        let mut request = Request::new(new_initiative("PAYMENTS-1", "Payments"));
        request.metadata_mut().insert("x-accord-actor", "pm@example.com".parse().expect("ASCII"));
        request.metadata_mut().insert(entry, value.parse().expect("ASCII metadata"));
        let status = local_clients.commands.clone().create_initiative(request).await.expect_err(entry);
        assert_status(&status, Code::Unauthenticated, &[entry, says]);
        assert_small(&local_clients, &status, entry);
    }
    assert_eq!(app.log().await, before, "nothing was written");
}

/// A JWT whose header names a 5,000-character key id (the token stays under the 8 KB
/// bound): refused as unauthenticated without quoting the key id whole.
async fn a_token_with_a_5000_character_key_id_is_refused_in_a_small_status(app: TestApp) {
    let clients = Clients::of(&app);
    // HS384: no configured key has that algorithm, so the refusal names the key id.
    let mut header = Header::new(Algorithm::HS384);
    header.kid = Some("k".repeat(5_000));
    let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": OWNER, "exp": 4_000_000_000u64});
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET).expect("key")).expect("sign");
    let recording = Recording { channel: app.channel(), last: clients.last.clone() };
    let mut commands = CommandServiceClient::with_interceptor(recording, Bearer(Some(token)));
    let status = commands.create_initiative(new_initiative("PAYMENTS-1", "Payments")).await.expect_err("unknown kid");
    assert_status(&status, Code::Unauthenticated, &["no configured key verifies tokens signed with HS384", "key id"]);
    assert_small(&clients, &status, "a 5,000-character kid");
}

// ---- The board's HTTP API ------------------------------------------------------------

/// `/api/watch` with each query parameter as long as a URI can hold, and
/// `/api/initiatives/{initiative}` likewise: 400 naming the field, with a body under 1 KB.
/// A URI holds at most 64 KB (the bound of the `http` crate, which hyper's server shares),
/// so the values are 60,000 ASCII, 10,000 two-byte or 20,000 control characters, each
/// byte but ASCII letters percent-encoded.
async fn the_board_api_refuses_parameters_as_long_as_a_uri_holds_naming_them_in_a_small_body(app: TestApp) {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
    let board = http.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServerOptions { authenticator: Authenticator::LocalDevelopment, ..harness_options() };
    tokio::spawn(accord::server::serve_all(grpc, Some(http), app.store.clone(), options, async move {
        let _ = stopped.await;
    }));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let encode = |value: &str| form_urlencoded(value);
    let values =
        [("ASCII", "x".repeat(60_000)), ("two-byte", "é".repeat(10_000)), ("control", "\u{1b}".repeat(20_000))];
    for (kind, value) in values {
        let mut paths: Vec<(String, &str)> =
            ["status", "stage", "pending_function", "owner", "include_archived", "after_position", "initiative"]
                .into_iter()
                .map(|field| (format!("/api/watch?{field}={}", encode(&value)), field))
                .collect();
        paths.push((format!("/api/initiatives/{}", encode(&value)), "initiative"));
        for (path, field) in paths {
            let route = if path.starts_with("/api/watch") { "/api/watch" } else { "/api/initiatives/{initiative}" };
            let context = format!("{field} of {route} ({kind})");
            let uri: http::Uri = format!("http://{board}{path}").parse().expect("a URI");
            let response = client.get(uri).await.expect(&context);
            assert_eq!(response.status(), http::StatusCode::BAD_REQUEST, "{context}");
            let body = response.into_body().collect().await.expect("body").to_bytes();
            assert!(body.len() < MAX_MESSAGE, "{context}: a {}-byte body", body.len());
            let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
            assert_eq!(body["field"], field, "{context}: {body}");
            let error = body["error"].as_str().expect("an error message");
            assert!(error.starts_with(&format!("{field}: ")), "{context}: {error}");
        }
    }
    let _ = stop.send(());
}

/// Percent-encodes every byte that is not unreserved in a URI.
fn form_urlencoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

crate::on_both_stores!(
    every_string_field_of_every_request_at_100000_characters_is_refused_naming_it_in_a_small_status,
    an_import_line_of_100000_characters_is_refused_naming_the_line_in_a_small_status,
    metadata_entries_of_24000_characters_are_refused_naming_the_entry_in_a_small_status,
    a_token_with_a_5000_character_key_id_is_refused_in_a_small_status,
    the_board_api_refuses_parameters_as_long_as_a_uri_holds_naming_them_in_a_small_body,
);

#[test]
fn the_valid_id_of_the_cases_is_a_uuid() {
    assert!(Uuid::try_parse(ID).is_ok());
}
