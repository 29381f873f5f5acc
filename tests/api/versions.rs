//! Schema evolution (issue 13, item 4), on both stores: the corpus of stored events of
//! every schema version imports through the real import path and serves exactly its
//! checked-in alignment; a head snapshot of another version (older, newer, undecodable)
//! is folded from the log rather than refused, and a newer one is not overwritten; and
//! the online (blue/green) projection rebuild runs under commands and queries without
//! an error, serving the new projection, exactly the log's fold, from its swap on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use accord::domain::AlignmentView;
use accord::domain::alignment::PROJECTION_VERSION;
use accord::domain::values::{InitiativeId, InitiativeRef};
use accord::proto as pb;
use accord::store::fold::{FoldedHead, SNAPSHOT_VERSION};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    the_corpus_of_schema_version_1_imports_and_serves_its_checked_in_alignment,
    the_corpus_of_schema_version_2_imports_and_serves_its_checked_in_alignment,
    a_head_snapshot_of_another_version_is_folded_from_the_log_and_a_newer_one_is_kept,
    an_online_rebuild_swaps_in_the_new_projection_under_commands_and_queries,
    an_event_of_a_newer_schema_version_is_refused_as_written_by_a_newer_accord,
    an_append_does_not_overwrite_an_alignment_row_of_a_newer_projection,
);

const CORPUS: &[(&str, &str)] = &[
    (include_str!("../corpus/v1.jsonl"), include_str!("../corpus/v1.alignment.json")),
    (include_str!("../corpus/v2.jsonl"), include_str!("../corpus/v2.alignment.json")),
];

async fn the_corpus_of_schema_version_1_imports_and_serves_its_checked_in_alignment(app: TestApp) {
    corpus_imports_and_serves_its_checked_in_alignment(app, 0).await;
}

async fn the_corpus_of_schema_version_2_imports_and_serves_its_checked_in_alignment(app: TestApp) {
    corpus_imports_and_serves_its_checked_in_alignment(app, 1).await;
}

/// An import needs an empty store: one test per corpus.
async fn corpus_imports_and_serves_its_checked_in_alignment(app: TestApp, corpus: usize) {
    let (log, expected) = CORPUS[corpus];
    let expected: BTreeMap<String, AlignmentView> = serde_json::from_str(expected).expect("checked-in views");
    // Through the ImportEvents call, as an operator imports: the line stream and its end.
    let mut requests: Vec<pb::ImportEventsRequest> =
        log.lines().map(|line| pb::ImportEventsRequest { line: line.to_owned(), end: false }).collect();
    let lines = requests.len() as u64;
    requests.push(pb::ImportEventsRequest { line: String::new(), end: true });
    let admin = app.audit_with(Some(token(OWNER, &[Role::Admin])));
    let report =
        admin.clone().import_events(tokio_stream::iter(requests)).await.expect("import the corpus").into_inner();
    assert_eq!((report.events, report.initiatives), (lines, expected.len() as u64));
    for (key, view) in &expected {
        let served = app.alignment(key).await;
        assert_eq!(served, accord::grpc::convert::alignment(view), "{key} as served over gRPC");
        let stored = app.store.alignment(&InitiativeRef::Key(view.key.clone())).await.expect("read").expect("a row");
        assert_eq!(&stored, view, "{key} as stored");
    }
    // The list is served from the live feed, which reads the imported log after it.
    let want: Vec<&str> = expected.keys().map(String::as_str).collect();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let listed = app
            .queries()
            .list_alignments(pb::ListAlignmentsRequest { include_archived: true, ..Default::default() })
            .await
            .expect("list")
            .into_inner();
        let keys: Vec<&str> = listed.initiatives.iter().map(|view| view.key.as_str()).collect();
        if keys == want {
            for (served, view) in listed.initiatives.iter().zip(expected.values()) {
                assert_eq!(served, &accord::grpc::convert::alignment(view), "{} as listed", view.key);
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "listed {keys:?}, not {want:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The stored snapshot of CHECKOUT-42.
async fn snapshot(app: &TestApp) -> serde_json::Value {
    let text: String = match dialect(&app.store) {
        Dialect::Postgres(store) => sqlx::query_scalar("SELECT state::text FROM streams WHERE key = 'CHECKOUT-42'")
            .fetch_one(store.pool())
            .await
            .expect("snapshot"),
        Dialect::Sqlite(store) => sqlx::query_scalar("SELECT state FROM streams WHERE key = 'CHECKOUT-42'")
            .fetch_one(store.pool())
            .await
            .expect("snapshot"),
    };
    serde_json::from_str(&text).expect("a JSON snapshot")
}

async fn set_snapshot(app: &TestApp, snapshot: &serde_json::Value) {
    let text = snapshot.to_string();
    match dialect(&app.store) {
        Dialect::Postgres(store) => {
            sqlx::query("UPDATE streams SET state = $1::jsonb WHERE key = 'CHECKOUT-42'")
                .bind(text)
                .execute(store.pool())
                .await
                .expect("set snapshot");
        }
        Dialect::Sqlite(store) => {
            sqlx::query("UPDATE streams SET state = ?1 WHERE key = 'CHECKOUT-42'")
                .bind(text)
                .execute(store.pool())
                .await
                .expect("set snapshot");
        }
    }
}

async fn a_head_snapshot_of_another_version_is_folded_from_the_log_and_a_newer_one_is_kept(app: TestApp) {
    let checkout = checkout(&app).await;
    let current = snapshot(&app).await;
    assert_eq!(current["snapshot_version"], serde_json::json!(SNAPSHOT_VERSION), "appends write the version");
    // A field renamed under another version's number, as an older or a newer Accord
    // would have written it; and a snapshot that is no state at all.
    let renamed = |version: i32| {
        let mut other = current.clone();
        let fields = other.as_object_mut().expect("an object");
        let key = fields.remove("key").expect("a key");
        fields.insert("initiative_key".into(), key);
        fields.insert("snapshot_version".into(), version.into());
        other
    };
    let cases = [
        ("older", renamed(SNAPSHOT_VERSION - 1), true),
        ("garbage", serde_json::json!("garbage"), true),
        ("newer", renamed(SNAPSHOT_VERSION + 1), false),
    ];
    for (n, (what, stored, replaced)) in cases.into_iter().enumerate() {
        set_snapshot(&app, &stored).await;
        // A process that has not seen the head (a fresh server on the store) loads it.
        let fresh = app.reserve(harness_options()).await;
        let verdict = if n % 2 == 0 { pb::Verdict::Approve } else { pb::Verdict::Reject };
        let signed = sign(&fresh, ENGINEER, &checkout.decision_id, "engineering", verdict, "Not yet.")
            .await
            .unwrap_or_else(|e| panic!("{what}: a command on a head with that snapshot: {e:?}"));
        let view = fresh.alignment("CHECKOUT-42").await;
        assert_eq!(view.version, signed.stream_version, "{what}");
        let expected =
            if verdict == pb::Verdict::Approve { pb::FunctionState::Approved } else { pb::FunctionState::Rejected };
        assert_eq!(function_state(&view, "engineering"), expected, "{what}");
        let after = snapshot(&app).await;
        if replaced {
            assert_eq!(
                after["snapshot_version"],
                serde_json::json!(SNAPSHOT_VERSION),
                "{what}: replaced by a current one"
            );
            assert_eq!(after["version"], serde_json::json!(signed.stream_version), "{what}");
        } else {
            assert_eq!(after, stored, "{what}: a newer snapshot is not overwritten by an older process");
        }
        // And the head folds to the same state as its log either way.
        let stream = InitiativeId::parse("id", &checkout.initiative_id).expect("id").0;
        let events = app.store.read_stream(stream, 1, i64::MAX).await.expect("log");
        let folded = FoldedHead::refold(stream, &events).expect("fold").state;
        let loaded = app.store.initiative(&InitiativeRef::Key(folded.key.clone())).await.expect("load").expect("head");
        assert_eq!(loaded, folded, "{what}");
    }
}

const INITIATIVES: usize = 24;

async fn an_online_rebuild_swaps_in_the_new_projection_under_commands_and_queries(app: TestApp) {
    let keys: Vec<String> = (0..INITIATIVES).map(|n| format!("BLUE-{n}")).collect();
    for key in &keys {
        create_initiative(&app, OWNER, key, "Blue").await;
        assign_role(&app, OWNER, key, DESIGNER, "design", pb::Role::Approver).await;
    }
    // The served projection as an older projection version wrote it.
    match dialect(&app.store) {
        Dialect::Postgres(store) => sqlx::query(
            r#"UPDATE alignment SET projection_version = 0, title = 'stale', view = jsonb_set(view, '{title}', '"stale"')"#,
        )
        .execute(store.pool())
        .await
        .map(|_| ()),
        Dialect::Sqlite(store) => sqlx::query(
            "UPDATE alignment SET projection_version = 0, title = 'stale', view = json_set(view, '$.title', 'stale')",
        )
        .execute(store.pool())
        .await
        .map(|_| ()),
    }
    .expect("age the projection");

    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let swapped = Arc::new(AtomicBool::new(false));
    let commands = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for writer in 0..2 {
        let (app, stop, commands, keys) = (app.clone(), stop.clone(), commands.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = writer;
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[n % keys.len()];
                let who = format!("p{n}@example.com");
                app.as_(OWNER)
                    .assign_stakeholder(assignment(key, &who, "engineering", pb::Role::Informed))
                    .await
                    .map_err(|e| format!("command on {key}: {e:?}"))?;
                commands.fetch_add(1, Ordering::Relaxed);
                n += 2;
            }
            Ok::<usize, String>(0)
        }));
    }
    for reader in 0..2 {
        let (app, stop, swapped, keys) = (app.clone(), stop.clone(), swapped.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let (mut n, mut after_swap) = (reader, 0);
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[n % keys.len()];
                let was_swapped = swapped.load(Ordering::SeqCst);
                let view = app
                    .queries()
                    .get_alignment(pb::GetAlignmentRequest { initiative: key.clone() })
                    .await
                    .map_err(|e| format!("GetAlignment {key}: {e:?}"))?
                    .into_inner();
                let listed = app
                    .queries()
                    .list_alignments(pb::ListAlignmentsRequest::default())
                    .await
                    .map_err(|e| format!("ListAlignments: {e:?}"))?
                    .into_inner();
                if was_swapped {
                    after_swap += 1;
                    if view.title == "stale" || listed.initiatives.iter().any(|v| v.title == "stale") {
                        return Err(format!("a read after the swap served the old projection ({key})"));
                    }
                }
                n += 2;
            }
            Ok(after_swap)
        }));
    }
    // The calls above are served from the live feed's views; the stored projection is
    // what the feed falls back to and what a starting process reads: read it directly.
    let stale_before_swap = Arc::new(AtomicUsize::new(0));
    {
        let (app, stop, swapped, keys, stale_before_swap) =
            (app.clone(), stop.clone(), swapped.clone(), keys.clone(), stale_before_swap.clone());
        tasks.push(tokio::spawn(async move {
            let (mut n, mut after_swap) = (0, 0);
            let all = accord::store::ListFilter { include_archived: true, ..Default::default() };
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[n % keys.len()];
                let was_swapped = swapped.load(Ordering::SeqCst);
                let one = app
                    .store
                    .alignment(&InitiativeRef::Key(self::key(key)))
                    .await
                    .map_err(|e| format!("the stored row of {key}: {e}"))?
                    .ok_or_else(|| format!("no stored row of {key}"))?;
                let listed = app.store.list(&all, None, 1_000).await.map_err(|e| format!("the stored list: {e}"))?;
                if listed.len() != keys.len() {
                    return Err(format!("the stored list has {} rows, not {}", listed.len(), keys.len()));
                }
                let stale = usize::from(one.title == "stale") + listed.iter().filter(|v| v.title == "stale").count();
                if was_swapped {
                    after_swap += 1;
                    if stale > 0 {
                        return Err(format!("a stored read after the swap served the old projection ({key})"));
                    }
                } else {
                    stale_before_swap.fetch_add(stale, Ordering::Relaxed);
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            Ok(after_swap)
        }));
    }
    let wait_for = |count: usize| {
        let commands = commands.clone();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while commands.load(Ordering::Relaxed) < count {
                assert!(tokio::time::Instant::now() < deadline, "the writers stalled");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    wait_for(10).await;
    let before = commands.load(Ordering::Relaxed);
    let rebuilt = app.store.rebuild_projections_online().await.expect("online rebuild");
    swapped.store(true, Ordering::SeqCst);
    let during = commands.load(Ordering::Relaxed) - before;
    assert_eq!(rebuilt.initiatives, INITIATIVES as u64);
    wait_for(commands.load(Ordering::Relaxed) + 10).await;
    stop.store(true, Ordering::Relaxed);
    let mut reads_after_swap = 0;
    for task in tasks {
        reads_after_swap += task.await.expect("task").unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(reads_after_swap > 0, "no read ran after the swap");
    assert!(
        stale_before_swap.load(Ordering::Relaxed) > 0,
        "the old projection kept serving while the new one was built beside it"
    );
    eprintln!("online rebuild: {rebuilt:?}, {during} commands during it, {reads_after_swap} reads after the swap");

    // Every row is the new projection's, and exactly its initiative's log folded.
    for key in &keys {
        let served = app.alignment(key).await;
        let stream = InitiativeId::parse("id", &served.initiative_id).expect("id").0;
        let events = app.store.read_stream(stream, 1, i64::MAX).await.expect("log");
        let folded = FoldedHead::refold(stream, &events).expect("fold").projection.view;
        assert_eq!(served, accord::grpc::convert::alignment(&folded), "{key} after the swap");
    }
    let (old_rows, side_rows): (i64, i64) = match dialect(&app.store) {
        Dialect::Postgres(store) => sqlx::query_as(
            "SELECT (SELECT count(*) FROM alignment WHERE projection_version <> $1), (SELECT count(*) FROM alignment_next)",
        )
        .bind(PROJECTION_VERSION)
        .fetch_one(store.pool())
        .await
        .expect("count"),
        Dialect::Sqlite(store) => sqlx::query_as(
            "SELECT (SELECT count(*) FROM alignment WHERE projection_version <> ?1), (SELECT count(*) FROM alignment_next)",
        )
        .bind(PROJECTION_VERSION)
        .fetch_one(store.pool())
        .await
        .expect("count"),
    };
    assert_eq!((old_rows, side_rows), (0, 0), "rows of the old projection, rows left beside");
}

/// What a newer Accord's append of CHECKOUT-42 leaves: an event of the next schema
/// version at the head's next version, and the head moved to it.
async fn append_from_a_newer_accord(app: &TestApp, stream: uuid::Uuid, version: i64) {
    let payload = r#"{"from": "definition", "to": "delivery", "why": "a field this Accord does not know"}"#;
    let newer = accord::domain::event::SCHEMA_VERSION + 1;
    match dialect(&app.store) {
        Dialect::Postgres(store) => {
            sqlx::query(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, actor,
                                     command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
                 VALUES ($1, $2, $3, 'StageChanged', $4, $5::jsonb, 'pm@example.com', 'newer-1', '', '', now(), $6, $6)",
            )
            .bind(stream)
            .bind(version)
            .bind(uuid::Uuid::now_v7())
            .bind(newer)
            .bind(payload)
            .bind(vec![7u8; 32])
            .execute(store.pool())
            .await
            .expect("a newer event");
            sqlx::query("UPDATE streams SET version = $2 WHERE stream_id = $1")
                .bind(stream)
                .bind(version)
                .execute(store.pool())
                .await
                .expect("move the head");
        }
        Dialect::Sqlite(store) => {
            sqlx::query(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, actor,
                                     command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
                 VALUES (?1, ?2, ?3, 'StageChanged', ?4, ?5, 'pm@example.com', 'newer-1', '', '', ?6, ?7, ?7)",
            )
            .bind(stream.to_string())
            .bind(version)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(newer)
            .bind(payload)
            .bind(chrono::Utc::now().timestamp_micros())
            .bind(vec![7u8; 32])
            .execute(store.pool())
            .await
            .expect("a newer event");
            sqlx::query("UPDATE streams SET version = ?2 WHERE stream_id = ?1")
                .bind(stream.to_string())
                .bind(version)
                .execute(store.pool())
                .await
                .expect("move the head");
        }
    }
}

async fn an_event_of_a_newer_schema_version_is_refused_as_written_by_a_newer_accord(app: TestApp) {
    let checkout = checkout(&app).await;
    let head = app.alignment("CHECKOUT-42").await.version;
    let stream = InitiativeId::parse("id", &checkout.initiative_id).expect("id").0;
    append_from_a_newer_accord(&app, stream, i64::try_from(head).expect("version") + 1).await;
    // This process (a fresh server: it has not seen the head) cannot fold the stream:
    // it says so, as a retryable refusal, not as corruption.
    let fresh = app.reserve(harness_options()).await;
    let status = sign(&fresh, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "")
        .await
        .expect_err("a command on a stream with a newer event");
    assert_status(&status, tonic::Code::Unavailable, &["older than the history"]);
    assert!(!status.message().contains("corrupt"), "{status:?}");
    let error = fresh.store.initiative(&InitiativeRef::Key(key("CHECKOUT-42"))).await.expect_err("a fold");
    assert!(matches!(error, accord::store::StoreError::Newer(_)), "{error:?}");
    assert!(error.to_string().contains("written by a newer Accord"), "{error}");
    // Other initiatives are unaffected.
    create_initiative(&fresh, OWNER, "OTHER-1", "Other").await;
    assert_eq!(fresh.alignment("OTHER-1").await.version, 1);
}

async fn an_append_does_not_overwrite_an_alignment_row_of_a_newer_projection(app: TestApp) {
    let checkout = checkout(&app).await;
    let newer = PROJECTION_VERSION + 1;
    match dialect(&app.store) {
        Dialect::Postgres(store) => sqlx::query(
            r#"UPDATE alignment SET projection_version = $1, view = jsonb_set(view, '{title}', '"from a newer Accord"')"#,
        )
        .bind(newer)
        .execute(store.pool())
        .await
        .map(|_| ()),
        Dialect::Sqlite(store) => sqlx::query(
            "UPDATE alignment SET projection_version = ?1, view = json_set(view, '$.title', 'from a newer Accord')",
        )
        .bind(newer)
        .execute(store.pool())
        .await
        .map(|_| ()),
    }
    .expect("a newer row");
    let stored_before = app.store.alignment(&InitiativeRef::Key(key("CHECKOUT-42"))).await.expect("read").expect("row");
    sign(&app, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "")
        .await
        .expect("the command runs");
    let stored_after = app.store.alignment(&InitiativeRef::Key(key("CHECKOUT-42"))).await.expect("read").expect("row");
    assert_eq!(stored_after, stored_before, "the newer projection's row is left as it was");
    assert_eq!(stored_after.title, "from a newer Accord");
    // A row of this projection version or older is replaced as ever.
    create_initiative(&app, OWNER, "OTHER-1", "Other").await;
    let other = app.store.alignment(&InitiativeRef::Key(key("OTHER-1"))).await.expect("read").expect("row");
    assert_eq!(other.version, 1);
}

fn key(text: &str) -> accord::domain::values::InitiativeKey {
    accord::domain::values::InitiativeKey::parse("key", text).expect("key")
}
