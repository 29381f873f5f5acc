//! The global log's commit order on PostgreSQL: it waits for nobody but Accord's own
//! appends (a transaction held open elsewhere on the server does not delay a watcher),
//! and positions clients held before positions followed commit order stay valid resume
//! points (the events before the boundary keep their (tx_id, position) order).

use std::time::Duration;

use accord::proto::{self as pb, alignment_update::Update};
use accord::store::{GlobalCursor, PgStore, Store};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::support::*;

/// How long the test waits for the watcher before it fails (not a performance bound).
const PATIENCE: Duration = Duration::from_secs(30);

/// The migration that made positions follow commit order.
const COMMIT_ORDER_MIGRATION: i64 = 20261217000006;

/// A transaction open in another database of the same server, holding a transaction id
/// (what used to hold back every reader of the global log), until dropped.
async fn long_transaction_elsewhere() -> PgConnection {
    let url = common_url();
    let mut other = PgConnection::connect(&url).await.expect("connect to the server's postgres database");
    other.execute("BEGIN").await.expect("begin");
    let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text").fetch_one(&mut other).await.expect("xid");
    assert!(!xid.is_empty(), "the transaction holds an id");
    other
}

fn common_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn a_transaction_held_open_in_another_database_does_not_delay_a_watcher(pool: PgPool) {
    let app = TestApp::postgres(pool).await;
    let checkout = checkout(&app).await;
    let mut stream = app
        .queries_with(Some(token(DASHBOARD, roles_of(DASHBOARD))))
        .watch_alignments(pb::WatchAlignmentsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    loop {
        let update = stream.message().await.expect("healthy").expect("open");
        if matches!(update.update, Some(Update::CaughtUp(_))) {
            break;
        }
    }
    let mut elsewhere = long_transaction_elsewhere().await;

    let signed = sign(&app, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "").await.unwrap();
    let delivered = tokio::time::timeout(PATIENCE, async {
        loop {
            let update = stream.message().await.expect("healthy").expect("open");
            if update.position >= signed.global_position {
                return update.position;
            }
        }
    })
    .await;
    // Only now is the other transaction ended: the delivery happened while it was open.
    elsewhere.execute("ROLLBACK").await.expect("rollback");
    assert_eq!(
        delivered.expect("the sign-off reaches the watcher while the other transaction is open"),
        signed.global_position
    );

    // A checkpoint does not wait for it either, and covers the acknowledged command.
    let mut elsewhere = long_transaction_elsewhere().await;
    let checkpoint = tokio::time::timeout(PATIENCE, app.store.create_checkpoint(None)).await;
    elsewhere.execute("ROLLBACK").await.expect("rollback");
    let checkpoint = checkpoint.expect("the checkpoint is not held back").expect("checkpoint");
    assert_eq!(checkpoint.events, app.log().await.len() as u64);
}

/// Inserts one event row of `stream` at `version` (a bare row: enough for reading order).
async fn raw_event(conn: &mut PgConnection, stream: Uuid, version: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, actor,
                             command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
         VALUES ($1, $2, $3, 'InitiativeUpdated', 1, '{}', 'owner@example.com', $3::text, 'c', 'c', now(),
                 '\\x0000000000000000000000000000000000000000000000000000000000000000',
                 '\\x0000000000000000000000000000000000000000000000000000000000000000')
         RETURNING position",
    )
    .bind(stream)
    .bind(version)
    .bind(Uuid::now_v7())
    .fetch_one(conn)
    .await
    .expect("insert event")
}

async fn all_positions(store: &Store, after: GlobalCursor) -> Vec<i64> {
    store.read_all(after, 1000).await.expect("read all").into_iter().map(|(_, e)| e.position).collect()
}

#[sqlx::test(migrations = false)]
async fn positions_written_before_commit_order_resume_in_the_order_they_were_read_in(pool: PgPool) {
    // The schema as it was before positions followed commit order.
    let older = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir("migrations/postgres").expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let version: i64 = name.split('_').next().and_then(|v| v.parse().ok()).unwrap_or(i64::MAX);
        if version < COMMIT_ORDER_MIGRATION {
            std::fs::copy(&path, older.path().join(&name)).expect("copy migration");
        }
    }
    let before = Migrator::new(older.path()).await.expect("the older migrations");
    before.run(&pool).await.expect("the older migrations");

    // Two writers whose transaction ids and positions disagree: the first takes its id,
    // the second inserts and commits, then the first inserts and commits. Read in
    // (tx_id, position) order the log is [second writer's position, first's] reversed.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut first = pool.acquire().await.expect("conn").detach();
    let mut second = pool.acquire().await.expect("conn").detach();
    first.execute("BEGIN").await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut first).await.expect("xid");
    second.execute("BEGIN").await.expect("begin");
    let early = raw_event(&mut second, b, 1).await;
    second.execute("COMMIT").await.expect("commit");
    let late = raw_event(&mut first, a, 1).await;
    first.execute("COMMIT").await.expect("commit");
    assert!(early < late);

    before.run(&pool).await.expect("idempotent");
    let store = Store::from(PgStore::new(pool.clone()));
    // Now the rest of the migrations, as an upgraded server applies them at start.
    accord::store::postgres::MIGRATOR.run(&pool).await.expect("the commit-order migration");
    let mut conn = pool.acquire().await.expect("conn").detach();
    let newer = raw_event(&mut conn, a, 2).await;

    // The whole log: the old events in the order readers saw them, then the new one.
    assert_eq!(all_positions(&store, GlobalCursor::default()).await, vec![late, early, newer]);
    // A client that had read up to `late` (first in the old order) resumes with `early`.
    let cursor = store.cursor_after_position(late as u64).await.expect("cursor");
    assert_eq!(all_positions(&store, cursor).await, vec![early, newer]);
    let cursor = store.cursor_after_position(early as u64).await.expect("cursor");
    assert_eq!(all_positions(&store, cursor).await, vec![newer]);
    let cursor = store.cursor_after_position(newer as u64).await.expect("cursor");
    assert_eq!(all_positions(&store, cursor).await, Vec::<i64>::new());
    // Past the head: nothing now, then exactly what commits later.
    let now = store.cursor_after_position(newer as u64 + 100).await.expect("cursor");
    let later = raw_event(&mut conn, b, 2).await;
    assert_eq!(all_positions(&store, now).await, vec![later]);
}
