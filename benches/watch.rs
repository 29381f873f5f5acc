//! Watch-delay benchmark: how long a committed sign-off takes to reach
//! `AlignmentService.WatchAlignments` watchers, on the replica that wrote it and on
//! another one (PostgreSQL LISTEN/NOTIFY between processes).
//!
//!   cargo bench --bench watch -- [--watchers 100] [--seconds 20] [--rate 200]
//!       [--initiatives 20] [--approvers 10] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
//!
//! Two `accord serve` replicas (the release binary, as child processes) run on a fresh
//! database created on the server of --database-url (and dropped at the end). The bench
//! creates the initiatives, each with an open decision and --approvers approvers per
//! function, opens the watchers split evenly across the replicas (each watching every
//! initiative; its snapshot is not measured), then issues sign-offs at --rate per second,
//! alternating between the replicas, for --seconds.
//!
//! Delay of one update = the time the watcher received it minus the view's
//! `last_activity`, which is the `recorded_at` of the initiative's last event, set in the
//! committing transaction just before COMMIT. Everything runs on one machine, so both
//! clocks are the same clock. Each update is attributed to the replica that wrote its
//! version (known from the command's acknowledgement), hence "same" and "other replica".

/// The allocator the `accord` binary runs with, so that figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use accord::proto as pb;
use pb::alignment_service_client::AlignmentServiceClient;
use pb::command_service_client::CommandServiceClient;
use tonic::transport::Channel;

use common::{
    Actor, FUNCTIONS, ServeProcess, StaffedInitiative as Initiative, ThrowAwayDatabase, approver, staffed_initiative,
};

/// At most this many sign-offs in flight; beyond it the achieved rate falls below --rate.
const IN_FLIGHT: usize = 64;

struct Args {
    watchers: usize,
    seconds: u64,
    rate: u32,
    initiatives: usize,
    approvers: usize,
    database_url: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        watchers: 100,
        seconds: 20,
        rate: 200,
        initiatives: 20,
        approvers: 10,
        database_url: common::admin_url(),
    };
    let mut it = std::env::args().skip(1);
    fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or(format!("{flag} needs a value"))?;
        value.parse().map_err(|_| format!("bad {flag} {value}"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--watchers" => args.watchers = number("--watchers", it.next())?,
            "--seconds" => args.seconds = number("--seconds", it.next())?,
            "--rate" => args.rate = number("--rate", it.next())?,
            "--initiatives" => args.initiatives = number("--initiatives", it.next())?,
            "--approvers" => args.approvers = number("--approvers", it.next())?,
            "--database-url" => args.database_url = it.next().ok_or("--database-url needs a value")?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.watchers == 0 || args.rate == 0 || args.initiatives == 0 || args.approvers == 0 {
        return Err("--watchers, --rate, --initiatives and --approvers must be at least 1".into());
    }
    Ok(args)
}

struct Replica {
    name: &'static str,
    _process: ServeProcess,
    channel: Channel,
}

impl Replica {
    async fn start(name: &'static str, url: &str, workdir: &std::path::Path) -> Replica {
        let args = ["--database-url", url, "--log", "info"];
        let process = tokio::task::block_in_place(|| ServeProcess::spawn(workdir, &args))
            .unwrap_or_else(|log| panic!("replica {name} did not start; its log:\n{log}"));
        let channel = Channel::from_shared(process.address.clone()).expect("URI").connect().await.expect("connect");
        Replica { name, _process: process, channel }
    }

    fn commands(
        &self,
        actor: &str,
    ) -> CommandServiceClient<tonic::service::interceptor::InterceptedService<Channel, Actor>> {
        CommandServiceClient::with_interceptor(self.channel.clone(), Actor::new(actor))
    }

    fn queries(&self) -> AlignmentServiceClient<tonic::service::interceptor::InterceptedService<Channel, Actor>> {
        AlignmentServiceClient::with_interceptor(self.channel.clone(), Actor::new("dashboard@example.com"))
    }
}

/// One received live update: initiative, version, delay in milliseconds.
type Sample = (String, u64, f64);

struct Watcher {
    replica: &'static str,
    samples: Arc<Mutex<Vec<Sample>>>,
    /// initiative id → last version received.
    last: Arc<Mutex<HashMap<String, u64>>>,
    resyncs: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Opens a watcher and returns once its snapshot is complete.
async fn watch(replica: &Replica) -> Watcher {
    let mut stream = replica
        .queries()
        .watch_alignments(pb::WatchAlignmentsRequest::default())
        .await
        .expect("WatchAlignments")
        .into_inner();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let last = Arc::new(Mutex::new(HashMap::new()));
    let resyncs = Arc::new(AtomicU64::new(0));
    let (caught_up, is_caught_up) = tokio::sync::oneshot::channel();
    let (sink, versions, resynced) = (samples.clone(), last.clone(), resyncs.clone());
    let task = tokio::spawn(async move {
        let mut caught_up = Some(caught_up);
        while let Ok(Some(update)) = stream.message().await {
            let received = SystemTime::now();
            match update.update {
                Some(pb::alignment_update::Update::Alignment(view)) => {
                    versions.lock().unwrap().insert(view.initiative_id.clone(), view.version);
                    if caught_up.is_none()
                        && let Some(at) = view.last_activity.and_then(|t| SystemTime::try_from(t).ok())
                    {
                        let delay = match received.duration_since(at) {
                            Ok(after) => after.as_secs_f64() * 1000.0,
                            Err(before) => -before.duration().as_secs_f64() * 1000.0,
                        };
                        sink.lock().unwrap().push((view.initiative_id, view.version, delay));
                    }
                }
                Some(pb::alignment_update::Update::CaughtUp(_)) => {
                    if let Some(caught_up) = caught_up.take() {
                        let _ = caught_up.send(());
                    }
                }
                Some(pb::alignment_update::Update::Resync(_)) => {
                    resynced.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    is_caught_up.await.expect("the watcher's snapshot completes");
    Watcher { replica: replica.name, samples, last, resyncs, task }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn row(label: &str, mut delays: Vec<f64>) {
    delays.sort_by(f64::total_cmp);
    println!(
        "{label:<28} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        delays.len(),
        percentile(&delays, 50.0),
        percentile(&delays, 90.0),
        percentile(&delays, 99.0),
        delays.last().copied().unwrap_or(f64::NAN)
    );
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("watch bench: {message}");
            std::process::exit(2);
        }
    };
    let database = ThrowAwayDatabase { url: common::fresh_postgres_url_on(&args.database_url, "accord_watch_bench") };
    let workdir = tempfile::tempdir().expect("temporary folder");
    let a = Arc::new(Replica::start("A", &database.url, workdir.path()).await);
    let b = Arc::new(Replica::start("B", &database.url, workdir.path()).await);
    let replicas = [a.clone(), b.clone()];

    let initiatives: Vec<Initiative> = futures::future::join_all((0..args.initiatives).map(|n| {
        let key = format!("WATCH-{n}");
        let channel = a.channel.clone();
        async move { staffed_initiative(&channel, &key, args.approvers).await }
    }))
    .await;
    let initiatives = Arc::new(initiatives);

    let mut watchers = Vec::new();
    for n in 0..args.watchers {
        watchers.push(watch(&replicas[n % 2]).await);
    }
    eprintln!(
        "{} initiatives, {} watchers open ({} on A, {} on B); signing for {} s at {}/s",
        args.initiatives,
        watchers.len(),
        watchers.len().div_ceil(2),
        watchers.len() / 2,
        args.seconds,
        args.rate
    );

    // The load: one sign-off per tick, alternating replicas; (initiative, version) →
    // the replica that wrote it.
    let writers: Arc<Mutex<HashMap<(String, u64), &'static str>>> = Arc::default();
    let failures = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut sent = 0usize;
    let mut pending = Vec::new();
    while Instant::now() < deadline {
        ticks.tick().await;
        let permit = in_flight.clone().acquire_owned().await.expect("semaphore");
        let replica = replicas[sent % 2].clone();
        let initiative = initiatives[sent % initiatives.len()].clone();
        let function = FUNCTIONS[(sent / initiatives.len()) % FUNCTIONS.len()];
        let who = approver(function, (sent / (initiatives.len() * FUNCTIONS.len())) % args.approvers);
        let (writers, failures) = (writers.clone(), failures.clone());
        pending.push(tokio::spawn(async move {
            let signed = replica
                .commands(&who)
                .record_sign_off(pb::RecordSignOffRequest {
                    options: None,
                    initiative: initiative.id.clone(),
                    decision_id: initiative.decision.clone(),
                    function: function.to_owned(),
                    verdict: pb::Verdict::Approve.into(),
                    reason: String::new(),
                    comment: String::new(),
                    revision: None,
                })
                .await;
            match signed {
                Ok(response) => {
                    let response = response.into_inner();
                    writers.lock().unwrap().insert((response.initiative_id, response.stream_version), replica.name);
                }
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        }));
        sent += 1;
    }
    for task in pending {
        let _ = task.await;
    }
    let elapsed = started.elapsed();

    // Let the watchers receive the last updates (up to 10 s), then stop them.
    let mut finals = HashMap::new();
    for initiative in initiatives.iter() {
        let view = a
            .queries()
            .get_alignment(pb::GetAlignmentRequest { initiative: initiative.id.clone() })
            .await
            .expect("GetAlignment")
            .into_inner();
        finals.insert(initiative.id.clone(), view.version);
    }
    let drained = Instant::now() + Duration::from_secs(10);
    let behind = loop {
        let behind = watchers
            .iter()
            .filter(|w| finals.iter().any(|(id, version)| w.last.lock().unwrap().get(id) != Some(version)))
            .count();
        if behind == 0 || Instant::now() > drained {
            break behind;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for watcher in &watchers {
        watcher.task.abort();
    }
    // Which final versions are missing, as (initiative, final version, versions received
    // by the watchers short of it: lowest, highest).
    let mut short: Vec<(String, u64, u64, u64)> = Vec::new();
    for (id, version) in &finals {
        let got: Vec<u64> = watchers
            .iter()
            .map(|w| w.last.lock().unwrap().get(id).copied().unwrap_or(0))
            .filter(|got| got != version)
            .collect();
        if let (Some(low), Some(high)) = (got.iter().min(), got.iter().max()) {
            short.push((id.clone(), *version, *low, *high));
        }
    }

    let writers = writers.lock().unwrap();
    let acked = writers.len();
    let (mut all, mut on_a, mut on_b, mut same, mut other, mut unattributed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0usize);
    for watcher in &watchers {
        for (initiative, version, delay) in watcher.samples.lock().unwrap().iter() {
            all.push(*delay);
            if watcher.replica == "A" {
                on_a.push(*delay)
            } else {
                on_b.push(*delay)
            }
            match writers.get(&(initiative.clone(), *version)) {
                Some(&writer) if writer == watcher.replica => same.push(*delay),
                Some(_) => other.push(*delay),
                None => unattributed += 1,
            }
        }
    }
    let resyncs: u64 = watchers.iter().map(|w| w.resyncs.load(Ordering::Relaxed)).sum();

    println!();
    println!(
        "watch delay: {} watchers ({} on A, {} on B), {} initiatives, {} approvers per function, {} s at {}/s requested",
        watchers.len(),
        watchers.iter().filter(|w| w.replica == "A").count(),
        watchers.iter().filter(|w| w.replica == "B").count(),
        args.initiatives,
        args.approvers,
        args.seconds,
        args.rate
    );
    println!(
        "sign-offs: {acked} acknowledged, {} failed, {:.1}/s achieved over {:.1} s",
        failures.load(Ordering::Relaxed),
        acked as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "delay = watcher's receive time - the view's last_activity (the event's recorded_at, set in the \
         committing transaction just before COMMIT); live updates only, snapshots excluded"
    );
    println!();
    println!("{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}", "", "updates", "p50 ms", "p90 ms", "p99 ms", "max ms");
    row("all watchers", all);
    row("watchers on A", on_a);
    row("watchers on B", on_b);
    row("same replica as writer", same);
    row("other replica than writer", other);
    println!();
    println!(
        "updates not attributable to a writer: {unattributed}; resyncs: {resyncs}; watchers short of the final \
         versions after 10 s: {behind}"
    );
    for (id, version, low, high) in &short {
        println!("  short: initiative {id} at version {version}; watchers short of it got v{low}..v{high}");
    }
    println!(
        "reproduce: cargo bench --bench watch -- --watchers {} --seconds {} --rate {} --initiatives {} --approvers {} \
         --database-url {}",
        args.watchers, args.seconds, args.rate, args.initiatives, args.approvers, args.database_url
    );
    // The replicas stop before the database is dropped.
    drop(replicas);
    drop(a);
    drop(b);
    drop(database);
}
