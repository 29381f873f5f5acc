//! Audit benchmark: how fast the store verifies, exports, imports and replays as-of,
//! next to the ceiling of reading the same rows out of PostgreSQL with COPY.
//!
//!   cargo bench --bench audit -- [--events 1000000] [--per-initiative 10000]
//!       [--database-url postgres://postgres@127.0.0.1:5432/accord_audit_bench]
//!       [--only feed|as-of|reads|verify|export|rebuild] [--reuse]
//!
//! It builds `--events` events as initiatives of `--per-initiative` events each — created,
//! an approver assigned, a decision proposed, then sign-offs recorded and revoked in turn,
//! each event decided and folded by the domain and hash-chained exactly as an append does
//! — written round-robin across the initiatives (so streams interleave in the log as in
//! real life) to a JSON Lines file, and loads it into a fresh PostgreSQL database (dropped
//! and created again) with the store's `import`. Then it measures, on that database:
//! - `verify` of the whole log (events/s);
//! - `COPY (SELECT … FROM events ORDER BY position) TO STDOUT` of the same rows (the
//!   ceiling for reading them at all);
//! - the past snapshots' first refresh (every 500 versions), then as-of on one initiative
//!   by version and by time through `Store::state_until` (nearest snapshot + tail) with
//!   its median and p99, beside the whole-prefix fold (`read_stream_until` + `fold`);
//! - export: `read_all_after_position` pages → `ExportLine` JSON → a file;
//! - the live feed's start: from `Feed::start` to a new watcher's complete snapshot.
//!
//! Then it imports that export into a fresh SQLite file and a fresh PostgreSQL database
//! (`<name>_import`), verifying the SQLite copy too.
//!
//! `--only feed` stops after the live feed's start on PostgreSQL (three starts, each
//! printed): run it at two log sizes with the same number of initiatives to see whether
//! the start grows with the log. `--only as-of` stops after the as-of figures: run it at
//! 1,000, 10,000 and 100,000 events per initiative to see whether as-of does.
//! `--only reads` measures the whole-log reads side by side and stops: verify, COPY,
//! export and a rebuild of every projection (`--only verify`, `export` or `rebuild`: that
//! one beside COPY). `--reuse` skips generating and importing
//! when the database already holds a log (from an earlier run of the same sizes).

/// The allocator the `accord` binary runs with, so that figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use accord::domain::event::{DecisionContent, SCHEMA_VERSION};
use accord::domain::values::{DecisionId, Function, InitiativeId, InitiativeKey, Principal, Role, Verdict};
use accord::domain::{Command, Initiative, Recorded, decide, evolve, fold, project};
use accord::live::{Feed, WatchFilter, WatchItem};
use accord::store::{ExportLine, GlobalCursor, Store, StoreError, StoredEvent, Until, ZERO_HASH, event_hash};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolCopyExt;
use sqlx::{Postgres, migrate::MigrateDatabase};
use tokio_stream::StreamExt;
use uuid::Uuid;

struct Args {
    events: u64,
    per_initiative: u64,
    database_url: String,
    only: Option<String>,
    reuse: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        events: 1_000_000,
        per_initiative: 10_000,
        database_url: "postgres://postgres@127.0.0.1:5432/accord_audit_bench".into(),
        only: None,
        reuse: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let value = it.next().ok_or(format!("{name} needs a value"))?;
            value.replace(['_', ','], "").parse().map_err(|_| format!("bad {name} {value}"))
        };
        match arg.as_str() {
            "--events" => args.events = number("--events")?,
            "--per-initiative" => args.per_initiative = number("--per-initiative")?,
            "--database-url" => args.database_url = it.next().ok_or("--database-url needs a value")?,
            "--only" => args.only = Some(it.next().ok_or("--only needs feed, as-of or reads")?),
            "--reuse" => args.reuse = true,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.per_initiative < 4 || args.events == 0 {
        return Err("--per-initiative must be at least 4 and --events at least 1".into());
    }
    Ok(args)
}

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let generated = dir.path().join("generated.jsonl");
    let exported = dir.path().join("exported.jsonl");

    let reused = if args.reuse { reuse_postgres(&args.database_url).await? } else { None };
    let (postgres, events, big) = match reused {
        Some((store, events, big)) => {
            println!("reusing the log of {events} events in {}", args.database_url);
            (store, events, big)
        }
        None => {
            let started = Instant::now();
            let (events, initiatives, big) = generate(&generated, args.events, args.per_initiative)?;
            let bytes = std::fs::metadata(&generated)?.len();
            report("generate (decide + fold + hash + JSON)", events, started.elapsed());
            println!(
                "  {events} events in {initiatives} initiatives, {:.0} bytes/line, {:.0} MB",
                bytes as f64 / events as f64,
                bytes as f64 / 1e6
            );
            let postgres = fresh_postgres(&args.database_url).await?;
            let started = Instant::now();
            let loaded = postgres.import(lines(&generated)?).await?;
            report("import into a fresh PostgreSQL", loaded.events, started.elapsed());
            (postgres, events, big)
        }
    };
    match args.only.as_deref() {
        Some("feed") => {
            for _ in 0..3 {
                feed_start(&postgres, "PostgreSQL").await?;
            }
            return Ok(());
        }
        Some("as-of") => return as_of(&postgres, big, args.per_initiative).await,
        Some("reads") => return whole_log_reads(&postgres, &exported, events, None).await,
        Some(read @ ("verify" | "export" | "rebuild")) => {
            return whole_log_reads(&postgres, &exported, events, Some(read)).await;
        }
        Some(other) => return Err(format!("--only {other}: feed, as-of or reads").into()),
        None => {}
    }

    let started = Instant::now();
    let verified = postgres.verify(None, None).await?;
    assert!(verified.ok(), "the generated log verifies: {verified:?}");
    report("verify the whole log (PostgreSQL)", verified.events_checked, started.elapsed());

    checkpoint_and_verify(&postgres, "PostgreSQL").await?;
    feed_start(&postgres, "PostgreSQL").await?;

    let (rows, copied, elapsed) = copy_out(&postgres).await?;
    report("COPY … ORDER BY position TO STDOUT (ceiling)", rows, elapsed);
    println!("  {:.0} MB/s of COPY text", copied as f64 / 1e6 / elapsed.as_secs_f64());

    as_of(&postgres, big, args.per_initiative).await?;

    let started = Instant::now();
    let written = export(&postgres, &exported, events).await?;
    report("export (read_all_after_position → ExportLine JSON → file)", written, started.elapsed());

    let sqlite_path = dir.path().join("import.db");
    let sqlite = Store::open(&format!("sqlite://{}", sqlite_path.display()), 8).await?;
    let started = Instant::now();
    let imported = sqlite.import(lines(&exported)?).await?;
    report("import the export into a fresh SQLite", imported.events, started.elapsed());
    let started = Instant::now();
    let verified = sqlite.verify(None, None).await?;
    assert!(verified.ok(), "the SQLite copy verifies: {verified:?}");
    report("verify the whole log (SQLite)", verified.events_checked, started.elapsed());
    checkpoint_and_verify(&sqlite, "SQLite").await?;
    feed_start(&sqlite, "SQLite").await?;

    let second = fresh_postgres(&format!("{}_import", args.database_url)).await?;
    let started = Instant::now();
    let imported = second.import(lines(&exported)?).await?;
    report("import the export into a fresh PostgreSQL", imported.events, started.elapsed());
    Ok(())
}

/// A signed checkpoint of the whole log (the first folds every event), the next one
/// (folds nothing new), then a verification that also recomputes the log tree.
async fn checkpoint_and_verify(store: &Store, name: &str) -> Result<(), Failure> {
    let (private, _) = accord::store::note::generate_key("accord.example/bench").map_err(StoreError::Corrupt)?;
    let key = accord::store::CheckpointSigner::parse(&private).map_err(StoreError::Corrupt)?;
    let started = Instant::now();
    let first = store.create_checkpoint(Some(&key)).await?;
    report(&format!("first signed checkpoint, folds the whole log ({name})"), first.events, started.elapsed());
    let started = Instant::now();
    let next = store.create_checkpoint(Some(&key)).await?;
    println!(
        "{:<58} {:>8.3} s",
        format!("next checkpoint, nothing new to fold ({name})"),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(next.root, first.root);
    let started = Instant::now();
    let verified = store.verify(None, Some(key.verifier())).await?;
    assert!(verified.ok(), "the log verifies against its checkpoints: {verified:?}");
    report(
        &format!("verify with checkpoints: chains, witnesses, log tree ({name})"),
        verified.events_checked,
        started.elapsed(),
    );
    Ok(())
}

fn report(what: &str, events: u64, elapsed: Duration) {
    let rate = events as f64 / elapsed.as_secs_f64();
    println!("{what:<58} {events:>9} events {:>8.2} s {rate:>10.0} events/s", elapsed.as_secs_f64());
}

/// The store of an earlier run's database, when it holds a log: the number of events
/// and the first initiative (the stream of the lowest position).
async fn reuse_postgres(url: &str) -> Result<Option<(Store, u64, Uuid)>, Failure> {
    if !Postgres::database_exists(url).await? {
        return Ok(None);
    }
    let store = Store::open(url, 8).await?;
    let Some(pg) = store.postgres() else { return Ok(None) };
    let (events, first): (i64, Option<Uuid>) =
        sqlx::query_as("SELECT count(*), (SELECT stream_id FROM events ORDER BY position LIMIT 1) FROM events")
            .fetch_one(pg.pool())
            .await?;
    Ok(first.map(|first| (store, u64::try_from(events).unwrap_or_default(), first)))
}

/// The whole-log reads one after the other, each beside the COPY ceiling read just
/// before it: verify, export, and a rebuild of every projection.
async fn whole_log_reads(store: &Store, exported: &Path, events: u64, only: Option<&str>) -> Result<(), Failure> {
    let runs = |read: &str| only.is_none_or(|only| only == read);
    let rate = |count: u64, elapsed: Duration| count as f64 / elapsed.as_secs_f64();
    let (rows, _, elapsed) = copy_out(store).await?;
    report("COPY … ORDER BY position TO STDOUT (ceiling)", rows, elapsed);
    let mut copy = rate(rows, elapsed);
    let mut rates = Vec::new();
    if runs("verify") {
        let started = Instant::now();
        let verified = store.verify(None, None).await?;
        assert!(verified.ok(), "the log verifies: {verified:?}");
        let elapsed = started.elapsed();
        report("verify the whole log (PostgreSQL)", verified.events_checked, elapsed);
        rates.push(("verify", rate(verified.events_checked, elapsed)));
    }
    if runs("export") {
        let started = Instant::now();
        let written = export(store, exported, events).await?;
        let elapsed = started.elapsed();
        report("export (read_all_after_position → ExportLine JSON → file)", written, elapsed);
        rates.push(("export", rate(written, elapsed)));
    }
    if runs("rebuild") {
        let started = Instant::now();
        let rebuilt = store.rebuild_projections().await?;
        let elapsed = started.elapsed();
        report("rebuild every projection and past snapshot", events, elapsed);
        println!("  {rebuilt} initiatives");
        rates.push(("rebuild", rate(events, elapsed)));
    }
    let (rows, _, elapsed) = copy_out(store).await?;
    report("COPY … ORDER BY position TO STDOUT (again)", rows, elapsed);
    // Against the faster of the two COPYs: the ratio errs low on a noisy machine.
    copy = copy.max(rate(rows, elapsed));
    for (read, rate) in rates {
        println!("{read}: {:.2} of COPY ({copy:.0} events/s)", rate / copy);
    }
    Ok(())
}

async fn fresh_postgres(url: &str) -> Result<Store, Failure> {
    if Postgres::database_exists(url).await? {
        Postgres::drop_database(url).await?;
    }
    Ok(Store::open(url, 8).await?)
}

/// The lines of a JSON Lines file, numbered from 1, for `Store::import`.
fn lines(path: &Path) -> Result<impl Iterator<Item = (usize, String)> + Send + 'static, Failure> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    // A read error ends the iterator early; the import then sees a shorter file.
    Ok(reader.lines().map_while(Result::ok).enumerate().map(|(i, line)| (i + 1, line)))
}

// ---- Generation ----------------------------------------------------------------------

/// One initiative being generated: its folded state and the chain so far.
struct Builder {
    id: InitiativeId,
    key: String,
    decision: DecisionId,
    state: Option<Initiative>,
    version: u64,
    prev_hash: Vec<u8>,
    commands: u64,
    target: u64,
}

const OWNER: &str = "owner@bench.example";
const APPROVER: &str = "approver@bench.example";

impl Builder {
    /// The next command of this initiative: create, assign, propose, then sign-offs
    /// recorded and revoked in turn.
    fn next_command(&self) -> Result<(Command, &'static str), Failure> {
        let engineering = Function::parse("function", "engineering")?;
        Ok(match self.commands {
            0 => (
                Command::CreateInitiative {
                    id: self.id,
                    key: InitiativeKey::parse("key", &self.key)?,
                    title: "Benchmark initiative".into(),
                    summary: "Many sign-offs.".into(),
                    owner: None,
                    stage: None,
                    required_functions: Some([engineering].into()),
                },
                OWNER,
            ),
            1 => (
                Command::AssignStakeholder {
                    principal: Principal::parse("principal", APPROVER)?,
                    function: engineering,
                    role: Role::Approver,
                },
                OWNER,
            ),
            2 => (
                Command::ProposeDecision {
                    decision_id: self.decision,
                    content: DecisionContent {
                        title: "Use Stripe for payments".into(),
                        context: "Checkout needs a payment provider.".into(),
                        options: vec!["Stripe".into(), "Adyen".into()],
                        proposal: "Integrate Stripe Checkout.".into(),
                        rationale: "Fastest to integrate; good API.".into(),
                    },
                    required_functions: None,
                    supersedes: None,
                },
                OWNER,
            ),
            n if n % 2 == 1 => (
                Command::RecordSignOff {
                    decision_id: self.decision,
                    function: engineering,
                    verdict: Verdict::Approve,
                    reason: String::new(),
                    comment: format!("Looks good (round {n})."),
                    revision: None,
                },
                APPROVER,
            ),
            _ => (Command::RevokeSignOff { decision_id: self.decision, function: engineering }, APPROVER),
        })
    }

    /// Decides and folds the next command; returns its events as export lines, numbering
    /// their positions on from `position`.
    fn step(&mut self, command_no: u64, position: &mut i64, at: DateTime<Utc>) -> Result<Vec<String>, Failure> {
        let (command, actor) = self.next_command()?;
        let actor = Principal::parse("actor", actor)?;
        let events = decide(self.state.as_ref(), &command, &actor)?;
        let command_id = format!("bench-{command_no}");
        let mut lines = Vec::with_capacity(events.len());
        for event in events {
            self.version += 1;
            *position += 1;
            let stored = StoredEvent {
                position: *position,
                stream_id: self.id.0,
                stream_version: i64::try_from(self.version)?,
                event_id: Uuid::now_v7(),
                event_type: event.event_type().to_owned(),
                schema_version: SCHEMA_VERSION,
                payload: event.payload(),
                actor: actor.as_str().to_owned(),
                command_id: command_id.clone(),
                correlation_id: command_id.clone(),
                causation_id: command_id.clone(),
                recorded_at: at,
                prev_hash: self.prev_hash.clone(),
                hash: Vec::new(),
            };
            let hash = event_hash(&self.prev_hash, &stored.content()).to_vec();
            let stored = StoredEvent { hash: hash.clone(), ..stored };
            self.prev_hash = hash;
            let recorded = Recorded { version: self.version, actor: actor.clone(), recorded_at: at, event };
            self.state = Some(evolve(self.state.take(), &recorded).map_err(|e| e.message)?);
            lines.push(ExportLine::from(&stored).to_json()?);
        }
        self.commands += 1;
        Ok(lines)
    }
}

/// Writes `total` events to `path`; returns (events, initiatives, the first initiative).
fn generate(path: &Path, total: u64, per: u64) -> Result<(u64, u64, Uuid), Failure> {
    let count = total.div_ceil(per);
    let mut builders: VecDeque<Builder> = (0..count)
        .map(|i| Builder {
            id: InitiativeId(Uuid::now_v7()),
            key: format!("BENCH-{i}"),
            decision: DecisionId(Uuid::now_v7()),
            state: None,
            version: 0,
            prev_hash: ZERO_HASH.to_vec(),
            commands: 0,
            target: per.min(total - i * per),
        })
        .collect();
    let first = builders.front().map(|b| b.id.0).unwrap_or_default();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let start = DateTime::from_timestamp_micros(1_767_225_600_000_000).unwrap_or_default();
    let (mut written, mut command_no, mut position) = (0u64, 0u64, 0i64);
    // Round-robin, one command per initiative at a time, so that streams interleave.
    while let Some(mut builder) = builders.pop_front() {
        let at = start + chrono::Duration::milliseconds(i64::try_from(command_no)?);
        for line in builder.step(command_no, &mut position, at)? {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            written += 1;
        }
        command_no += 1;
        if builder.version < builder.target {
            builders.push_back(builder);
        }
    }
    out.flush()?;
    Ok((written, count, first))
}

// ---- Measurements --------------------------------------------------------------------

/// COPY of every event row, as text, in position order: rows and bytes.
async fn copy_out(store: &Store) -> Result<(u64, u64, Duration), Failure> {
    let Some(pg) = store.postgres() else { return Err("COPY needs PostgreSQL".into()) };
    let started = Instant::now();
    let mut stream = pg
        .pool()
        .copy_out_raw(
            "COPY (SELECT position, stream_id, stream_version, event_id, event_type, schema_version, payload, actor,
                          command_id, correlation_id, causation_id, recorded_at, prev_hash, hash
                     FROM events ORDER BY position) TO STDOUT",
        )
        .await?;
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((rows, bytes, started.elapsed()))
}

/// How long a process's live feed takes from its start to a new watcher's complete
/// snapshot (every initiative, then `CaughtUp`) on this log: what a deploy or a new
/// replica waits before its dashboards show anything.
async fn feed_start(store: &Store, name: &str) -> Result<(), Failure> {
    let started = Instant::now();
    let feed = Feed::start(store.clone());
    let mut watch = feed.watch(WatchFilter::default(), 0).await?;
    let mut initiatives = 0u64;
    loop {
        match watch.recv().await {
            Some(WatchItem::Alignment { .. }) => initiatives += 1,
            Some(WatchItem::CaughtUp { .. }) => break,
            Some(_) => {}
            None => return Err("the live feed stopped".into()),
        }
    }
    println!(
        "{:<58} {:>8.3} s  ({initiatives} initiatives)",
        format!("live feed: start to first snapshot ({name})"),
        started.elapsed().as_secs_f64()
    );
    feed.stop();
    Ok(())
}

/// The alignment as of the middle of one initiative, by version and by time: after the
/// first refresh of the past snapshots, through `Store::state_until` (median and p99 of
/// 50), and by folding the whole prefix as before they existed (median of 5).
async fn as_of(store: &Store, stream: Uuid, per: u64) -> Result<(), Failure> {
    let started = Instant::now();
    let refreshed = store.refresh_snapshots(accord::store::snapshots::SNAPSHOT_EVERY).await?;
    println!(
        "{:<58} {:>8.2} s  ({} snapshots of {} initiatives)",
        "past snapshots: first refresh, every 500 versions",
        started.elapsed().as_secs_f64(),
        refreshed.snapshots,
        refreshed.streams
    );
    // Not on a snapshot's version: the tail is as long as it gets, less one.
    let every = u64::try_from(accord::store::snapshots::SNAPSHOT_EVERY)?;
    let mid = (per / 2 + every - 1).min(per - 1);
    let at = store.read_stream(stream, i64::try_from(mid)?, 1).await?;
    let time = at.first().map(|e| e.recorded_at).ok_or("the initiative has no middle")?;
    for (name, until) in [("version", Until::Version(mid)), ("time", Until::Time(time))] {
        let mut runs = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let state = store.state_until(stream, until).await?.ok_or("no state")?;
            let view = project(&state);
            runs.push((started.elapsed(), view.version));
        }
        runs.sort();
        let (median, version) = runs[runs.len() / 2];
        let p99 = runs[runs.len() * 99 / 100].0;
        println!(
            "as-of by {name:<7} from a snapshot → version {version:>6}: median {:>7.2} ms, p99 {:>7.2} ms",
            median.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        let mut whole = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let events = store.read_stream_until(stream, until).await?;
            let recorded = events.iter().map(StoredEvent::to_recorded).collect::<Result<Vec<_>, StoreError>>()?;
            let view = fold(&recorded).map_err(|e| e.message)?.map(|state| project(&state));
            whole.push((started.elapsed(), events.len(), view.map(|v| v.version)));
        }
        whole.sort();
        let (median, count, folded) = whole[whole.len() / 2];
        assert_eq!(folded, Some(version), "the snapshot's as-of is the whole prefix's");
        println!(
            "as-of by {name:<7} folding the whole prefix, {count:>6} events: median {:>7.2} ms",
            median.as_secs_f64() * 1e3
        );
    }
    // Verify folds every stream that has past snapshots, to check their states.
    let started = Instant::now();
    let verified = store.verify(None, None).await?;
    assert!(verified.ok(), "the log and its past snapshots verify: {verified:?}");
    report("verify the whole log, folding it to check past snapshots", verified.events_checked, started.elapsed());
    Ok(())
}

/// The whole global log, page by page, as export lines in a file: the pages are read
/// (`read_all_after_position`, then `read_all`) by one task while the lines of the page
/// before are encoded and written by another, as the server's read and the client's
/// writing of `accord audit export` overlap.
async fn export(store: &Store, path: &Path, expected: u64) -> Result<u64, Failure> {
    const PAGE: i64 = 10_000;
    let (pages, mut received) = tokio::sync::mpsc::channel::<Vec<(GlobalCursor, StoredEvent)>>(2);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut read = 0u64;
            let mut cursor: Option<GlobalCursor> = None;
            while read < expected {
                let page = match cursor {
                    None => store.read_all_after_position(0, PAGE).await?,
                    Some(cursor) => store.read_all(cursor, PAGE).await?,
                };
                let Some((last, _)) = page.last() else { break };
                cursor = Some(*last);
                read += page.len() as u64;
                if pages.send(page).await.is_err() {
                    break;
                }
            }
            Ok::<_, StoreError>(())
        })
    };
    let path = path.to_owned();
    let writer = tokio::task::spawn_blocking(move || {
        let write = || -> Result<u64, Failure> {
            let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
            let mut written = 0u64;
            while let Some(page) = received.blocking_recv() {
                for (_, event) in &page {
                    ExportLine::write_json(event, &mut out)?;
                    out.write_all(b"\n")?;
                    written += 1;
                }
            }
            out.flush()?;
            Ok(written)
        };
        write().map_err(|e| e.to_string())
    });
    reader.await??;
    Ok(writer.await??)
}
