//! The webhooks' store operations, on both stores: subscriptions (create, read, list,
//! update with and without an expected version, delete with their deliveries), the
//! dispatcher's lease (exclusive, renewed at the same epoch, taken over after it
//! expires at the next epoch, released), the fenced batch write of deliveries and
//! progress (a stale fence writes nothing, a cursor never moves back, only an enabled
//! subscription is disabled, a payload is kept), redelivery's state rules, the queue of
//! redeliveries, paging the delivery log and pruning it; on PostgreSQL, two replicas
//! asking for the lease at once.

use std::time::Duration;

use accord::domain::DomainError;
use accord::store::{
    DeliveryRow, GlobalCursor, LeaseFence, PgStore, Progress, Store, StoreError, SubscriptionRow, SubscriptionUpdate,
    now_micros,
};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    a_subscription_is_created_read_and_listed_in_creation_order,
    an_existing_id_or_a_bad_state_is_refused,
    an_update_raises_the_version_and_refuses_an_outdated_one,
    deleting_a_subscription_deletes_its_deliveries,
    the_lease_is_exclusive_renewed_at_its_epoch_and_released,
    an_expired_lease_is_taken_over_at_the_next_epoch,
    a_stale_fence_writes_nothing,
    a_delivery_written_again_keeps_its_seq_first_attempt_and_payload,
    the_cursor_never_moves_back_and_only_an_enabled_subscription_is_disabled,
    deliveries_of_a_missing_subscription_are_skipped,
    redelivery_queues_all_but_a_failing_delivery,
    the_delivery_log_pages_newest_first_by_status,
    pruning_deletes_only_old_delivered_rows,
);

// ---- Helpers --------------------------------------------------------------------------

const LEASE: &str = "webhook-dispatcher";
const TTL: Duration = Duration::from_secs(30);

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time in range")
}

fn cursor(tx_id: u64, position: i64) -> GlobalCursor {
    GlobalCursor { tx_id, position }
}

fn subscription(id: u128, created: i64) -> SubscriptionRow {
    SubscriptionRow {
        id: Uuid::from_u128(id),
        config: serde_json::json!({ "url": "https://hooks.example/accord", "types": ["initiative.*"] }),
        state: "enabled".into(),
        disabled_reason: String::new(),
        cursor: GlobalCursor::default(),
        dead_in_a_row: 0,
        last_digest_on: None,
        created_by: OWNER.into(),
        created_at: at(created),
        updated_at: at(created),
        version: 1,
    }
}

fn delivery(subscription_id: Uuid, message_id: &str, status: &str, attempted: i64) -> DeliveryRow {
    DeliveryRow {
        seq: 0,
        subscription_id,
        message_id: message_id.into(),
        message_type: "initiative.decision_proposed".into(),
        position: Some(attempted),
        initiative_id: Some(Uuid::from_u128(99)),
        status: status.into(),
        attempts: 1,
        response_code: Some(if status == "delivered" { 204 } else { 503 }),
        error: if status == "delivered" { String::new() } else { "503 Service Unavailable".into() },
        latency_ms: 12,
        first_attempt_at: at(attempted),
        last_attempt_at: at(attempted),
        delivered_at: (status == "delivered").then(|| at(attempted)),
        payload: None,
    }
}

async fn created(store: &Store, id: u128) -> Uuid {
    store.create_subscription(&subscription(id, 0)).await.expect("create subscription");
    Uuid::from_u128(id)
}

async fn lease(store: &Store, holder: &str) -> LeaseFence {
    store.acquire_lease(LEASE, holder, TTL).await.expect("acquire").expect("the lease is free")
}

async fn record(store: &Store, fence: &LeaseFence, deliveries: &[DeliveryRow], progress: &[Progress]) {
    assert!(store.record_deliveries(fence, deliveries, progress).await.expect("record"), "the fence holds");
}

async fn stored(store: &Store, id: Uuid) -> SubscriptionRow {
    store.subscription(id).await.expect("read subscription").expect("the subscription exists")
}

fn invalid_field(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Domain(DomainError::InvalidArgument { field, .. })) => field,
        other => panic!("expected an invalid argument, got {other:?}"),
    }
}

// ---- Subscriptions --------------------------------------------------------------------

async fn a_subscription_is_created_read_and_listed_in_creation_order(app: TestApp) {
    let store = &app.store;
    let later = subscription(1, 60);
    let earlier = SubscriptionRow { last_digest_on: Some("2026-12-22".into()), ..subscription(2, 0) };
    store.create_subscription(&later).await.expect("create");
    store.create_subscription(&earlier).await.expect("create");
    assert_eq!(stored(store, earlier.id).await, earlier, "read back exactly");
    assert_eq!(store.subscription(Uuid::from_u128(3)).await.expect("read"), None);
    let ids: Vec<Uuid> = store.subscriptions().await.expect("list").iter().map(|s| s.id).collect();
    assert_eq!(ids, [earlier.id, later.id]);
}

async fn an_existing_id_or_a_bad_state_is_refused(app: TestApp) {
    let store = &app.store;
    let id = created(store, 1).await;
    match store.create_subscription(&subscription(1, 5)).await {
        Err(StoreError::Domain(DomainError::AlreadyExists(message))) => assert!(message.contains(&id.to_string())),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let sleeping = SubscriptionRow { state: "sleeping".into(), ..subscription(2, 0) };
    assert_eq!(invalid_field(store.create_subscription(&sleeping).await), "state");
    let unexplained = SubscriptionRow { state: "disabled".into(), ..subscription(2, 0) };
    assert_eq!(invalid_field(store.create_subscription(&unexplained).await), "disabled_reason");
    let bad_day = SubscriptionRow { last_digest_on: Some("22/12/2026".into()), ..subscription(2, 0) };
    assert_eq!(invalid_field(store.create_subscription(&bad_day).await), "last_digest_on");
    assert_eq!(store.subscriptions().await.expect("list").len(), 1, "nothing else was written");
}

async fn an_update_raises_the_version_and_refuses_an_outdated_one(app: TestApp) {
    let store = &app.store;
    let id = created(store, 1).await;
    let before = now_micros();
    let pause = SubscriptionUpdate {
        config: Some(serde_json::json!({ "url": "https://hooks.example/v2" })),
        state: Some(("paused".into(), String::new())),
        cursor: Some(cursor(0, 40)),
        dead_in_a_row: Some(3),
    };
    let after = store.update_subscription(id, Some(1), &pause).await.expect("update").expect("exists");
    assert_eq!(
        (after.version, after.state.as_str(), after.cursor, after.dead_in_a_row),
        (2, "paused", cursor(0, 40), 3)
    );
    assert_eq!(after.config["url"], "https://hooks.example/v2");
    assert!(after.updated_at >= before, "updated_at moves to now");
    assert_eq!(stored(store, id).await, after, "what was returned is what is stored");

    // An administrator may rewind; with no expected version any version will do.
    let rewind = SubscriptionUpdate { cursor: Some(cursor(0, 10)), ..SubscriptionUpdate::default() };
    let rewound = store.update_subscription(id, None, &rewind).await.expect("update").expect("exists");
    assert_eq!((rewound.version, rewound.cursor, rewound.state.as_str()), (3, cursor(0, 10), "paused"));

    match store.update_subscription(id, Some(2), &rewind).await {
        Err(StoreError::Domain(DomainError::VersionConflict { expected: 2, actual: 3 })) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(stored(store, id).await.version, 3, "a refused update writes nothing");
    let missing = store.update_subscription(Uuid::from_u128(7), None, &rewind).await.expect("update");
    assert_eq!(missing, None);
    let disable_silently = SubscriptionUpdate { state: Some(("disabled".into(), String::new())), ..rewind };
    assert_eq!(invalid_field(store.update_subscription(id, None, &disable_silently).await), "disabled_reason");
}

async fn deleting_a_subscription_deletes_its_deliveries(app: TestApp) {
    let store = &app.store;
    let (gone, kept) = (created(store, 1).await, created(store, 2).await);
    let fence = lease(store, "replica-a").await;
    let rows = [delivery(gone, "msg_1", "delivered", 1), delivery(kept, "msg_1", "dead", 1)];
    record(store, &fence, &rows, &[]).await;
    assert!(store.delete_subscription(gone).await.expect("delete"));
    assert!(!store.delete_subscription(gone).await.expect("delete again"), "nothing left to delete");
    assert_eq!(store.subscription(gone).await.expect("read"), None);
    assert_eq!(store.delivery(gone, "msg_1").await.expect("read"), None, "its deliveries went with it");
    assert!(store.delivery(kept, "msg_1").await.expect("read").is_some(), "another's stay");
}

// ---- The lease ------------------------------------------------------------------------

async fn the_lease_is_exclusive_renewed_at_its_epoch_and_released(app: TestApp) {
    let store = &app.store;
    let first = lease(store, "replica-a").await;
    assert_eq!(first, LeaseFence { name: LEASE.into(), holder: "replica-a".into(), epoch: 1 });
    assert_eq!(store.acquire_lease(LEASE, "replica-b", TTL).await.expect("acquire"), None, "held by a");
    assert_eq!(lease(store, "replica-a").await, first, "renewed at the same epoch");
    let other = store.acquire_lease("another-lease", "replica-b", TTL).await.expect("acquire");
    assert_eq!(other.map(|fence| fence.epoch), Some(1), "leases are independent");

    // Releasing with a fence that does not hold it changes nothing.
    store.release_lease(&LeaseFence { holder: "replica-b".into(), ..first.clone() }).await.expect("release");
    assert_eq!(store.acquire_lease(LEASE, "replica-b", TTL).await.expect("acquire"), None);
    store.release_lease(&first).await.expect("release");
    assert!(!store.record_deliveries(&first, &[], &[]).await.expect("record"), "released: the fence is stale");
    let taken = lease(store, "replica-b").await;
    assert_eq!((taken.holder.as_str(), taken.epoch), ("replica-b", 2), "free at once, at the next epoch");

    assert_eq!(invalid_field(store.acquire_lease(LEASE, "", TTL).await), "holder");
    assert_eq!(invalid_field(store.acquire_lease(LEASE, "replica-c", Duration::ZERO).await), "ttl");
}

async fn an_expired_lease_is_taken_over_at_the_next_epoch(app: TestApp) {
    let store = &app.store;
    let short = Duration::from_millis(200);
    let first = store.acquire_lease(LEASE, "replica-a", short).await.expect("acquire").expect("free");
    assert_eq!(store.acquire_lease(LEASE, "replica-b", short).await.expect("acquire"), None, "not expired yet");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = store.acquire_lease(LEASE, "replica-b", TTL).await.expect("acquire").expect("expired");
    assert_eq!((taken.holder.as_str(), taken.epoch), ("replica-b", first.epoch + 1));
    assert_eq!(store.acquire_lease(LEASE, "replica-a", TTL).await.expect("acquire"), None, "b holds it now");
}

// ---- Recording deliveries -------------------------------------------------------------

async fn a_stale_fence_writes_nothing(app: TestApp) {
    let store = &app.store;
    let id = created(store, 1).await;
    let short = Duration::from_millis(200);
    let old = store.acquire_lease(LEASE, "replica-a", short).await.expect("acquire").expect("free");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let progress = [Progress { subscription_id: id, cursor: Some(cursor(0, 50)), ..Progress::default() }];
    let rows = [delivery(id, "msg_1", "delivered", 1)];
    assert!(!store.record_deliveries(&old, &rows, &progress).await.expect("record"), "expired, even unclaimed");

    let new = lease(store, "replica-b").await;
    assert!(!store.record_deliveries(&old, &rows, &progress).await.expect("record"), "taken over");
    let wrong_epoch = LeaseFence { epoch: new.epoch + 1, ..new.clone() };
    assert!(!store.record_deliveries(&wrong_epoch, &rows, &progress).await.expect("record"), "another epoch");
    assert_eq!(stored(store, id).await.cursor, GlobalCursor::default(), "no cursor moved");
    assert_eq!(store.delivery(id, "msg_1").await.expect("read"), None, "no delivery written");

    record(store, &new, &rows, &progress).await;
    assert_eq!(stored(store, id).await.cursor, cursor(0, 50));
}

async fn a_delivery_written_again_keeps_its_seq_first_attempt_and_payload(app: TestApp) {
    let store = &app.store;
    let id = created(store, 1).await;
    let fence = lease(store, "replica-a").await;
    let digest = DeliveryRow {
        message_type: "digest.daily".into(),
        position: None,
        payload: Some(b"{\"type\":\"digest.daily\"}".to_vec()),
        ..delivery(id, "msg_digest", "failing", 10)
    };
    record(store, &fence, &[digest.clone(), delivery(id, "msg_other", "delivered", 10)], &[]).await;
    let first = store.delivery(id, "msg_digest").await.expect("read").expect("written");
    assert!(first.seq > 0, "the store assigns the seq");
    assert_eq!(DeliveryRow { seq: first.seq, ..digest.clone() }, first, "read back exactly");

    let delivered = DeliveryRow {
        seq: 12_345,
        attempts: 2,
        response_code: Some(200),
        error: String::new(),
        latency_ms: 80,
        first_attempt_at: at(999),
        last_attempt_at: at(20),
        delivered_at: Some(at(20)),
        payload: None,
        ..digest.clone()
    };
    let delivered = DeliveryRow { status: "delivered".into(), ..delivered };
    record(store, &fence, std::slice::from_ref(&delivered), &[]).await;
    let after = store.delivery(id, "msg_digest").await.expect("read").expect("written");
    assert_eq!(after, DeliveryRow { seq: first.seq, first_attempt_at: at(10), payload: digest.payload, ..delivered });
}

async fn the_cursor_never_moves_back_and_only_an_enabled_subscription_is_disabled(app: TestApp) {
    let store = &app.store;
    let (enabled, paused) = (created(store, 1).await, created(store, 2).await);
    let pause = SubscriptionUpdate { state: Some(("paused".into(), String::new())), ..SubscriptionUpdate::default() };
    store.update_subscription(paused, None, &pause).await.expect("pause").expect("exists");
    let fence = lease(store, "replica-a").await;
    let step =
        |id, position| Progress { subscription_id: id, cursor: Some(cursor(5, position)), ..Progress::default() };

    record(store, &fence, &[], &[step(enabled, 30)]).await;
    record(store, &fence, &[], &[step(enabled, 20)]).await;
    assert_eq!(stored(store, enabled).await.cursor, cursor(5, 30), "never back");
    let later_tx = Progress { cursor: Some(cursor(6, 1)), ..step(enabled, 0) };
    record(store, &fence, &[], &[later_tx]).await;
    assert_eq!(stored(store, enabled).await.cursor, cursor(6, 1), "commit order: the transaction first");
    let version = stored(store, enabled).await.version;
    assert_eq!(version, 1, "moving a cursor is not an administrator's update");

    let disable = |id| Progress {
        subscription_id: id,
        dead_in_a_row: Some(5),
        disable: Some("5 dead letters in a row".into()),
        last_digest_on: Some("2026-12-23".into()),
        ..Progress::default()
    };
    record(store, &fence, &[], &[disable(enabled), disable(paused)]).await;
    let now_disabled = stored(store, enabled).await;
    assert_eq!(
        (now_disabled.state.as_str(), now_disabled.disabled_reason.as_str(), now_disabled.version),
        ("disabled", "5 dead letters in a row", 2)
    );
    assert_eq!((now_disabled.dead_in_a_row, now_disabled.last_digest_on.as_deref()), (5, Some("2026-12-23")));
    assert_eq!(now_disabled.cursor, cursor(6, 1), "a progress without a cursor leaves it");
    let still_paused = stored(store, paused).await;
    assert_eq!((still_paused.state.as_str(), still_paused.disabled_reason.as_str()), ("paused", ""));
    assert_eq!(still_paused.dead_in_a_row, 5, "the rest of its progress is written");

    let again = Progress { disable: Some("another reason".into()), ..Progress::default() };
    record(store, &fence, &[], &[Progress { subscription_id: enabled, ..again }]).await;
    assert_eq!(stored(store, enabled).await.disabled_reason, "5 dead letters in a row", "disabled once");
}

async fn deliveries_of_a_missing_subscription_are_skipped(app: TestApp) {
    let store = &app.store;
    let id = created(store, 1).await;
    let missing = Uuid::from_u128(404);
    let fence = lease(store, "replica-a").await;
    let rows = [delivery(missing, "msg_1", "delivered", 1), delivery(id, "msg_1", "delivered", 1)];
    let progress = [Progress { subscription_id: missing, cursor: Some(cursor(0, 9)), ..Progress::default() }];
    record(store, &fence, &rows, &progress).await;
    assert_eq!(store.delivery(missing, "msg_1").await.expect("read"), None);
    assert!(store.delivery(id, "msg_1").await.expect("read").is_some(), "the rest of the batch is written");
    let bad = DeliveryRow { status: "lost".into(), ..delivery(id, "msg_2", "delivered", 1) };
    assert_eq!(invalid_field(store.record_deliveries(&fence, &[bad], &[]).await), "status");
}

// ---- Redelivery, the log, pruning -----------------------------------------------------

async fn redelivery_queues_all_but_a_failing_delivery(app: TestApp) {
    let store = &app.store;
    let id = created(store, 1).await;
    let fence = lease(store, "replica-a").await;
    let rows = [
        delivery(id, "msg_delivered", "delivered", 1),
        delivery(id, "msg_dead", "dead", 2),
        delivery(id, "msg_failing", "failing", 3),
    ];
    record(store, &fence, &rows, &[]).await;
    for message in ["msg_delivered", "msg_dead"] {
        let before = store.delivery(id, message).await.expect("read").expect("written");
        let queued = store.request_redelivery(id, message).await.expect("redeliver").expect("exists");
        assert_eq!(queued, DeliveryRow { status: "queued".into(), ..before }, "{message}: only the status changes");
        let again = store.request_redelivery(id, message).await.expect("redeliver").expect("exists");
        assert_eq!(again, queued, "{message}: queued stays queued");
    }
    let failing = store.request_redelivery(id, "msg_failing").await.expect("redeliver").expect("exists");
    assert_eq!(failing.status, "failing", "returned unchanged, for the caller to refuse");
    assert_eq!(store.request_redelivery(id, "msg_none").await.expect("redeliver"), None);

    let queued = store.queued_redeliveries(10).await.expect("queued");
    let names: Vec<&str> = queued.iter().map(|d| d.message_id.as_str()).collect();
    assert_eq!(names, ["msg_delivered", "msg_dead"], "oldest seq first");
    assert_eq!(store.queued_redeliveries(1).await.expect("queued").len(), 1);
    assert_eq!(invalid_field(store.queued_redeliveries(0).await), "limit");
}

async fn the_delivery_log_pages_newest_first_by_status(app: TestApp) {
    let store = &app.store;
    let (id, other) = (created(store, 1).await, created(store, 2).await);
    let fence = lease(store, "replica-a").await;
    let rows: Vec<DeliveryRow> = (0..7)
        .map(|i| delivery(id, &format!("msg_{i}"), if i % 3 == 0 { "dead" } else { "delivered" }, i))
        .chain([delivery(other, "msg_x", "dead", 0)])
        .collect();
    record(store, &fence, &rows, &[]).await;

    let names = |page: &[DeliveryRow]| page.iter().map(|d| d.message_id.clone()).collect::<Vec<_>>();
    let first = store.deliveries(id, None, None, 3).await.expect("page");
    assert_eq!(names(&first), ["msg_6", "msg_5", "msg_4"]);
    let second = store.deliveries(id, None, first.last().map(|d| d.seq), 3).await.expect("page");
    assert_eq!(names(&second), ["msg_3", "msg_2", "msg_1"]);
    let last = store.deliveries(id, None, second.last().map(|d| d.seq), 3).await.expect("page");
    assert_eq!(names(&last), ["msg_0"]);
    let dead = store.deliveries(id, Some("dead"), None, 10).await.expect("page");
    assert_eq!(names(&dead), ["msg_6", "msg_3", "msg_0"], "one status, one subscription");
    assert_eq!(invalid_field(store.deliveries(id, Some("lost"), None, 10).await), "status");
}

async fn pruning_deletes_only_old_delivered_rows(app: TestApp) {
    let store = &app.store;
    let id = created(store, 1).await;
    let fence = lease(store, "replica-a").await;
    let rows = [
        delivery(id, "msg_old", "delivered", 10),
        delivery(id, "msg_old_dead", "dead", 10),
        delivery(id, "msg_recent", "delivered", 100),
    ];
    record(store, &fence, &rows, &[]).await;
    assert_eq!(store.prune_deliveries(at(50)).await.expect("prune"), 1);
    let left: Vec<String> =
        store.deliveries(id, None, None, 10).await.expect("page").into_iter().map(|d| d.message_id).collect();
    assert_eq!(left, ["msg_recent", "msg_old_dead"]);
    assert_eq!(store.prune_deliveries(at(50) - TimeDelta::seconds(1)).await.expect("prune"), 0);
}

// ---- PostgreSQL: replicas ---------------------------------------------------------------

/// Two replicas (stores of their own on the same database) asking for a free lease at
/// the same moment: exactly one gets it, every time.
#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn two_replicas_acquiring_at_once_give_exactly_one_holder(pool: PgPool) {
    let replica_a = Store::from(PgStore::new(pool.clone()));
    let replica_b = Store::from(PgStore::new(pool));
    for round in 0..25 {
        let name = format!("lease-{round}");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let ask = |store: Store, holder: &'static str| {
            let (barrier, name) = (barrier.clone(), name.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.acquire_lease(&name, holder, TTL).await.expect("acquire")
            })
        };
        let (a, b) = (ask(replica_a.clone(), "replica-a"), ask(replica_b.clone(), "replica-b"));
        let (a, b) = (a.await.expect("task"), b.await.expect("task"));
        match (a, b) {
            (Some(fence), None) | (None, Some(fence)) => assert_eq!(fence.epoch, 1, "round {round}"),
            other => panic!("round {round}: expected exactly one holder, got {other:?}"),
        }
    }
}
