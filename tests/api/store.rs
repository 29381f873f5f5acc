//! The event store's guarantees, checked against PostgreSQL directly: readers of the
//! global log never skip a late commit, the database refuses changes to the log,
//! appends to different initiatives do not wait for each other, and every stream is
//! hash-chained.

use std::time::Duration;

use accord::proto as pb;
use accord::store::{GlobalCursor, ZERO_HASH, event_hash};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::support::*;

/// Reads the global log from `cursor` until `count` events have arrived, polling with a
/// bound so that a bug fails the test instead of hanging it.
async fn read_until(
    store: &accord::store::Store,
    mut cursor: GlobalCursor,
    count: usize,
) -> Vec<(GlobalCursor, accord::store::StoredEvent)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut events = Vec::new();
    while events.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {count} events arrived", events.len());
        let batch = store.read_all(cursor, 7).await.expect("read");
        match batch.last() {
            Some((last, _)) => cursor = *last,
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
        events.extend(batch);
    }
    events
}

/// Inserts one bare event in `tx` (positions and transaction ids as a real append gets them).
async fn insert_event(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, stream: Uuid) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, actor,
                             command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
         VALUES ($1, 1, $2, 'StageChanged', 1, '{}', 'test', 'c', 'c', 'c', now(), $3, $3)
         RETURNING position",
    )
    .bind(stream)
    .bind(Uuid::now_v7())
    .bind(ZERO_HASH.to_vec())
    .fetch_one(&mut **tx)
    .await
    .expect("insert event")
}

/// Whether some session waits for an advisory lock (the commit-order lock) right now.
async fn someone_waits_for_the_commit_order(pool: &PgPool) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)")
        .fetch_one(pool)
        .await
        .expect("pg_locks")
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn global_reader_never_skips_an_append_that_commits_after_a_later_one(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;

    // A takes a position and stays open. B, a later append, cannot take one until A ends:
    // positions follow commit order, so no later append can commit before an earlier one.
    let mut a = pool.begin().await.expect("begin A");
    let position_a = insert_event(&mut a, Uuid::now_v7()).await;
    let b = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut b = pool.begin().await.expect("begin B");
            let position = insert_event(&mut b, Uuid::now_v7()).await;
            b.commit().await.expect("commit B");
            position
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !someone_waits_for_the_commit_order(&pool).await {
        assert!(tokio::time::Instant::now() < deadline, "B never queued behind A");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!b.is_finished(), "B committed while A was in flight");

    // Nothing is visible, so a naive reader ordered by position has no gap to skip...
    let naive: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM events ORDER BY position").fetch_all(&pool).await.expect("naive read");
    assert!(naive.is_empty(), "an event is visible while an earlier append is in flight: {naive:?}");
    // ...and Accord's reader returns nothing while A is in flight.
    let first = app.store.read_all(GlobalCursor::default(), 100).await.expect("read");
    assert!(first.is_empty(), "nothing may be read past an in-flight append, got {first:?}");

    a.commit().await.expect("commit A");
    let position_b = b.await.expect("B ends");
    assert!(position_a < position_b, "B's position follows A's commit");

    // Both, A first, with no gap.
    let second = read_until(&app.store, GlobalCursor::default(), 2).await;
    let positions: Vec<i64> = second.iter().map(|(_, e)| e.position).collect();
    assert_eq!(positions, vec![position_a, position_b]);
    // Resuming from the last cursor returns nothing twice.
    let cursor = second.last().map(|(c, _)| *c).expect("at least one event");
    assert!(app.store.read_all(cursor, 100).await.expect("resume").is_empty());
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn tailing_reader_sees_every_event_exactly_once_under_concurrent_appends(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 15;

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let client = app.as_(OWNER);
            tokio::spawn(async move {
                let mut client = client;
                for i in 0..PER_WRITER {
                    client
                        .create_initiative(pb::CreateInitiativeRequest {
                            key: format!("W{w}-{i}"),
                            title: format!("writer {w} initiative {i}"),
                            ..Default::default()
                        })
                        .await
                        .expect("create");
                }
            })
        })
        .collect();

    // Tail the log while the writers run, then until every event has arrived.
    let mut cursor = GlobalCursor::default();
    let mut seen = Vec::new();
    while !writers.iter().all(|w| w.is_finished()) {
        let batch = app.store.read_all(cursor, 7).await.expect("read");
        match batch.last() {
            Some((last, _)) => cursor = *last,
            None => tokio::time::sleep(Duration::from_millis(2)).await,
        }
        seen.extend(batch.into_iter().map(|(_, e)| e.position));
    }
    for writer in writers {
        writer.await.expect("writer finished");
    }
    let rest = read_until(&app.store, cursor, (WRITERS * PER_WRITER).saturating_sub(seen.len())).await;
    seen.extend(rest.into_iter().map(|(_, e)| e.position));
    let mut all: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM events").fetch_all(&pool).await.expect("all positions");
    all.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no event was read twice");
    assert_eq!(sorted, all, "every event was read");
    assert_eq!(all.len(), WRITERS * PER_WRITER);
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn database_refuses_update_delete_and_truncate_of_the_log(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    checkout(&app).await;
    let before = app.log().await;
    for statement in [
        "UPDATE events SET payload = '{}' WHERE stream_version = 1",
        "DELETE FROM events WHERE stream_version = 1",
        "TRUNCATE events",
    ] {
        let error = sqlx::query(statement).execute(&pool).await.expect_err(statement);
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(app.log().await, before);
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn a_command_on_one_initiative_does_not_wait_for_a_locked_other_initiative(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    checkout(&app).await;
    app.as_(OWNER)
        .create_initiative(pb::CreateInitiativeRequest {
            key: "OTHER-1".into(),
            title: "Other".into(),
            ..Default::default()
        })
        .await
        .expect("create other");

    // Hold CHECKOUT-42's head the way a rebuild or an operator does.
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM streams WHERE key = 'CHECKOUT-42' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("lock head");

    let mut blocked_client = app.as_(OWNER);
    let blocked = tokio::spawn(async move {
        blocked_client
            .change_stage(pb::ChangeStageRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                stage: pb::Stage::Delivery.into(),
            })
            .await
    });
    let other = tokio::time::timeout(
        Duration::from_secs(30),
        app.as_(OWNER).change_stage(pb::ChangeStageRequest {
            options: None,
            initiative: "OTHER-1".into(),
            stage: pb::Stage::Delivery.into(),
        }),
    )
    .await
    .expect("the other initiative's command is not held up")
    .expect("change stage of the other initiative");
    assert_eq!(other.into_inner().stream_version, 2);
    assert!(!blocked.is_finished(), "a command on the locked initiative waits for the lock");

    holder.commit().await.expect("release");
    let done = blocked.await.expect("join").expect("blocked command completes once released");
    assert_eq!(done.into_inner().stream_version, 7);
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn every_stream_is_hash_chained_from_a_zero_hash(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let ids = checkout(&app).await;
    sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("sign");
    let stream: Uuid = ids.initiative_id.parse().expect("uuid");
    let events = app.store.read_stream(stream, 1, 1000).await.expect("read stream");
    assert_eq!(events.len(), 7);
    let mut previous = ZERO_HASH.to_vec();
    for event in &events {
        assert_eq!(event.prev_hash, previous, "version {} links to its predecessor", event.stream_version);
        let recomputed = event_hash(&event.prev_hash, &event.content());
        assert_eq!(event.hash, recomputed.to_vec(), "version {} hash covers its content", event.stream_version);
        previous = event.hash.clone();
    }
    let head: Vec<u8> = sqlx::query("SELECT head_hash FROM streams WHERE stream_id = $1")
        .bind(stream)
        .fetch_one(&pool)
        .await
        .expect("head")
        .get("head_hash");
    assert_eq!(head, previous, "the stream head records the last hash");
}

/// Writers contending for one initiative: the global read's commit order keeps that
/// initiative's versions in order (writers queue per stream before they are given a
/// transaction id), so a reader of the global log can fold each stream as it comes.
#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn the_global_read_keeps_each_streams_versions_in_order_under_contention(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let checkout = checkout(&app).await;
    let mut writers = Vec::new();
    for writer in 0..12 {
        let commands = app.as_(ENGINEER);
        let decision_id = checkout.decision_id.clone();
        writers.push(tokio::spawn(async move {
            for step in 0..8 {
                let mut commands = commands.clone();
                let body = format!("writer {writer} step {step}");
                let request =
                    feedback_request("CHECKOUT-42", &decision_id, "engineering", pb::FeedbackKind::Comment, &body);
                commands.record_feedback(request).await.expect("comment");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let expected = 6 + 12 * 8;
    let events = read_until(&app.store, GlobalCursor::default(), expected).await;
    let versions: Vec<i64> = events.iter().map(|(_, e)| e.stream_version).collect();
    let in_order: Vec<i64> = (1..=expected as i64).collect();
    assert_eq!(versions, in_order, "one stream's versions, in the global read's order");
}
