//! The SQLite store's guarantees, against real database files in temporary folders:
//! opening (and refusing what cannot be opened), the append-only log, the command
//! cycle with its hash chain, idempotency, version conflicts, concurrent writers in
//! one process and across two, the gap-free global log, queries and rebuilds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use sqlx::Row;
use tempfile::TempDir;

use super::*;
use crate::app::{App, AppLimits, CommandEnvelope, CommandId, CommandOutcome};
use crate::domain::Command;
use crate::domain::event::DecisionContent;
use crate::domain::event::SCHEMA_VERSION;
use crate::domain::values::{FeedbackKind, FeedbackSource, Function, InitiativeKey, Role, Stage, Verdict};
use crate::store::Store;

const OWNER: &str = "olivia@example.com";
const DRIVER: &str = "dana@example.com";
const ENG: &str = "erin@example.com";
const DES: &str = "desmond@example.com";
const BIZ: &str = "bianca@example.com";

struct Fixture {
    dir: TempDir,
    store: SqliteStore,
    /// The service's command cycle on `store`, as a process runs it.
    app: App,
}

fn app_on(store: &SqliteStore) -> App {
    App::start(Store::from(store.clone()), AppLimits::default())
}

/// An initiative's state now (snapshot and the events after it).
async fn state_of(store: &SqliteStore, target: &InitiativeRef) -> Option<Initiative> {
    Store::from(store.clone()).initiative(target).await.expect("query")
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let store = SqliteStore::open(&dir.path().join("accord.db")).await.expect("open store");
        let app = app_on(&store);
        Self { dir, store, app }
    }

    /// The store as the service holds it.
    fn shared(&self) -> Store {
        Store::from(self.store.clone())
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("accord.db")
    }

    async fn run(&self, actor: &str, target: Option<&InitiativeRef>, command: Command) -> CommandOutcome {
        self.app.execute(envelope(actor, target, command)).await.expect("command succeeds")
    }

    async fn refuse(&self, envelope: &CommandEnvelope) -> StoreError {
        self.app.execute(envelope.clone()).await.expect_err("command is refused")
    }

    /// Creates an initiative with a driver and one approver per default function.
    async fn team(&self, key: &str) -> InitiativeRef {
        let target = InitiativeRef::Id(self.run(OWNER, None, create(key)).await.initiative_id);
        self.run(OWNER, Some(&target), assign(DRIVER, "product", Role::Driver)).await;
        for (who, function) in [(ENG, "engineering"), (DES, "design"), (BIZ, "business")] {
            self.run(DRIVER, Some(&target), assign(who, function, Role::Approver)).await;
        }
        target
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(self.store.pool())
            .await
            .expect("count rows")
    }
}

fn who(principal: &str) -> Principal {
    Principal::parse("principal", principal).expect("valid principal")
}

fn func(name: &str) -> Function {
    Function::parse("function", name).expect("valid function")
}

fn key(key: &str) -> InitiativeRef {
    InitiativeRef::Key(InitiativeKey::parse("key", key).expect("valid key"))
}

/// A command from `actor` with a fresh command id and a fingerprint of the request.
fn envelope(actor: &str, target: Option<&InitiativeRef>, command: Command) -> CommandEnvelope {
    let command_id = CommandId::generate();
    let mut fingerprint = Sha256::new();
    fingerprint.update(actor.as_bytes());
    fingerprint.update(format!("{target:?} {command:?}").as_bytes());
    CommandEnvelope {
        target: target.cloned(),
        command,
        actor: who(actor),
        authority: crate::domain::Authority::Member,
        teams: Default::default(),
        correlation_id: format!("corr-{}", command_id.as_str()),
        causation_id: format!("cause-{}", command_id.as_str()),
        command_id,
        expected_version: None,
        fingerprint: fingerprint.finalize().into(),
    }
}

fn create(key: &str) -> Command {
    create_as(key, &format!("Initiative {key}"), None, None)
}

fn create_as(key: &str, title: &str, owner: Option<&str>, stage: Option<Stage>) -> Command {
    Command::CreateInitiative {
        id: InitiativeId::new_v7(),
        key: InitiativeKey::parse("key", key).expect("valid key"),
        title: title.into(),
        summary: "A faster checkout".into(),
        owner: owner.map(who),
        stage,
        required_functions: None,
    }
}

fn assign(principal: &str, function: &str, role: Role) -> Command {
    Command::AssignStakeholder { principal: who(principal), function: func(function), role }
}

fn propose(decision_id: DecisionId) -> Command {
    Command::ProposeDecision {
        decision_id,
        content: DecisionContent {
            title: "Use Stripe for payments".into(),
            context: "Payments are slow".into(),
            options: vec!["Stripe".into(), "Adyen".into()],
            proposal: "Stripe".into(),
            rationale: "Best fit".into(),
        },
        required_functions: None,
        supersedes: None,
    }
}

fn sign(decision_id: DecisionId, function: &str, verdict: Verdict) -> Command {
    Command::RecordSignOff {
        decision_id,
        function: func(function),
        verdict,
        reason: if verdict == Verdict::Reject { "too expensive".into() } else { String::new() },
        comment: String::new(),
        revision: None,
    }
}

fn comment(function: &str) -> Command {
    Command::RecordFeedback {
        feedback_id: FeedbackId::new_v7(),
        decision_id: None,
        function: func(function),
        kind: FeedbackKind::Comment,
        source: FeedbackSource::Internal,
        body: "a comment".into(),
    }
}

/// Checks versions 1..=n and every hash of a whole stream, recomputed from what was
/// read back; returns the head hash.
#[track_caller]
fn verify_chain(events: &[StoredEvent]) -> Vec<u8> {
    let mut prev = ZERO_HASH.to_vec();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.stream_version, i as i64 + 1, "contiguous versions");
        assert_eq!(event.prev_hash, prev, "prev_hash of version {}", event.stream_version);
        let hash = event_hash(&event.prev_hash, &event.content());
        assert_eq!(event.hash, hash.to_vec(), "hash of version {}", event.stream_version);
        prev = event.hash.clone();
    }
    prev
}

async fn stream_of(store: &SqliteStore, target: &InitiativeRef) -> Vec<StoredEvent> {
    let state = state_of(store, target).await.expect("initiative exists");
    store.read_stream(state.id.0, 1, 10_000).await.expect("read stream")
}

async fn pragma(store: &SqliteStore, name: &str) -> String {
    let row = sqlx::query(&format!("PRAGMA {name}")).fetch_one(store.pool()).await.expect("pragma");
    row.try_get::<String, _>(0).or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string())).expect("value")
}

#[tokio::test]
async fn open_creates_the_folder_and_the_file_and_opening_again_keeps_everything() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("nested").join("deeper").join("accord.db");
    let store = SqliteStore::open(&path).await.expect("open creates folder and file");
    assert!(path.is_file(), "the database file exists");
    assert_eq!(pragma(&store, "journal_mode").await, "wal");
    assert_eq!(pragma(&store, "synchronous").await, "2", "FULL");
    assert_eq!(pragma(&store, "foreign_keys").await, "1");
    assert_eq!(pragma(&store, "busy_timeout").await, "5000");
    let outcome = app_on(&store).execute(envelope(OWNER, None, create("CHECKOUT-42"))).await.expect("create");
    store.pool().close().await;

    let again = SqliteStore::open(&path).await.expect("open is idempotent");
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(again.pool())
        .await
        .expect("migrations table");
    assert_eq!(migrations, MIGRATOR.iter().count() as i64, "migrations are applied once");
    let view = again.alignment(&key("CHECKOUT-42")).await.expect("query").expect("kept");
    assert_eq!((view.initiative_id, view.version), (outcome.initiative_id, 1));
}

#[tokio::test]
async fn open_refuses_a_file_that_is_not_an_sqlite_database_and_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("accord.db");
    let garbage = "this is a shopping list, not a database\n".repeat(200);
    std::fs::write(&path, &garbage).expect("write garbage");
    match SqliteStore::open(&path).await {
        Err(StoreError::Corrupt(reason)) => {
            assert!(reason.contains(&path.display().to_string()), "names the file: {reason}");
            assert!(reason.contains("not an SQLite database"), "says what is wrong: {reason}");
        }
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&path).expect("read back"), garbage, "the file is untouched");
}

#[tokio::test]
async fn open_reports_a_location_it_cannot_create_or_write() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").expect("write file");

    // The folder cannot be created: a path component is a file.
    match SqliteStore::open(&file.join("sub").join("accord.db")).await {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("cannot create the folder"), "{reason}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    // The path is a folder, not a file.
    match SqliteStore::open(dir.path()).await {
        Err(StoreError::Unavailable(reason)) => {
            assert!(reason.contains("cannot open the SQLite database"), "{reason}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    // A read-only location: /proc refuses new files even to root.
    #[cfg(target_os = "linux")]
    match SqliteStore::open(Path::new("/proc/self/accord-test.db")).await {
        Err(StoreError::Unavailable(reason)) => {
            assert!(reason.contains("cannot open the SQLite database"), "{reason}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    // A folder without write permission (only meaningful when permissions apply to us).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("read-only");
        std::fs::create_dir(&locked).expect("create folder");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        if std::fs::write(locked.join("probe"), "x").is_err() {
            match SqliteStore::open(&locked.join("accord.db")).await {
                Err(StoreError::Unavailable(reason)) => {
                    assert!(reason.contains("cannot open the SQLite database"), "{reason}")
                }
                other => panic!("expected unavailable, got {other:?}"),
            }
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
    }
}

#[tokio::test]
async fn the_database_refuses_update_and_delete_of_the_log() {
    let fx = Fixture::new().await;
    fx.team("CHECKOUT-42").await;
    let before = fx.count("events").await;
    for sql in [
        "UPDATE events SET actor = 'mallory@example.com' WHERE stream_version = 1",
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events WHERE stream_version = 2",
        "DELETE FROM events",
    ] {
        let error = sqlx::query(sql).execute(fx.store.pool()).await.expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(fx.count("events").await, before, "nothing changed");
    verify_chain(&stream_of(&fx.store, &key("CHECKOUT-42")).await);
}

#[tokio::test]
async fn a_command_cycle_appends_a_verifiable_hash_chain_and_maintains_head_and_projection() {
    let fx = Fixture::new().await;
    let created = fx.run(OWNER, None, create("CHECKOUT-42")).await;
    assert_eq!((created.stream_version, created.replayed), (1, false));
    assert_eq!(created.created_id, Some(created.initiative_id.0));
    let target = InitiativeRef::Id(created.initiative_id);
    fx.run(OWNER, Some(&key("CHECKOUT-42")), assign(DRIVER, "product", Role::Driver)).await;
    for (who, function) in [(ENG, "engineering"), (DES, "design"), (BIZ, "business")] {
        fx.run(DRIVER, Some(&target), assign(who, function, Role::Approver)).await;
    }
    let decision = DecisionId::new_v7();
    let proposed = fx.run(DRIVER, Some(&target), propose(decision)).await;
    assert_eq!((proposed.stream_version, proposed.created_id), (6, Some(decision.0)));
    let signed = fx.run(ENG, Some(&target), sign(decision, "engineering", Verdict::Approve)).await;
    assert_eq!(signed.stream_version, 7);

    let events = stream_of(&fx.store, &target).await;
    assert_eq!(events.len(), 7);
    let head_hash = verify_chain(&events);
    let last = events.last().expect("events");
    assert_eq!(last.position as u64, signed.global_position);
    assert_eq!(last.event_type, "SignOffRecorded");
    assert_eq!((last.actor.as_str(), last.schema_version), (ENG, SCHEMA_VERSION));
    assert!(last.correlation_id.starts_with("corr-") && last.causation_id.starts_with("cause-"));
    assert!(events.windows(2).all(|w| w[0].position < w[1].position && w[0].recorded_at <= w[1].recorded_at));
    let tail = fx.store.read_stream(created.initiative_id.0, 6, 1).await.expect("read from version");
    assert_eq!(tail.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![6]);

    let (version, stored_head, last_position): (i64, Vec<u8>, i64) =
        sqlx::query_as("SELECT version, head_hash, last_position FROM streams WHERE key = 'CHECKOUT-42'")
            .fetch_one(fx.store.pool())
            .await
            .expect("head");
    assert_eq!((version, stored_head, last_position), (7, head_hash, last.position));

    let state = state_of(&fx.store, &key("CHECKOUT-42")).await.expect("state");
    assert_eq!((state.id, state.version, state.last_activity), (created.initiative_id, 7, last.recorded_at));
    let view = fx.store.alignment(&target).await.expect("query").expect("view");
    assert_eq!((view.version, view.status.as_str(), view.approved_pairs, view.total_pairs), (7, "pending", 1, 3));
    assert_eq!(view.outstanding_functions(), vec!["business".to_owned(), "design".to_owned()]);
    let waiting: Vec<_> = fx.store.awaiting(&who(DES)).await.expect("inbox").into_iter().map(|v| v.key).collect();
    assert_eq!(waiting, vec![state.key.clone()]);
    assert!(fx.store.awaiting(&who(ENG)).await.expect("inbox").is_empty(), "engineering has signed");

    let history = fx.store.sign_off_events(created.initiative_id, decision).await.expect("sign-offs");
    assert_eq!(history.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![7]);
    assert!(fx.store.sign_off_events(created.initiative_id, DecisionId::new_v7()).await.expect("none").is_empty());
}

#[tokio::test]
async fn a_repeated_command_id_replays_and_a_reused_one_is_refused() {
    let fx = Fixture::new().await;
    let create = envelope(OWNER, None, create("CHECKOUT-42"));
    let first = fx.app.execute(create.clone()).await.expect("create");
    assert_eq!(first.events_appended, 1, "a creation appends its one event");
    let again = fx.app.execute(create.clone()).await.expect("replay");
    assert_eq!(again, CommandOutcome { replayed: true, events_appended: 0, ..first.clone() });
    let target = InitiativeRef::Id(first.initiative_id);

    let assign_driver = envelope(OWNER, Some(&target), assign(DRIVER, "product", Role::Driver));
    let assigned = fx.app.execute(assign_driver.clone()).await.expect("assign");
    assert_eq!(assigned.events_appended, 1);
    // The same request again, even naming the initiative by key, replays.
    let by_key = CommandEnvelope { target: Some(key("CHECKOUT-42")), ..assign_driver.clone() };
    assert_eq!(
        fx.app.execute(by_key.clone()).await.expect("replay"),
        CommandOutcome { replayed: true, events_appended: 0, ..assigned }
    );
    assert_eq!(fx.count("events").await, 2, "replays append nothing");
    assert_eq!(fx.count("commands").await, 2);

    let refused = |error: StoreError| match error {
        StoreError::Domain(DomainError::InvalidArgument { field, message }) => {
            assert_eq!(field, "options.command_id");
            assert!(message.contains("already used for a different command"), "{message}");
        }
        other => panic!("expected invalid argument, got {other:?}"),
    };
    // The same id for a different request, on the same stream and as a create.
    let mut different = envelope(OWNER, Some(&target), assign(ENG, "engineering", Role::Approver));
    different.command_id = assign_driver.command_id.clone();
    refused(fx.refuse(&different).await);
    let mut other_create = envelope(OWNER, None, self::create("OTHER-1"));
    other_create.command_id = assign_driver.command_id.clone();
    refused(fx.refuse(&other_create).await);
    // The same id and request on another initiative.
    let other = InitiativeRef::Id(fx.run(OWNER, None, self::create("OTHER-2")).await.initiative_id);
    let elsewhere = CommandEnvelope { target: Some(other), ..assign_driver.clone() };
    refused(fx.refuse(&elsewhere).await);
    assert_eq!(fx.count("events").await, 3, "refusals append nothing");
}

#[tokio::test]
async fn an_expected_version_conflict_fails_and_writes_nothing() {
    let fx = Fixture::new().await;
    let target = fx.team("CHECKOUT-42").await;
    let (events, commands) = (fx.count("events").await, fx.count("commands").await);
    let mut stale = envelope(DRIVER, Some(&target), propose(DecisionId::new_v7()));
    stale.expected_version = Some(3);
    match fx.refuse(&stale).await {
        StoreError::Domain(DomainError::VersionConflict { expected: 3, actual: 5 }) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!((fx.count("events").await, fx.count("commands").await), (events, commands));
    let view = fx.store.alignment(&target).await.expect("query").expect("view");
    assert_eq!(view.version, 5);
    // The right version goes through, and the refused command id was not recorded.
    stale.expected_version = Some(5);
    assert_eq!(fx.app.execute(stale.clone()).await.expect("current version").stream_version, 6);
}

#[tokio::test]
async fn an_unknown_initiative_is_not_found_and_a_taken_key_already_exists() {
    let fx = Fixture::new().await;
    fx.run(OWNER, None, create("CHECKOUT-42")).await;
    let missing = InitiativeRef::Id(InitiativeId::new_v7());
    match fx.refuse(&envelope(OWNER, Some(&missing), comment("product"))).await {
        StoreError::Domain(DomainError::NotFound(message)) => {
            assert_eq!(message, format!("initiative {missing} not found"))
        }
        other => panic!("expected not found, got {other:?}"),
    }
    match fx.refuse(&envelope(OWNER, None, create("CHECKOUT-42"))).await {
        StoreError::Domain(DomainError::AlreadyExists(message)) => {
            assert_eq!(message, "an initiative with key CHECKOUT-42 exists already")
        }
        other => panic!("expected already exists, got {other:?}"),
    }
    assert_eq!((fx.count("events").await, fx.count("streams").await, fx.count("alignment").await), (1, 1, 1));
    assert!(state_of(&fx.store, &missing).await.is_none());
    assert!(fx.store.alignment(&key("NOPE-1")).await.expect("query").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_elsewhere_is_waited_for_and_a_busy_error_is_unavailable_not_locked() {
    use sqlx::{ConnectOptions, Connection};
    let fx = Fixture::new().await;
    let impatient = SqliteConnectOptions::new().filename(fx.path()).busy_timeout(Duration::ZERO);
    let mut holder = impatient.connect().await.expect("connect");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("take the write lock");

    // What SQLite reports to a writer that does not wait is mapped, not passed on.
    let mut other = impatient.connect().await.expect("connect");
    let busy = sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.expect_err("busy");
    match map_sqlx(busy) {
        StoreError::Unavailable(reason) => assert!(!reason.contains("locked"), "{reason}"),
        other => panic!("expected unavailable, got {other:?}"),
    }

    // The store's writer waits (busy timeout) for the other process to let go.
    let app = fx.app.clone();
    let pending = tokio::spawn(async move { app.execute(envelope(OWNER, None, create("CHECKOUT-42"))).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "the command waits for the write lock");
    sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release the write lock");
    let outcome = pending.await.expect("task").expect("the command commits once the lock is free");
    assert_eq!(outcome.stream_version, 1);
    holder.close().await.expect("close");
    other.close().await.expect("close");
}

/// Runs `commands` concurrently, each in its own task; every one must succeed.
async fn concurrently(app: &App, commands: Vec<CommandEnvelope>) -> Vec<CommandOutcome> {
    let tasks: Vec<_> = commands
        .into_iter()
        .map(|envelope| {
            let app = app.clone();
            tokio::spawn(async move { app.execute(envelope).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        match task.await.expect("task finished") {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => panic!("a concurrent command failed: {error:?}"),
        }
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_commands_on_one_initiative_all_commit_in_contiguous_versions() {
    let fx = Fixture::new().await;
    let target = InitiativeRef::Id(fx.run(OWNER, None, create("CHECKOUT-42")).await.initiative_id);
    let commands = (0..32)
        .map(|i| envelope(OWNER, Some(&target), assign(&format!("p{i}@example.com"), "engineering", Role::Contributor)))
        .collect();
    let outcomes = concurrently(&fx.app, commands).await;
    let versions: BTreeSet<u64> = outcomes.iter().map(|o| o.stream_version).collect();
    assert_eq!(versions, (2..=33).collect(), "one version each, no gaps");
    let positions: BTreeSet<u64> = outcomes.iter().map(|o| o.global_position).collect();
    assert_eq!(positions.len(), 32);
    let events = stream_of(&fx.store, &target).await;
    assert_eq!(events.len(), 33);
    verify_chain(&events);
    let state = state_of(&fx.store, &target).await.expect("state");
    assert_eq!((state.version, state.stakeholders.len()), (33, 32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_commands_on_different_initiatives_all_commit() {
    let fx = Fixture::new().await;
    let commands = (0..32).map(|i| envelope(OWNER, None, create(&format!("INIT-{i}")))).collect();
    let created = concurrently(&fx.app, commands).await;
    let follow_ups = created
        .iter()
        .map(|o| envelope(OWNER, Some(&InitiativeRef::Id(o.initiative_id)), assign(DRIVER, "product", Role::Driver)))
        .collect();
    let assigned = concurrently(&fx.app, follow_ups).await;
    assert!(created.iter().all(|o| o.stream_version == 1) && assigned.iter().all(|o| o.stream_version == 2));
    let positions: BTreeSet<u64> = created.iter().chain(&assigned).map(|o| o.global_position).collect();
    assert_eq!(positions, (1..=64).collect(), "every event has its own position, none skipped");
    for outcome in &created {
        verify_chain(&stream_of(&fx.store, &InitiativeRef::Id(outcome.initiative_id)).await);
    }
    assert_eq!(fx.count("alignment").await, 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_wait_for_each_other_instead_of_failing() {
    // Two stores on one file have separate writer locks, like two processes: only
    // BEGIN IMMEDIATE and the busy timeout keep them apart.
    let fx = Fixture::new().await;
    let other = SqliteStore::open(&fx.path()).await.expect("second store");
    let other_app = app_on(&other);
    let target = InitiativeRef::Id(fx.run(OWNER, None, create("CHECKOUT-42")).await.initiative_id);
    let commands: Vec<_> = (0..32)
        .map(|i| envelope(OWNER, Some(&target), assign(&format!("p{i}@example.com"), "design", Role::Informed)))
        .collect();
    let mut handles = Vec::new();
    for (i, envelope) in commands.into_iter().enumerate() {
        let app = if i % 2 == 0 { fx.app.clone() } else { other_app.clone() };
        handles.push(tokio::spawn(async move { app.execute(envelope).await }));
    }
    let mut versions = BTreeSet::new();
    for handle in handles {
        versions.insert(handle.await.expect("task").expect("command succeeds").stream_version);
    }
    assert_eq!(versions, (2..=33).collect());
    verify_chain(&stream_of(&other, &target).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_all_returns_every_event_once_in_order_across_pages_while_writers_append() {
    let fx = Fixture::new().await;
    fx.team("CHECKOUT-42").await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let app = fx.app.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    app.execute(envelope(OWNER, None, create(&format!("W{w}-{i}")))).await.expect("create");
                }
            })
        })
        .collect();
    // Tail the log while the writers run, then read the rest.
    let mut cursor = GlobalCursor::default();
    let mut seen = Vec::new();
    loop {
        let finished = writers.iter().all(|w| w.is_finished());
        let page = fx.store.read_all(cursor, 7).await.expect("read page");
        assert!(page.len() <= 7);
        if let Some((last, _)) = page.last() {
            cursor = *last;
        } else if finished {
            break;
        } else {
            tokio::task::yield_now().await;
        }
        seen.extend(page);
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    seen.extend(fx.store.read_all(cursor, 1000).await.expect("rest"));
    let positions: Vec<i64> = seen.iter().map(|(_, e)| e.position).collect();
    let all: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(fx.store.pool())
        .await
        .expect("positions");
    assert_eq!(all.len(), 5 + 40);
    assert_eq!(positions, all, "every event, once, in position order");
    assert!(seen.iter().all(|(c, e)| *c == GlobalCursor { tx_id: 0, position: e.position }));
    assert!(fx.store.read_all(cursor, 100).await.expect("past the end").is_empty());
    // Every event read back verifies against its stream's chain.
    let mut by_stream: BTreeMap<Uuid, Vec<StoredEvent>> = BTreeMap::new();
    for (_, event) in seen {
        by_stream.entry(event.stream_id).or_default().push(event);
    }
    for events in by_stream.values() {
        verify_chain(events);
    }
}

/// Everything a rebuild derives: heads (with the state they fold to: a live head's
/// snapshot lags it by design, a rebuilt one's does not) and alignment rows.
async fn projections(store: &SqliteStore) -> Vec<(String, i64, Vec<u8>, i64, String, String)> {
    let rows: Vec<(String, i64, Vec<u8>, i64, String)> = sqlx::query_as(
        "SELECT s.key, s.version, s.head_hash, s.last_position,
                json_array(a.key, a.title, a.owner, a.stage, a.status, a.archived, json(a.outstanding_functions),
                           json(a.awaiting), a.score, a.last_activity, a.version, json(a.view), s.updated_at)
           FROM streams s JOIN alignment a ON a.initiative_id = s.stream_id
          ORDER BY s.key",
    )
    .fetch_all(store.pool())
    .await
    .expect("projections");
    let mut out = Vec::new();
    for (key, version, hash, position, row) in rows {
        let target = InitiativeRef::Key(InitiativeKey::parse("key", &key).expect("key"));
        let state = state_of(store, &target).await.expect("state");
        out.push((key, version, hash, position, serde_json::to_string(&state).expect("encode"), row));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_gives_exactly_the_live_projection_even_while_commands_run() {
    let fx = Fixture::new().await;
    for name in ["CHECKOUT-42", "SEARCH-7", "ONBOARD-1"] {
        let target = fx.team(name).await;
        let decision = DecisionId::new_v7();
        fx.run(DRIVER, Some(&target), propose(decision)).await;
        fx.run(ENG, Some(&target), sign(decision, "engineering", Verdict::Approve)).await;
        fx.run(BIZ, Some(&target), sign(decision, "business", Verdict::Reject)).await;
    }
    fx.run(OWNER, Some(&key("ONBOARD-1")), Command::ArchiveInitiative { reason: "done".into() }).await;
    let live = projections(&fx.store).await;
    assert_eq!(live.len(), 3);

    // Damage the projection (it is not part of the log), then rebuild.
    sqlx::query("UPDATE alignment SET status = 'aligned', awaiting = '[]', view = '{}'")
        .execute(fx.store.pool())
        .await
        .expect("damage alignment");
    sqlx::query("DELETE FROM streams WHERE key = 'SEARCH-7'").execute(fx.store.pool()).await.expect("drop a head");
    assert_eq!(fx.shared().rebuild_projections().await.expect("rebuild"), 3);
    assert_eq!(projections(&fx.store).await, live, "rebuilt equals live");

    // A rebuild does not stop the service: commands go on while it runs.
    let target = key("CHECKOUT-42");
    let commands: Vec<_> = (0..16)
        .map(|i| envelope(OWNER, Some(&target), assign(&format!("p{i}@example.com"), "design", Role::Informed)))
        .collect();
    let rebuild = {
        let store = fx.shared();
        tokio::spawn(async move { store.rebuild_projections().await })
    };
    let outcomes = concurrently(&fx.app, commands).await;
    assert_eq!(rebuild.await.expect("task").expect("rebuild"), 3);
    assert_eq!(outcomes.iter().map(|o| o.stream_version).collect::<BTreeSet<_>>(), (9..=24).collect());
    let live = projections(&fx.store).await;
    fx.shared().rebuild_projections().await.expect("rebuild again");
    assert_eq!(projections(&fx.store).await, live, "rebuilt equals live after concurrent commands");
}

#[tokio::test]
async fn list_filters_orders_and_pages_like_postgres() {
    let fx = Fixture::new().await;
    fx.run(OWNER, None, create_as("ALPHA-1", "Payments 100% faster", None, None)).await;
    fx.run(OWNER, None, create_as("BETA-2", "Under_score search", Some(BIZ), Some(Stage::Delivery))).await;
    let gamma =
        InitiativeRef::Id(fx.run(OWNER, None, create_as("GAMMA-3", "Old payments", None, None)).await.initiative_id);
    fx.run(OWNER, Some(&gamma), Command::ArchiveInitiative { reason: "done".into() }).await;
    let delta = fx.team("DELTA-4").await;
    fx.run(DRIVER, Some(&delta), propose(DecisionId::new_v7())).await;

    let keys = |views: Vec<AlignmentView>| views.into_iter().map(|v| v.key.as_str().to_owned()).collect::<Vec<_>>();
    let list = |filter: ListFilter, after: Option<&'static str>, limit: i64| {
        let store = fx.store.clone();
        async move { keys(store.list(&filter, after, limit).await.expect("list")) }
    };
    let text = |t: &str| ListFilter { text: Some(t.into()), ..ListFilter::default() };

    assert_eq!(list(ListFilter::default(), None, 50).await, ["ALPHA-1", "BETA-2", "DELTA-4"]);
    let archived_too = ListFilter { include_archived: true, ..ListFilter::default() };
    assert_eq!(list(archived_too.clone(), None, 50).await, ["ALPHA-1", "BETA-2", "DELTA-4", "GAMMA-3"]);
    assert_eq!(list(archived_too.clone(), Some("ALPHA-1"), 2).await, ["BETA-2", "DELTA-4"]);
    assert_eq!(list(archived_too, Some("DELTA-4"), 2).await, ["GAMMA-3"]);
    let pending = ListFilter { status: Some("pending".into()), ..ListFilter::default() };
    assert_eq!(list(pending, None, 50).await, ["DELTA-4"]);
    let waiting_on_design = ListFilter { pending_function: Some("design".into()), ..ListFilter::default() };
    assert_eq!(list(waiting_on_design, None, 50).await, ["DELTA-4"]);
    let waiting_on_legal = ListFilter { pending_function: Some("legal".into()), ..ListFilter::default() };
    assert!(list(waiting_on_legal, None, 50).await.is_empty());
    let delivery = ListFilter { stage: Some("delivery".into()), ..ListFilter::default() };
    assert_eq!(list(delivery, None, 50).await, ["BETA-2"]);
    let owned = ListFilter { owner: Some(BIZ.into()), ..ListFilter::default() };
    assert_eq!(list(owned, None, 50).await, ["BETA-2"]);
    // Text matches key or title, ignoring (ASCII) case; %, _ and \ are literal.
    assert_eq!(list(text("alpha"), None, 50).await, ["ALPHA-1"]);
    assert_eq!(list(text("PAYMENTS"), None, 50).await, ["ALPHA-1"]);
    assert_eq!(list(text("%"), None, 50).await, ["ALPHA-1"]);
    assert_eq!(list(text("_"), None, 50).await, ["BETA-2"]);
    assert!(list(text("\\"), None, 50).await.is_empty());
    assert!(list(text("a%f"), None, 50).await.is_empty());
    let archived_text = ListFilter { include_archived: true, ..text("payments") };
    assert_eq!(list(archived_text, None, 50).await, ["ALPHA-1", "GAMMA-3"]);

    assert_eq!(keys(fx.store.awaiting(&who(DES)).await.expect("inbox")), ["DELTA-4"]);
    assert!(fx.store.awaiting(&who(OWNER)).await.expect("inbox").is_empty());
}
