//! The live alignment stream (`WatchAlignments`): snapshot then changes, each once and in
//! order; resuming by position; filters and removals; bad filters; slow watchers; across
//! two servers on one database; shutdown.

use std::collections::HashMap;
use std::time::Duration;

use accord::live::{Feed, FeedBuffers, WatchFilter, WatchItem};
use accord::proto::{self as pb, alignment_update::Update};
use tonic::{Code, Streaming};

use crate::on_both_stores;
use crate::support::*;

/// How long a test waits for an update it expects before failing (not a performance bound).
const PATIENCE: Duration = Duration::from_secs(20);

async fn watch(app: &TestApp, request: pb::WatchAlignmentsRequest) -> Streaming<pb::AlignmentUpdate> {
    app.queries_with(Some(token(DASHBOARD, roles_of(DASHBOARD))))
        .watch_alignments(request)
        .await
        .expect("watch alignments")
        .into_inner()
}

async fn next(stream: &mut Streaming<pb::AlignmentUpdate>) -> pb::AlignmentUpdate {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an update in time")
        .expect("the stream is healthy")
        .expect("the stream goes on")
}

/// Reads until `caught_up`, returning the updates before it and its position.
async fn until_caught_up(stream: &mut Streaming<pb::AlignmentUpdate>) -> (Vec<pb::AlignmentUpdate>, u64) {
    let mut updates = Vec::new();
    loop {
        let update = next(stream).await;
        if let Some(Update::CaughtUp(caught_up)) = &update.update {
            assert_eq!(caught_up.position, update.position, "caught_up carries its position twice, equal");
            return (updates, update.position);
        }
        updates.push(update);
    }
}

fn alignment(update: &pb::AlignmentUpdate) -> &pb::InitiativeAlignment {
    match &update.update {
        Some(Update::Alignment(view)) => view,
        other => panic!("expected an alignment, got {other:?}"),
    }
}

async fn second_initiative(app: &TestApp) -> pb::CommandResponse {
    create_initiative(app, OWNER, "BILLING-7", "Usage-based billing").await
}

async fn objection(app: &TestApp, decision_id: &str) -> pb::CommandResponse {
    app.as_(DESIGNER)
        .record_feedback(feedback_request("CHECKOUT-42", decision_id, "design", pb::FeedbackKind::Objection, "No."))
        .await
        .expect("objection")
        .into_inner()
}

async fn a_new_watcher_gets_every_initiative_then_caught_up_then_each_change_once(app: TestApp) {
    let checkout = checkout(&app).await;
    let billing = second_initiative(&app).await;
    let mut stream = watch(&app, pb::WatchAlignmentsRequest::default()).await;
    let (snapshot, caught_up) = until_caught_up(&mut stream).await;

    let keys: Vec<&str> = snapshot.iter().map(|u| alignment(u).key.as_str()).collect();
    assert_eq!(keys, ["CHECKOUT-42", "BILLING-7"], "the snapshot comes in log order");
    assert_eq!(snapshot[1].position, billing.global_position, "each view carries the position of its last event");
    assert!(snapshot[0].position < snapshot[1].position);
    assert_eq!(caught_up, billing.global_position, "caught up to the head");
    assert_eq!(alignment(&snapshot[0]).version, app.alignment("CHECKOUT-42").await.version);

    let signed = sign(&app, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "").await.unwrap();
    let update = next(&mut stream).await;
    let view = alignment(&update);
    assert_eq!(view.key, "CHECKOUT-42");
    assert_eq!(view.version, signed.stream_version);
    assert_eq!(update.position, signed.global_position);
    assert_eq!(function_state(view, "engineering"), pb::FunctionState::Approved);
    assert_eq!(*view, app.alignment("CHECKOUT-42").await, "the live view is the projection");

    let renamed = rename_billing(&app).await;
    let update = next(&mut stream).await;
    assert_eq!(alignment(&update).title, "Metered billing");
    assert_eq!(update.position, renamed.global_position);
}

async fn a_watcher_that_reconnects_with_its_last_position_misses_nothing_and_gets_nothing_twice(app: TestApp) {
    let checkout = checkout(&app).await;
    second_initiative(&app).await;
    let mut stream = watch(&app, pb::WatchAlignmentsRequest::default()).await;
    let (_, before) = until_caught_up(&mut stream).await;
    drop(stream);

    let first = sign(&app, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "").await.unwrap();
    sign(&app, BUSINESS, &checkout.decision_id, "business", pb::Verdict::Approve, "").await.unwrap();
    let last = objection(&app, &checkout.decision_id).await;

    let resume = |after_position| pb::WatchAlignmentsRequest { after_position, ..Default::default() };
    let mut stream = watch(&app, resume(before)).await;
    let (missed, caught_up) = until_caught_up(&mut stream).await;
    assert_eq!(missed.len(), 1, "one update for the one initiative that changed: {missed:?}");
    let view = alignment(&missed[0]);
    assert_eq!((view.key.as_str(), view.version), ("CHECKOUT-42", last.stream_version), "at its latest version");
    assert_eq!(missed[0].position, last.global_position);
    assert_eq!(view.open_objections.len(), 1);
    assert_eq!(caught_up, last.global_position);
    drop(stream);

    // From the middle of the changes: the initiative once more, at its latest version.
    let mut stream = watch(&app, resume(first.global_position)).await;
    let (missed, _) = until_caught_up(&mut stream).await;
    let versions: Vec<u64> = missed.iter().map(|u| alignment(u).version).collect();
    assert_eq!(versions, [last.stream_version]);
    drop(stream);

    // From the last position: nothing at all, then what happens next.
    let mut stream = watch(&app, resume(caught_up)).await;
    let (missed, position) = until_caught_up(&mut stream).await;
    assert!(missed.is_empty(), "nothing twice: {missed:?}");
    assert_eq!(position, caught_up);
    let renamed = rename_billing(&app).await;
    let update = next(&mut stream).await;
    assert_eq!((alignment(&update).key.as_str(), update.position), ("BILLING-7", renamed.global_position));

    // Past the head: nothing until something new happens.
    let mut stream = watch(&app, resume(renamed.global_position + 1000)).await;
    let (missed, _) = until_caught_up(&mut stream).await;
    assert!(missed.is_empty(), "{missed:?}");
}

async fn filters_select_initiatives_and_one_that_leaves_the_filter_is_sent_as_removed(app: TestApp) {
    let checkout = checkout(&app).await;
    second_initiative(&app).await;
    let pending_design = pb::WatchAlignmentsRequest { pending_function: "design".into(), ..Default::default() };
    let mut stream = watch(&app, pending_design.clone()).await;
    let (snapshot, _) = until_caught_up(&mut stream).await;
    let keys: Vec<&str> = snapshot.iter().map(|u| alignment(u).key.as_str()).collect();
    assert_eq!(keys, ["CHECKOUT-42"], "only the initiative waiting on design");

    // An unrelated change to a non-matching initiative sends nothing; design approving
    // takes CHECKOUT-42 out of the filter: one removal.
    second_renamed(&app).await;
    let signed = sign(&app, DESIGNER, &checkout.decision_id, "design", pb::Verdict::Approve, "").await.unwrap();
    let update = next(&mut stream).await;
    match &update.update {
        Some(Update::Removed(removed)) => {
            assert_eq!(
                (removed.key.as_str(), removed.initiative_id.as_str()),
                ("CHECKOUT-42", checkout.initiative_id.as_str())
            );
        }
        other => panic!("expected a removal, got {other:?}"),
    }
    assert_eq!(update.position, signed.global_position);
    drop(stream);

    // By key; and by status.
    let mut stream =
        watch(&app, pb::WatchAlignmentsRequest { initiatives: vec!["billing-7".into()], ..Default::default() }).await;
    let (snapshot, _) = until_caught_up(&mut stream).await;
    assert_eq!(snapshot.iter().map(|u| alignment(u).key.as_str()).collect::<Vec<_>>(), ["BILLING-7"]);
    let blocked = pb::WatchAlignmentsRequest { status: pb::InitiativeStatus::Blocked.into(), ..Default::default() };
    let mut stream = watch(&app, blocked).await;
    let (snapshot, _) = until_caught_up(&mut stream).await;
    assert!(snapshot.is_empty(), "nothing is blocked yet: {snapshot:?}");
    let objected = objection(&app, &checkout.decision_id).await;
    let update = next(&mut stream).await;
    assert_eq!(alignment(&update).status(), pb::InitiativeStatus::Blocked);
    assert_eq!(update.position, objected.global_position);
}

async fn rename_billing(app: &TestApp) -> pb::CommandResponse {
    app.as_(OWNER)
        .update_initiative(pb::UpdateInitiativeRequest {
            initiative: "BILLING-7".into(),
            title: Some("Metered billing".into()),
            ..Default::default()
        })
        .await
        .expect("rename")
        .into_inner()
}

async fn second_renamed(app: &TestApp) -> pb::CommandResponse {
    app.as_(OWNER)
        .update_initiative(pb::UpdateInitiativeRequest {
            initiative: "BILLING-7".into(),
            summary: Some("Charge by usage.".into()),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner()
}

async fn bad_filters_are_refused_naming_the_field(app: TestApp) {
    let queries = app.queries();
    let refuse = |request: pb::WatchAlignmentsRequest| {
        let mut queries = queries.clone();
        async move { queries.watch_alignments(request).await.expect_err("refused") }
    };
    let status = refuse(pb::WatchAlignmentsRequest {
        initiatives: vec!["CHECKOUT-42".into(), "not a key!".into()],
        ..Default::default()
    })
    .await;
    assert_invalid(&status, "initiatives[1]", "");
    let status = refuse(pb::WatchAlignmentsRequest { initiatives: vec!["K".into(); 501], ..Default::default() }).await;
    assert_invalid(&status, "initiatives", "at most 500");
    let status =
        refuse(pb::WatchAlignmentsRequest { pending_function: "Not A Function".into(), ..Default::default() }).await;
    assert_invalid(&status, "pending_function", "");
    let status = refuse(pb::WatchAlignmentsRequest { status: 99, ..Default::default() }).await;
    assert_invalid(&status, "status", "");
    let status =
        refuse(pb::WatchAlignmentsRequest { owner: "no spaces allowed here".into(), ..Default::default() }).await;
    assert_invalid(&status, "owner", "");
}

/// Four writers on three initiatives, two watchers (one from the start, one joining
/// midway): each sees every initiative's versions strictly increasing with strictly
/// increasing positions, and ends at the projection.
async fn concurrent_writers_every_watcher_sees_changes_in_order_and_ends_at_the_projection(app: TestApp) {
    let checkout = checkout(&app).await;
    second_initiative(&app).await;
    create_initiative(&app, OWNER, "SEARCH-3", "Search relevance").await;
    let mut early = watch(&app, pb::WatchAlignmentsRequest::default()).await;
    until_caught_up(&mut early).await;

    let mut writers = Vec::new();
    for writer in 0..4 {
        let commands = app.as_(OWNER);
        let decision_id = checkout.decision_id.clone();
        let engineer = app.as_(ENGINEER);
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for step in 0..8 {
                let response = if writer == 0 {
                    let mut engineer = engineer.clone();
                    engineer
                        .record_feedback(feedback_request(
                            "CHECKOUT-42",
                            &decision_id,
                            "engineering",
                            pb::FeedbackKind::Comment,
                            &format!("note {step}"),
                        ))
                        .await
                } else {
                    let key = ["BILLING-7", "SEARCH-3", "CHECKOUT-42"][writer - 1];
                    let mut commands = commands.clone();
                    commands
                        .update_initiative(pb::UpdateInitiativeRequest {
                            initiative: key.into(),
                            summary: Some(format!("writer {writer} step {step}")),
                            ..Default::default()
                        })
                        .await
                };
                acknowledged.push(response.expect("command accepted").into_inner());
            }
            acknowledged
        }));
    }
    let mut late = None;
    let mut finals: HashMap<String, u64> = HashMap::new();
    for (i, writer) in writers.into_iter().enumerate() {
        for response in writer.await.expect("writer") {
            let version = finals.entry(response.initiative_id.clone()).or_default();
            *version = (*version).max(response.stream_version);
        }
        if i == 1 {
            late = Some(watch(&app, pb::WatchAlignmentsRequest::default()).await);
        }
    }
    let mut late = late.expect("the late watcher");
    for (name, stream) in [("early", &mut early), ("late", &mut late)] {
        let mut seen: HashMap<String, (u64, pb::InitiativeAlignment)> = HashMap::new();
        // Positions are unique; on PostgreSQL they need not increase (commit order is not
        // position order), which is why a client resumes with the last one received.
        let mut positions = std::collections::HashSet::new();
        while finals.iter().any(|(id, version)| seen.get(id).is_none_or(|(_, view)| view.version < *version)) {
            let update = next(stream).await;
            let Some(Update::Alignment(view)) = update.update else { continue };
            assert!(positions.insert(update.position), "{name}: position {} twice", update.position);
            if let Some((_, before)) = seen.get(&view.initiative_id) {
                assert!(
                    view.version > before.version,
                    "{name}: {} went from {} to {}",
                    view.key,
                    before.version,
                    view.version
                );
            }
            seen.insert(view.initiative_id.clone(), (update.position, view));
        }
        for (_, view) in seen.values() {
            assert_eq!(
                *view,
                app.alignment(&view.key).await,
                "{name}: the last view of {} is the projection",
                view.key
            );
        }
    }
}

/// A watcher whose client does not read blocks nobody: writers go on, other watchers go
/// on, and once it falls further behind than the feed keeps, it is told and caught up
/// from its last position with nothing skipped. Each change is a new initiative, so the
/// feed cannot coalesce them however fast they come.
async fn a_watcher_that_falls_behind_is_told_and_caught_up_and_blocks_nobody(app: TestApp) {
    // The brisk watcher keeps up as long as no single read of the log publishes more
    // changes than the feed keeps (64); the slow one, which holds no changes of its own,
    // falls behind at 65.
    const INITIATIVES: usize = 100;
    let feed = Feed::start_with(app.store.clone(), FeedBuffers { changes: 64, ..FeedBuffers::default() });
    let mut slow = feed.watch(WatchFilter::default(), 0).await.expect("slow watcher");
    let mut brisk = feed.watch(WatchFilter::default(), 0).await.expect("brisk watcher");
    let brisk_reader = tokio::spawn(async move {
        let mut items = Vec::new();
        let mut initiatives = std::collections::HashSet::new();
        while let Some(item) = brisk.recv().await {
            if let WatchItem::Alignment { view, .. } = &item {
                initiatives.insert(view.key.to_string());
            }
            items.push(item);
            if initiatives.len() == INITIATIVES {
                break;
            }
        }
        items
    });

    let mut created = Vec::new();
    for n in 0..INITIATIVES {
        let response = create_initiative(&app, OWNER, &format!("LOAD-{n}"), "Load").await;
        created.push(response);
        feed.nudge();
    }
    let brisk_items = tokio::time::timeout(PATIENCE, brisk_reader).await.expect("brisk watcher in time").expect("task");
    assert!(
        !brisk_items.iter().any(|item| matches!(item, WatchItem::Resync { .. })),
        "a watcher that keeps up is not resynchronised"
    );

    // Read until every initiative has arrived and, after a resync, the catch-up's end.
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let (mut resynced, mut caught_up_after_resync) = (false, false);
    while !(seen.len() == INITIATIVES && (!resynced || caught_up_after_resync)) {
        let item = tokio::time::timeout(PATIENCE, slow.recv()).await.expect("item in time").expect("open");
        match &item {
            WatchItem::Alignment { view, .. } => {
                assert!(seen.insert(view.key.to_string()), "nothing twice: {} again in {items:?}", view.key);
            }
            WatchItem::Resync { .. } => resynced = true,
            WatchItem::CaughtUp { .. } if resynced => caught_up_after_resync = true,
            _ => {}
        }
        items.push(item);
    }
    let resync = items.iter().position(|item| matches!(item, WatchItem::Resync { .. }));
    let resync = resync.unwrap_or_else(|| panic!("the slow watcher is told it fell behind: {items:?}"));
    match &items[resync] {
        WatchItem::Resync { reason } => assert!(reason.contains("behind") && reason.contains("position"), "{reason}"),
        _ => unreachable!(),
    }
    let positions: Vec<u64> = items
        .iter()
        .filter_map(|item| match item {
            WatchItem::Alignment { position, .. } => Some(*position),
            _ => None,
        })
        .collect();
    let mut expected: Vec<u64> = created.iter().map(|c| c.global_position).collect();
    let mut received = positions.clone();
    expected.sort_unstable();
    received.sort_unstable();
    assert_eq!(received, expected, "every change once, each at its own position");
    feed.stop();
}

/// `count` initiatives created one after another, their keys starting with `prefix`:
/// (position, key) of each.
async fn creations(server: &TestApp, prefix: &str, count: usize) -> Vec<(u64, String)> {
    let mut written = Vec::new();
    for n in 0..count {
        let key = format!("{prefix}-{n}");
        let response = create_initiative(server, OWNER, &key, "Written while the other server writes").await;
        written.push((response.global_position, key));
    }
    written
}

/// Two servers on one database creating initiatives at once: each server's feed applies
/// its own appends as its committer hands them over, and many of them follow the other
/// server's write just before it. A watcher on either server must still get every
/// initiative of both, once, in commit order — a batch applied past the other server's
/// event would leave that initiative out for good (each has that one event only).
async fn two_servers_writing_at_once_every_watcher_gets_both_servers_writes_in_commit_order(app: TestApp) {
    const WRITES: usize = 16;
    let other = app.reserve(harness_options()).await;
    let mut streams = Vec::new();
    for server in [&app, &other] {
        let mut stream = watch(server, pb::WatchAlignmentsRequest::default()).await;
        let (snapshot, _) = until_caught_up(&mut stream).await;
        assert!(snapshot.is_empty(), "nothing written yet");
        streams.push(stream);
    }
    let (mut written, theirs) = tokio::join!(creations(&app, "FIRST", WRITES), creations(&other, "SECOND", WRITES));
    written.extend(theirs);
    written.sort();
    for (n, stream) in streams.iter_mut().enumerate() {
        let mut received = Vec::new();
        while received.len() < written.len() {
            let update = next(stream).await;
            received.push((update.position, alignment(&update).key.clone()));
        }
        assert_eq!(received, written, "server {n}'s watcher: every write of both servers, once, in commit order");
    }
}

/// A server started on a store with history begins from the stored projection (one row
/// per initiative) rather than the log. To tell the two apart, both rows are altered by
/// hand: CHECKOUT-42's view gets a title no fold gives (still of this projection
/// version), so the new server must serve it as stored; BILLING-7's row is marked as
/// written by another projection version, so the new server must fold it instead. A
/// later sign-off on CHECKOUT-42 is folded onto its state loaded from the store then.
async fn a_server_started_on_a_history_serves_the_stored_projection_and_folds_a_row_of_another_version(app: TestApp) {
    let checkout = checkout(&app).await;
    second_initiative(&app).await;
    let stored = app.alignment("CHECKOUT-42").await;
    let (as_stored, other_version) = match dialect(&app.store) {
        Dialect::Postgres(_) => (
            r#"UPDATE alignment SET view = jsonb_set(view, '{title}', '"as stored"') WHERE key = 'CHECKOUT-42'"#,
            r#"UPDATE alignment SET projection_version = 0, view = jsonb_set(view, '{title}', '"stale"')
                WHERE key = 'BILLING-7'"#,
        ),
        Dialect::Sqlite(_) => (
            "UPDATE alignment SET view = json_set(view, '$.title', 'as stored') WHERE key = 'CHECKOUT-42'",
            "UPDATE alignment SET projection_version = 0, view = json_set(view, '$.title', 'stale')
              WHERE key = 'BILLING-7'",
        ),
    };
    for sql in [as_stored, other_version] {
        let changed = match dialect(&app.store) {
            Dialect::Postgres(store) => sqlx::query(sql).execute(store.pool()).await.map(|done| done.rows_affected()),
            Dialect::Sqlite(store) => sqlx::query(sql).execute(store.pool()).await.map(|done| done.rows_affected()),
        };
        assert_eq!(changed.expect("alter the stored row"), 1, "{sql}");
    }

    let started = app.reserve(harness_options()).await;
    let mut stream = watch(&started, pb::WatchAlignmentsRequest::default()).await;
    let (snapshot, _) = until_caught_up(&mut stream).await;
    let by_key: HashMap<String, pb::InitiativeAlignment> =
        snapshot.iter().map(|update| (alignment(update).key.clone(), alignment(update).clone())).collect();
    assert_eq!(by_key.len(), 2, "both initiatives: {:?}", by_key.keys());
    assert_eq!(by_key["CHECKOUT-42"].title, "as stored", "the stored view, as stored, not folded from the log");
    assert_eq!(
        pb::InitiativeAlignment { title: stored.title.clone(), ..by_key["CHECKOUT-42"].clone() },
        stored,
        "the rest of the stored view"
    );
    assert_eq!(by_key["BILLING-7"].title, "Usage-based billing", "folded anew, not the other version's row");

    let signed =
        sign(&started, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "").await.unwrap();
    let update = next(&mut stream).await;
    let after = alignment(&update);
    assert_eq!((after.version, update.position), (signed.stream_version, signed.global_position));
    assert_eq!(after.title, "New checkout", "projected from the state loaded from the store");
    assert_eq!(function_state(&stored, "engineering"), pb::FunctionState::Pending);
    assert_eq!(
        function_state(after, "engineering"),
        pb::FunctionState::Approved,
        "the sign-off folded onto that state"
    );
    assert_eq!(after.functions.len(), stored.functions.len(), "nothing else of the state was lost");
}

on_both_stores!(
    a_server_started_on_a_history_serves_the_stored_projection_and_folds_a_row_of_another_version,
    two_servers_writing_at_once_every_watcher_gets_both_servers_writes_in_commit_order,
    a_new_watcher_gets_every_initiative_then_caught_up_then_each_change_once,
    a_watcher_that_reconnects_with_its_last_position_misses_nothing_and_gets_nothing_twice,
    filters_select_initiatives_and_one_that_leaves_the_filter_is_sent_as_removed,
    bad_filters_are_refused_naming_the_field,
    concurrent_writers_every_watcher_sees_changes_in_order_and_ends_at_the_projection,
    a_watcher_that_falls_behind_is_told_and_caught_up_and_blocks_nobody,
);

/// Two servers on one PostgreSQL database, as two replicas: a write accepted by one
/// reaches a watcher connected to the other (woken by the database's notification).
#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn a_write_through_one_server_reaches_a_watcher_on_another(pool: sqlx::PgPool) {
    let first = TestApp::postgres(pool).await;
    let second = first.reserve(harness_options()).await;
    let checkout = checkout(&first).await;
    let mut stream = watch(&second, pb::WatchAlignmentsRequest::default()).await;
    let (snapshot, _) = until_caught_up(&mut stream).await;
    assert_eq!(snapshot.len(), 1);
    let signed = sign(&first, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "").await.unwrap();
    let update = next(&mut stream).await;
    assert_eq!((alignment(&update).version, update.position), (signed.stream_version, signed.global_position));
}

#[tokio::test]
async fn a_watch_ends_with_unavailable_and_the_resume_position_at_shutdown() {
    let (store, _dir) = TestApp::sqlite_store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(accord::server::serve_with(listener, store, harness_options(), async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).expect("uri").connect_lazy();
    let mut queries = accord::proto::alignment_service_client::AlignmentServiceClient::with_interceptor(
        channel.clone(),
        Bearer(Some(token(OWNER, roles_of(OWNER)))),
    );
    let mut commands = accord::proto::command_service_client::CommandServiceClient::with_interceptor(
        channel,
        Bearer(Some(token(OWNER, roles_of(OWNER)))),
    );
    let created = commands.create_initiative(new_initiative("CHECKOUT-42", "New checkout")).await.expect("create");
    let created = created.into_inner();
    let mut stream = queries.watch_alignments(pb::WatchAlignmentsRequest::default()).await.expect("watch").into_inner();
    let (_, position) = until_caught_up(&mut stream).await;
    assert_eq!(position, created.global_position);

    stop.send(()).expect("server still running");
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("the stream ends");
    let status = ended.expect_err("ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(&format!("resume with after_position {position}")), "{status:?}");
    let served = tokio::time::timeout(Duration::from_secs(10), server).await.expect("shutdown completes");
    served.expect("server task").expect("clean stop");
}
