//! Webhook latency benchmark: how long a committed sign-off takes to reach webhook
//! receivers, with many subscriptions, and what one slow receiver costs the others.
//!
//!   cargo bench --bench webhooks -- [--subscriptions 100] [--rate 20] [--seconds 30]
//!       [--slow-ms 2000] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
//!
//! One `accord serve` (the release binary, a child process, as deployed) runs on a fresh
//! database created on the server of --database-url (dropped at the end) and delivers
//! to --subscriptions receivers on loopback ports (each its own HTTP server, verifying
//! every signature with the `standardwebhooks` crate), each subscribed to
//! `SignOffRecorded`. Sign-offs are issued at --rate per second for --seconds, twice:
//! with every receiver answering at once, then with one receiver answering each request
//! after --slow-ms.
//!
//! Latency of one message = when its receiver answered minus the event's `recorded_at`
//! (set in the committing transaction just before COMMIT; one machine, one clock).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use accord::proto as pb;
use pb::command_service_client::CommandServiceClient;
use pb::webhook_service_client::WebhookServiceClient;
use tonic::transport::Channel;

use common::{Actor, FUNCTIONS, ServeProcess, ThrowAwayDatabase, approver, staffed_initiative};
use receiver::{Answer, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Args {
    subscriptions: usize,
    rate: u32,
    seconds: u64,
    slow_ms: u64,
    database_url: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { subscriptions: 100, rate: 20, seconds: 30, slow_ms: 2000, database_url: common::admin_url() };
    let mut it = std::env::args().skip(1);
    let number = |name: &str, value: Option<String>| -> Result<u64, String> {
        value.ok_or(format!("{name} needs a value"))?.parse().map_err(|_| format!("{name} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--subscriptions" => args.subscriptions = number("--subscriptions", it.next())? as usize,
            "--rate" => args.rate = number("--rate", it.next())? as u32,
            "--seconds" => args.seconds = number("--seconds", it.next())?,
            "--slow-ms" => args.slow_ms = number("--slow-ms", it.next())?,
            "--database-url" => args.database_url = it.next().ok_or("--database-url needs a value")?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.subscriptions == 0 || args.rate == 0 || args.seconds == 0 {
        return Err("--subscriptions, --rate and --seconds must be positive".into());
    }
    Ok(args)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Latencies (ms) of the SignOffRecorded messages the receivers answered.
fn latencies<'a>(receivers: impl Iterator<Item = &'a Receiver>) -> Vec<f64> {
    let mut all = Vec::new();
    for receiver in receivers {
        for got in receiver.received() {
            let recorded =
                got.body["data"]["recorded_at"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
            if let Some(recorded) = recorded {
                all.push((got.wall - recorded).num_microseconds().unwrap_or_default() as f64 / 1000.0);
            }
        }
    }
    all.sort_by(|a, b| a.total_cmp(b));
    all
}

fn report(name: &str, latencies: &[f64], expected: usize) {
    println!(
        "{name}: {} of {expected} messages; latency ms: median {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        latencies.len(),
        percentile(latencies, 50.0),
        percentile(latencies, 90.0),
        percentile(latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
}

/// Issues `count` sign-offs at `rate` per second from `pending` (initiative, decision,
/// function, approver); returns how many were acknowledged.
async fn sign_offs(
    channel: &Channel,
    pending: &mut Vec<(String, String, String, String)>,
    rate: u32,
    count: usize,
) -> usize {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut calls = Vec::new();
    for _ in 0..count {
        let Some((initiative, decision, function, who)) = pending.pop() else { break };
        ticker.tick().await;
        let mut commands = CommandServiceClient::with_interceptor(channel.clone(), Actor::new(&who));
        calls.push(tokio::spawn(async move {
            commands
                .record_sign_off(pb::RecordSignOffRequest {
                    options: None,
                    initiative,
                    decision_id: decision,
                    function,
                    verdict: pb::Verdict::Approve.into(),
                    reason: String::new(),
                    comment: String::new(),
                    revision: None,
                })
                .await
                .is_ok()
        }));
    }
    let mut acknowledged = 0;
    for call in calls {
        if call.await.unwrap_or(false) {
            acknowledged += 1;
        }
    }
    acknowledged
}

async fn wait_for(receivers: &[Receiver], each: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && receivers.iter().any(|r| r.count() < each) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let database = ThrowAwayDatabase { url: common::fresh_postgres_url_on(&args.database_url, "accord_webhook_bench") };
    let workdir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server_args =
        ["--database-url", database.url.as_str(), "--log", "info", "--webhook-allow-private", "127.0.0.0/8"];
    let server = tokio::task::block_in_place(|| ServeProcess::spawn(workdir.path(), &server_args))?;
    let channel = Channel::from_shared(server.address.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;

    let per_phase = (u64::from(args.rate) * args.seconds) as usize;
    // Enough distinct (decision, function, approver) sign-offs for both phases.
    let approvers = 50;
    let initiatives = (2 * per_phase).div_ceil(approvers * FUNCTIONS.len());
    let mut pending = Vec::new();
    for n in 0..initiatives {
        let staffed = staffed_initiative(&channel, &format!("HOOK-{n}"), approvers).await;
        for function in FUNCTIONS {
            for a in 0..approvers {
                pending.push((
                    staffed.id.clone(),
                    staffed.decision.clone(),
                    function.to_owned(),
                    approver(function, a),
                ));
            }
        }
    }
    let mut receivers = Vec::with_capacity(args.subscriptions);
    let mut admin = WebhookServiceClient::with_interceptor(channel.clone(), Actor::new(common::OWNER));
    for _ in 0..args.subscriptions {
        let receiver = Receiver::start(SECRET).await;
        admin
            .create_subscription(pb::CreateSubscriptionRequest {
                url: receiver.url(),
                secret: SECRET.into(),
                filter: Some(pb::SubscriptionFilter { types: vec!["SignOffRecorded".into()], ..Default::default() }),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        receivers.push(receiver);
    }
    // Let the dispatcher pick every subscription up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "{} subscriptions, {} sign-offs/s for {} s per phase ({} deliveries/s wanted)",
        args.subscriptions,
        args.rate,
        args.seconds,
        args.subscriptions as u64 * u64::from(args.rate)
    );

    let started = Instant::now();
    let acknowledged = sign_offs(&channel, &mut pending, args.rate, per_phase).await;
    let issued_in = started.elapsed();
    wait_for(&receivers, acknowledged, Duration::from_secs(120)).await;
    let drained_in = started.elapsed();
    let all = latencies(receivers.iter());
    println!(
        "phase 1: {acknowledged} sign-offs acknowledged in {:.1} s; every receiver had them after {:.1} s",
        issued_in.as_secs_f64(),
        drained_in.as_secs_f64()
    );
    report("phase 1, all receivers fast", &all, acknowledged * receivers.len());
    let delivered = all.len() as f64 / drained_in.as_secs_f64();
    println!("phase 1: {delivered:.0} deliveries/s on average");

    for receiver in &receivers {
        receiver.clear();
    }
    receivers[0].answer(Answer::Slow(Duration::from_millis(args.slow_ms)));
    let started = Instant::now();
    let acknowledged = sign_offs(&channel, &mut pending, args.rate, per_phase).await;
    wait_for(&receivers[1..], acknowledged, Duration::from_secs(120)).await;
    let others = latencies(receivers[1..].iter());
    println!("phase 2: {acknowledged} sign-offs; the others had them after {:.1} s", started.elapsed().as_secs_f64());
    report("phase 2, the other receivers", &others, acknowledged * (receivers.len() - 1));
    let slow = latencies(receivers[..1].iter());
    report(&format!("phase 2, the slow receiver ({} ms an answer)", args.slow_ms), &slow, acknowledged);
    drop(server);
    Ok(())
}
