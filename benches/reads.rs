//! Read benchmark: `GetAlignment` by key and 50-row `ListAlignments` pages with a text
//! filter, through the real gRPC API over loopback, at many concurrent readers; then
//! `pgbench` on the same database selecting the same `view` column by key, and the same
//! text-filtered page by `ILIKE`, so the figures come with their baseline of the same
//! sitting (see README, "Performance").
//!
//!   cargo bench --bench reads -- [--database-url postgres://postgres@127.0.0.1:5432/accord_bench_reads
//!       | sqlite:///tmp/accord-bench-reads/accord.db] [--seconds 10] [--initiatives 10000] [--readers 64]
//!       [--rounds 3] [--trgm]
//!
//! The store is created afresh and filled through the API: 64 concurrent clients (one
//! HTTP/2 connection each) create every initiative (`READ-00000`, …, titled with two
//! words of a 32-word vocabulary and its number), assign it an engineering approver and
//! propose one decision, so every view has an open decision, outstanding items and a
//! stakeholder. The readers then run, one connection each, for --seconds per kind of
//! read: `GetAlignment` of a random initiative by key, and the first 50-row page of
//! `ListAlignments` filtered by a random vocabulary word (each word is in about one
//! title in sixteen: a page is found some 800 keys into the order). The server runs in
//! this process (as in `benches/signoff.rs`) and idles while pgbench runs:
//! `pgbench -n -f SCRIPT -c READERS -j 2 -T SECONDS`. The four measurements take turns,
//! --rounds times, so that the load other work puts on the machine falls on both sides
//! alike; the figures are the medians of the rounds, and each ratio is the median of the
//! rounds' ratios (Accord against pgbench minutes apart at most).
//! With `--trgm` the text-filtered page is then measured once more in pgbench with
//! `pg_trgm` GIN indexes on the key and the title (created on the benchmark's database
//! at that point): the alternative to answering text filters from the feed.
//!
//! The last line is machine-readable:
//! `reads-summary get_per_s=… get_p99_ms=… pgbench_key_per_s=… text_page_per_s=… …`
//! (`na` where there is no figure: pgbench has nothing to run against SQLite).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::proto::{self as pb, alignment_service_client::AlignmentServiceClient};
use accord::security::Limits;
use accord::server::ServerOptions;
use accord::store::Store;
use pb::command_service_client::CommandServiceClient;
use sqlx::{Postgres, migrate::MigrateDatabase};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

/// Words the titles are made of, and the text filters search for.
const VOCABULARY: [&str; 32] = [
    "payments",
    "checkout",
    "search",
    "onboarding",
    "billing",
    "mobile",
    "pricing",
    "catalog",
    "loyalty",
    "support",
    "shipping",
    "returns",
    "identity",
    "reports",
    "insights",
    "alerts",
    "partner",
    "invoice",
    "wallet",
    "refunds",
    "coupon",
    "gateway",
    "ledger",
    "storefront",
    "wishlist",
    "reviews",
    "inventory",
    "tracking",
    "delivery",
    "subscription",
    "referral",
    "analytics",
];

/// Clients that fill the store.
const WRITERS: usize = 64;
const OWNER: &str = "owner@bench.io";
const APPROVER: &str = "approver@bench.io";
const PAGE: u32 = 50;
/// The server's database connections.
const POOL: u32 = 16;

struct Args {
    database_url: String,
    seconds: u64,
    initiatives: usize,
    readers: usize,
    rounds: usize,
    trgm: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        database_url: "postgres://postgres@127.0.0.1:5432/accord_bench_reads".into(),
        seconds: 10,
        initiatives: 10_000,
        readers: 64,
        rounds: 3,
        trgm: false,
    };
    let mut it = std::env::args().skip(1);
    fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value.parse().map_err(|_| format!("{flag}: {value:?} is not a number"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--database-url" => args.database_url = it.next().ok_or("--database-url needs a value")?,
            "--seconds" => args.seconds = number("--seconds", it.next())?,
            "--initiatives" => args.initiatives = number("--initiatives", it.next())?,
            "--readers" => args.readers = number("--readers", it.next())?,
            "--rounds" => args.rounds = number("--rounds", it.next())?,
            "--trgm" => args.trgm = true,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.initiatives == 0 || args.readers == 0 || args.seconds == 0 || args.rounds == 0 {
        return Err("--initiatives, --readers, --seconds and --rounds must be at least 1".into());
    }
    Ok(args)
}

/// The key of initiative `n`: zero-padded, so key order is number order.
fn key(n: usize, initiatives: usize) -> String {
    format!("READ-{n:0width$}", width = digits(initiatives))
}

fn digits(initiatives: usize) -> usize {
    initiatives.saturating_sub(1).max(1).ilog10() as usize + 1
}

/// The two vocabulary words of initiative `n`'s title (different ones, spread evenly).
fn words(n: usize) -> (&'static str, &'static str) {
    let first = n % VOCABULARY.len();
    let second = (first + 1 + (n / VOCABULARY.len()) % (VOCABULARY.len() - 1)) % VOCABULARY.len();
    (VOCABULARY[first], VOCABULARY[second])
}

/// A small deterministic generator (xorshift), one per reader: no shared state.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

fn actor(name: &str) -> Result<MetadataValue<Ascii>, String> {
    MetadataValue::try_from(name).map_err(|e| e.to_string())
}

fn as_actor<T>(message: T, actor: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-accord-actor", actor.clone());
    request
}

fn connect(address: std::net::SocketAddr) -> Result<Channel, String> {
    Ok(Channel::from_shared(format!("http://{address}")).map_err(|e| e.to_string())?.connect_lazy())
}

/// Creates initiatives `n` = `first`, `first + step`, … below `count`: each with an
/// approver and an open decision.
async fn fill(channel: Channel, first: usize, step: usize, count: usize) -> Result<(), String> {
    let mut client = CommandServiceClient::new(channel);
    let owner = actor(OWNER)?;
    for n in (first..count).step_by(step) {
        let key = key(n, count);
        let (a, b) = words(n);
        let create = pb::CreateInitiativeRequest {
            key: key.clone(),
            title: format!("{a} {b} {n}"),
            summary: format!("Initiative {n} of the read benchmark: {a} and {b}."),
            ..Default::default()
        };
        client.create_initiative(as_actor(create, &owner)).await.map_err(|e| format!("create {key}: {e}"))?;
        let assign = pb::AssignStakeholderRequest {
            initiative: key.clone(),
            principal: APPROVER.into(),
            function: "engineering".into(),
            role: pb::Role::Approver.into(),
            ..Default::default()
        };
        client.assign_stakeholder(as_actor(assign, &owner)).await.map_err(|e| format!("assign on {key}: {e}"))?;
        let propose = pb::ProposeDecisionRequest {
            initiative: key.clone(),
            content: Some(pb::DecisionContent {
                title: format!("Ship {a} first"),
                context: format!("{b} waits on {a}."),
                options: vec![format!("{a} first"), format!("{b} first")],
                proposal: format!("{a} first"),
                rationale: "It unblocks the most work.".into(),
            }),
            ..Default::default()
        };
        client.propose_decision(as_actor(propose, &owner)).await.map_err(|e| format!("propose on {key}: {e}"))?;
    }
    Ok(())
}

/// What a kind of read achieved.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
}

/// Runs `readers` concurrent readers for `seconds`, each on its own connection, each
/// doing `read` (given its generator) back to back; `read` says whether the call worked.
async fn measure<F, Fut>(
    address: std::net::SocketAddr,
    readers: usize,
    seconds: u64,
    read: F,
) -> Result<Figures, String>
where
    F: Fn(AlignmentServiceClient<Channel>, MetadataValue<Ascii>, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let read = Arc::new(read);
    let reader = actor("dashboard@bench.io")?;
    let mut tasks = Vec::new();
    // Connect every reader first, so connection set-up is not measured.
    let mut clients = Vec::new();
    for _ in 0..readers {
        let mut client = AlignmentServiceClient::new(connect(address)?);
        let warm = pb::ListAlignmentsRequest { page_size: 1, ..Default::default() };
        client.list_alignments(as_actor(warm, &reader)).await.map_err(|e| format!("warm-up: {e}"))?;
        clients.push(client);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    for (n, client) in clients.into_iter().enumerate() {
        let (read, reader) = (read.clone(), reader.clone());
        tasks.push(tokio::spawn(async move {
            let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let (mut latencies, mut failed) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let pick = random.below(usize::MAX);
                let call = Instant::now();
                if read(client.clone(), reader.clone(), pick).await {
                    latencies.push(call.elapsed());
                } else {
                    failed += 1;
                }
            }
            (latencies, failed)
        }));
    }
    let (mut latencies, mut failed) = (Vec::new(), 0u64);
    for task in tasks {
        let (mine, errors) = task.await.map_err(|e| e.to_string())?;
        latencies.extend(mine);
        failed += errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |quantile: f64| {
        let index = ((latencies.len() as f64 * quantile) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Figures { per_s: latencies.len() as f64 / elapsed, p50_ms: at(0.50), p99_ms: at(0.99), failed })
}

/// The server under test, on a fresh store filled with the initiatives.
struct Running {
    address: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), accord::server::ServeError>>,
}

async fn start_and_fill(args: &Args) -> Result<Running, String> {
    let url = &args.database_url;
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(folder) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(folder).map_err(|e| format!("create {}: {e}", folder.display()))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    } else if Postgres::database_exists(url).await.map_err(|e| e.to_string())? {
        Postgres::drop_database(url).await.map_err(|e| e.to_string())?;
    }
    // A small pool: the server stays up while pgbench opens --readers connections of
    // its own, and the PostgreSQL server is shared (100 connections by default).
    let store = Store::open(url, POOL).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServerOptions {
        limits: Limits { max_concurrent_calls: 4096, ..Limits::default() },
        ..ServerOptions::local_development()
    };
    let server = tokio::spawn(accord::server::serve_with(listener, store, options, async move {
        let _ = stopped.await;
    }));

    let count = args.initiatives;
    let filling = Instant::now();
    let mut writers = Vec::new();
    for first in 0..WRITERS.min(count) {
        writers.push(tokio::spawn(fill(connect(address)?, first, WRITERS, count)));
    }
    for writer in writers {
        writer.await.map_err(|e| e.to_string())??;
    }
    let seconds = filling.elapsed().as_secs_f64();
    println!(
        "reads-fill      initiatives={count} commands={} seconds={seconds:.1} cmds/s={:.0} (through gRPC, {WRITERS} clients)",
        count * 3,
        (count * 3) as f64 / seconds
    );
    Ok(Running { address, stop, server })
}

async fn get_alignments(args: &Args, address: std::net::SocketAddr) -> Result<Figures, String> {
    let count = args.initiatives;
    measure(address, args.readers, args.seconds, move |mut client, reader, pick| async move {
        let request = pb::GetAlignmentRequest { initiative: key(pick % count, count) };
        client.get_alignment(as_actor(request, &reader)).await.is_ok()
    })
    .await
}

async fn text_pages(args: &Args, address: std::net::SocketAddr) -> Result<Figures, String> {
    measure(address, args.readers, args.seconds, move |mut client, reader, pick| async move {
        let request = pb::ListAlignmentsRequest {
            text: VOCABULARY[pick % VOCABULARY.len()].into(),
            page_size: PAGE,
            ..Default::default()
        };
        match client.list_alignments(as_actor(request, &reader)).await {
            Ok(response) => response.into_inner().initiatives.len() == PAGE as usize,
            Err(_) => false,
        }
    })
    .await
}

/// pgbench's rate and mean latency for one script against `url`.
fn pgbench(url: &str, script: &str, readers: usize, seconds: u64) -> Result<(f64, f64), String> {
    let folder = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = folder.path().join("script.sql");
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let output = Command::new("pgbench")
        .args(["-n", "-f"])
        .arg(&path)
        .args(["-c", &readers.to_string(), "-j", "2", "-T", &seconds.to_string(), url])
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("pgbench failed: {}{}", text, String::from_utf8_lossy(&output.stderr)));
    }
    let figure = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    let rate = figure("tps = ").ok_or_else(|| format!("no tps in pgbench's output:\n{text}"))?;
    Ok((rate, figure("latency average = ").unwrap_or(0.0)))
}

/// The SQL the store runs for a text-filtered page (`store::postgres::list`), with the
/// pattern picked as the benchmark's readers pick theirs.
fn ilike_script() -> String {
    let words: Vec<String> = VOCABULARY.iter().map(|w| format!("'{w}'")).collect();
    format!(
        "\\set w random(1, {})\n\
         SELECT view FROM alignment\n\
          WHERE NOT archived\n\
            AND (key ILIKE '%' || (ARRAY[{}])[:w] || '%' OR title ILIKE '%' || (ARRAY[{}])[:w] || '%')\n\
          ORDER BY key LIMIT {};\n",
        VOCABULARY.len(),
        words.join(","),
        words.join(","),
        PAGE + 1
    )
}

/// Trigram indexes for `ILIKE '%…%'` on the key and the title, and fresh statistics.
fn trgm_indexes(url: &str) -> Result<(), String> {
    let sql = "CREATE EXTENSION IF NOT EXISTS pg_trgm;
               CREATE INDEX IF NOT EXISTS alignment_key_trgm ON alignment USING gin (key gin_trgm_ops);
               CREATE INDEX IF NOT EXISTS alignment_title_trgm ON alignment USING gin (title gin_trgm_ops);
               ANALYZE alignment;";
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("creating the trigram indexes failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

fn key_script(initiatives: usize) -> String {
    format!(
        "\\set n random(0, {})\n\
         SELECT view FROM alignment WHERE key = 'READ-' || lpad(:n::text, {}, '0');\n",
        initiatives - 1,
        digits(initiatives)
    )
}

fn print(name: &str, readers: usize, figures: &Figures) {
    println!(
        "{name:<15} readers={readers:<3} per_s={:<9.1} p50_ms={:<8.3} p99_ms={:<8.3} failed={}",
        figures.per_s, figures.p50_ms, figures.p99_ms, figures.failed
    );
}

fn or_na(value: Option<f64>) -> String {
    value.map_or_else(|| "na".to_owned(), |v| format!("{v:.1}"))
}

/// The middle value (the upper one of an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn median_of(figures: &[Figures]) -> Figures {
    Figures {
        per_s: median(figures.iter().map(|f| f.per_s).collect()),
        p50_ms: median(figures.iter().map(|f| f.p50_ms).collect()),
        p99_ms: median(figures.iter().map(|f| f.p99_ms).collect()),
        failed: figures.iter().map(|f| f.failed).sum(),
    }
}

/// One round: both kinds of read through Accord, then (on PostgreSQL) pgbench's key
/// select and ILIKE page while the server idles.
struct Round {
    get: Figures,
    page: Figures,
    pgbench_key: Option<f64>,
    pgbench_ilike: Option<f64>,
}

async fn round(args: &Args, running: &Running, n: usize) -> Result<Round, String> {
    let get = get_alignments(args, running.address).await?;
    print(&format!("reads-get[{n}]"), args.readers, &get);
    let page = text_pages(args, running.address).await?;
    print(&format!("reads-page[{n}]"), args.readers, &page);
    let (mut pgbench_key, mut pgbench_ilike) = (None, None);
    if !args.database_url.starts_with("sqlite://") {
        for (name, script) in [("pgbench-key", key_script(args.initiatives)), ("pgbench-ilike", ilike_script())] {
            let (rate, latency) = pgbench(&args.database_url, &script, args.readers, args.seconds)?;
            println!(
                "{:<15} clients={:<3} per_s={rate:<9.1} latency_avg_ms={latency:.3}",
                format!("{name}[{n}]"),
                args.readers
            );
            if name == "pgbench-key" {
                pgbench_key = Some(rate);
            } else {
                pgbench_ilike = Some(rate);
            }
        }
    }
    Ok(Round { get, page, pgbench_key, pgbench_ilike })
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("reads bench: {message}");
            std::process::exit(2);
        }
    };
    let fail = |message: String| -> ! {
        eprintln!("reads bench: {message}");
        std::process::exit(1);
    };
    let running = start_and_fill(&args).await.unwrap_or_else(|message| fail(message));
    let mut rounds = Vec::new();
    for n in 0..args.rounds {
        rounds.push(round(&args, &running, n).await.unwrap_or_else(|message| fail(message)));
    }
    let _ = running.stop.send(());
    match running.server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => fail(error.to_string()),
        Err(error) => fail(error.to_string()),
    }
    let get = median_of(&rounds.iter().map(|r| r.get).collect::<Vec<_>>());
    let page = median_of(&rounds.iter().map(|r| r.page).collect::<Vec<_>>());
    print("reads-get", args.readers, &get);
    print("reads-text-page", args.readers, &page);
    let median_rate = |pick: fn(&Round) -> Option<f64>| -> Option<f64> {
        let rates: Option<Vec<f64>> = rounds.iter().map(pick).collect();
        rates.map(median)
    };
    let key_rate = median_rate(|r| r.pgbench_key);
    let ilike_rate = median_rate(|r| r.pgbench_ilike);
    if let (Some(key), Some(ilike)) = (key_rate, ilike_rate) {
        println!("pgbench-key     clients={:<3} per_s={key:.1}", args.readers);
        println!("pgbench-ilike   clients={:<3} per_s={ilike:.1}", args.readers);
        // Each round's Accord figure against the pgbench figure of the same round.
        let get_ratio = median(rounds.iter().filter_map(|r| Some(r.get.per_s / r.pgbench_key?)).collect());
        let page_ratio = median(rounds.iter().filter_map(|r| Some(r.page.per_s / r.pgbench_ilike?)).collect());
        println!(
            "reads-ratios    get/pgbench_key={get_ratio:.2} text_page/pgbench_ilike={page_ratio:.2} (medians of the rounds)"
        );
    }
    if args.trgm && key_rate.is_some() {
        let trgm = trgm_indexes(&args.database_url)
            .and_then(|()| pgbench(&args.database_url, &ilike_script(), args.readers, args.seconds));
        match trgm {
            Ok((rate, latency)) => {
                println!("pgbench-ilike-trgm clients={:<3} per_s={rate:<9.1} latency_avg_ms={latency:.3}", args.readers)
            }
            Err(message) => eprintln!("reads bench: {message}"),
        }
    }
    println!(
        "reads-summary get_per_s={:.1} get_p99_ms={:.3} pgbench_key_per_s={} text_page_per_s={:.1} \
         text_page_p99_ms={:.3} pgbench_ilike_per_s={} rounds={} failed={}",
        get.per_s,
        get.p99_ms,
        or_na(key_rate),
        page.per_s,
        page.p99_ms,
        or_na(ilike_rate),
        rounds.len(),
        get.failed + page.failed
    );
}
