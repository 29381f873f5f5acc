//! The SQLite baseline for append benchmarks, as `../shared/bench/pg-baseline` is
//! PostgreSQL's: transactions per second and mean latency of a bare one-event insert, and
//! of that insert plus a projection upsert, each committed on its own, on a file opened
//! with the pragmas Accord's SQLite store uses (src/store/sqlite.rs: WAL,
//! `synchronous=FULL`, `foreign_keys=ON`, a five-second busy timeout). It is the ceiling
//! of what any SQLite write path can do on this machine; run it in the same sitting, on
//! the same file, as the signoff bench it is compared with.
//!
//!   cargo bench --bench sqlite_baseline -- [--clients 1,16] [--seconds 10]
//!       [--database-url sqlite:///tmp/accord-bench/accord.db] [--writers queue,connections]
//!
//! The event row and the projection row are those of `../shared/bench/baseline-*.sql`
//! (the same ~300-byte JSON payload). The file and its `-wal`/`-shm` are removed first
//! and at the end.
//!
//! SQLite admits one write transaction per file at a time, so concurrent clients cannot
//! add throughput, only lose it; `--writers` says how they meet. `queue`: each client's
//! transaction runs on one shared connection behind a FIFO lock, as Accord's store
//! writes. `connections`: each client has its own connection and the clients race for
//! SQLite's write lock, a loser sleeping in the busy handler. One client is the same
//! either way and runs once.

/// The allocator the `accord` binary runs with, so that figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{
    ConnectOptions, Connection, Executor, SqliteConnection,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::Mutex;

/// As `BUSY_TIMEOUT` in src/store/sqlite.rs.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE baseline_events (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  stream_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  payload TEXT NOT NULL,
  metadata TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  UNIQUE (stream_id, version)
);
CREATE TABLE baseline_projection (stream_id INTEGER PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL);
";

const INSERT_EVENT: &str = "INSERT INTO baseline_events (stream_id, version, event_type, payload, metadata, recorded_at) \
     VALUES (?1, ?2, 'SignOffRecorded', ?3, ?4, ?5)";

const UPSERT_PROJECTION: &str = "INSERT INTO baseline_projection (stream_id, version, state) VALUES (?1, 1, ?2) \
     ON CONFLICT (stream_id) DO UPDATE SET version = baseline_projection.version + 1, state = excluded.state";

const PAYLOAD: &str = r#"{"decision_id":"0192c3a4-1b2c-7d3e-8f40-123456789abc","revision":3,"function":"engineering","signer":"alice@example.com","verdict":"approve","comment":"Looks good to me, the API boundary is clear and the rollout plan covers the risks."}"#;

const METADATA: &str = r#"{"actor":"alice@example.com","correlation_id":"0192c3a4-1b2c-7d3e-8f40-123456789abd","command_id":"0192c3a4-1b2c-7d3e-8f40-123456789abe"}"#;

const PROJECTION_STATE: &str = r#"{"engineering":"approved","design":"pending","business":"pending","score":0.33}"#;

/// What one transaction writes, as pg-baseline's two scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `baseline-insert.sql`: one event, autocommitted.
    Insert,
    /// `baseline-insert-projection.sql`: the event and a projection upsert in one transaction.
    InsertProjection,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Insert => "insert",
            Kind::InsertProjection => "insert-projection",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writers {
    Queue,
    Connections,
}

impl Writers {
    fn parse(name: &str) -> Result<Writers, String> {
        match name {
            "queue" => Ok(Writers::Queue),
            "connections" => Ok(Writers::Connections),
            other => Err(format!("unknown --writers mode {other} (queue, connections)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Writers::Queue => "queue",
            Writers::Connections => "connections",
        }
    }
}

struct Args {
    clients: Vec<usize>,
    seconds: u64,
    path: PathBuf,
    writers: Vec<Writers>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        clients: vec![1, 16],
        seconds: 10,
        path: PathBuf::from("/tmp/accord-bench/accord.db"),
        writers: vec![Writers::Queue, Writers::Connections],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--clients" => {
                let value = it.next().ok_or("--clients needs a value")?;
                args.clients = value
                    .split(',')
                    .map(|c| c.parse().ok().filter(|&c| c > 0).ok_or_else(|| format!("bad client count {c}")))
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                args.seconds = it.next().ok_or("--seconds needs a value")?.parse().map_err(|_| "bad --seconds")?
            }
            "--database-url" => {
                let url = it.next().ok_or("--database-url needs a value")?;
                let path = url.strip_prefix("sqlite://").ok_or_else(|| format!("not an sqlite:// URL: {url}"))?;
                args.path = PathBuf::from(path);
            }
            "--writers" => {
                let value = it.next().ok_or("--writers needs a value")?;
                args.writers = value.split(',').map(Writers::parse).collect::<Result<_, _>>()?;
            }
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// The connection settings of Accord's SQLite store.
fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

/// xorshift64*: the random stream ids and projection rows, without a syscall per row.
struct Random(u64);

impl Random {
    fn new() -> Result<Random, String> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| e.to_string())?;
        Ok(Random(u64::from_le_bytes(seed) | 1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random (version 4) UUID, as PostgreSQL's `gen_random_uuid()`.
    fn uuid(&mut self) -> String {
        let bytes = (u128::from(self.next()) << 64 | u128::from(self.next())).to_le_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }
}

async fn transaction(connection: &mut SqliteConnection, kind: Kind, random: &mut Random) -> Result<(), sqlx::Error> {
    let stream_id = random.uuid();
    let recorded_at = chrono::Utc::now().timestamp_micros();
    let event = |version: i64| {
        sqlx::query(INSERT_EVENT).bind(stream_id).bind(version).bind(PAYLOAD).bind(METADATA).bind(recorded_at)
    };
    match kind {
        Kind::Insert => {
            let version = (random.next() % 1_000_000_000) as i64 + 1;
            event(version).execute(&mut *connection).await?;
        }
        Kind::InsertProjection => {
            let projection_row = (random.next() % 10_000) as i64 + 1;
            // As Accord's store: take the write lock before the first statement.
            connection.execute("BEGIN IMMEDIATE").await?;
            let written = async {
                event(1).execute(&mut *connection).await?;
                sqlx::query(UPSERT_PROJECTION)
                    .bind(projection_row)
                    .bind(PROJECTION_STATE)
                    .execute(&mut *connection)
                    .await
            }
            .await;
            match written {
                Ok(_) => connection.execute("COMMIT").await.map(|_| ())?,
                Err(e) => {
                    let _ = connection.execute("ROLLBACK").await;
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// One client's tally: transactions committed, time spent in them, failures and the first failure.
#[derive(Default)]
struct Tally {
    done: u64,
    busy: Duration,
    failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn count(&mut self, started: Instant, result: Result<(), sqlx::Error>) {
        self.busy += started.elapsed();
        match result {
            Ok(()) => self.done += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    fn add(&mut self, other: Tally) {
        self.done += other.done;
        self.busy += other.busy;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Transactions per second, mean latency in ms (queueing for the write lock included, as
/// pgbench's latency includes lock waits) and the failures of `clients` concurrent loops.
async fn run(
    path: &Path,
    kind: Kind,
    writers: Writers,
    clients: usize,
    seconds: u64,
) -> Result<(f64, f64, Tally), String> {
    let shared = match writers {
        Writers::Queue => Some(Arc::new(Mutex::new(options(path).connect().await.map_err(|e| e.to_string())?))),
        Writers::Connections => None,
    };
    let mut own = Vec::new();
    if shared.is_none() {
        for _ in 0..clients {
            own.push(options(path).connect().await.map_err(|e| e.to_string())?);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut random = Vec::new();
    for _ in 0..clients {
        random.push(Random::new()?);
    }
    let started = Instant::now();
    let workers: Vec<_> = match shared {
        Some(shared) => random
            .into_iter()
            .map(|mut random| {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        let mut connection = shared.lock().await;
                        let result = transaction(&mut connection, kind, &mut random).await;
                        drop(connection);
                        tally.count(started, result);
                    }
                    tally
                })
            })
            .collect(),
        None => own
            .into_iter()
            .zip(random)
            .map(|(mut connection, mut random)| {
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        let result = transaction(&mut connection, kind, &mut random).await;
                        tally.count(started, result);
                    }
                    let _ = connection.close().await;
                    tally
                })
            })
            .collect(),
    };
    let mut total = Tally::default();
    for worker in workers {
        total.add(worker.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = if total.done > 0 { total.busy.as_secs_f64() * 1000.0 / total.done as f64 } else { 0.0 };
    Ok((total.done as f64 / elapsed, latency_ms, total))
}

/// Creates the file and the tables; returns the journal mode and `synchronous` level
/// a connection reports, to print beside the figures.
async fn create(path: &Path) -> Result<(String, i64), String> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    remove_database(path);
    let mut connection = options(path).connect().await.map_err(|e| e.to_string())?;
    connection.execute(SCHEMA).await.map_err(|e| e.to_string())?;
    let journal: String =
        sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut connection).await.map_err(|e| e.to_string())?;
    let synchronous: i64 =
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut connection).await.map_err(|e| e.to_string())?;
    connection.close().await.map_err(|e| e.to_string())?;
    Ok((journal, synchronous))
}

async fn measure(args: &Args) -> Result<(), String> {
    let (journal, synchronous) = create(&args.path).await?;
    println!("sqlite-baseline-file path={} journal_mode={journal} synchronous={synchronous}", args.path.display());
    for kind in [Kind::Insert, Kind::InsertProjection] {
        for &clients in &args.clients {
            let modes: &[Writers] = if clients == 1 { &args.writers[..1] } else { &args.writers };
            for &writers in modes {
                let (tps, latency_ms, tally) = run(&args.path, kind, writers, clients, args.seconds).await?;
                println!(
                    "sqlite-baseline kind={:<17} writers={:<11} clients={clients:<3} tps={tps:<10.1} latency_ms={latency_ms:.3} failed={}",
                    kind.name(),
                    writers.name(),
                    tally.failed
                );
                if let Some(error) = tally.first_error {
                    eprintln!("sqlite baseline: first failure: {error}");
                }
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("sqlite baseline: {message}");
            std::process::exit(2);
        }
    };
    let result = measure(&args).await;
    remove_database(&args.path);
    if let Err(message) = result {
        eprintln!("sqlite baseline: {message}");
        std::process::exit(1);
    }
}
