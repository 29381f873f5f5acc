//! Snapshots for the past: an as-of that starts from a stored snapshot answers exactly
//! what folding the log's prefix answers, at every version and time; verify checks the
//! snapshots against the log and locates one a superuser changed; snapshots of another
//! format are ignored and replaced; a purge or a rebuild derives them again.

use accord::proto as pb;
use accord::store::fold::fold_onto;
use accord::store::snapshots::SNAPSHOT_FORMAT;
use accord::store::{StoredEvent, Until};
use uuid::Uuid;

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    an_as_of_from_a_snapshot_is_the_fold_of_the_log_at_every_version_and_time,
    verify_locates_a_past_snapshot_changed_or_of_another_history,
    a_snapshot_of_another_format_or_undecodable_is_ignored_and_replaced,
    purge_and_rebuild_derive_the_snapshots_again,
    a_refresh_passes_over_damaged_streams_once_and_serves_the_others,
);

/// Spacing of the snapshots in these tests: several per stream.
const EVERY: i64 = 5;

/// CHECKOUT-42 with a decision and `flips` sign-offs alternating approve and reject
/// across the three approvers; returns the stream id and its events.
async fn long_checkout(app: &TestApp, flips: usize) -> (Uuid, String, Vec<StoredEvent>) {
    let checkout = checkout(app).await;
    let approvers = [(ENGINEER, "engineering"), (DESIGNER, "design"), (BUSINESS, "business")];
    for i in 0..flips {
        let (who, function) = approvers[i % 3];
        let verdict = if (i / 3) % 2 == 0 { pb::Verdict::Approve } else { pb::Verdict::Reject };
        sign(app, who, &checkout.decision_id, function, verdict, &format!("Round {i}.")).await.expect("sign");
    }
    let stream: Uuid = checkout.initiative_id.parse().expect("uuid");
    let events = app.store.read_stream(stream, 1, 10_000).await.expect("read");
    (stream, checkout.decision_id, events)
}

/// The state folded from the log's prefix alone (no snapshot): the reference answer.
async fn folded_from_the_log(app: &TestApp, stream: Uuid, until: Until) -> Option<accord::domain::Initiative> {
    let events = app.store.read_stream_until(stream, until).await.expect("prefix");
    fold_onto(stream, None, &events).expect("fold")
}

async fn refresh(app: &TestApp) -> accord::store::snapshots::Refreshed {
    app.store.refresh_snapshots(EVERY).await.expect("refresh")
}

/// Runs SQL on the store's database as a superuser.
async fn superuser(app: &TestApp, postgres: &str, sqlite: &str) {
    match dialect(&app.store) {
        Dialect::Postgres(store) => sqlx::raw_sql(postgres).execute(store.pool()).await.map(drop),
        Dialect::Sqlite(store) => sqlx::raw_sql(sqlite).execute(store.pool()).await.map(drop),
    }
    .expect("superuser SQL");
}

async fn an_as_of_from_a_snapshot_is_the_fold_of_the_log_at_every_version_and_time(app: TestApp) {
    let (stream, decision, events) = long_checkout(&app, 31).await;
    let head = events.len() as i64;
    let refreshed = refresh(&app).await;
    assert_eq!((refreshed.streams, refreshed.snapshots), (1, (head / EVERY) as u64));
    let past = app.store.past_snapshots(&[stream]).await.expect("snapshots");
    assert_eq!(
        past.iter().map(|s| s.version).collect::<Vec<_>>(),
        (1..=head / EVERY).map(|k| k * EVERY).collect::<Vec<_>>()
    );
    assert!(past.iter().all(|s| s.format == SNAPSHOT_FORMAT));
    // Nothing more is due until the stream grows by another spacing.
    assert_eq!(refresh(&app).await.snapshots, 0);

    for version in 1..=head as u64 {
        let until = Until::Version(version);
        let from_snapshot = app.store.state_until(stream, until).await.expect("as of");
        assert_eq!(from_snapshot, folded_from_the_log(&app, stream, until).await, "as of version {version}");
        assert_eq!(from_snapshot.map(|s| s.version), Some(version));
    }
    // By time: each event's recorded time, and a microsecond before it.
    for event in &events {
        for time in [event.recorded_at, event.recorded_at - chrono::Duration::microseconds(1)] {
            let until = Until::Time(time);
            let from_snapshot = app.store.state_until(stream, until).await.expect("as of time");
            assert_eq!(from_snapshot, folded_from_the_log(&app, stream, until).await, "as of {time}");
        }
    }

    // Through the API: GetAlignmentAsOf at a snapshot's version and just after it.
    for version in [EVERY as u64, EVERY as u64 + 1, head as u64] {
        let request = pb::GetAlignmentAsOfRequest {
            initiative: "CHECKOUT-42".into(),
            at: Some(pb::get_alignment_as_of_request::At::Version(version)),
        };
        let then = app.audit().get_alignment_as_of(request).await.expect("as of").into_inner();
        assert_eq!(then.version, version);
    }
    let now = app.alignment("CHECKOUT-42").await;
    let request = pb::GetAlignmentAsOfRequest {
        initiative: "CHECKOUT-42".into(),
        at: Some(pb::get_alignment_as_of_request::At::Version(head as u64)),
    };
    assert_eq!(app.audit().get_alignment_as_of(request).await.expect("as of head").into_inner(), now);

    // The stream grows past the next multiple: the next refresh folds on from the latest.
    for i in 0..EVERY {
        let verdict = if i % 2 == 0 { pb::Verdict::Approve } else { pb::Verdict::Reject };
        sign(&app, ENGINEER, &decision, "engineering", verdict, "More.").await.expect("sign");
    }
    assert_eq!(refresh(&app).await.snapshots, 1);
    let report = app.store.verify(None, None).await.expect("verify");
    assert!(report.ok(), "{report:?}");
}

async fn verify_locates_a_past_snapshot_changed_or_of_another_history(app: TestApp) {
    let (stream, _, _) = long_checkout(&app, 16).await;
    refresh(&app).await;
    assert!(app.store.verify(None, None).await.expect("verify").ok());

    // The state changed: an as-of starting there would say something the log does not.
    let at = 2 * EVERY;
    superuser(
        &app,
        &format!("UPDATE past_snapshots SET state = jsonb_set(state, '{{title}}', '\"Forged\"') WHERE version = {at}"),
        &format!("UPDATE past_snapshots SET state = json_set(state, '$.title', 'Forged') WHERE version = {at}"),
    )
    .await;
    // The as-of starts there (which is why the snapshot needs a witness): verify is it.
    let forged = app.store.state_until(stream, Until::Version(at as u64)).await.expect("as of").expect("state");
    assert_eq!(forged.title, "Forged");
    let report = app.store.verify(None, None).await.expect("verify");
    let broken = report.first_break.expect("the forged snapshot is found");
    assert_eq!((broken.stream_id, broken.stream_version), (stream, at as u64));
    assert!(broken.reason.contains("past snapshot at version 10 does not hold the state"), "{}", broken.reason);
    let only = app.store.verify(Some(stream), None).await.expect("verify one").first_break.expect("found");
    assert_eq!(only.stream_version, at as u64);

    // Derived again, it verifies; then its hash is changed: it claims another history.
    app.store.purge_snapshots(Some(stream)).await.expect("purge");
    refresh(&app).await;
    assert!(app.store.verify(None, None).await.expect("verify").ok());
    superuser(
        &app,
        &format!("UPDATE past_snapshots SET hash = sha256(hash) WHERE version = {EVERY}"),
        &format!("UPDATE past_snapshots SET hash = zeroblob(32) WHERE version = {EVERY}"),
    )
    .await;
    let broken = app.store.verify(None, None).await.expect("verify").first_break.expect("found");
    assert_eq!(broken.stream_version, EVERY as u64);
    assert!(broken.reason.contains("the snapshot is of another history"), "{}", broken.reason);
}

async fn a_snapshot_of_another_format_or_undecodable_is_ignored_and_replaced(app: TestApp) {
    let (stream, _, _) = long_checkout(&app, 16).await;
    refresh(&app).await;
    let count = app.store.past_snapshots(&[stream]).await.expect("snapshots").len();
    assert!(count >= 3);
    // What an older code wrote (another format), and a state that no longer decodes.
    superuser(
        &app,
        &format!(
            "UPDATE past_snapshots SET format = 0 WHERE version = {EVERY};
             UPDATE past_snapshots SET state = '{{\"renamed\": true}}' WHERE version = {}",
            2 * EVERY
        ),
        &format!(
            "UPDATE past_snapshots SET format = 0 WHERE version = {EVERY};
             UPDATE past_snapshots SET state = '{{\"renamed\": true}}' WHERE version = {}",
            2 * EVERY
        ),
    )
    .await;
    for version in [EVERY, EVERY + 1, 2 * EVERY, 2 * EVERY + 2, 3 * EVERY] {
        let until = Until::Version(version as u64);
        let state = app.store.state_until(stream, until).await.expect("as of, past an unusable snapshot");
        assert_eq!(state, folded_from_the_log(&app, stream, until).await, "as of version {version}");
    }
    // The refresh prunes the other format, and the hole it leaves makes it derive the
    // stream's snapshots again from the first event, writing over the undecodable one.
    let refreshed = app.store.refresh_snapshots(EVERY).await.expect("refresh");
    assert_eq!((refreshed.pruned, refreshed.streams, refreshed.snapshots), (1, 1, count as u64));
    assert!(app.store.verify(None, None).await.expect("verify").ok());
    let past = app.store.past_snapshots(&[stream]).await.expect("snapshots");
    assert_eq!(past.len(), count);
    assert!(past.iter().all(|s| s.format == SNAPSHOT_FORMAT && s.decode().is_some()));
}

async fn purge_and_rebuild_derive_the_snapshots_again(app: TestApp) {
    let (stream, _, events) = long_checkout(&app, 16).await;
    refresh(&app).await;
    let before = app.store.past_snapshots(&[stream]).await.expect("snapshots");
    assert!(!before.is_empty());
    // An erasure's step: the stream's snapshots go, and the refresh derives them again.
    assert_eq!(app.store.purge_snapshots(Some(stream)).await.expect("purge"), before.len() as u64);
    assert!(app.store.past_snapshots(&[stream]).await.expect("snapshots").is_empty());
    refresh(&app).await;
    assert_eq!(app.store.past_snapshots(&[stream]).await.expect("snapshots"), before);

    // A rebuild deletes them and derives them at the default spacing (none below it).
    app.store.rebuild_projections().await.expect("rebuild");
    let spacing = accord::store::snapshots::SNAPSHOT_EVERY;
    let after = app.store.past_snapshots(&[stream]).await.expect("snapshots");
    assert_eq!(after.len() as i64, events.len() as i64 / spacing);
}

/// An initiative with `assignments` stakeholders: 1 + `assignments` events.
async fn initiative_with(app: &TestApp, key: &str, assignments: usize) -> Uuid {
    let created = create_initiative(app, OWNER, key, "Snapshots").await;
    for i in 0..assignments {
        let request = assignment(key, &format!("person{i}@example.com"), "legal", pb::Role::Informed);
        app.as_(OWNER).assign_stakeholder(request).await.expect("assign");
    }
    created.initiative_id.parse().expect("uuid")
}

async fn a_refresh_passes_over_damaged_streams_once_and_serves_the_others(app: TestApp) {
    let short_tail = initiative_with(&app, "TAIL-1", 11).await;
    let undecodable = initiative_with(&app, "BAD-1", 11).await;
    let healthy = initiative_with(&app, "GOOD-1", 11).await;
    // A superuser deletes one stream's tail (its head still says version 12) and makes
    // another's second event undecodable.
    let damage = format!(
        "DELETE FROM events WHERE stream_id = '{short_tail}' AND stream_version > 3;
         UPDATE events SET payload = '{{\"unexpected\": true}}' WHERE stream_id = '{undecodable}' AND stream_version = 2;"
    );
    superuser(
        &app,
        &format!("ALTER TABLE events DISABLE TRIGGER USER; {damage}"),
        &format!("DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete; {damage}"),
    )
    .await;
    // One pass, which ends: the damaged streams yield nothing, the healthy one its two.
    let refreshed =
        tokio::time::timeout(std::time::Duration::from_secs(30), refresh(&app)).await.expect("the refresh ends");
    assert_eq!((refreshed.streams, refreshed.snapshots), (3, 2));
    let past = app.store.past_snapshots(&[short_tail, undecodable, healthy]).await.expect("snapshots");
    assert_eq!(past.iter().map(|s| (s.stream_id, s.version)).collect::<Vec<_>>(), [(healthy, 5), (healthy, 10)]);
    let state = app.store.state_until(healthy, Until::Version(12)).await.expect("as of").expect("state");
    assert_eq!(state.version, 12);
}
