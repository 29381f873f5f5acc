//! The audit API over gRPC: reading history (stream and global, catch-up and follow),
//! alignment as of a past version or time, and explanations — on both stores.

use std::time::Duration;

use accord::proto::{self as pb, read_events_response::Item};
use futures::StreamExt;
use tonic::Code;

use crate::support::*;

fn audit(app: &TestApp) -> crate::support::Audit {
    app.audit()
}

/// The scenario up to step 4 (blocked), returning the decision id and the version then.
async fn blocked_checkout(app: &TestApp) -> (Checkout, u64) {
    let ids = checkout(app).await;
    sign(app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("eng approves");
    sign(app, DESIGNER, &ids.decision_id, "design", pb::Verdict::Approve, "").await.expect("design approves");
    let objection = app
        .as_(BUSINESS)
        .record_feedback(feedback_request(
            "CHECKOUT-42",
            &ids.decision_id,
            "business",
            pb::FeedbackKind::Objection,
            "Stripe's fees are above our negotiated rate.",
        ))
        .await
        .expect("objection")
        .into_inner();
    (ids, objection.stream_version)
}

/// Reads until the stream reports it has caught up; returns the events before it.
async fn read_to_head(app: &TestApp, request: pb::ReadEventsRequest) -> (Vec<pb::StoredEvent>, u64) {
    let mut stream = audit(app).read_events(request).await.expect("read events").into_inner();
    let mut events = Vec::new();
    while let Some(message) = stream.next().await {
        match message.expect("stream item").item {
            Some(Item::Event(event)) => events.push(event),
            Some(Item::CaughtUp(caught_up)) => return (events, caught_up.position),
            None => panic!("empty stream item"),
        }
    }
    panic!("the read ended without reporting caught-up");
}

/// Reads the global log to the head until it holds `count` events, retrying within a
/// bound (a read may lag a commit it races with: delayed, never skipped).
async fn read_global(app: &TestApp, request: pb::ReadEventsRequest, count: usize) -> Vec<pb::StoredEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (events, _) = read_to_head(app, request.clone()).await;
        if events.len() >= count || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn history_of_one_initiative_comes_in_version_order_with_full_metadata(app: TestApp) {
    let (ids, version) = blocked_checkout(&app).await;
    let request = pb::ReadEventsRequest { initiative: "CHECKOUT-42".into(), ..Default::default() };
    let (events, caught_up) = read_to_head(&app, request).await;
    assert_eq!(events.len() as u64, version);
    let versions: Vec<u64> = events.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=version).collect::<Vec<_>>());
    assert_eq!(caught_up, events.last().map(|e| e.position).unwrap_or_default());
    let first = &events[0];
    assert_eq!(first.event_type, "InitiativeCreated");
    assert_eq!(first.stream_id, ids.initiative_id);
    assert_eq!(first.actor, OWNER);
    assert_eq!(first.prev_hash, "0".repeat(64));
    assert_eq!(first.hash.len(), 64);
    assert!(!first.command_id.is_empty() && !first.correlation_id.is_empty() && !first.causation_id.is_empty());
    assert!(first.recorded_at.is_some());
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "each event links to the one before");
    }
    let payload: serde_json::Value = serde_json::from_str(&first.payload_json).expect("payload is JSON");
    assert_eq!(payload["key"], "CHECKOUT-42");
}

async fn history_filters_by_event_type_and_starts_at_a_version(app: TestApp) {
    blocked_checkout(&app).await;
    let request = pb::ReadEventsRequest {
        initiative: "CHECKOUT-42".into(),
        event_types: vec!["SignOffRecorded".into()],
        ..Default::default()
    };
    let (events, _) = read_to_head(&app, request).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event_type == "SignOffRecorded"));
    let from = pb::ReadEventsRequest { initiative: "CHECKOUT-42".into(), from_version: 7, ..Default::default() };
    let (events, _) = read_to_head(&app, from).await;
    assert_eq!(events.first().map(|e| e.stream_version), Some(7));
    let unknown = pb::ReadEventsRequest { event_types: vec!["SignedOff".into()], ..Default::default() };
    let status = audit(&app).read_events(unknown).await.expect_err("unknown type");
    assert_invalid(&status, "event_types[0]", "not an event type");
}

async fn global_log_resumes_after_a_position_and_past_the_head_reads_nothing(app: TestApp) {
    blocked_checkout(&app).await;
    create_initiative(&app, OWNER, "OTHER-1", "Other").await;
    let all = read_global(&app, pb::ReadEventsRequest::default(), 10).await;
    assert_eq!(all.len(), 10);
    let head = all[9].position;
    let middle = all[4].position;
    let rest = read_global(&app, pb::ReadEventsRequest { after_position: middle, ..Default::default() }, 5).await;
    assert_eq!(rest, all[5..].to_vec(), "resuming after a position gives exactly the rest");
    let (none, _) =
        read_to_head(&app, pb::ReadEventsRequest { after_position: head + 1000, ..Default::default() }).await;
    assert!(none.is_empty());
}

async fn a_following_read_reports_caught_up_then_delivers_new_events_once(app: TestApp) {
    let (ids, version) = blocked_checkout(&app).await;
    let request = pb::ReadEventsRequest { initiative: "CHECKOUT-42".into(), follow: true, ..Default::default() };
    let mut stream = audit(&app).read_events(request).await.expect("follow").into_inner();
    let mut seen = Vec::new();
    loop {
        match stream.next().await.expect("open").expect("item").item {
            Some(Item::Event(event)) => seen.push(event.stream_version),
            Some(Item::CaughtUp(_)) => break,
            None => panic!("empty item"),
        }
    }
    assert_eq!(seen.len() as u64, version);
    sign(&app, BUSINESS, &ids.decision_id, "business", pb::Verdict::Reject, "fees").await.expect("reject");
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the new event arrives")
        .expect("open")
        .expect("item");
    match next.item {
        Some(Item::Event(event)) => assert_eq!(event.stream_version, version + 1),
        other => panic!("expected the new event, got {other:?}"),
    }
}

async fn alignment_as_of_the_objection_is_blocked_though_the_decision_was_accepted_since(app: TestApp) {
    let (ids, blocked_at) = blocked_checkout(&app).await;
    app.as_(DRIVER)
        .accept_decision(acceptance("CHECKOUT-42", &ids.decision_id, "launch window"))
        .await
        .expect("accept by override");
    let request = pb::GetAlignmentAsOfRequest {
        initiative: "CHECKOUT-42".into(),
        at: Some(pb::get_alignment_as_of_request::At::Version(blocked_at)),
    };
    let then = audit(&app).get_alignment_as_of(request).await.expect("as of").into_inner();
    assert_eq!(then.status(), pb::InitiativeStatus::Blocked);
    assert_eq!(then.version, blocked_at);
    assert_eq!((then.approved_pairs, then.total_pairs), (2, 3));
    let now = app.alignment("CHECKOUT-42").await;
    assert_eq!(now.overrides.len(), 1);
    assert!(then.overrides.is_empty());

    // The same instant by time: the objection's recorded time.
    let request =
        pb::ReadEventsRequest { initiative: "CHECKOUT-42".into(), from_version: blocked_at, ..Default::default() };
    let (events, _) = read_to_head(&app, request).await;
    let at = events[0].recorded_at;
    let by_time = audit(&app)
        .get_alignment_as_of(pb::GetAlignmentAsOfRequest {
            initiative: "CHECKOUT-42".into(),
            at: at.map(pb::get_alignment_as_of_request::At::Time),
        })
        .await
        .expect("as of time")
        .into_inner();
    assert_eq!(by_time, then);
}

async fn alignment_as_of_before_creation_is_not_found_and_bad_versions_are_invalid(app: TestApp) {
    blocked_checkout(&app).await;
    let before = prost_types::Timestamp { seconds: 946_684_800, nanos: 0 };
    let status = audit(&app)
        .get_alignment_as_of(pb::GetAlignmentAsOfRequest {
            initiative: "CHECKOUT-42".into(),
            at: Some(pb::get_alignment_as_of_request::At::Time(before)),
        })
        .await
        .expect_err("before creation");
    assert_status(&status, Code::NotFound, &["did not exist yet", "created at"]);
    let status = audit(&app)
        .get_alignment_as_of(pb::GetAlignmentAsOfRequest {
            initiative: "CHECKOUT-42".into(),
            at: Some(pb::get_alignment_as_of_request::At::Version(999)),
        })
        .await
        .expect_err("past the head");
    assert_invalid(&status, "version", "between 1 and");
    let status = audit(&app)
        .get_alignment_as_of(pb::GetAlignmentAsOfRequest { initiative: "CHECKOUT-42".into(), at: None })
        .await
        .expect_err("no point in time");
    assert_invalid(&status, "at", "required");
}

async fn explain_at_the_blocked_step_names_the_objection_and_after_revision_the_stale_approvals(app: TestApp) {
    let (ids, blocked_at) = blocked_checkout(&app).await;
    let explain = |at: Option<pb::explain_request::At>| pb::ExplainRequest {
        initiative: "CHECKOUT-42".into(),
        decision_id: ids.decision_id.clone(),
        at,
    };
    let then = audit(&app).explain(explain(None)).await.expect("explain").into_inner();
    assert_eq!(then.status(), pb::InitiativeStatus::Blocked);
    let business = &then.decisions[0].functions.iter().find(|f| f.function == "business").expect("business");
    assert_eq!(business.state(), pb::FunctionState::Blocked);
    assert_eq!(business.events.len(), 1);
    assert_eq!(business.events[0].stream_version, blocked_at);
    assert_eq!(business.events[0].actor, BUSINESS);

    app.as_(DRIVER)
        .revise_decision(pb::ReviseDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            kind: pb::RevisionKind::Material.into(),
            content: content("Use Stripe for payments", "Stripe at the enterprise rate."),
            required_functions: vec![],
            note: "new pricing".into(),
        })
        .await
        .expect("revise");
    let now = audit(&app).explain(explain(None)).await.expect("explain").into_inner();
    let engineering = now.decisions[0].functions.iter().find(|f| f.function == "engineering").expect("eng");
    assert_eq!(engineering.state(), pb::FunctionState::Pending);
    let types: Vec<&str> = engineering.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["SignOffRecorded", "DecisionRevised"]);
    assert!(engineering.events[1].summary.contains("material"));

    // Explaining the past gives the past.
    let past = audit(&app)
        .explain(explain(Some(pb::explain_request::At::Version(blocked_at))))
        .await
        .expect("explain then")
        .into_inner();
    assert_eq!(past, then);
}

async fn an_import_without_its_end_marker_is_refused_and_writes_nothing(app: TestApp) {
    // A line that would be valid on its own is not enough: a cancelled upload looks like a
    // normal end of stream to the server, so only an explicit end marker commits.
    let source = TestApp::sqlite().await;
    checkout(&source).await;
    let lines: Vec<String> = read_global(&source, pb::ReadEventsRequest::default(), 6)
        .await
        .iter()
        .map(|e| {
            serde_json::json!({
                "position": e.position, "stream_id": e.stream_id, "stream_version": e.stream_version,
                "event_id": e.event_id, "event_type": e.event_type, "schema_version": e.schema_version,
                "payload": serde_json::from_str::<serde_json::Value>(&e.payload_json).expect("payload"),
                "actor": e.actor, "command_id": e.command_id, "correlation_id": e.correlation_id,
                "causation_id": e.causation_id,
                "recorded_at": e.recorded_at.map(|t| {
                    chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32)
                        .expect("time")
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                }),
                "prev_hash": e.prev_hash, "hash": e.hash,
            })
            .to_string()
        })
        .collect();
    let without_end: Vec<pb::ImportEventsRequest> =
        lines.iter().map(|line| pb::ImportEventsRequest { line: line.clone(), end: false }).collect();
    let admin = || app.audit_with(Some(crate::support::token(OWNER, &[accord::security::Role::Admin])));
    let status = admin().import_events(tokio_stream::iter(without_end.clone())).await.expect_err("no end marker");
    assert_status(&status, Code::FailedPrecondition, &["end marker", "nothing was written"]);
    assert!(app.log().await.is_empty());

    let mut complete = without_end;
    complete.push(pb::ImportEventsRequest { line: String::new(), end: true });
    let report = admin().import_events(tokio_stream::iter(complete)).await.expect("import").into_inner();
    assert_eq!((report.events, report.initiatives), (lines.len() as u64, 1));
    assert_eq!(app.alignment("CHECKOUT-42").await, source.alignment("CHECKOUT-42").await);
}

crate::on_both_stores!(
    an_import_without_its_end_marker_is_refused_and_writes_nothing,
    history_of_one_initiative_comes_in_version_order_with_full_metadata,
    history_filters_by_event_type_and_starts_at_a_version,
    global_log_resumes_after_a_position_and_past_the_head_reads_nothing,
    a_following_read_reports_caught_up_then_delivers_new_events_once,
    alignment_as_of_the_objection_is_blocked_though_the_decision_was_accepted_since,
    alignment_as_of_before_creation_is_not_found_and_bad_versions_are_invalid,
    explain_at_the_blocked_step_names_the_objection_and_after_revision_the_stale_approvals,
);

#[tokio::test]
async fn a_following_reader_ends_with_unavailable_at_shutdown_and_the_server_stops() {
    let (store, _dir) = TestApp::sqlite_store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(accord::server::serve_with(listener, store, crate::support::harness_options(), async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).expect("uri").connect_lazy();
    let token = crate::support::token(crate::support::AUDITOR, &[accord::security::Role::Auditor]);
    let mut audit = accord::proto::audit_service_client::AuditServiceClient::with_interceptor(
        channel,
        crate::support::Bearer(Some(token)),
    );
    let mut stream = audit
        .read_events(pb::ReadEventsRequest { follow: true, ..Default::default() })
        .await
        .expect("follow the log")
        .into_inner();
    let first = stream.message().await.expect("caught up").expect("an item");
    assert!(matches!(first.item, Some(Item::CaughtUp(_))), "{first:?}");

    stop.send(()).expect("server still running");
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("the stream ends");
    let status = ended.expect_err("ends with a status");
    assert_status(&status, Code::Unavailable, &["shutting down", "resume with after_position 0"]);
    let served = tokio::time::timeout(Duration::from_secs(10), server).await.expect("shutdown completes");
    served.expect("server task").expect("clean stop");
}

#[tokio::test]
async fn the_server_takes_a_checkpoint_periodically_once_the_log_has_grown_and_not_otherwise() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("accord.db").display());
    let store = accord::store::Store::open(&url, 4).await.expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = accord::server::ServerOptions {
        checkpoint_every: Some(Duration::from_millis(50)),
        ..crate::support::harness_options()
    };
    let server = tokio::spawn(accord::server::serve_with(listener, store.clone(), options, async move {
        let _ = stopped.await;
    }));
    let wait_for = |count: usize| {
        let store = store.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let checkpoints = store.list_checkpoints().await.expect("list");
                if checkpoints.len() >= count || tokio::time::Instant::now() > deadline {
                    return checkpoints;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // An empty log is never checkpointed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.list_checkpoints().await.expect("list").is_empty());

    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).expect("uri").connect_lazy();
    let mut commands = accord::proto::command_service_client::CommandServiceClient::with_interceptor(
        channel,
        crate::support::Bearer(Some(crate::support::token(OWNER, crate::support::roles_of(OWNER)))),
    );
    commands.create_initiative(new_initiative("TICK-1", "Periodic")).await.expect("create");
    let checkpoints = wait_for(1).await;
    assert_eq!(checkpoints.len(), 1);
    assert_eq!((checkpoints[0].streams, checkpoints[0].events), (1, 1));
    // Quiet log: no further checkpoints.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.list_checkpoints().await.expect("list").len(), 1);
    let _ = stop.send(());
    server.await.expect("join").expect("server stopped cleanly");

    // Two restarts on the idle log record nothing new either.
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = accord::server::ServerOptions {
            checkpoint_every: Some(Duration::from_millis(50)),
            ..crate::support::harness_options()
        };
        let server = tokio::spawn(accord::server::serve_with(listener, store.clone(), options, async move {
            let _ = stopped.await;
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = stop.send(());
        server.await.expect("join").expect("server stopped cleanly");
    }
    assert_eq!(store.list_checkpoints().await.expect("list"), checkpoints, "restarts of an idle log");
}
